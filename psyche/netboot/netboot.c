/*
 * netboot.c: the machine's network boot loader (docs/network.md, "Network boot").
 *
 * The only image the machine loads: it runs on the king, in M mode, alone.  It
 * asks the gateway's MAC by ARP, fetches the kernel's ELF file from the host's
 * TFTP server (10.0.2.2:server_port; RFC 1350 with the block size option of RFC
 * 2348) into a buffer, copies its loadable segments where they say, resets the
 * NIC, and jumps to the kernel's entry as if the machine had loaded the kernel
 * itself.  Between frames it sleeps in WFI until the NIC's receive interrupt
 * or its timer (interrupts stay disabled: WFI wakes for a pending enabled one
 * anyway), so an idle machine paces its time to the host's and the server gets
 * the host's attention.  A lost datagram costs a wait, not the boot: the server
 * sends its block again on its timeout, the loader its ACK when the block
 * comes again, and the loader its request if nothing answers it.
 * It says what it does on the console; a boot that cannot go on says why there
 * and stops.
 *
 * The host side patches server_port and kernel_name before the machine starts.
 */
#include <stdint.h>

#include "nic.h"                 /* the NIC's registers (psyche/kernel/nic.h) */

#define NIC             0x10004000u     /* M mode, translation off: at its physical address */

/* Waking: the interrupt controller's M enable, the hart's timer (docs/memory-map.md). */
#define INTC_ENABLE_M   (*(volatile uint32_t *)0x0C000004u)
#define SRC_NIC         4
#define MTIMECMP_LO     (*(volatile uint32_t *)0x02004000u)
#define MTIMECMP_HI     (*(volatile uint32_t *)0x02004004u)
#define MIE_MTIE        (1u << 7)
#define MIE_MEIE        (1u << 11)

/* The console line (16550 subset). */
#define UART            0x10001000u
#define UART_LSR        5
#define LSR_THR_EMPTY   0x20

#define RX_N            8
#define TX_N            2
#define BUF             2048
#define BLKSIZE         1428            /* a whole block in one Ethernet frame */
#define RETRY_CYCLES    2000000u        /* 0.2 s of the 10 MHz clock */
/* The longest sleep: an idle machine jumps its clock to the next timer before it takes host
 * input, so a frame that came meanwhile is seen one sleep late; short sleeps keep that small. */
#define NAP_CYCLES      10000u          /* 1 ms */
#define TRIES           150             /* 30 s without a word from the server */
#define FILE_BASE       0x80100000u     /* where the file goes: above the kernel, below us */
#define FILE_MAX        (0x80380000u - FILE_BASE)
#define LOCAL_PORT      1069

#define ETH_ARP         0x0806
#define ETH_IP          0x0800
#define TFTP_RRQ        1
#define TFTP_DATA       3
#define TFTP_ACK        4
#define TFTP_ERROR      5
#define TFTP_OACK       6

/* Patched by the host side (psyche/commands/machine_cmd.py) before the run. */
volatile uint32_t server_port = 6969;
volatile char kernel_name[64] = "psyche.elf";

static struct nic_desc rx_ring[RX_N] __attribute__((aligned(16)));
static struct nic_desc tx_ring[TX_N] __attribute__((aligned(16)));
static uint8_t rx_buf[RX_N][BUF];
static uint8_t tx_buf[BUF];
static uint32_t rx_next, tx_next;

static const uint8_t guest_ip[4] = {10, 0, 2, 15};
static const uint8_t gateway_ip[4] = {10, 0, 2, 2};
static uint8_t my_mac[6], gateway_mac[6];

static uint32_t rd(uint32_t off) { return *(volatile uint32_t *)(NIC + off); }
static void wr(uint32_t off, uint32_t v) { *(volatile uint32_t *)(NIC + off) = v; }
static void fence(void) { __asm__ volatile("fence" ::: "memory"); }

static uint32_t now(void)
{
    uint32_t t;
    __asm__ volatile("rdtime %0" : "=r"(t));
    return t;
}

/* Sleep until a frame comes, the clock passes `until` (a time from now() within 2^31), or a
 * nap's time has passed. */
