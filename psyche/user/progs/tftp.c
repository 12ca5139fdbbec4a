/*
 * tftp: the machine's file service from user space, on the kernel's UDP calls.
 *
 *   tftp get PORT NAME         fetch NAME (at most 1 MiB) from the host's server at 10.0.2.2:PORT into a
 *                              realm; prints its size and FNV-1a hash
 *   tftp put PORT NAME SIZE    store SIZE bytes of a known pattern as NAME (byte i is
 *                              (i * 31 + 7) & 255); prints the same
 *
 * The protocol is tftpc.c's, which the file server (sys/files.c) uses too.
 * Ends with "tftp: got|put N bytes, hash H" or the reason it could not.
 */
#include "tftpc.h"

#define LOCAL_PORT      1069
#define KEY             0x7F7F1234u
#define FILE_MAX        PSY_REALM_MAX   /* 1 MiB, the largest realm */

static struct psy_vp vp __attribute__((aligned(8)));
static struct tftp transfer;

static int report(const char *what, int n, const uint8_t *file)
{
    if (n < 0) {
        printf("tftp: %s: %s\n", what, transfer.error);
        return 1;
    }
    printf("tftp: %s %u bytes, hash %x, in %u cycles\n", what, (uint32_t)n, fnv1a(file, (uint32_t)n),
           (uint32_t)(rdtime64() - transfer.began));
    return 0;
}

int main(int argc, char **argv, struct psy_domain *self)
{
    if (argc < 4 || (strcmp(argv[1], "put") == 0 && argc < 5)) {
        printf("usage: tftp get PORT NAME | tftp put PORT NAME SIZE\n");
        return 2;
    }
    add_key(self, KEY);
    int realm = make_realm_near(FILE_MAX, PSY_R | PSY_W, KEY);
    if (realm < 0) {
        printf("tftp: a realm for the file: %s\n", error_name(realm));
        return 1;
    }
    vp.magic = PSY_VP_MAGIC;
    int err = set_vp(&vp);
    if (!err)
        err = udp_bind(LOCAL_PORT);
    if (err < 0) {
        printf("tftp: UDP port %u: %s\n", LOCAL_PORT, error_name(err));
        return 1;
    }
    transfer.port = LOCAL_PORT;
    transfer.server_port = parse_number(argv[2]);
    uint32_t size = argc > 4 ? parse_number(argv[4]) : 0;
    uint8_t *file = (uint8_t *)realm;
    int status;
    if (strcmp(argv[1], "get") == 0) {
        status = report("got", tftp_get(&transfer, argv[3], file, FILE_MAX), file);
    } else if (size > FILE_MAX) {
        printf("tftp: %u bytes: at most 1 MiB\n", size);
        status = 2;
    } else {
        for (uint32_t i = 0; i < size; i++)
            file[i] = (uint8_t)(i * 31 + 7);
        status = report("put", tftp_put(&transfer, argv[3], file, size), file);
    }
    destroy_realm((uint32_t)realm, KEY);   /* (realms a program made outlive it otherwise) */
    return status;
}
