/*
 * udpecho: a UDP echo server on the kernel's UDP calls.
 *
 *   udpecho PORT [COUNT [quiet]]   bind PORT, send every datagram back to where it came
 *                                  from, printing what came (not with `quiet`, for junk);
 *                                  end after COUNT datagrams (default 1; 0: never)
 *
 * It never polls: with software interrupts disabled in its descriptor,
 * PSY_SWI_NET stays pending instead of being delivered, and block() returns
 * when a datagram has arrived.  udp_recv takes datagrams until PSY_EAGAIN,
 * which also clears the pending kind, so the next block() waits for the next
 * arrival (docs/kernel-interface.md, "UDP").
 */
#include "ulib.h"

static struct psy_vp vp __attribute__((aligned(8)));
static char buf[PSY_UDP_MAX + 1];

int main(int argc, char **argv)
{
    if (argc < 2) {
        printf("usage: udpecho PORT [COUNT]\n");
        return 2;
    }
    uint32_t port = parse_number(argv[1]);
    uint32_t count = argc > 2 ? parse_number(argv[2]) : 1;
    int quiet = argc > 3 && strcmp(argv[3], "quiet") == 0;
    vp.magic = PSY_VP_MAGIC;
    vp.disabled = 1;
    int err = set_vp(&vp);
    if (err == 0)
        err = udp_bind(port);
    if (err < 0) {
        printf("udpecho: bind %u: %s\n", port, error_name(err));
        return 1;
    }
    printf("udpecho: port %u bound on node %u, vp %u\n", port, magic_page()->node, vp.id);
    for (uint32_t done = 0; count == 0 || done < count;) {
        struct psy_udp_from from;
        int n = udp_recv(port, buf, sizeof buf - 1, &from);
        if (n == PSY_EAGAIN) {
            psy_block();
            continue;
        }
        if (n < 0) {
            printf("udpecho: recv: %s\n", error_name(n));
            return 1;
        }
        buf[n] = 0;
        if (!quiet)
            printf("udpecho: %u bytes from %u.%u.%u.%u:%u: %s\n", n, from.ip >> 24,
                   (from.ip >> 16) & 255, (from.ip >> 8) & 255, from.ip & 255, from.port, buf);
        err = udp_send(port, from.ip, from.port, buf, (uint32_t)n);
        if (err < 0 && !quiet)
            printf("udpecho: send: %s\n", error_name(err));
        done++;
    }
    return 0;
}
