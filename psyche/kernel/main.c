/*
 * main.c: startup, the kernel initialization of the paper's Figure 3.
 *
 *   startup:
 *       initialize local data structures
 *       if king
 *           initialize shared data structures
 *           replicate kernel code and data
 *           start other processors
 *       barrier_sync
 *       write information for other processors into shared data structures
 *       barrier_sync
 *       ...
 *
 * Every node runs startup, on its own copy of the kernel.  After the first
 * barrier come two more episodes; in each, a node reads what its peers wrote
 * before the last barrier and writes what it learns about itself, and after
 * each barrier the king says on the console which episode has passed.
 */
#include "barrier.h"
#include "clock.h"
#include "console.h"
#include "ipi.h"
#include "memlayout.h"
#include "monitor.h"
#include "net.h"
#include "node.h"
#include "panic.h"
#include "realm.h"
#include "restart.h"
#include "riscv.h"
#include "sched.h"
#include "selftest.h"
#include "user.h"
#include "vm.h"

#define BARRIER_EPISODES 3

NORETURN void startup(int id, int restarted);

static void log_episode(uint32_t episode, const char *what)
{
    kprintf("barrier %u of %d passed: %d nodes (%s)\n", episode, BARRIER_EPISODES,
            this_node.nnodes, what);
}

/* -- king only ------------------------------------------------------------- */

/*
 * The shared (kernel/kernel) data: a heap in the king's RAM and the objects
 * the nodes need to talk to each other.  Their addresses go into kg, in the
 * king's initialized data, which replication then hands to every node.
 */
static void init_shared_data(void)
{
    int n = this_node.nnodes;
    struct heap *heap = (struct heap *)SHARED_HEAP_BASE;
    heap_init(heap, "shared", SHARED_HEAP_BASE + sizeof *heap, SHARED_HEAP_SIZE - sizeof *heap);
    kg.shared_heap = heap;
    kg.nnodes = n;
    kg.barrier = kalloc_shared(sizeof *kg.barrier);
    barrier_init(kg.barrier, n);
    kg.nodes = kalloc_shared(sizeof(struct node *) * (uint32_t)n);
    kg.conring = kalloc_shared(sizeof *kg.conring);
    spin_init(&kg.conring->lock, "console ring");
    kg.selftest = selftest_create(n);
    vm_shared_init();
    net_shared_init();
    kg.magic = KG_MAGIC;
    kprintf("king: shared heap at %p (%u KiB): barrier %p, node table %p, "
            "console ring %p, self-test objects %p\n", (void *)heap, SHARED_HEAP_SIZE / 1024,
            (void *)kg.barrier, (void *)kg.nodes, (void *)kg.conring, (void *)kg.selftest);
}

/* Copy our code and initialized data, in their current state, into every node. */
static void replicate(void)
{
    uint32_t bytes = (uint32_t)(_data_end - _text_start);
    kg.image_bytes = bytes;
    for (int k = 1; k < this_node.nnodes; k++)
        memcpy(official_on(k, _text_start), _text_start, bytes);
    kprintf("king: replicated %u KiB of kernel code and data into %d other node%s\n",
            (bytes + 1023) / 1024, this_node.nnodes - 1, this_node.nnodes == 2 ? "" : "s");
}

/*
 * Point each node's start vector at startup's entry (_entry, in start.S) in
 * that node's own copy, and ring it: the ring starts a held node there, and
 * releases a node parked for a restart, which then jumps there.
 */
static void start_others(void)
{
    uint32_t entry_offset = (uint32_t)_text_start - KERNEL_VBASE;
    persist->restart_state = RESTART_RELEASED;
    fence();
    for (int k = 1; k < this_node.nnodes; k++) {
        mmio_write32(DOORBELL_V + DB_START_PC, node_ram(k) + entry_offset);
        ipi_ring(k);
    }
    if (this_node.nnodes > 1)
        kprintf("king: started %d node%s at startup with remote interrupts\n",
                this_node.nnodes - 1, this_node.nnodes == 2 ? "" : "s");
}

static void king_init(int restarted)
{
    console_init();
    restart_record_boot();
    kg.boot_started = rdtime();
    kprintf("\nPsyche kernel: king node 0 of %d nodes, %u KiB of local memory each\n",
            this_node.nnodes, NODE_RAM_SIZE / 1024);
    if (restarted)
        kprintf("restart %u: code checksum %08x matches; initialized data restored "
                "from the saved copy\n", persist->boots - 1, persist->code_sum);
    init_shared_data();
    replicate();
    start_others();
}

