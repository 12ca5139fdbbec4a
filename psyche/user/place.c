/*
 * place.c: making a program from its ELF file (place.h).
 *
 * The realms are made read/write for the placer's own key, and readable
 * and executable (code) or writable (data) for a key only the program's
 * domain holds: the placer fills them but never runs them, and every call
 * into the program, the placer's included, is a protected call that runs
 * in the program's domain.  The code addresses everything pc-relative, so
 * the realms may be anywhere: elf_place applies the file's relocations for
 * the address the kernel chose, and resolves its references to the library
 * against the library's exported symbols: the library is a realm of its
 * own, which place_library makes and every program linked against it shares.
 */
#include "place.h"

#include "elfload.h"
#include "ulib.h"

#define ALIGN_PAGE(x) (((x) + PSY_PAGE_SIZE - 1) & ~(uint32_t)(PSY_PAGE_SIZE - 1))

static struct psy_domain *self(void)
{
    return (struct psy_domain *)magic_page()->domain;
}

/* The header at the entry, checked against the image: 0, or why not. */
static const char *check_header(const struct psy_prog_header *h, uint32_t memsz, uint32_t entry)
{
    if (h->magic != PSY_PROG_MAGIC)
        return "not a Psyche program: no program header at its entry";
    const uint32_t code[] = { h->main, h->vp_init, h->call_in };
    for (uint32_t i = 0; i < 3; i++)
        if (code[i] >= memsz || code[i] % 4)
            return "a bad program header: a handler outside the program";
    if (h->vp % 8 || h->vp + sizeof(struct psy_vp) > memsz ||
        h->vp / PSY_PAGE_SIZE != (h->vp + sizeof(struct psy_vp) - 1) / PSY_PAGE_SIZE)
        return "a bad program header: its VP descriptor";
    if (h->init_sp > memsz || h->links + sizeof(struct psy_links) > memsz ||
        h->ops + 4 * PSY_PROG_OPS > memsz || entry >= memsz)
        return "a bad program header: an offset outside the program";
    return 0;
}

/* argv at the top page of the realm: the words of `args`; argc. */
static uint32_t push_args(uint8_t *top, uint32_t top_va, const char *args, uint32_t *argv_va)
{
    uint32_t *argv = (uint32_t *)top;
    char *s = (char *)(top + 4 * 32);
    char *end = (char *)top + PSY_ARGS_SIZE - 1;
    uint32_t argc = 0;
    while (*args && argc < 31) {
        while (*args == ' ')
            args++;
        if (!*args)
            break;
        argv[argc++] = top_va + (uint32_t)((uint8_t *)s - top);
        while (*args && *args != ' ' && s < end)
            *s++ = *args++;
        *s++ = 0;
    }
    argv[argc] = 0;
    *argv_va = top_va;
    return argc;
}

/* The program's VP descriptor, and its links. */
static void fill(const struct psy_prog_header *h, uint32_t base, const struct psy_links *links,
                 uint32_t invoke_key)
{
    struct psy_vp *vp = (struct psy_vp *)(base + h->vp);
    vp->magic = PSY_VP_MAGIC;
    vp->disabled = 1;
    vp->handler[PSY_SWI_INIT] = base + h->vp_init;
    vp->handler[PSY_SWI_CALL_IN] = base + h->call_in;
    vp->init_sp = base + h->init_sp;
    struct psy_links *l = (struct psy_links *)(base + h->links);
    if (links)
        *l = *links;
    l->magic = PSY_LINKS_MAGIC;
    l->self_invoke = invoke_key;
}

/* The realm's operations: main, then the program's list; 0 or an error. */
static int operations(struct placed *p, const struct psy_prog_header *h)
{
    const uint32_t *list = (const uint32_t *)(p->base + h->ops);
    uint32_t ops[1 + PSY_PROG_OPS], n = 0;
    ops[n++] = p->main;
    for (uint32_t i = 0; i < PSY_PROG_OPS && list[i]; i++) {
        if (list[i] < p->base || list[i] >= p->base + p->code)
            return PSY_EINVAL;
        p->ops[i] = list[i];
        ops[n++] = list[i];
    }
    return set_ops(p->base, p->owner_key, ops, n);
}

