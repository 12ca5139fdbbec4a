/*
 * init: the primordial realm (section 3.3).  The kernel starts it on the
 * king once the nodes are up, in a protection domain of its own, and it
 * makes the initial realms from the files the boot image carries (built
 * into init, bootfiles.S): the name server, the network file server, the
 * loader and the shell, each placed in a realm of its own with a domain of
 * its own (place.c), and started by a protected call of its main operation.
 * Then it ends; they stay.
 *
 *   init PORT     the host's file server is at 10.0.2.2:PORT
 */
#include "place.h"
#include "ulib.h"

/* bootfiles.S: name, start and length of each file, 0-ended. */
struct bootfile {
    const char *name;
    const uint8_t *data;
    uint32_t len;
};
extern const struct bootfile boot_files[];

typedef int (*main_op)(uint32_t argc, uint32_t argv);

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
    int err = place_program(f->data, f->len, 0, args, links, p, why, sizeof why);
    if (err) {
        printf("init: %s: %s\n", name, why);
        return err;
    }
    int status = ((main_op)p->main)(p->argc, p->argv);
    if (status)
        printf("init: %s: main returned %d\n", name, status);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        printf("usage: init PORT\n");
        return 2;
    }
    uint64_t t0 = rdtime64();
    struct placed names, files, loader, sh;
    int err = start("names", "names", 0, &names);
    if (err)
        return 1;
    /* names' operations: lookup, enter, entry (sys/names.c) */
    struct psy_links links = {
        .magic = PSY_LINKS_MAGIC,
        .lookup = { names.ops[0], names.invoke_key },
        .enter = { names.ops[1], names.invoke_key },
    };
    char args[32] = "files ";
    char *d = args + 6;
    for (const char *s = argv[1]; *s && d < args + sizeof args - 1;)
        *d++ = *s++;
    *d = 0;
    if (start("files", args, &links, &files) || start("loader", "loader", &links, &loader) ||
        start("sh", "sh", &links, &sh))
        return 1;
    printf("init: names, files, loader and sh are up in %u cycles\n", (uint32_t)(rdtime64() - t0));
    return 0;
}
