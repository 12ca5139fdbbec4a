/*
 * lookup: a program that stays a while, to be debugged through the shell
 * (docs/user-level.md, "Debugging a program").  It looks a name up through
 * the name server, a protected call into the names domain, prints what it
 * got, and waits a little, N times.
 *
 *   lookup [wait] [N [NAME]]   N times (default 3) NAME (default files.get), 0.1 s apart;
 *                              `wait` first spins until a debugger sets `go` (set var go = 1)
 */
#include "svc.h"
#include "ulib.h"

#define CLOCK_HZ 10000000u          /* the node's timer: 10 MHz */

volatile int go;                    /* `wait`: a debugger sets it */

static void pause_for(uint32_t cycles)
{
    uint64_t until = rdtime64() + cycles;
    while (rdtime64() < until)
        ;
}

/* One look-up: the operation's address, or an error. */
static __attribute__((noinline)) int ask(const char *name, struct psy_link *link)
{
    int err = svc_lookup(name, link);
    return err;
}

int main(int argc, char **argv)
{
    int i = 1;
    if (i < argc && strcmp(argv[i], "wait") == 0) {
        i++;
        printf("lookup: waiting for a debugger: set var go = 1\n");
        while (!go)
            pause_for(CLOCK_HZ / 100);
    }
    int n = i < argc ? (int)parse_number(argv[i++]) : 3;
    const char *name = i < argc ? argv[i] : "files.get";
    for (int k = 0; k < n; k++) {
        struct psy_link link = { 0, 0 };
        int err = ask(name, &link);
        if (err)
            printf("lookup: %s: %s\n", name, error_name(err));
        else
            printf("lookup: %s is op %p, key %x\n", name, (void *)link.op, link.key);
        if (k + 1 < n)
            pause_for(CLOCK_HZ / 10);
    }
    return 0;
}
