/*
 * device: a device realm (section 4.1).  Maps the node's doorbell registers
 * (physical 0x1000_3000, docs/memory-map.md) and reads them from U mode.
 *
 * device child: also make a domain that is not allowed devices (every domain
 * make_domain makes), give it a VP, and have that VP ask for the same realm:
 * the kernel must refuse it with EPERM.
 */
#include "ulib.h"

#define DOORBELL_PHYS 0x10003000u
#define KEY 0xD00DB311u
#define CHILD_DOMAIN_KEY 0xD00DC0DEu
#define CHILD_REALM_KEY 0xD00DC0D1u

/* The child's VP: its descriptor, what its request got, and its stack. */
struct child {
    struct psy_vp vp;
    volatile int result;
    volatile int done;
    uint8_t stack[1024] __attribute__((aligned(16)));
};

/* The child domain's VP starts here: ask for the device realm, note the answer, wait. */
static void child_init(uint32_t kind, uint32_t id)
{
    (void)kind, (void)id;
    struct child *c = (struct child *)self_vp();
    c->result = make_realm(PSY_PAGE_SIZE, PSY_R | PSY_REALM_DEVICE, KEY, DOORBELL_PHYS);
    c->done = 1;
    for (;;)
        psy_block();
}

static int child_asks(struct psy_domain *self)
{
    int d = make_domain(CHILD_DOMAIN_KEY);
    int s = make_realm(PSY_PAGE_SIZE, PSY_R | PSY_W, CHILD_REALM_KEY, 0);
    if (d < 0 || s < 0) {
        printf("device: make_domain %s, make_realm %s\n", error_name(d < 0 ? d : 0),
               error_name(s < 0 ? s : 0));
        return 1;
    }
    add_key(self, CHILD_DOMAIN_KEY);
    add_key(self, CHILD_REALM_KEY);
    struct psy_domain *dd = (struct psy_domain *)d;
    dd->keys[0] = CHILD_REALM_KEY;   /* its descriptor and stack */
    dd->keys[1] = self->keys[0];     /* our code, where child_init is */
    dd->nkeys = 2;
    struct child *c = (struct child *)s;
    c->vp.magic = PSY_VP_MAGIC;
    c->vp.handler[PSY_SWI_INIT] = (uint32_t)child_init;
    c->vp.init_sp = (uint32_t)c->stack + sizeof c->stack;
    int vp = create_vp((uint32_t)d, magic_page()->node, &c->vp);
    if (vp < 0) {
        printf("device: create_vp: %s\n", error_name(vp));
        return 1;
    }
    while (!c->done)
        ;   /* (the VPs of this node take turns) */
    int result = c->result;
    printf("device: a domain not allowed devices: make_realm: %s\n",
           result < 0 ? error_name(result) : "a realm");
    int a = destroy_vp((uint32_t)vp), b = destroy_domain((uint32_t)d, CHILD_DOMAIN_KEY);
    int e = destroy_realm((uint32_t)s, CHILD_REALM_KEY);
    return result != PSY_EPERM || a || b || e;
}

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
    if (destroy_realm((uint32_t)va, KEY) < 0)
        return 1;
    return argc > 1 && strcmp(argv[1], "child") == 0 ? child_asks(self) : 0;
}
