/*
 * monitor.c: the kernel monitor, on the king's console line.
 *
 * One command per line; `help` lists them.  The monitor is a kernel thread
 * on the king (its boot thread, once boot is over) that blocks on console
 * input, so it shows up in `threads` and in gdb like any other thread.
 *
 * `shell` gives the input to a user-level shell, a VP attached as the
 * console's user reader (console.c, "the user reader"): the monitor goes on
 * reading every line, forwards it to the reader, and runs only lines that
 * begin with '!' itself (`!monitor` takes the input back).  When the reader
 * detaches or ends, the monitor is woken and prompts again.
 */
#include "clock.h"
#include "console.h"
#include "ipi.h"
#include "monitor.h"
#include "net.h"
#include "node.h"
#include "panic.h"
#include "pcall.h"
#include "realm.h"
#include "restart.h"
#include "riscv.h"
#include "sched.h"
#include "selftest.h"
#include "user.h"
#include "vp.h"

#define MAX_ARGS 8

static const char *state_name(int state)
{
    switch (state) {
    case NODE_OFF: return "off";
    case NODE_BOOTING: return "booting";
    case NODE_UP: return "up";
    case NODE_PANICKED: return "panicked";
    case NODE_PARKED: return "parked";
    default: return "?";
    }
}

/* Parse a decimal node number; -1 if it is not one of ours. */
/* A decimal number below limit, or -1. */
static int parse_below(const char *s, int limit)
{
    int v = 0;
    if (!s || !*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > limit)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v < limit ? v : -1;
}

static int parse_node(const char *s)
{
    return parse_below(s, this_node.nnodes);
}

static void print_time(uint64_t cycles)
{
    uint32_t ms = (uint32_t)(cycles / (TIMEBASE_HZ / 1000));
    kprintf("%u.%03u s", ms / 1000, ms % 1000);
}

static void cmd_help(int argc, char **argv);

static void cmd_status(int argc, char **argv)
{
    (void)argc, (void)argv;
    int n = this_node.nnodes, up = 0, panicked = 0;
    for (int k = 0; k < n; k++) {
        int s = node_ptr(k)->state;
        up += s == NODE_UP;
        panicked += s == NODE_PANICKED;
    }
    uint64_t now = rdtime();
    kprintf("%d nodes: %d up, %d panicked; boot %u; uptime ", n, up, panicked, persist->boots);
    print_time(now);
    kprintf(" (%llu cycles)\n", (unsigned long long)now);
    kprintf("node  state      ticks  current       threads  switches  preempt  deferred  ipis\n");
    for (int k = 0; k < n; k++) {
        struct node *p = node_ptr(k);
        int threads = 0;
        for (struct kthread *t = p->threads; t; t = t->all_next)
            threads++;
        const char *cur = p->current ? p->current->name : "-";
        kprintf("%4d  %-9s %6u  %-12s %8d  %8u  %7u  %8u  %4u\n", k, state_name(p->state),
                p->ticks, cur, threads, p->switches, p->preemptions, p->deferred_honoured,
                p->ipis_received);
        if (p->state == NODE_PANICKED)
            kprintf("      panic: %s (pc %p)\n", p->panic_msg, (void *)p->panic_pc);
    }
}

static void cmd_ticks(int argc, char **argv)
{
    (void)argc, (void)argv;
    int n = this_node.nnodes;
    kprintf("ticks (%u Hz):", HZ);
    for (int k = 0; k < n; k++) {
        if (k % 8 == 0)
            kprintf("\n ");
        kprintf(" %3d:%-6u", k, node_ptr(k)->ticks);
    }
    kprintf("\n");
}