static int make_domain_for(struct placed *p, const struct psy_links *links, const struct psy_library *lib)
{
    int d = make_domain(p->domain_key);
    if (d < 0)
        return d;
    p->domain = (uint32_t)d;
    hold_key(self(), p->domain_key);
    struct psy_domain *dd = (struct psy_domain *)p->domain;
    p->domain_id = dd->id;
    dd->keys[0] = p->program_key;                  /* its realms: code to execute, data to write */
    dd->nkeys = 1;
    if (links && links->lookup.key)
        dd->keys[dd->nkeys++] = links->lookup.key;
    /* The library's realm opens in the domain at its first call into it, like any other. */
    if (p->linked)
        dd->keys[dd->nkeys++] = lib->key;
    return 0;
}

/* Where the program's writable part begins: its code and read-only data come before (link.ld). */
static uint32_t code_size(const struct elf_image *img)
{
    for (uint32_t i = 0; i < img->nsegs; i++)
        if (img->seg[i].flags & 2)                     /* PF_W */
            return img->seg[i].vaddr % PSY_PAGE_SIZE ? 0 : img->seg[i].vaddr;
    return 0;
}

/*
 * The program's two realms, side by side at an address the kernel chooses:
 * its code, copied page by page to each node that runs it (section 4.2: code
 * is replicated on every processor that executes it), and its data, stack and
 * arguments on `node`.  The kernel chooses one range for both (a realm made
 * and destroyed at once: the kernel never hands an address out twice), and
 * the two are made in it.  0 or an error.
 */
static int make_realms(struct placed *p, uint32_t node)
{
    int range = make_realm(p->size, PSY_R | PSY_W, p->owner_key, 0);
    if (range < 0)
        return range;
    destroy_realm((uint32_t)range, p->owner_key);
    p->base = (uint32_t)range;
    uint32_t at = PSY_REALM_AT | PSY_REALM_NODE(node);
    int err = make_realm(p->code, PSY_R | PSY_W | at | PSY_REPLICATE_DEMAND, p->owner_key, p->base);
    if (err < 0)
        return err;
    err = make_realm(p->size - p->code, PSY_R | PSY_W | at, p->owner_key, p->base + p->code);
    if (err < 0) {
        destroy_realm(p->base, p->owner_key);
        return err;
    }
    /* The program's domain may execute the code and not write it, so each node maps its own copy;
     * it may write the data; every other domain may only call its operations. */
    err = set_access(p->base, p->owner_key, p->program_key, PSY_R | PSY_X);
    if (!err)
        err = set_access(p->base, p->owner_key, p->invoke_key, PSY_INVOKE);
    if (!err)
        err = set_access(p->base + p->code, p->owner_key, p->program_key, PSY_R | PSY_W);
    if (err) {
        destroy_realm(p->base, p->owner_key);
        destroy_realm(p->base + p->code, p->owner_key);
    }
    return err;
}

static void destroy_realms(const struct placed *p)
{
    destroy_realm(p->base, p->owner_key);
    destroy_realm(p->base + p->code, p->owner_key);
}

/* What elf_check needs of the library: its exported symbols, where they are in its realm. */
static void exports(const struct psy_library *lib, struct elf_library *out)
{
    out->name = lib->name;
    out->base = lib->base;
    out->symtab = (const uint8_t *)lib->symtab;
    out->nsyms = lib->nsyms;
    out->strtab = (const char *)lib->strtab;
    out->strsz = lib->strsz;
}

