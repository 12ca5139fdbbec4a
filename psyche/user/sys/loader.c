/*
 * loader: the user-level loader (section 3.3).
 *
 *   loader.load(req, key)    read the program file req->name from the file server, check it,
 *                            place it in a fresh realm where the kernel chooses, with a fresh
 *                            domain and a VP on req->node (place.c), its references to the
 *                            reentrant library resolved against the library's realm, and fill
 *                            in the rest of the struct load_request: 0, or an error with
 *                            req->why saying why
 *   loader.unload(handle)    destroy what load made: 0, or an error
 *   loader.adopt(progs, n, key)  note n programs placed by someone else (init's servers, at
 *                            boot: struct psy_program[n] at progs, which `key` reads) in the
 *                            table, as PSY_PROGRAM_BOOT lines that unload refuses: 0, or an error
 *
 * `key` lets this domain read and write the caller's request.  The loader's
 * table of the programs it loaded (struct loaded_table, psyprog.h) is a realm
 * of its own, which anyone may read with the key that comes with the name
 * "loader.table" (as the op): the shell lists it.  Debuggers find it through
 * the loader's domain descriptor, whose `programs` points at it (uapi/psyche.h).
 */
#include "place.h"
#include "svc.h"
#include "ulib.h"

#define XFER_SIZE PSY_REALM_MAX

static struct psy_link files_get;
static uint8_t *xfer;                  /* the file, fetched: a realm shared with the file server */
static uint32_t xfer_key;
static struct loaded_table *table;
static struct placed placed[LOADED_MAX];
static const struct psy_library *library;  /* the reentrant library, as init entered it; 0: none */

static int free_line(void)
{
    for (int i = 0; i < LOADED_MAX; i++)
        if (!table->prog[i].domain)
            return i;
    return -1;
}

/* Fill line i from `from`; its domain last: the line is in use from there. */
static void note_line(int i, const struct psy_program *from)
{
    struct psy_program *l = &table->prog[i];
    copy_text(l->name, from->name, sizeof l->name);
    l->base = from->base, l->size = from->size;
    l->domain_id = from->domain_id, l->vp = from->vp, l->node = from->node;
    l->flags = from->flags;
    l->domain = from->domain;
    table->head.gen++;
}

static void note(int i, const char *name, const struct placed *p)
{
    struct psy_program l = { .base = p->base, .size = p->size, .domain = p->domain,
                             .domain_id = p->domain_id, .vp = p->vp, .node = p->node,
                             .flags = p->linked ? PSY_PROGRAM_LINKED : 0 };
    copy_text(l.name, name, sizeof l.name);
    note_line(i, &l);
}

static int load(struct load_request *req, uint32_t key)
{
    uint64_t t0 = rdtime64();
    hold_key((struct psy_domain *)magic_page()->domain, key);
    req->why[0] = 0;
    int line = free_line();
    if (line < 0) {
        copy_text(req->why, "the loader's table is full", LOAD_WHY);
        return SVC_EFULL;
    }
    copy_text((char *)xfer, req->name, sizeof req->name);
    int n = (int)op_first(svc_call(&files_get, (uint32_t)xfer, (uint32_t)xfer, XFER_SIZE, xfer_key));
    if (n < 0) {
        copy_text(req->why, (const char *)xfer, LOAD_WHY);
        return n;
    }
    const struct psy_magic *m = magic_page();
    if (req->node >= m->nnodes) {
        copy_text(req->why, "no such node", LOAD_WHY);
        return PSY_ERANGE;
    }
    struct placed *p = &placed[line];
    int err = place_program(xfer, (uint32_t)n, req->node, req->args, &_psy_links, library, p,
                            req->why, LOAD_WHY);
    if (err)
        return err;
    note(line, req->name, p);
    req->handle = (uint32_t)line;
    req->main = p->main, req->key = p->invoke_key;
    req->argc = p->argc, req->argv = p->argv;
    req->base = p->base, req->size = p->size, req->domain = p->domain;
    req->cycles = (uint32_t)(rdtime64() - t0);
    return 0;
}

static int unload(uint32_t handle)
{
    if (handle >= LOADED_MAX || !table->prog[handle].domain)
        return SVC_ENOENT;
    if (table->prog[handle].flags & PSY_PROGRAM_BOOT)
        return PSY_EPERM;                   /* not ours to undo */
    table->prog[handle].domain = 0;
    table->head.gen++;
    return unplace_program(&placed[handle]);
}

static int adopt(const struct psy_program *progs, uint32_t n, uint32_t key)
{
    hold_key((struct psy_domain *)magic_page()->domain, key);
    for (uint32_t i = 0; i < n; i++) {
        int line = free_line();
        if (line < 0)
            return SVC_EFULL;
        struct psy_program l = progs[i];
        l.flags |= PSY_PROGRAM_BOOT;
        note_line(line, &l);
    }
    return 0;
}

const psy_operation psy_operations[PSY_PROG_OPS] = {
    (psy_operation)load, (psy_operation)unload, (psy_operation)adopt,
};

int main(int argc, char **argv, struct psy_domain *self)
{
    (void)argc, (void)argv;
    uint32_t table_key = new_key(), read_key = new_key();
    xfer_key = new_key();
    hold_key(self, xfer_key);
    hold_key(self, table_key);
    int x = make_realm_near(XFER_SIZE, PSY_R | PSY_W, xfer_key);
    int t = make_realm(PSY_PAGE_SIZE, PSY_R | PSY_W, table_key, 0);
    int err = x < 0 ? x : t < 0 ? t : svc_lookup("files.get", &files_get);
    if (!err)
        err = set_access((uint32_t)t, table_key, read_key, PSY_R);
    /* The library: programs that need it are refused without it, and say so. */
    struct psy_link lib;
    if (!err && svc_lookup(PSY_LIBRARY_NAME, &lib) == 0 &&
        ((const struct psy_library *)lib.op)->magic == PSY_LIBRARY_MAGIC)
        library = (const struct psy_library *)lib.op;
    if (err) {
        printf("loader: %s\n", error_name(err));
        return err;
    }
    xfer = (uint8_t *)x;
    table = (struct loaded_table *)t;
    table->head = (struct psy_programs){ .magic = PSY_PROGRAMS_MAGIC, .count = LOADED_MAX,
                                         .stride = sizeof table->prog[0],
                                         .first = (uint32_t)&table->prog[0] };
    self->programs = (uint32_t)&table->head;     /* for debuggers (uapi/psyche.h) */
    err = svc_offer("loader.table", (uint32_t)table, read_key);
    if (!err)
        err = svc_enter("loader.load", (psy_operation)load);
    if (!err)
        err = svc_enter("loader.unload", (psy_operation)unload);
    if (err)
        printf("loader: %s\n", error_name(err));
    return err;
}
