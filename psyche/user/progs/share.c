/*
 * share: one realm, many domains.  Each run is a fresh domain; the realm's
 * address means the same thing in all of them (uniform addressing).
 *
 *   share make KEY         make a one-page realm readable and writable with
 *                          KEY, write a first value in it, print its address
 *   share read VA KEY      hand ourselves KEY (0: none), read the value at VA,
 *                          then write the next one
 *   share destroy VA KEY   destroy the realm
 *   share grant VA KEY OTHER RIGHTS
 *                          set OTHER's rights on the realm (0: revoke them)
 */
#include "ulib.h"

#define FIRST_VALUE 0x5EED0001u

int main(int argc, char **argv, struct psy_domain *self)
{
    if (argc < 3) {
        printf("usage: share make KEY | share read VA KEY | share destroy VA KEY\n");
        return 1;
    }
    if (strcmp(argv[1], "make") == 0) {
        uint32_t key = parse_number(argv[2]);
        int va = make_realm(PSY_PAGE_SIZE, PSY_R | PSY_W, key, 0);
        if (va < 0) {
            printf("share: make_realm: %s\n", error_name(va));
            return 1;
        }
        add_key(self, key);
        volatile uint32_t *p = (volatile uint32_t *)va;
        *p = FIRST_VALUE;
        printf("share: domain %u made realm %p, wrote %x\n", self->id, (void *)va, *p);
        return 0;
    }
    if (argc < 4)
        return 1;
    uint32_t va = parse_number(argv[2]), key = parse_number(argv[3]);
    if (strcmp(argv[1], "grant") == 0 && argc > 5) {
        uint32_t other = parse_number(argv[4]), rights = parse_number(argv[5]);
        int err = set_access(va, key, other, rights);
        printf("share: set_access(%p, %x, %x): %s\n", (void *)va, other, rights, error_name(err));
        return err < 0;
    }
    if (strcmp(argv[1], "destroy") == 0) {
        int err = destroy_realm(va, key);
        printf("share: destroy_realm(%p): %s\n", (void *)va, error_name(err));
        return err < 0;
    }
    if (key)
        add_key(self, key);
    volatile uint32_t *p = (volatile uint32_t *)va;
    uint32_t seen = *p;
    printf("share: domain %u read %x at %p\n", self->id, seen, (void *)va);
    *p = seen + 1;
    printf("share: domain %u wrote %x at %p\n", self->id, *p, (void *)va);
    return 0;
}