static void sleep_until(uint32_t until)
{
    uint32_t hi, lo;
    if ((int32_t)(until - now()) > (int32_t)NAP_CYCLES)
        until = now() + NAP_CYCLES;
    __asm__ volatile("rdtimeh %0; rdtime %1" : "=r"(hi), "=r"(lo));
    MTIMECMP_HI = 0xFFFFFFFFu;                   /* (no early match while the halves change) */
    MTIMECMP_LO = until;
    MTIMECMP_HI = hi + (until < lo);
    wr(R_INT_STATUS, INT_RX);                    /* an interrupt for a frame already seen is done */
    fence();
    if (rx_ring[rx_next].status & DESC_DONE)
        return;
    if ((int32_t)(until - now()) > 0)
        __asm__ volatile("wfi");
}

/* -- the console ------------------------------------------------------------------- */

static void putc_(char c)
{
    volatile uint8_t *uart = (volatile uint8_t *)UART;
    while (!(uart[UART_LSR] & LSR_THR_EMPTY))
        ;
    uart[0] = (uint8_t)c;
}

static void puts_(const char *s)
{
    while (*s)
        putc_(*s++);
}

static void putnum(uint32_t v, uint32_t base)
{
    char digits[12];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (base == 16)
        puts_("0x");
    while (n)
        putc_(digits[--n]);
}

static void __attribute__((noreturn)) fail(const char *why)
{
    puts_("netboot: ");
    puts_(why);
    puts_("; the boot stops here\r\n");
    for (;;)
        __asm__ volatile("wfi");
}

/* -- bytes ------------------------------------------------------------------------- */

static void copy(void *d, const void *s, uint32_t n)
{
    uint8_t *dst = d;
    const uint8_t *src = s;
    while (n--)
        *dst++ = *src++;
}

static void zero(void *d, uint32_t n)
{
    uint8_t *dst = d;
    while (n--)
        *dst++ = 0;
}

static int same(const uint8_t *a, const uint8_t *b, uint32_t n)
{
    while (n--)
        if (*a++ != *b++)
            return 0;
    return 1;
}

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }

/* Internet checksum of n bytes, `sum` carrying a pseudo-header's partial sum. */
static uint32_t csum(const uint8_t *p, uint32_t n, uint32_t sum)
{
    for (; n > 1; p += 2, n -= 2)
        sum += get16(p);
    if (n)
        sum += (uint32_t)p[0] << 8;
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return ~sum & 0xFFFF;
}

/* -- the NIC ----------------------------------------------------------------------- */

static void nic_start(void)
{
    wr(R_CTRL, CTRL_RESET);
    uint32_t lo = rd(R_MAC_LO), hi = rd(R_MAC_HI);
    for (int i = 0; i < 4; i++)
        my_mac[i] = (uint8_t)(lo >> (8 * i));
    my_mac[4] = (uint8_t)hi, my_mac[5] = (uint8_t)(hi >> 8);
    for (int i = 0; i < RX_N; i++)
        rx_ring[i] = (struct nic_desc){ (uint32_t)rx_buf[i], BUF, 0, 0 };
    wr(R_RX_BASE, (uint32_t)rx_ring);
    wr(R_RX_SIZE, RX_N);
    wr(R_TX_BASE, (uint32_t)tx_ring);
    wr(R_TX_SIZE, TX_N);
    fence();
    wr(R_RX_TAIL, RX_N - 1);                     /* lend the NIC every buffer but one */
    wr(R_INT_ENABLE, INT_RX);
    INTC_ENABLE_M |= 1u << SRC_NIC;
    __asm__ volatile("csrw mie, %0" ::"r"(MIE_MEIE | MIE_MTIE));
    wr(R_CTRL, CTRL_RX_EN | CTRL_TX_EN);
}

/* Send the frame in tx_buf (sent during the store to TX_TAIL). */
static void transmit(uint32_t len)
{
    tx_ring[tx_next] = (struct nic_desc){ (uint32_t)tx_buf, len, 0, 0 };
    tx_next = (tx_next + 1) % TX_N;
    fence();
    wr(R_TX_TAIL, tx_next);
}

/* The next received frame and its length, or NULL; give it back with release(). */
static const uint8_t *receive(uint32_t *len)
{
    fence();
    struct nic_desc *d = &rx_ring[rx_next];
    if (!(d->status & DESC_DONE))
        return 0;
    *len = d->status >> 16;
    return rx_buf[rx_next];
}

static void release(void)
{
    rx_ring[rx_next].status = 0;
    fence();
    wr(R_RX_TAIL, rx_next);                      /* this one is the NIC's again */
    rx_next = (rx_next + 1) % RX_N;
}

static uint8_t *ethernet(const uint8_t *dst, uint32_t type)
{
    copy(tx_buf, dst, 6);
    copy(tx_buf + 6, my_mac, 6);
    put16(tx_buf + 12, type);
    return tx_buf + 14;
}

