/*
 * swi: software interrupts and virtual processors, one way at a time.
 *
 *   swi timer CYCLES      the wall-clock timer, set CYCLES ahead by a store, while blocked
 *   swi spin CYCLES       the same while computing
 *   swi wild ADDR         a store to ADDR: an error software interrupt, then carry on
 *   swi vps NODE ROUNDS   create a VP on NODE and destroy it again, ROUNDS times; the
 *                         magic page's statistics show the first one waiting
 *   swi busy              a VP descriptor in a realm of its own: the realm cannot be
 *                         destroyed while the VP lives
 *
 * Times are this node's clock, in cycles.
 */
#include <stdbool.h>

#include "ulib.h"

static struct psy_vp vp __attribute__((aligned(8)));
static volatile uint32_t arrived_lo, arrived_hi, kinds, error_cause, error_addr;

/* Every kind's handler: note what came and when, then continue where we were. */
static void handler(uint32_t kind, uint32_t a1, uint32_t a2)
{
    uint64_t now = rdtime64();
    struct psy_state st = vp.saved;
    arrived_lo = (uint32_t)now;
    arrived_hi = (uint32_t)(now >> 32);
    kinds |= 1u << kind;
    if (kind == PSY_SWI_ERROR) {
        error_cause = a1;
        error_addr = a2;
        st.pc += 4;                      /* skip the faulting store */
    }
    vp.disabled = 0;
    psy_resume(&st);
    psy_exit(98);
}

/* A VP that only waits: its initialisation handler blocks for good. */
static void waiter(uint32_t kind, uint32_t id)
{
    (void)kind, (void)id;
    for (;;)
        psy_block();
}

static int timer(uint32_t ahead, bool spin)
{
    uint64_t due = rdtime64() + ahead;
    vp.timer_at = due;                   /* a store: no kernel call */
    vp.disabled = 0;
    if (spin)
        while (!kinds)
            ;
    else
        while (!kinds)
            psy_block();
    uint64_t arrived = (uint64_t)arrived_hi << 32 | arrived_lo;
    printf("swi: timer kinds %x due %u arrived %u late %u early %u\n", kinds, (uint32_t)due,
           (uint32_t)arrived, arrived >= due ? (uint32_t)(arrived - due) : 0,
           arrived < due ? (uint32_t)(due - arrived) : 0);
    return 0;
}

static int wild(uint32_t addr)
{
    vp.disabled = 0;
    *(volatile uint32_t *)addr = 0x5eed;
    printf("swi: error kinds %x cause %u addr %p, and on we go\n", kinds, error_cause,
           (void *)error_addr);
    return kinds == 1u << PSY_SWI_ERROR ? 0 : 1;
}

static struct psy_vp other __attribute__((aligned(8)));

static uint8_t other_stack[1024] __attribute__((aligned(16)));

static void waiting_vp(struct psy_vp *desc)
{
    desc->magic = PSY_VP_MAGIC;
    desc->handler[PSY_SWI_INIT] = (uint32_t)waiter;
    desc->init_sp = (uint32_t)other_stack + sizeof other_stack;
}

/* What the magic page says about VP id, once its statistics have been refreshed twice. */
static void show_stats(uint32_t id)
{
    const struct psy_magic *m = magic_page();
    uint32_t from = m->stats_tick;
    while (m->stats_tick < from + 20)
        ;
    printf("swi: magic page: me vp %u at %p (mine %p); vp %u on node %u, state %u, domain %u\n",
           m->vp_id, (void *)m->vp, (void *)&vp, id, m->vps[id].node, m->vps[id].state,
           m->vps[id].domain);
}

static int vps(uint32_t node, uint32_t rounds)
{
    waiting_vp(&other);
    for (uint32_t i = 0; i < rounds; i++) {
        int id = create_vp(0, node, &other);
        if (id < 0) {
            printf("swi: create_vp: %s\n", error_name(id));
            return 1;
        }
        if (i == 0)
            show_stats((uint32_t)id);
        int err = destroy_vp((uint32_t)id);
        if (err) {
            printf("swi: destroy_vp: %s\n", error_name(err));
            return 1;
        }
    }
    printf("swi: made and destroyed %u VPs on node %u; destroy again: %s\n", rounds, node,
           error_name(destroy_vp(other.id)));
    return 0;
}

static int busy(struct psy_domain *self)
{
    const uint32_t key = 0xB5B5;
    int va = make_realm(PSY_PAGE_SIZE, PSY_R | PSY_W, key, 0);
    add_key(self, key);
    struct psy_vp *desc = (struct psy_vp *)va;
    waiting_vp(desc);
    int id = create_vp(0, magic_page()->node, desc);
    int while_used = destroy_realm((uint32_t)va, key);
    int gone = destroy_vp((uint32_t)id);
    int after = destroy_realm((uint32_t)va, key);
    printf("swi: busy: vp %d; destroy_realm %s, destroy_vp %s, destroy_realm %s\n", id,
           error_name(while_used), error_name(gone), error_name(after));
    return 0;
}

int main(int argc, char **argv, struct psy_domain *self)
{
    const char *how = argc > 1 ? argv[1] : "";
    uint32_t n = argc > 2 ? parse_number(argv[2]) : 0;
    vp.magic = PSY_VP_MAGIC;
    vp.disabled = 1;
    for (int k = 0; k < PSY_SWI_KINDS; k++)
        vp.handler[k] = (uint32_t)handler;
    int err = set_vp(&vp);
    if (err) {
        printf("swi: set_vp: %s\n", error_name(err));
        return 1;
    }
    if (strcmp(how, "timer") == 0 || strcmp(how, "spin") == 0)
        return timer(n, how[0] == 's');
    if (strcmp(how, "wild") == 0)
        return wild(n);
    if (strcmp(how, "vps") == 0)
        return vps(n, argc > 3 ? parse_number(argv[3]) : 1);
    if (strcmp(how, "busy") == 0)
        return busy(self);
    printf("usage: swi timer CYCLES | spin CYCLES | wild ADDR | vps NODE ROUNDS | busy\n");
    return 1;
}
