/*
 * names: the name server (section 3.3), the first realm init makes.
 *
 * It maps names of at most 15 characters to a realm operation and the key
 * that invokes it: a server enters its operations, a program looks them up
 * and holds the key from then on.  A name travels in four argument
 * registers (psyprog.h, struct psy_name), so no memory is shared with the
 * caller at all.  First come, first served: a name stays until it is removed
 * (a server that goes withdraws its names, so that the next one may enter them).
 *
 *   lookup(name[4])           -> (op, key), or (SVC_ENOENT, 0)
 *   enter(name[4], op, key)   -> 0, SVC_EEXIST, SVC_EFULL
 *   entry(i, w)               -> (word w of entry i's name, its op), or (SVC_ENOENT, 0) past
 *                                the end: for listings
 *   remove(name[4], op, key)  -> 0, or SVC_ENOENT if no entry has that name, op and key: the
 *                                entry goes (what remove must name is what enter entered, so a
 *                                name is not withdrawn by mistake; like enter, it trusts callers)
 */
#include "svc.h"
#include "ulib.h"

#define NAMES_MAX 32

static struct {
    struct psy_name name;
    uint32_t op, key;
} table[NAMES_MAX];
static uint32_t used;

static uint64_t pair(uint32_t first, uint32_t second)
{
    return (uint64_t)second << 32 | first;
}

static int find(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3)
{
    for (uint32_t i = 0; i < used; i++) {
        const uint32_t *w = table[i].name.w;
        if (w[0] == w0 && w[1] == w1 && w[2] == w2 && w[3] == w3)
            return (int)i;
    }
    return -1;
}

static uint64_t lookup(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3)
{
    int i = find(w0, w1, w2, w3);
    return i < 0 ? pair((uint32_t)SVC_ENOENT, 0) : pair(table[i].op, table[i].key);
}

static int enter(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3, uint32_t op, uint32_t key)
{
    if (find(w0, w1, w2, w3) >= 0)
        return SVC_EEXIST;
    if (used == NAMES_MAX)
        return SVC_EFULL;
    table[used] = (typeof(table[0])){ { { w0, w1, w2, w3 } }, op, key };
    used++;
    return 0;
}

static uint64_t entry(uint32_t i, uint32_t w)
{
    if (i >= used || w > 3)
        return pair((uint32_t)SVC_ENOENT, 0);
    return pair(table[i].name.w[w], table[i].op);
}

static int withdraw(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3, uint32_t op, uint32_t key)
{
    int i = find(w0, w1, w2, w3);
    if (i < 0 || table[i].op != op || table[i].key != key)
        return SVC_ENOENT;
    for (uint32_t j = (uint32_t)i; j + 1 < used; j++)   /* in order: listings keep theirs */
        table[j] = table[j + 1];
    used--;
    return 0;
}

const psy_operation psy_operations[PSY_PROG_OPS] = {
    (psy_operation)lookup, (psy_operation)enter, (psy_operation)entry, (psy_operation)withdraw,
};

/* Our own names, entered directly: the loader's links to us are filled only after we start. */
static int enter_own(const char *name, void *op)
{
    struct psy_name n = psy_name(name);
    return enter(n.w[0], n.w[1], n.w[2], n.w[3], (uint32_t)op, _psy_links.self_invoke);
}

int main(int argc, char **argv, struct psy_domain *self)
{
    (void)argc, (void)argv, (void)self;
    int err = enter_own("names.lookup", (void *)lookup);
    if (!err)
        err = enter_own("names.enter", (void *)enter);
    if (!err)
        err = enter_own("names.entry", (void *)entry);
    if (!err)
        err = enter_own("names.remove", (void *)withdraw);
    return err;
}