int place_program(const void *file, uint32_t len, uint32_t node, const char *args,
                  const struct psy_links *links, const struct psy_library *lib, struct placed *out,
                  char *why, uint32_t whylen)
{
    struct elf_image img;
    struct elf_library elib;
    struct placed p = { .vp = -1, .node = node };
    if (lib)
        exports(lib, &elib);
    if (elf_check(file, len, PSY_REALM_MAX - PSY_ARGS_SIZE, lib ? &elib : 0, &img, why, whylen) < 0)
        return SVC_EREFUSED;
    p.linked = img.needed || img.njmprel;
    p.code = code_size(&img);
    if (!p.code) {
        copy_text(why, "no page-aligned writable part after its code (see link.ld)", whylen);
        return SVC_EREFUSED;
    }
    p.size = ALIGN_PAGE(img.memsz) + PSY_ARGS_SIZE;
    p.owner_key = new_key();
    p.domain_key = new_key();
    p.invoke_key = new_key();
    p.program_key = new_key();
    hold_key(self(), p.owner_key);
    int err = make_realms(&p, node);
    if (err < 0) {
        copy_text(why, "no realms for it", whylen);
        drop_key(self(), p.owner_key);
        return err;
    }
    /* Our first touch opens a realm with every right our keys give then, for good: the invoke
     * key now, so that we may call what we place as well as fill it. */
    hold_key(self(), p.invoke_key);
    elf_place(file, &img, (uint8_t *)p.base, p.base, lib ? &elib : 0);
    p.entry = p.base + img.entry;
    const struct psy_prog_header *h = (const struct psy_prog_header *)p.entry;
    const char *bad = check_header(h, img.memsz, img.entry);
    if (!bad && (h->vp < p.code || h->links < p.code))
        bad = "a bad program header: its VP descriptor or links in its code";
    if (bad) {
        copy_text(why, bad, whylen);
        err = SVC_EREFUSED;
        goto undo_realms;
    }
    p.main = p.base + h->main;
    p.argc = push_args((uint8_t *)(p.base + p.size - PSY_ARGS_SIZE), p.base + p.size - PSY_ARGS_SIZE,
                       args, &p.argv);
    fill(h, p.base, links, p.invoke_key);
    err = make_domain_for(&p, links, lib);
    if (err) {
        copy_text(why, "no domain for it", whylen);
        goto undo_realms;
    }
    err = set_home(p.base, p.owner_key, p.domain);
    if (!err)
        err = operations(&p, h);
    if (!err) {
        p.vp = create_vp(p.domain, node, (struct psy_vp *)(p.base + h->vp));
        err = p.vp < 0 ? p.vp : 0;
    }
    if (err) {
        copy_text(why, "its domain, operations or VP", whylen);
        destroy_domain(p.domain, p.domain_key);
        drop_key(self(), p.domain_key);
        goto undo_realms;
    }
    *out = p;
    return 0;
undo_realms:
    destroy_realms(&p);
    drop_key(self(), p.owner_key);
    drop_key(self(), p.invoke_key);
    return err;
}

/* Its VPs, whoever made them (a thread package makes more), then the domain, then the realm. */
int unplace_program(const struct placed *p)
{
    int b = end_domain(p->domain, p->domain_key);
    int c = destroy_realm(p->base, p->owner_key);
    int d = destroy_realm(p->base + p->code, p->owner_key);
    drop_key(self(), p->domain_key);
    drop_key(self(), p->owner_key);
    drop_key(self(), p->invoke_key);
    return b ? b : c ? c : d;
}

int place_library(const void *file, uint32_t len, const char *name, uint32_t key, char *why,
                  uint32_t whylen)
{
    struct elf_image img;
    if (elf_check(file, len, PSY_REALM_MAX - PSY_PAGE_SIZE, 0, &img, why, whylen) < 0)
        return SVC_EREFUSED;
    const char *bad = 0;
    for (uint32_t i = 0; i < img.nsegs; i++)
        if (img.seg[i].flags & 2)                      /* PF_W */
            bad = "a library with writable data: every program would share it";
    if (img.nrela || img.njmprel)
        bad = "a library with relocations: it must run unchanged wherever it is";
    if (!img.nsyms || !img.strsz)
        bad = "a library that exports nothing: no dynamic symbol table";
    if (bad) {
        copy_text(why, bad, whylen);
        return SVC_EREFUSED;
    }
    uint32_t image = ALIGN_PAGE(img.memsz), owner = new_key();
    hold_key(self(), owner);
    int base = make_realm(image + PSY_PAGE_SIZE, PSY_R | PSY_W | PSY_REPLICATE_DEMAND, owner, 0);
    int err = base < 0 ? base : set_access((uint32_t)base, owner, key, PSY_R | PSY_X);
    if (err < 0) {
        copy_text(why, "no realm for it", whylen);
        if (base >= 0)
            destroy_realm((uint32_t)base, owner);
        drop_key(self(), owner);
        return err;
    }
    /* Written through the master copy before anyone runs it: each node copies pages from there. */
    elf_place(file, &img, (uint8_t *)base, (uint32_t)base, 0);
    struct psy_library *d = (struct psy_library *)((uint32_t)base + image);
    d->magic = PSY_LIBRARY_MAGIC;
    copy_text(d->name, name, sizeof d->name);
    d->base = (uint32_t)base, d->size = image + PSY_PAGE_SIZE, d->key = key;
    d->symtab = (uint32_t)base + img.symtab, d->nsyms = img.nsyms;
    d->strtab = (uint32_t)base + img.strtab, d->strsz = img.strsz;
    /* The owner key goes with us: nobody may change or destroy the library while programs run it. */
    drop_key(self(), owner);
    return (int)d;
}
