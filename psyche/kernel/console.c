/*
 * console.c: the king's console line (a 16550), kernel printf, and input.
 *
 * Only the king has a console.  Other nodes print by appending to a ring in
 * shared memory and ringing the king, whose doorbell handler copies the ring
 * to the line.  On the king a message goes out with interrupts locked out,
 * which keeps it whole: the console is a device, and its interrupt handler
 * (which echoes input) is the only other writer on this node.
 *
 * Input is line-edited by the receive interrupt handler, which signals a
 * semaphore per completed line; the monitor thread blocks on it.  A user VP
 * may attach as the console's user reader (console_attach): the monitor's
 * `shell` then forwards lines to it (below, "The user reader").
 */
#include "console.h"
#include "ipi.h"
#include "memlayout.h"
#include "node.h"
#include "realm.h"
#include "riscv.h"
#include "sched.h"
#include "sem.h"
#include "vp.h"

#define UART_RBR 0
#define UART_THR 0
#define UART_IER 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_LSR 5
#define LSR_DR   0x01
#define LSR_THRE 0x20

#define INPUT_SIZE 256

/* King-local input state, shared with the receive interrupt handler. */
static struct {
    char buf[INPUT_SIZE];
    uint32_t r;            /* next byte the reader takes */
    uint32_t w;            /* end of the completed lines */
    uint32_t e;            /* end of the line being edited */
    bool last_cr;          /* swallow the LF of a CR LF pair */
    struct sem lines;      /* one unit per completed line */
} input;

static bool console_ready;

static void ucon_init(void);

void console_init(void)
{
    mmio_write8(CONSOLE_V + UART_LCR, 0x03);      /* 8 bits, no parity, 1 stop */
    mmio_write8(CONSOLE_V + UART_FCR, 0x07);      /* FIFOs on and cleared */
    mmio_write8(CONSOLE_V + UART_IER, 0x01);      /* receive interrupt */
    sem_init(&input.lines, 0, "console input");
    uint32_t enable = mmio_read32(INTC_V + INTC_ENABLE_S);
    mmio_write32(INTC_V + INTC_ENABLE_S, enable | (1u << SRC_CONSOLE));
    ucon_init();
    console_ready = true;
}

static void uart_putc(uint32_t base, char c)
{
    while (!(mmio_read8(base + UART_LSR) & LSR_THRE))
        ;
    mmio_write8(base + UART_THR, (uint8_t)c);
}

/* A raw serial line: the console sends CR LF for every newline. */
static void console_putc(char c)
{
    if (c == '\n')
        uart_putc(CONSOLE_V, '\r');
    uart_putc(CONSOLE_V, c);
}

static void console_write(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        console_putc(s[i]);
}

/* This node's own serial line: every node has one (captured by the host). */
void onboard_puts(const char *s)
{
    for (; *s; s++) {
        if (*s == '\n')
            uart_putc(UART_V, '\r');
        uart_putc(UART_V, *s);
    }
}

/* Non-king nodes: queue for the king.  Output that does not fit is dropped. */
static void conring_write(const char *s, int n)
{
    struct conring *ring = kg.conring;
    if (!ring)
        return;
    uint32_t flags = spin_lock_irqsave(&ring->lock);
    for (int i = 0; i < n; i++) {
        if (ring->tail - ring->head >= CONRING_SIZE) {
            ring->dropped += n - i;
            break;
        }
        ring->buf[ring->tail % CONRING_SIZE] = s[i];
        ring->tail++;
    }
    spin_unlock_irqrestore(&ring->lock, flags);
    ipi_send(0, IPI_CONSOLE);
}

/* King, in its doorbell handler: print what the other nodes queued. */
void console_drain_remote(void)
{
    struct conring *ring = kg.conring;
    if (!ring || !console_ready)
        return;
    uint32_t flags = spin_lock_irqsave(&ring->lock);
    while (ring->head != ring->tail) {
        console_putc(ring->buf[ring->head % CONRING_SIZE]);
        ring->head++;
    }
    spin_unlock_irqrestore(&ring->lock, flags);
}

static void output(const char *s, int n)
{
    if (is_king()) {
        if (!console_ready)
            return;
        uint32_t flags = intr_disable();
        console_write(s, n);
        intr_restore(flags);
    } else {
        conring_write(s, n);
    }
}

