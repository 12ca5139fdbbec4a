/* svc.c: reaching the user-level services (svc.h). */
#include "svc.h"

#include "ulib.h"

typedef uint64_t (*op4)(uint32_t, uint32_t, uint32_t, uint32_t);
typedef uint64_t (*op6)(uint32_t, uint32_t, uint32_t, uint32_t, uint32_t, uint32_t);

struct psy_name psy_name(const char *s)
{
    struct psy_name n = { { 0, 0, 0, 0 } };
    for (uint32_t i = 0; i + 1 < PSY_NAME_MAX && s[i]; i++)
        n.w[i / 4] |= (uint32_t)(uint8_t)s[i] << (8 * (i % 4));
    return n;
}

static struct psy_domain *self(void)
{
    return (struct psy_domain *)magic_page()->domain;
}

int svc_lookup(const char *name, struct psy_link *out)
{
    struct psy_name n = psy_name(name);
    uint64_t r = ((op4)_psy_links.lookup.op)(n.w[0], n.w[1], n.w[2], n.w[3]);
    if ((int)op_first(r) < 0)
        return (int)op_first(r);
    out->op = op_first(r);
    out->key = op_second(r);
    hold_key(self(), out->key);
    return 0;
}

int svc_offer(const char *name, uint32_t value, uint32_t key)
{
    struct psy_name n = psy_name(name);
    return (int)op_first(((op6)_psy_links.enter.op)(n.w[0], n.w[1], n.w[2], n.w[3], value, key));
}

int svc_enter(const char *name, psy_operation op)
{
    return svc_offer(name, (uint32_t)op, _psy_links.self_invoke);
}

int svc_withdraw(const char *name, uint32_t value, uint32_t key)
{
    struct psy_link remove;
    int err = svc_lookup("names.remove", &remove);
    if (err)
        return err;
    struct psy_name n = psy_name(name);
    typedef int (*remove_op)(uint32_t, uint32_t, uint32_t, uint32_t, uint32_t, uint32_t);
    return ((remove_op)remove.op)(n.w[0], n.w[1], n.w[2], n.w[3], value, key);
}

uint64_t svc_call(const struct psy_link *l, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3)
{
    return ((op4)l->op)(a0, a1, a2, a3);
}
