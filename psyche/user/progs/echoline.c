/*
 * echoline: a toy user-level shell on the console's input calls.
 *
 *   echoline           attach as the console's reader, prompt `echo> `, and print
 *                      `echo: LINE` for every line; `quit` detaches and ends it
 *   echoline leave     the same, but `quit` ends it without detaching (the kernel
 *                      detaches a reader that ends)
 *   echoline probe     the calls' errors: console_read and console_detach before
 *                      attaching, a second attach, a bad buffer before every line;
 *                      and lines are read 8 bytes at most (the rest is dropped)
 *
 * Start it with `spawn NODE echoline`, then type `shell` to the monitor: the
 * monitor forwards input lines to it (docs/kernel-interface.md, "Console
 * input").  Under `run` it cannot attach: the monitor would be waiting for
 * it, and nobody would forward its lines.
 *
 * Lines arrive as software interrupts (PSY_SWI_CONSOLE).  The handler reads
 * until PSY_EAGAIN, which also clears the pending kind, so a line that comes
 * after that is a new interrupt, delivered as the handler resumes what it
 * interrupted: none is missed.  Between lines the VP blocks.
 */
#include "ulib.h"

#define BAD_BUFFER ((void *)0x10)            /* never mapped: null pointers fault */

static struct psy_vp vp __attribute__((aligned(8)));
static char line[PSY_CONSOLE_LINE + 1];
static int leave, probe;

static void bye(void)
{
    if (!leave) {
        int err = console_detach();
        printf("echoline: detach: %s\n", error_name(err));
    }
    printf("echoline: bye\n");
    psy_exit(0);
}

/* PSY_SWI_CONSOLE: take every line waiting, then continue what was interrupted. */
static void on_console(uint32_t kind)
{
    (void)kind;
    for (;;) {
        if (probe) {
            int err = console_read(BAD_BUFFER, 64);
            printf("echoline: bad buffer: %s\n", error_name(err));
        }
        int n = console_read(line, probe ? 8 : PSY_CONSOLE_LINE);
        if (n == PSY_EAGAIN)
            break;
        if (n < 0) {
            printf("echoline: read: %s\n", error_name(n));
            psy_exit(1);
        }
        line[n] = 0;
        if (strcmp(line, "quit") == 0)
            bye();
        printf("echo: %s\necho> ", line);
    }
    struct psy_state st = vp.saved;
    vp.disabled = 0;
    psy_resume(&st);
    psy_exit(98);
}

int main(int argc, char **argv)
{
    leave = argc > 1 && strcmp(argv[1], "leave") == 0;
    probe = argc > 1 && strcmp(argv[1], "probe") == 0;
    vp.magic = PSY_VP_MAGIC;
    vp.disabled = 1;
    vp.handler[PSY_SWI_CONSOLE] = (uint32_t)on_console;
    int err = set_vp(&vp);
    if (err < 0) {
        printf("echoline: set_vp: %s\n", error_name(err));
        return 1;
    }
    if (probe) {
        printf("echoline: read before attach: %s\n", error_name(console_read(line, 8)));
        printf("echoline: detach before attach: %s\n", error_name(console_detach()));
    }
    err = console_attach();
    if (err < 0) {
        printf("echoline: attach: %s\n", error_name(err));
        return 1;
    }
    if (probe)
        printf("echoline: attach again: %s\n", error_name(console_attach()));
    printf("echoline: attached on node %u, vp %u\necho> ", magic_page()->node, vp.id);
    vp.disabled = 0;
    for (;;)
        psy_block();
}