void kvprintf(const char *fmt, va_list ap)
{
    char buf[256];
    int n = kvsnprintf(buf, sizeof buf, fmt, ap);
    output(buf, n < (int)sizeof buf ? n : (int)sizeof buf - 1);
}

void kprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kvprintf(fmt, ap);
    va_end(ap);
}

void kputs(const char *s)
{
    output(s, (int)strlen(s));
}

/* -- input ------------------------------------------------------------------ */

static void input_char(char c)
{
    if (c == '\n' && input.last_cr) {
        input.last_cr = false;
        return;
    }
    input.last_cr = (c == '\r');
    switch (c) {
    case '\r':
    case '\n':
        if (input.e - input.r >= INPUT_SIZE)
            input.e--;                     /* full: the newline replaces the last byte */
        input.buf[input.e++ % INPUT_SIZE] = '\n';
        input.w = input.e;
        console_write("\n", 1);
        sem_V(&input.lines);
        break;
    case 0x7F:                             /* delete */
    case '\b':
        if (input.e != input.w) {
            input.e--;
            console_write("\b \b", 3);
        }
        break;
    case 0x15:                             /* ^U: erase the line */
        while (input.e != input.w) {
            input.e--;
            console_write("\b \b", 3);
        }
        break;
    default:
        if ((uint8_t)c < ' ' || input.e - input.r >= INPUT_SIZE - 1)
            break;                         /* control character, or no room */
        input.buf[input.e++ % INPUT_SIZE] = c;
        console_write(&c, 1);
    }
}

/* The console's receive interrupt handler (king only). */
void console_intr(void)
{
    while (mmio_read8(CONSOLE_V + UART_LSR) & LSR_DR)
        input_char((char)mmio_read8(CONSOLE_V + UART_RBR));
}

/*
 * Block until a line is complete; returns its length without the newline.
 * -1 (buf empty) when the monitor was woken without a line: its user
 * reader went away while it had the input (console_wake_monitor).  Every
 * unit of `lines` is a completed line or such a wake-up, and a wake-up
 * never takes a line, so the two cannot be confused.
 */
int console_readline(char *buf, int size)
{
    sem_P(&input.lines);
    uint32_t flags = intr_disable();
    int n = input.r == input.w ? -1 : 0;
    while (input.r != input.w) {
        char c = input.buf[input.r++ % INPUT_SIZE];
        if (c == '\n')
            break;
        if (n < size - 1)
            buf[n++] = c;
    }
    intr_restore(flags);
    buf[n < 0 ? 0 : n] = 0;
    return n;
}

/* -- the user reader ------------------------------------------------------------ */

/*
 * One VP in the machine may be the console's user reader (console_attach),
 * for a shell in user space (the paper's command interpreter is a user
 * program).  Attaching changes nothing by itself: the kernel monitor has the
 * input until its `shell` command gives it to the reader.
 *
 * The handoff: the monitor thread stays the only consumer of the line
 * buffer above.  In shell mode it forwards every line that does not begin
 * with '!' to the reader's queue here (console_forward) and runs '!' lines
 * itself.  So exactly one consumer takes each line, in the order the lines
 * were typed (a line typed right after `shell` goes to the shell even if
 * the interrupt handler saw it before the monitor ran `shell`), the
 * interrupt handler does not change, and the monitor can still run
 * commands while a shell has the input.
 *
 * The queue and the reader are reached from every node (console_read runs
 * on the reader's node), so they are the king's copy of `ucon_king`, at its
 * official address, under a spin lock.  Nothing here runs in an interrupt
 * handler.
 */
#define UCON_LINES 8

struct ucon {
    struct spinlock lock;
    struct vp *reader;                   /* the attached VP; NULL: none (cleared before it is freed) */
    bool shell;                          /* the monitor forwards input lines to the reader */
    struct kthread *monitor;             /* the monitor's thread: what `run` runs cannot read */
    uint32_t head, count;                /* the queue: lines[head % UCON_LINES], count of them */
    uint16_t len[UCON_LINES];
    char lines[UCON_LINES][PSY_CONSOLE_LINE];
    uint32_t forwarded, dropped;         /* lines given to readers; lines that found the queue full */
    int gone_vp;                         /* the reader that last took the shell mode away with it */
    bool gone_ended;                     /* ... by ending (else by console_detach) */
};
static struct ucon ucon_king;