/* -- ARP, IP, UDP ---------------------------------------------------------------------- */

static void arp_request(void)
{
    static const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    uint8_t *a = ethernet(broadcast, ETH_ARP);
    put16(a, 1), put16(a + 2, ETH_IP), a[4] = 6, a[5] = 4, put16(a + 6, 1);
    copy(a + 8, my_mac, 6), copy(a + 14, guest_ip, 4);
    zero(a + 18, 6), copy(a + 24, gateway_ip, 4);
    transmit(14 + 28);
}

/* An ARP reply from the gateway: its MAC is now known. */
static int arp_reply(const uint8_t *f, uint32_t len)
{
    if (len < 42 || get16(f + 12) != ETH_ARP || get16(f + 20) != 2 || !same(f + 28, gateway_ip, 4))
        return 0;
    copy(gateway_mac, f + 22, 6);
    return 1;
}

static void udp_send(uint32_t dport, const uint8_t *payload, uint32_t n)
{
    uint8_t *ip = ethernet(gateway_mac, ETH_IP), *udp = ip + 20;
    zero(ip, 20);
    ip[0] = 0x45, put16(ip + 2, 28 + n), ip[8] = 64, ip[9] = 17;
    copy(ip + 12, guest_ip, 4), copy(ip + 16, gateway_ip, 4);
    put16(ip + 10, csum(ip, 20, 0));
    put16(udp, LOCAL_PORT), put16(udp + 2, dport), put16(udp + 4, 8 + n), put16(udp + 6, 0);
    copy(udp + 8, payload, n);
    uint32_t pseudo = get16(guest_ip) + get16(guest_ip + 2) + get16(gateway_ip) + get16(gateway_ip + 2)
                      + 17 + 8 + n;
    uint32_t sum = csum(udp, 8 + n, pseudo);
    put16(udp + 6, sum ? sum : 0xFFFF);
    transmit(14 + 28 + n);
}

/* A UDP datagram to our port: its payload, length and source port; NULL for anything else. */
static const uint8_t *udp_payload(const uint8_t *f, uint32_t len, uint32_t *n, uint32_t *sport)
{
    if (len < 42 || get16(f + 12) != ETH_IP || f[14] != 0x45 || f[23] != 17)
        return 0;
    const uint8_t *udp = f + 34;
    uint32_t ulen = get16(udp + 4);
    if (get16(udp + 2) != LOCAL_PORT || ulen < 8 || 34 + ulen > len)
        return 0;
    *n = ulen - 8;
    *sport = get16(udp);
    return udp + 8;
}

/* -- TFTP ---------------------------------------------------------------------------- */

static uint8_t request[128];
static uint32_t request_len;

static void make_request(void)
{
    uint8_t *p = request;
    put16(p, TFTP_RRQ), p += 2;
    for (const volatile char *s = kernel_name; *s && p < request + 64; )
        *p++ = (uint8_t)*s++;
    *p++ = 0;
    copy(p, "octet\0blksize\0" "1428\0", 19), p += 19;
    request_len = (uint32_t)(p - request);
}

static void ack(uint32_t tid, uint32_t block)
{
    uint8_t a[4];
    put16(a, TFTP_ACK), put16(a + 2, block);
    udp_send(tid, a, 4);
}

/* Fetch the file into FILE_BASE; its length. */
static uint32_t fetch(void)
{
    uint8_t *file = (uint8_t *)FILE_BASE;
    uint32_t size = 0, block = 0, blksize = 512, tid = 0, tries = 0, sent = now();
    make_request();
    udp_send(server_port, request, request_len);
    for (;;) {
        uint32_t len, n, sport;
        const uint8_t *f = receive(&len);
        if (!f) {
            if (now() - sent < RETRY_CYCLES) {
                sleep_until(sent + RETRY_CYCLES);
                continue;
            }
            if (++tries > TRIES)
                fail("the TFTP server does not answer");
            /* Only the request is ours to send again: once the server has answered, a lost
             * block or ACK is its to send again, on its own timeout (RFC 1123 4.2.3.1: acting
             * on duplicate ACKs would double every block after a loss). */
            if (tid == 0)
                udp_send(server_port, request, request_len);
            sent = now();
            continue;
        }
        const uint8_t *m = udp_payload(f, len, &n, &sport);
        if (!m || n < 4 || (tid && sport != tid)) {
            release();
            continue;
        }
        uint32_t op = get16(m), arg = get16(m + 2);
        if (op == TFTP_ERROR) {
            puts_("netboot: the server says: ");
            for (uint32_t i = 4; i < n && m[i]; i++)
                putc_((char)m[i]);
            puts_("\r\n");
            fail("the kernel could not be fetched");
        }
        tid = sport;
        if (op == TFTP_OACK) {                       /* our block size is agreed */
            blksize = BLKSIZE;
            release();
            ack(tid, 0);
        } else if (op == TFTP_DATA && arg == ((block + 1) & 0xFFFF)) {
            uint32_t got = n - 4;
            if (size + got > FILE_MAX)
                fail("the kernel file is larger than the loader's buffer");
            copy(file + size, m + 4, got);
            size += got;
            block++;
            release();
            ack(tid, block);
            if (got < blksize)
                return size;
        } else {
            release();
            if (op == TFTP_DATA)
                ack(tid, block);                     /* a repeat: our ACK was lost */
        }
        tries = 0;
        sent = now();
    }
}

