/*
 * filecheck: a round trip through the file server, as any program would
 * make it (docs/user-level.md): write a file to the host, read it back.
 *
 *   filecheck NAME SIZE
 *
 * Makes a realm for the name and the data, writes SIZE bytes of a known
 * pattern there (byte i is the top byte of i * 2654435761, which repeats
 * only every 2^32 bytes, so a block of the transfer that landed in the
 * wrong place shows), has files.put store them as NAME, clears the data,
 * has files.get fetch NAME into the same place, and compares.  The file
 * server reads and writes the realm with the key this program passes it.
 * Ends with "filecheck: wrote and read back N bytes of NAME, hash H" (H: the
 * FNV-1a hash of the bytes) or what went wrong.
 */
#include "svc.h"
#include "ulib.h"

#define NAME_ROOM 64                            /* the name, at the start of the realm */
#define DATA_MAX  (PSY_REALM_MAX - PSY_PAGE_SIZE)

static uint8_t pattern(uint32_t i)
{
    return (uint8_t)((i * 2654435761u) >> 24);
}

int main(int argc, char **argv, struct psy_domain *self)
{
    if (argc < 3) {
        printf("usage: filecheck NAME SIZE\n");
        return 2;
    }
    const char *name = argv[1];
    uint32_t size = parse_number(argv[2]);
    if (size > DATA_MAX) {
        printf("filecheck: %u bytes: at most %u\n", size, DATA_MAX);
        return 2;
    }
    struct psy_link put, get;
    int err = svc_lookup("files.put", &put);
    if (!err)
        err = svc_lookup("files.get", &get);
    if (err) {
        printf("filecheck: the file server: %s\n", error_name(err));
        return 1;
    }
    uint32_t key = new_key();
    uint32_t room = (NAME_ROOM + size + 1 + PSY_PAGE_SIZE - 1) & ~(PSY_PAGE_SIZE - 1);
    int realm = make_realm_near(room, PSY_R | PSY_W, key);
    if (realm < 0) {
        printf("filecheck: a realm of %u bytes: %s\n", room, error_name(realm));
        return 1;
    }
    add_key(self, key);
    char *at = (char *)realm;
    uint8_t *data = (uint8_t *)realm + NAME_ROOM;
    uint32_t i = 0;
    for (; i + 1 < NAME_ROOM && name[i]; i++)
        at[i] = name[i];
    at[i] = 0;
    for (i = 0; i < size; i++)
        data[i] = pattern(i);
    uint32_t wrote = fnv1a(data, size);
    int status = 1;
    int n = (int)op_first(svc_call(&put, (uint32_t)at, (uint32_t)data, size, key));
    if (n != (int)size) {
        printf("filecheck: files.put %s: %s\n", name, n < 0 ? error_name(n) : "short");
        goto out;
    }
    memset(data, 0, size);
    n = (int)op_first(svc_call(&get, (uint32_t)at, (uint32_t)data, room - NAME_ROOM, key));
    if (n < 0) {
        printf("filecheck: files.get %s: %s (%s)\n", name, error_name(n), (const char *)data);
        goto out;
    }
    if ((uint32_t)n != size) {
        printf("filecheck: wrote %u bytes of %s, read back %d\n", size, name, n);
        goto out;
    }
    for (i = 0; i < size && data[i] == pattern(i); i++)
        ;
    if (i < size) {
        printf("filecheck: %s differs at byte %u: %x, not %x\n", name, i, data[i], pattern(i));
        goto out;
    }
    printf("filecheck: wrote and read back %u bytes of %s, hash %x\n", size, name, wrote);
    status = 0;
out:
    destroy_realm((uint32_t)realm, key);       /* realms a program made outlive it otherwise */
    drop_key(self, key);
    return status;
}
