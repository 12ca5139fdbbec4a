/*
 * badcalls: kernel calls with bad arguments.  Each must return its error
 * and change nothing (the test compares the kernel's realms and free frames
 * before and after).  Prints one line per call: "badcalls: CASE = ERROR".
 */
#include "ulib.h"

#define KEY 0x600DF00Du

static void check(const char *what, int result)
{
    printf("badcalls: %s = %s\n", what, error_name(result));
}

int main(int argc, char **argv, struct psy_domain *self)
{
    uint32_t mine = (uint32_t)main & ~(PSY_PAGE_SIZE - 1u);   /* in our own realm */
    check("make_realm unaligned size", make_realm(100, PSY_R, KEY, 0));
    check("make_realm size 0", make_realm(0, PSY_R, KEY, 0));
    check("make_realm 2 MiB", make_realm(2 * 1024 * 1024, PSY_R, KEY, 0));
    check("make_realm no rights", make_realm(PSY_PAGE_SIZE, 0, KEY, 0));
    check("make_realm key 0", make_realm(PSY_PAGE_SIZE, PSY_R, 0, 0));
    check("make_realm unknown flag", make_realm(PSY_PAGE_SIZE, PSY_R | 0x4000, KEY, 0));
    check("make_realm at kernel", make_realm(PSY_PAGE_SIZE, PSY_R | PSY_REALM_AT, KEY, 0x80000000));
    check("make_realm at 0x1000", make_realm(PSY_PAGE_SIZE, PSY_R | PSY_REALM_AT, KEY, 0x1000));
    check("make_realm at unaligned", make_realm(PSY_PAGE_SIZE, PSY_R | PSY_REALM_AT, KEY, 0x200800));
    check("make_realm at own realm", make_realm(PSY_PAGE_SIZE, PSY_R | PSY_REALM_AT, KEY, mine));
    check("make_realm node 200", make_realm(PSY_PAGE_SIZE, PSY_R | PSY_REALM_NODE(200), KEY, 0));
    check("make_realm two replications",
          make_realm(PSY_PAGE_SIZE, PSY_R | PSY_REPLICATE_OPEN | PSY_REPLICATE_DEMAND, KEY, 0));
    check("make_realm device in RAM",
          make_realm(PSY_PAGE_SIZE, PSY_R | PSY_REALM_DEVICE, KEY, 0x80000000));
    check("make_realm too many frames", make_realm(PSY_REALM_MAX, PSY_R, KEY, 0));
    check("destroy_realm unknown", destroy_realm(0x70000000, KEY));
    check("destroy_realm wrong key", destroy_realm(mine, KEY));
    check("destroy_realm not the base", destroy_realm(mine + 8, KEY));
    check("set_access wrong key", set_access(mine, KEY, KEY + 1, PSY_R));
    check("set_access bad rights", set_access(mine, KEY, KEY + 1, 0x100));
    uint32_t ops[PSY_REALM_OPS + 1] = { 0 };
    struct psy_realm info;
    check("set_ops unknown realm", set_ops(0x70000000, KEY, ops, 1));
    check("set_ops wrong key", set_ops(mine, KEY, ops, 0));
    check("set_ops 17 ops", set_ops(mine, KEY, ops, PSY_REALM_OPS + 1));
    check("set_ops list in kernel", set_ops(mine, KEY, (const uint32_t *)0xC0000000, 1));
    int r = make_realm(PSY_PAGE_SIZE, PSY_R, KEY, 0);
    ops[0] = (uint32_t)r + PSY_PAGE_SIZE;
    check("set_ops op past the realm", set_ops((uint32_t)r, KEY, ops, 1));
    ops[0] = (uint32_t)r + 2;
    check("set_ops op unaligned", set_ops((uint32_t)r, KEY, ops, 1));
    int err = realm_info((uint32_t)r, &info);
    printf("badcalls: after them, realm_info %s, %u ops\n", error_name(err), info.nops);
    destroy_realm((uint32_t)r, KEY);
    check("realm_info unknown", realm_info(0x70000000, &info));
    check("realm_info into kernel", realm_info(mine, (struct psy_realm *)0xC0000000));
    check("realm_info into code", realm_info(mine, (struct psy_realm *)mine));
    check("realm_info unknown flags", psy_call(PSY_REALM_INFO, mine, (uint32_t)&info, 0x10, 0));
    check("realm_info next past the end", realm_next(0x7F000000, &info));
    struct psy_vp_info vi;
    struct psy_domain_info di;
    check("vp_info 64", vp_info(PSY_MAX_VPS, &vi));
    uint32_t some = 0;                                       /* a VP that exists: ours */
    while (some < PSY_MAX_VPS && vp_info(some, &vi) != 0)
        some++;
    check("vp_info into kernel", vp_info(some, (struct psy_vp_info *)0xC0000000));
    check("domain_info 64", domain_info(64, &di));
    check("domain_info own into code", domain_info(self->id, (struct psy_domain_info *)mine));
    check("make_domain key 0", make_domain(0));
    check("destroy_domain unknown", destroy_domain(0x70000000, KEY));
    check("destroy_domain own, wrong key", destroy_domain((uint32_t)self, KEY));
    check("destroy_domain unknown flags", psy_call(PSY_DESTROY_DOMAIN, (uint32_t)self, KEY, 0x80, 0));
    check("puts null", psy_call(PSY_PUTS, 0, 10, 0, 0));
    check("puts kernel", psy_call(PSY_PUTS, 0xC0000000, 16, 0, 0));
    check("puts too long", psy_call(PSY_PUTS, (uint32_t)argv[0], 5000, 0, 0));
    check("call 99", psy_call(99, 0, 0, 0, 0));
    return 0;
}