static struct ucon *ucon(void)
{
    return official_on(0, &ucon_king);
}

static void ucon_init(void)
{
    struct ucon *u = ucon();
    memset(u, 0, sizeof *u);
    spin_init(&u->lock, "console reader");
    u->gone_vp = -1;
}

void console_set_monitor(struct kthread *t)
{
    ucon()->monitor = t;
}

/* Make kind PSY_SWI_CONSOLE pending on v, at once if it runs on another node (as net.c's tell). */
static void tell(struct vp *v)
{
    vp_pend(v, PSY_SWI_CONSOLE);
    if (v->node != this_node.id)
        ipi_send(v->node, IPI_RESCHED);
}

static void unpend(struct vp *v)
{
    atomic_and(&v->pending, ~(1u << PSY_SWI_CONSOLE));
    if (v->desc)
        v->desc->pending = v->pending;
}

/*
 * The reader v is going (detach, or its end): forget it and its lines; if
 * it had the input, the monitor takes it back.  (The lock held.)  Returns
 * whether the monitor must be woken.
 */
static bool drop_reader(struct ucon *u, struct vp *v, bool ended)
{
    u->reader = NULL;
    u->head = u->count = 0;
    unpend(v);
    if (!u->shell)
        return false;
    u->shell = false;
    u->gone_vp = v->id;
    u->gone_ended = ended;
    return true;
}

/* Wake the monitor thread, which waits for a line: it takes the input back (console_readline's -1). */
static void wake_monitor(void)
{
    struct sem *lines = official_on(0, &input.lines);
    sem_V(lines);
}

/* console_attach(): the calling VP becomes the user reader (the same one again: 0). */
int console_attach(void)
{
    struct vp *self = this_node.current->vp;
    struct ucon *u = ucon();
    if (!self)
        return PSY_EPERM;
    if (is_king() && self->thread == u->monitor)
        return PSY_EPERM;                    /* `run` holds the monitor: nobody could forward */
    uint32_t flags = spin_lock_irqsave(&u->lock);
    int err = 0;
    if (u->reader && u->reader != self)
        err = PSY_EBUSY;
    else
        u->reader = self;
    spin_unlock_irqrestore(&u->lock, flags);
    return err;
}

/* console_detach(): input goes back to the monitor, if the reader had it. */
int console_detach(void)
{
    struct vp *self = this_node.current->vp;
    struct ucon *u = ucon();
    uint32_t flags = spin_lock_irqsave(&u->lock);
    bool ok = self && u->reader == self, wake = ok && drop_reader(u, self, false);
    spin_unlock_irqrestore(&u->lock, flags);
    if (wake)
        wake_monitor();
    return ok ? 0 : PSY_EPERM;
}

/* A VP ends (vp.c, before its record is freed): a reader is detached. */
void console_vp_gone(struct vp *v)
{
    struct ucon *u = ucon();
    uint32_t flags = spin_lock_irqsave(&u->lock);
    bool wake = u->reader == v && drop_reader(u, v, true);
    spin_unlock_irqrestore(&u->lock, flags);
    if (wake)
        wake_monitor();
}

/* May domain d write the n bytes at va?  (Opens realms as a fault would, like domain_write.) */
static bool writable(struct domain *d, uint32_t va, uint32_t n)
{
    struct realm *r;
    if (va + n < va)
        return false;
    for (uint32_t at = va; at - va < n; at = (at & ~(PGSIZE - 1)) + PGSIZE)
        if (!domain_pointer(d, at, 1, PSY_W, &r))
            return false;
    return true;
}

/*
 * console_read(va, len): the oldest line queued for the calling reader, at
 * most len bytes of it to va (the rest of the line is dropped); returns the
 * bytes copied.  PSY_EAGAIN when none is queued, and then PSY_SWI_CONSOLE is
 * no longer pending, so block() waits for the next line.  The buffer is
 * checked first (its first min(len, PSY_CONSOLE_LINE) bytes: no line is
 * longer): on PSY_EFAULT nothing is taken.
 */