/* -- the episodes ------------------------------------------------------------ */

/* Before barrier 1: tell the others where our record is. */
static void publish_self(void)
{
    kg.nodes[this_node.id] = this_node.official;
    this_node.state = NODE_UP;
}

/*
 * Episode 2 (virtual memory): read every peer's record through the
 * kernel/kernel space, check our copy of the code against the checksum the
 * king recorded, and check the user/kernel space.
 */
static void episode_memory(void)
{
    int seen = 0;
    for (int k = 0; k < this_node.nnodes; k++) {
        struct node *p = kg.nodes[k];
        if (p == node_ptr(k) && p->magic == NODE_MAGIC && p->id == k && p->ram_base == node_ram(k))
            seen++;
    }
    this_node.peers_seen = seen;
    this_node.code_sum = code_checksum();
    this_node.code_ok = this_node.code_sum == persist->code_sum;
    this_node.spaces_ok = vm_check_spaces();
}

static void report_memory(void)
{
    int reached = 0, code = 0, spaces = 0, n = this_node.nnodes;
    for (int k = 0; k < n; k++) {
        struct node *p = kg.nodes[k];
        reached += p->peers_seen == n;
        code += p->code_ok;
        spaces += p->spaces_ok;
    }
    char what[160];
    ksnprintf(what, sizeof what, "virtual memory: %d of %d reached every kernel instance, "
              "%d code copies match checksum %08x, %d user/kernel spaces ok",
              reached, n, code, persist->code_sum, spaces);
    log_episode(2, what);
    if (reached != n || code != n || spaces != n)
        kprintf("boot: WARNING: some node failed a memory check (see status)\n");
}

static void ping(void *arg)
{
    this_node.ping_from = (int)(uint32_t)arg;
    this_node.pings_received++;
}

/*
 * Episode 3 (inter-kernel interrupts, clocks): a synchronous call to the
 * next node, whose interrupts were set up before barrier 2; then start the
 * clock.
 */
static void episode_interrupts(void)
{
    int next = (this_node.id + 1) % this_node.nnodes;
    ipi_call(next, ping, (void *)(uint32_t)this_node.id);
    clock_start();
}

static void report_interrupts(void)
{
    int answered = 0, clocks = 0, n = this_node.nnodes;
    for (int k = 0; k < n; k++) {
        struct node *p = kg.nodes[k];
        answered += p->pings_received == 1 && p->ping_from == (k + n - 1) % n;
        clocks += p->clock_started != 0;
    }
    char what[160];
    ksnprintf(what, sizeof what, "inter-kernel interrupts: %d of %d answered a synchronous call; "
              "%d clocks running at %u Hz", answered, n, clocks, HZ);
    log_episode(3, what);
}

/* -- after boot ----------------------------------------------------------------- */

/* Every node but the king: serve requests posted by the monitor. */
static NORETURN void daemon_loop(void)
{
    kthread_rename(this_node.current, "daemon");
    for (;;) {
        sem_P(&this_node.work_sem);
        uint32_t work = atomic_swap(&this_node.work, 0);
        if (work & WORK_SELFTEST)
            selftest_run();
        if (work & WORK_RUN)
            run_on_daemon();
    }
}

NORETURN void startup(int id, int restarted)
{
    node_init_local(id);
    this_node.has_nic = net_probe();
    if (id == 0)
        king_init(restarted);
    publish_self();

    barrier_sync();
    if (is_king()) {
        restart_boot_done();
        log_episode(1, "local data initialized, every node in the node table");
    }

    episode_memory();
    barrier_sync();
    if (is_king())
        report_memory();

    episode_interrupts();
    net_init();                          /* the first node with a NIC takes it */
    barrier_sync();
    if (is_king())
        report_interrupts();

    if (bootargs.selftest)
        selftest_run();

    if (!is_king())
        daemon_loop();
    uint64_t took = rdtime() - kg.boot_started;
    kprintf("boot complete: %d nodes up in %llu cycles\n", this_node.nnodes,
            (unsigned long long)took);
    if (bootargs.files_port)
        start_init(bootargs.files_port);
    monitor_run();
}
