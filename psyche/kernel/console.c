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
 * semaphore per completed line; the monitor thread blocks on it.
 */
#include "console.h"
#include "ipi.h"
#include "memlayout.h"
#include "node.h"
#include "riscv.h"
#include "sem.h"

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

void console_init(void)
{
    mmio_write8(CONSOLE_V + UART_LCR, 0x03);      /* 8 bits, no parity, 1 stop */
    mmio_write8(CONSOLE_V + UART_FCR, 0x07);      /* FIFOs on and cleared */
    mmio_write8(CONSOLE_V + UART_IER, 0x01);      /* receive interrupt */
    sem_init(&input.lines, 0, "console input");
    uint32_t enable = mmio_read32(INTC_V + INTC_ENABLE_S);
    mmio_write32(INTC_V + INTC_ENABLE_S, enable | (1u << SRC_CONSOLE));
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

/* Block until a line is complete; returns its length without the newline. */
int console_readline(char *buf, int size)
{
    sem_P(&input.lines);
    uint32_t flags = intr_disable();
    int n = 0;
    while (input.r != input.w) {
        char c = input.buf[input.r++ % INPUT_SIZE];
        if (c == '\n')
            break;
        if (n < size - 1)
            buf[n++] = c;
    }
    intr_restore(flags);
    buf[n] = 0;
    return n;
}