int console_read(struct domain *d, uint32_t va, uint32_t len)
{
    struct vp *self = this_node.current->vp;
    struct ucon *u = ucon();
    char line[PSY_CONSOLE_LINE];
    uint32_t want = len < PSY_CONSOLE_LINE ? len : PSY_CONSOLE_LINE;
    uint32_t flags = spin_lock_irqsave(&u->lock);
    bool reader = self && u->reader == self;
    spin_unlock_irqrestore(&u->lock, flags);
    if (!reader)
        return PSY_EPERM;
    if (!writable(d, va, want))
        return PSY_EFAULT;

    /* Only the reader takes lines, and it is here: what it peeks stays first until it takes it. */
    flags = spin_lock_irqsave(&u->lock);
    uint32_t n = 0;
    int err = 0;
    if (u->reader != self) {
        err = PSY_EPERM;                     /* another of its domain's VPs detached it */
    } else if (!u->count) {
        err = PSY_EAGAIN;
        unpend(self);
    } else {
        uint32_t i = u->head % UCON_LINES;
        n = want < u->len[i] ? want : u->len[i];
        memcpy(line, u->lines[i], n);
    }
    spin_unlock_irqrestore(&u->lock, flags);
    if (err)
        return err;
    if (domain_write(d, va, line, n))
        return PSY_EFAULT;                   /* the realm went meanwhile: the line stays */
    flags = spin_lock_irqsave(&u->lock);
    if (u->reader == self && u->count) {
        u->head++;
        u->count--;
    }
    spin_unlock_irqrestore(&u->lock, flags);
    return (int)n;
}

/* -- the monitor's side ---------------------------------------------------------- */

/* `shell`: give the input to the reader; its number, or -1 when none is attached. */
int console_shell_start(void)
{
    struct ucon *u = ucon();
    uint32_t flags = spin_lock_irqsave(&u->lock);
    int id = u->reader ? u->reader->id : -1;
    if (u->reader) {
        u->shell = true;
        if (u->count)
            tell(u->reader);                 /* lines left from before `!monitor` */
    }
    spin_unlock_irqrestore(&u->lock, flags);
    return id;
}

/* `!monitor`: the monitor keeps the input; the reader stays attached. */
void console_shell_stop(void)
{
    struct ucon *u = ucon();
    uint32_t flags = spin_lock_irqsave(&u->lock);
    u->shell = false;
    spin_unlock_irqrestore(&u->lock, flags);
}

bool console_shell_active(void)
{
    return ucon()->shell;
}

/*
 * In shell mode, the monitor's line for the reader: queued, and the reader
 * told (1).  0 when the reader has gone meanwhile (the line is then the
 * monitor's); -1 when 8 lines wait already: the line is dropped and counted.
 */
int console_forward(const char *line, int n)
{
    struct ucon *u = ucon();
    uint32_t flags = spin_lock_irqsave(&u->lock);
    int ok = u->shell && u->reader;
    if (ok && u->count == UCON_LINES) {
        u->dropped++;
        ok = -1;
    } else if (ok) {
        uint32_t i = (u->head + u->count++) % UCON_LINES;
        u->len[i] = (uint16_t)(n < PSY_CONSOLE_LINE ? n : PSY_CONSOLE_LINE);
        memcpy(u->lines[i], line, u->len[i]);
        u->forwarded++;
        tell(u->reader);
    }
    spin_unlock_irqrestore(&u->lock, flags);
    return ok;
}

/* After a wake-up (console_readline's -1): which reader took the shell mode away, and how. */
int console_gone(bool *ended)
{
    struct ucon *u = ucon();
    uint32_t flags = spin_lock_irqsave(&u->lock);
    int id = u->gone_vp;
    *ended = u->gone_ended;
    u->gone_vp = -1;
    spin_unlock_irqrestore(&u->lock, flags);
    return id;
}

/* The monitor's `shell` without a reader, and `vps`-like reports: the reader's number or -1. */
int console_reader(uint32_t *queued, uint32_t *forwarded, uint32_t *dropped)
{
    struct ucon *u = ucon();
    uint32_t flags = spin_lock_irqsave(&u->lock);
    int id = u->reader ? u->reader->id : -1;
    *queued = u->count;
    *forwarded = u->forwarded;
    *dropped = u->dropped;
    spin_unlock_irqrestore(&u->lock, flags);
    return id;
}
