/*
 * family KEY [keep]: make a protection domain and hand it a key (section
 * 2.3: keys pass between users without the kernel).  The new domain's
 * descriptor is a realm that KEY opens for reading and writing; writing a
 * key into it gives the new domain that key.  (It has no virtual processor
 * to run on yet.)  Then destroy it, unless asked to keep it.
 */
#include "ulib.h"

int main(int argc, char **argv, struct psy_domain *self)
{
    if (argc < 2) {
        printf("usage: family KEY\n");
        return 1;
    }
    uint32_t key = parse_number(argv[1]);
    int va = make_domain(key);
    if (va < 0) {
        printf("family: make_domain: %s\n", error_name(va));
        return 1;
    }
    add_key(self, key);
    struct psy_domain *child = (struct psy_domain *)va;
    add_key(child, self->keys[0]);   /* the key to our code, say */
    printf("family: domain %u made domain %u, descriptor %p (magic %x), gave it key %x\n",
           self->id, child->id, (void *)child, child->magic, child->keys[0]);
    if (argc > 2 && strcmp(argv[2], "keep") == 0)
        return 0;
    printf("family: destroy_domain with another key: %s\n", error_name(destroy_domain(va, key + 1)));
    printf("family: destroy_domain: %s\n", error_name(destroy_domain(va, key)));
    printf("family: destroy_domain again: %s\n", error_name(destroy_domain(va, key)));
    return 0;
}