/* -- the ELF ------------------------------------------------------------------------- */

struct elf32_ehdr {
    uint8_t ident[16];
    uint16_t type, machine;
    uint32_t version, entry, phoff, shoff, flags;
    uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};

struct elf32_phdr {
    uint32_t type, offset, vaddr, paddr, filesz, memsz, flags, align;
};

/* Copy the loadable segments to their physical addresses; the entry point. */
static uint32_t load(uint32_t size)
{
    const uint8_t *file = (const uint8_t *)FILE_BASE;
    const struct elf32_ehdr *eh = (const struct elf32_ehdr *)file;
    static const uint8_t magic[4] = {0x7f, 'E', 'L', 'F'};
    if (size < sizeof *eh || !same(file, magic, 4) || eh->ident[4] != 1 || eh->machine != 243)
        fail("the file is not an RV32 ELF");
    if (eh->phoff + (uint32_t)eh->phnum * sizeof(struct elf32_phdr) > size)
        fail("the ELF's program headers run past its end");
    const struct elf32_phdr *ph = (const struct elf32_phdr *)(file + eh->phoff);
    for (int i = 0; i < eh->phnum; i++) {
        if (ph[i].type != 1)                        /* PT_LOAD */
            continue;
        if (ph[i].offset + ph[i].filesz > size || ph[i].filesz > ph[i].memsz)
            fail("an ELF segment runs past the file's end");
        if (ph[i].paddr < 0x80000000u || ph[i].paddr + ph[i].memsz > FILE_BASE)
            fail("an ELF segment would overwrite the loader or lie outside the king's RAM");
        copy((void *)ph[i].paddr, file + ph[i].offset, ph[i].filesz);
        zero((void *)(ph[i].paddr + ph[i].filesz), ph[i].memsz - ph[i].filesz);
    }
    return eh->entry;
}

void netboot(void)
{
    if (!(*(volatile uint32_t *)(NIC + R_STATUS) & 1))
        fail("the king's NIC has no link");
    nic_start();
    puts_("netboot: asking 10.0.2.2 for its address\r\n");
    uint32_t sent = now(), tries = 0;
    arp_request();
    for (int known = 0; !known; ) {
        uint32_t len;
        const uint8_t *f = receive(&len);
        if (f) {
            known = arp_reply(f, len);
            release();
        } else if (now() - sent > RETRY_CYCLES) {
            if (++tries > TRIES)
                fail("the gateway does not answer ARP");
            arp_request();
            sent = now();
        } else {
            sleep_until(sent + RETRY_CYCLES);
        }
    }
    puts_("netboot: fetching ");
    puts_((const char *)kernel_name);
    puts_(" from 10.0.2.2:");
    putnum(server_port, 10);
    puts_(" (TFTP)\r\n");
    uint32_t size = fetch();
    uint32_t entry = load(size);
    puts_("netboot: ");
    putnum(size, 10);
    puts_(" bytes; starting the kernel at ");
    putnum(entry, 16);
    puts_("\r\n");
    wr(R_CTRL, CTRL_RESET);                          /* the kernel's driver starts it afresh */
    INTC_ENABLE_M &= ~(1u << SRC_NIC);
    __asm__ volatile("csrw mie, zero");               /* as the machine leaves them at power-on */
    MTIMECMP_HI = 0xFFFFFFFFu, MTIMECMP_LO = 0xFFFFFFFFu;
    fence();
    __asm__ volatile("fence.i");
    ((void (*)(void))entry)();
}