static void cmd_threads(int argc, char **argv)
{
    int k = argc > 1 ? parse_node(argv[1]) : 0;
    if (k < 0) {
        kprintf("threads: no node %s\n", argv[1]);
        return;
    }
    struct node *p = node_ptr(k);
    kprintf("node %d threads (current %s):\n", k, p->current ? p->current->name : "-");
    for (struct kthread *t = p->threads; t; t = t->all_next)
        kprintf("  %-15s %-8s runs %-6u %s%s\n", t->name, thread_state_name(t->state), t->runs,
                t->waiting_on ? "waits on " : "", t->waiting_on ? t->waiting_on : "");
}

static bool all_up(const char *what)
{
    for (int k = 0; k < this_node.nnodes; k++) {
        int s = node_ptr(k)->state;
        if (s != NODE_UP) {
            kprintf("%s: node %d is %s; not running\n", what, k, state_name(s));
            return false;
        }
    }
    return true;
}

static void cmd_selftest(int argc, char **argv)
{
    (void)argc, (void)argv;
    if (!all_up("selftest"))
        return;
    for (int k = 1; k < this_node.nnodes; k++) {
        atomic_or(&node_ptr(k)->work, WORK_SELFTEST);
        ipi_send(k, IPI_WORK);
    }
    selftest_run();
}

static void cmd_restart(int argc, char **argv)
{
    (void)argc, (void)argv;
    restart_request();   /* returns only when refused */
}

static void cmd_panic(int argc, char **argv)
{
    int k = argc > 1 ? parse_node(argv[1]) : -1;
    if (k < 0) {
        kprintf("usage: panic NODE (0 to %d): make that node panic\n", this_node.nnodes - 1);
        return;
    }
    ipi_send(k, IPI_PANIC);
}

static void cmd_heap(int argc, char **argv)
{
    (void)argc, (void)argv;
    struct heap *h = kg.shared_heap;
    kprintf("shared heap at %p: %u of %u bytes used (peak %u), %u allocations\n",
            (void *)h->base, h->used, h->size, h->peak, h->allocs);
    h = &this_node.heap;
    kprintf("king's local heap at %p: %u of %u bytes used (peak %u), %u allocations\n",
            (void *)h->base, h->used, h->size, h->peak, h->allocs);
}

static void cmd_run(int argc, char **argv)
{
    run_program(argc, argv);
}

/* spawn NODE NAME ARGS: the program runs on that node's daemon; we do not wait. */
static void cmd_spawn(int argc, char **argv)
{
    int k = argc > 2 ? parse_node(argv[1]) : -1;
    if (k <= 0) {
        kprintf("usage: spawn NODE NAME [ARG ...], NODE 1 to %d (run is node 0)\n",
                this_node.nnodes - 1);
        return;
    }
    struct node *n = node_ptr(k);
    if (n->state != NODE_UP || n->running) {
        kprintf("spawn: node %d is %s\n", k, n->running ? "running a program" : state_name(n->state));
        return;
    }
    char *line = n->run_line;
    uint32_t len = 0;
    for (int i = 1; i < argc && len < sizeof n->run_line; i++)   /* argv[0] is NODE */
        len += (uint32_t)ksnprintf(line + len, sizeof n->run_line - len, "%s ", argv[i]);
    n->running = true;
    atomic_or(&n->work, WORK_RUN);
    ipi_send(k, IPI_WORK);
}

/*
 * workers N: N more kernel threads on this node, for debuggers to look at.
 * The first two compute for ever (the clock preempts them, so a stopped node
 * has threads switched out in the middle of a trap); the rest wait on a
 * semaphore nobody signals.
 */
#define MAX_WORKERS 64

static struct sem workers_idle;
static volatile uint32_t worker_rounds[2];
static int workers_started;

static void worker_loop(void *arg)
{
    uint32_t i = (uint32_t)arg;
    if (i < ARRAY_SIZE(worker_rounds))
        for (;;)
            worker_rounds[i]++;
    sem_P(&workers_idle);
    panic("worker %u woke up", i);
}

