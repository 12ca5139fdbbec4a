/*
 * device: a device realm (section 4.1).  Maps the node's doorbell registers
 * (physical 0x1000_3000, docs/memory-map.md) and reads them from U mode.
 */
#include "ulib.h"

#define DOORBELL_PHYS 0x10003000u
#define KEY 0xD00DB311u

int main(int argc, char **argv, struct psy_domain *self)
{
    int va = make_realm(PSY_PAGE_SIZE, PSY_R | PSY_REALM_DEVICE, KEY, DOORBELL_PHYS);
    if (va < 0) {
        printf("device: make_realm: %s\n", error_name(va));
        return 1;
    }
    add_key(self, KEY);
    volatile uint32_t *regs = (volatile uint32_t *)va;
    printf("device: doorbells at %p: NODE_ID %u, NODE_COUNT %u; magic page: node %u of %u\n",
           (void *)va, regs[0], regs[1], magic_page()->node, magic_page()->nnodes);
    return destroy_realm((uint32_t)va, KEY) < 0;
}
