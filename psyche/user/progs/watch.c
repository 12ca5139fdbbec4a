/*
 * watch VA KEY: hand ourselves KEY, then read the word at VA for ever,
 * printing it whenever it changes.  It never exits: it runs until the kernel
 * stops it, e.g. on the first read after the realm is destroyed or our
 * access revoked on another node (the TLB shootdown test).
 */
#include "ulib.h"

int main(int argc, char **argv, struct psy_domain *self)
{
    if (argc < 3) {
        printf("usage: watch VA KEY\n");
        return 1;
    }
    volatile uint32_t *p = (volatile uint32_t *)parse_number(argv[1]);
    add_key(self, parse_number(argv[2]));
    uint32_t last = *p;
    printf("watch: domain %u on node %u sees %x at %p\n", self->id, magic_page()->node, last,
           (void *)p);
    for (;;) {
        uint32_t now = *p;
        if (now != last)
            printf("watch: domain %u sees %x at %p\n", self->id, now, (void *)p);
        last = now;
    }
}