static void cmd_workers(int argc, char **argv)
{
    int n = 0;
    for (const char *c = argc > 1 ? argv[1] : ""; *c >= '0' && *c <= '9' && n <= MAX_WORKERS; c++)
        n = n * 10 + (*c - '0');
    if (n <= 0 || workers_started + n > MAX_WORKERS) {
        kprintf("usage: workers N, at most %d in all (%d started)\n", MAX_WORKERS, workers_started);
        return;
    }
    if (!workers_started)
        sem_init(&workers_idle, 0, "workers idle");
    for (int i = 0; i < n; i++, workers_started++) {
        char name[16];
        ksnprintf(name, sizeof name, "worker%d", workers_started);
        kthread_create(name, worker_loop, (void *)(uint32_t)workers_started);
    }
    kprintf("workers: %d started on node %d\n", workers_started, this_node.id);
}

static const char *const policies[] = { "none", "create", "open", "demand" };

/* replicate [POLICY]: when programs' code is copied to the nodes that run it. */
static void cmd_replicate(int argc, char **argv)
{
    struct vm *vm = kg.vm;
    for (uint32_t i = 0; argc > 1 && i < ARRAY_SIZE(policies); i++)
        if (strcmp(argv[1], policies[i]) == 0)
            vm->code_policy = i ? PSY_REPLICATE_CREATE << (i - 1) : 0;
    uint32_t now = vm->code_policy / PSY_REPLICATE_CREATE;
    kprintf("programs' code is replicated: %s\n", policies[now == 4 ? 3 : now]);
}

static void cmd_realms(int argc, char **argv)
{
    (void)argc, (void)argv;
    realms_print();
}

static void cmd_pcalls(int argc, char **argv)
{
    (void)argc, (void)argv;
    pcalls_print();
}

static void cmd_vps(int argc, char **argv)
{
    (void)argc, (void)argv;
    uint32_t queued, forwarded, dropped;
    int id = console_reader(&queued, &forwarded, &dropped);
    if (id >= 0)
        kprintf("console reader: vp %d (%s), %u lines waiting; ", id,
                console_shell_active() ? "shell has the input" : "the monitor has the input", queued);
    else
        kprintf("console reader: none; ");
    kprintf("%u lines forwarded, %u dropped\n", forwarded, dropped);
    vps_print();                             /* last: its table ends the output */
}

/* shell: input lines go to the user reader until it detaches or ends, or `!monitor`. */
static void cmd_shell(int argc, char **argv)
{
    (void)argc, (void)argv;
    int id = console_shell_start();
    if (id < 0) {
        kprintf("shell: no user shell is attached (the user level starts at boot when the machine "
                "has a file server, `psyche up --files DIR`; or `spawn 1 echoline`)\n");
        return;
    }
    kprintf("shell: input goes to vp %d; `!CMD` runs a monitor command, `!monitor` comes back\n",
            id);
    console_forward("", 0);                  /* an empty line: the shell shows its prompt */
}

static void cmd_net(int argc, char **argv)
{
    (void)argc, (void)argv;
    net_print();
}

static void cmd_procs(int argc, char **argv)
{
    int id = argc == 2 ? parse_below(argv[1], MAX_DOMAINS) : -1;
    if (id < 0) {
        kprintf("usage: procs DOMAIN, DOMAIN 0 to %d\n", MAX_DOMAINS - 1);
        return;
    }
    domain_procs_print(id);
}

