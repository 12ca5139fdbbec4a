/*
 * init: the primordial realm (section 3.3).  The kernel starts it on the
 * king once the nodes are up, in a protection domain of its own, and it
 * makes the initial realms from the files the boot image carries (built
 * into init, bootfiles.S): the name server, the network file server, the
 * loader and the shell, each placed in a realm of its own with a domain of
 * its own (place.c), and started by a protected call of its main operation.
 * First of all it places the reentrant library (libpsy.so, psyprog.h) in a
 * realm of its own, and once the name server is up enters it there under
 * its name, where the loader finds it.  Then it hands what it placed to the
 * loader (loader.adopt), whose table debuggers read, and ends; they stay.
 *
 *   init PORT     the host's file server is at 10.0.2.2:PORT
 */
#include "place.h"
#include "svc.h"
#include "ulib.h"

/* bootfiles.S: name, start and length of each file, 0-ended. */
struct bootfile {
    const char *name;
    const uint8_t *data;
    uint32_t len;
};
extern const struct bootfile boot_files[];

typedef int (*main_op)(uint32_t argc, uint32_t argv);
typedef int (*adopt_op)(uint32_t progs, uint32_t n, uint32_t key);

#define LOADER_ADOPT 2      /* loader's psy_operations: load, unload, adopt (sys/loader.c) */

static const struct bootfile *find(const char *name)
{
    for (const struct bootfile *f = boot_files; f->name; f++)
        if (strcmp(f->name, name) == 0)
            return f;
    return 0;
}

/* Place the boot file `name` with the argument line `args` and call its main: 0 or an error. */
static int start(const char *name, const char *args, const struct psy_links *links, struct placed *p)
{
    char why[96];
    const struct bootfile *f = find(name);
    if (!f) {
        printf("init: no %s in the boot image\n", name);
        return SVC_ENOENT;
    }
    int err = place_program(f->data, f->len, 0, args, links, 0, p, why, sizeof why);
    if (err) {
        printf("init: %s: %s\n", name, why);
        return err;
    }
    int status = ((main_op)p->main)(p->argc, p->argv);
    if (status)
        printf("init: %s: main returned %d\n", name, status);
    return status;
}

/*
 * Note the servers in the loader's table, for debuggers: our own memory goes
 * when we end, the loader's stays.  A page the loader reads with our key,
 * and a protected call: 0 or an error.
 */
static int hand_over(const struct placed *loader, const char *const names[],
                     const struct placed *const placed[], uint32_t n, const struct psy_library *lib)
{
    uint32_t key = new_key();
    hold_key((struct psy_domain *)magic_page()->domain, key);
    int page = make_realm(PSY_PAGE_SIZE, PSY_R | PSY_W, key, 0);
    if (page < 0)
        return page;
    struct psy_program *progs = (struct psy_program *)page;
    for (uint32_t i = 0; i < n; i++) {
        const struct placed *p = placed[i];
        struct psy_program *l = &progs[i];
        uint32_t c = 0;
        for (; names[i][c] && c + 1 < sizeof l->name; c++)
            l->name[c] = names[i][c];
        l->name[c] = 0;
        l->base = p->base, l->size = p->size, l->domain = p->domain;
        l->domain_id = p->domain_id, l->vp = p->vp, l->node = p->node;
        l->flags = PSY_PROGRAM_BOOT;
    }
    /* The library: no domain of its own, so the line names the loader's (a line in use) */
    struct psy_program *l = &progs[n];
    copy_text(l->name, lib->name, sizeof l->name);
    l->base = lib->base, l->size = lib->size, l->domain = loader->domain;
    l->domain_id = 0, l->vp = -1, l->node = 0;
    l->flags = PSY_PROGRAM_BOOT | PSY_PROGRAM_LIBRARY;
    int err = ((adopt_op)loader->ops[LOADER_ADOPT])((uint32_t)page, n + 1, key);
    destroy_realm((uint32_t)page, key);
    return err;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        printf("usage: init PORT\n");
        return 2;
    }
    uint64_t t0 = rdtime64();
    struct placed names, files, loader, sh;
    char why[96];
    const struct bootfile *libfile = find(PSY_LIBRARY_NAME);
    uint32_t lib_key = new_key();
    int lib = libfile ? place_library(libfile->data, libfile->len, PSY_LIBRARY_NAME, lib_key, why,
                                      sizeof why) : SVC_ENOENT;
    if (lib < 0) {
        printf("init: %s: %s\n", PSY_LIBRARY_NAME, libfile ? why : "not in the boot image");
        return 1;
    }
    int err = start("names", "names", 0, &names);
    if (err)
        return 1;
    /* names' operations: lookup, enter, entry (sys/names.c) */
    struct psy_links links = {
        .magic = PSY_LINKS_MAGIC,
        .lookup = { names.ops[0], names.invoke_key },
        .enter = { names.ops[1], names.invoke_key },
    };
    /* The library, for the loader to find by name: its descriptor and the key that reads it. */
    _psy_links = links;
    err = svc_offer(PSY_LIBRARY_NAME, (uint32_t)lib, lib_key);
    if (err) {
        printf("init: entering %s: %s\n", PSY_LIBRARY_NAME, error_name(err));
        return 1;
    }
    char args[32] = "files ";
    char *d = args + 6;
    for (const char *s = argv[1]; *s && d < args + sizeof args - 1;)
        *d++ = *s++;
    *d = 0;
    if (start("files", args, &links, &files) || start("loader", "loader", &links, &loader) ||
        start("sh", "sh", &links, &sh))
        return 1;
    uint32_t cycles = (uint32_t)(rdtime64() - t0);
    const char *const names_of[] = { "names", "files", "loader", "sh" };
    const struct placed *const placed[] = { &names, &files, &loader, &sh };
    err = hand_over(&loader, names_of, placed, 4, (const struct psy_library *)lib);
    if (err)
        printf("init: the loader's table: %s\n", error_name(err));
    printf("init: names, files, loader and sh are up in %u cycles\n", cycles);
    return 0;
}