static const struct command {
    const char *name;
    void (*fn)(int argc, char **argv);
    const char *help;
} commands[] = {
    { "help", cmd_help, "list the commands" },
    { "status", cmd_status, "state, ticks, threads and counters of every node" },
    { "ticks", cmd_ticks, "the tick count of every node" },
    { "threads", cmd_threads, "threads [NODE]: the threads of a node (default 0)" },
    { "heap", cmd_heap, "shared and local heap usage" },
    { "selftest", cmd_selftest, "run the lock self-test on every node" },
    { "restart", cmd_restart, "restart the kernel without reloading it" },
    { "panic", cmd_panic, "panic NODE: make a node panic (tests the panic path)" },
    { "run", cmd_run, "run NAME [ARG ...]: run a user program in a fresh domain" },
    { "spawn", cmd_spawn, "spawn NODE NAME [ARG ...]: run a program on another node's daemon" },
    { "replicate", cmd_replicate, "replicate [none|create|open|demand]: when run copies code" },
    { "workers", cmd_workers, "workers N: N more threads on node 0 (two compute, the rest wait)" },
    { "realms", cmd_realms, "the realms of the uniform address space, and free frames" },
    { "vps", cmd_vps, "every virtual processor: node, domain, state, time, descriptor" },
    { "pcalls", cmd_pcalls, "protected calls in progress, and how many were made" },
    { "procs", cmd_procs, "procs DOMAIN: the processes a domain's thread package publishes" },
    { "net", cmd_net, "the NIC's and the UDP stack's counters, ARP cache and bound ports" },
    { "shell", cmd_shell, "give the input to the attached user shell; then `!CMD` runs CMD here, "
                          "`!monitor` comes back" },
};

static void cmd_help(int argc, char **argv)
{
    (void)argc, (void)argv;
    for (uint32_t i = 0; i < ARRAY_SIZE(commands); i++)
        kprintf("  %-9s %s\n", commands[i].name, commands[i].help);
}

/* Split a line into words, in place; at most max of them. */
int split_args(char *line, char **argv, int max)
{
    int argc = 0;
    while (*line && argc < max) {
        while (*line == ' ' || *line == '\t')
            *line++ = 0;
        if (!*line)
            break;
        argv[argc++] = line;
        while (*line && *line != ' ' && *line != '\t')
            line++;
    }
    return argc;
}

static void execute(char *line)
{
    char *argv[MAX_ARGS];
    int argc = split_args(line, argv, MAX_ARGS);
    if (argc == 0)
        return;
    for (uint32_t i = 0; i < ARRAY_SIZE(commands); i++) {
        if (strcmp(argv[0], commands[i].name) == 0) {
            commands[i].fn(argc, argv);
            return;
        }
    }
    kprintf("%s: unknown command; try help\n", argv[0]);
}

/* A line typed while the user shell has the input. */
static void shell_line(char *line, int n)
{
    if (line[0] == '!') {
        if (strcmp(line, "!monitor") == 0) {
            console_shell_stop();
            kprintf("shell: the monitor has the input; `shell` gives it back\n");
        } else {
            execute(line + 1);               /* one monitor command; the shell never sees it, */
            console_forward("", 0);          /* only an empty line after it, to prompt again */
        }
        return;
    }
    int r = console_forward(line, n);
    if (r < 0)
        kprintf("shell: line dropped: 8 lines wait for the shell already\n");
    else if (r == 0)
        execute(line);                       /* the shell went meanwhile: the line is ours */
}

/* If a reader took the input away with it when it went, say so. */
static bool report_gone(void)
{
    bool ended;
    int id = console_gone(&ended);
    if (id >= 0)
        kprintf("shell: vp %d %s; the monitor has the input\n", id, ended ? "ended" : "detached");
    return id >= 0;
}

NORETURN void monitor_run(void)
{
    char line[PSY_CONSOLE_LINE + 1];
    bool prompted = false;
    kthread_rename(this_node.current, "monitor");
    console_set_monitor(this_node.current);
    for (;;) {
        if (report_gone())
            prompted = false;
        if (!prompted && !console_shell_active()) {
            kputs(MONITOR_PROMPT);
            prompted = true;
        }
        int n = console_readline(line, sizeof line);
        if (n < 0)
            continue;                        /* woken without a line: the shell went */
        prompted = false;
        if (console_shell_active())
            shell_line(line, n);
        else if (strcmp(line, "!monitor") == 0)
            kprintf("shell: the monitor has the input already\n");
        else
            execute(line[0] == '!' ? line + 1 : line);
    }
}
