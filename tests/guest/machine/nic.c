/*
 * nic.c: the NIC end to end, with the host bridge on the other side of the wire.
 *
 * Sets up receive and transmit rings in this node's RAM (docs/memory-map.md,
 * "Network interface"), asks the gateway 10.0.2.2 for its MAC by ARP, sends a
 * UDP datagram from 10.0.2.15:guest_port to 10.0.2.2:host_port (the test patches
 * host_port to the port of a socket it opened on 127.0.0.1 and answers from
 * there), and waits for the answer with the NIC's receive interrupt, routed
 * through the interrupt controller to MEIP.  Checks headers, both checksums,
 * the payload and the NIC's counters.  Reports through tohost: 0 = pass, else
 * the number of the failed check.
 */
#include <stdint.h>

#include "../../../psyche/kernel/nic.h"   /* the NIC's registers, as the kernel's driver has them */

#define NIC             0x10004000u     /* its physical address (docs/memory-map.md) */

#define INTC_ENABLE_M   (*(volatile uint32_t *)0x0C000004u)
#define SRC_NIC         4
#define MIP_MEIP        (1u << 11)
#define MSTATUS_MIE     (1u << 3)
#define CAUSE_M_EXT     0x8000000Bu

#define RX_N 8
#define TX_N 4
#define BUF 2048

/* Patched by the test before the run. */
volatile uint32_t host_port = 5555;
volatile uint32_t guest_port = 4000;

static struct nic_desc rx_ring[RX_N] __attribute__((aligned(16)));
static struct nic_desc tx_ring[TX_N] __attribute__((aligned(16)));
static uint8_t rx_buf[RX_N][BUF];
static uint8_t tx_buf[TX_N][BUF];
static uint32_t rx_next, tx_next;

extern volatile uint32_t trap_count, trap_log[16];

static const uint8_t guest_ip[4] = {10, 0, 2, 15};
static const uint8_t gateway_ip[4] = {10, 0, 2, 2};
static uint8_t my_mac[6], gateway_mac[6];
static const char hello[] = "hello from psyche";
static const char answer[] = "hello from the host";

static uint32_t rd(uint32_t off) { return *(volatile uint32_t *)(NIC + off); }
static void wr(uint32_t off, uint32_t v) { *(volatile uint32_t *)(NIC + off) = v; }
static void fence(void) { __asm__ volatile("fence" ::: "memory"); }

static void copy(uint8_t *d, const void *s, uint32_t n)
{
    const uint8_t *p = s;
    while (n--)
        *d++ = *p++;
}

static int same(const uint8_t *a, const void *b, uint32_t n)
{
    const uint8_t *q = b;
    while (n--)
        if (*a++ != *q++)
            return 0;
    return 1;
}

static void put16(uint8_t *p, uint32_t v) { p[0] = v >> 8; p[1] = v; }
static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }

/* Internet checksum; `sum` carries a pseudo-header's partial sum. */
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

static uint32_t pseudo(const uint8_t *src, const uint8_t *dst, uint32_t len)
{
    return get16(src) + get16(src + 2) + get16(dst) + get16(dst + 2) + 17 + len;
}

/* Hand one frame of tx_buf[tx_next] to the NIC; it is sent at the store to TX_TAIL. */
static int transmit(uint32_t len)
{
    struct nic_desc *d = &tx_ring[tx_next];
    d->addr = (uint32_t)tx_buf[tx_next];
    d->len = len;
    d->status = 0;
    tx_next = (tx_next + 1) % TX_N;
    fence();
    wr(R_TX_TAIL, tx_next);
    fence();
    return d->status == DESC_DONE && rd(R_TX_HEAD) == tx_next;
}

/* Sleep until the NIC interrupts, and take the interrupt: 1 if it was one. */
static int wait_interrupt(void)
{
    uint32_t before = trap_count;
    __asm__ volatile("csrs mie, %0" ::"r"(MIP_MEIP));
    for (;;) {
        uint32_t mip;
        __asm__ volatile("csrr %0, mip" : "=r"(mip));
        if (mip & MIP_MEIP)
            break;
        __asm__ volatile("wfi");    /* wakes for a pending enabled interrupt, MIE or not */
    }
    /* Take it: the common handler logs it and turns MEIE off again. */
    __asm__ volatile("csrs mstatus, %0; csrc mstatus, %0" ::"r"(MSTATUS_MIE));
    return trap_count == before + 1 && trap_log[before & 15] == CAUSE_M_EXT
        && (rd(R_INT_STATUS) & INT_RX);
}

/* The next received frame (after an interrupt); its length, 0 if there is none. */
static uint32_t received(uint8_t **frame)
{
    struct nic_desc *d = &rx_ring[rx_next];
    fence();
    if (!(d->status & DESC_DONE))
        return 0;
    *frame = rx_buf[rx_next];
    return d->status >> 16;
}

/* Give the descriptor back to the NIC and clear the interrupt. */
static void recycle(void)
{
    rx_ring[rx_next].status = 0;
    fence();
    wr(R_RX_TAIL, rx_next);     /* the slot kept empty moves along */
    rx_next = (rx_next + 1) % RX_N;
    wr(R_INT_STATUS, INT_RX);
}

static uint32_t build_arp_request(uint8_t *f)
{
    for (int i = 0; i < 6; i++)
        f[i] = 0xFF;
    copy(f + 6, my_mac, 6);
    put16(f + 12, 0x0806);
    put16(f + 14, 1);
    put16(f + 16, 0x0800);
    f[18] = 6;
    f[19] = 4;
    put16(f + 20, 1);
    copy(f + 22, my_mac, 6);
    copy(f + 28, guest_ip, 4);
    for (int i = 32; i < 38; i++)
        f[i] = 0;
    copy(f + 38, gateway_ip, 4);
    return 42;
}

static uint32_t build_udp(uint8_t *f, const char *payload, uint32_t n)
{
    uint8_t *ip = f + 14, *udp = ip + 20;
    copy(f, gateway_mac, 6);
    copy(f + 6, my_mac, 6);
    put16(f + 12, 0x0800);
    ip[0] = 0x45;
    ip[1] = 0;
    put16(ip + 2, 28 + n);
    put16(ip + 4, 1);
    put16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = 17;
    put16(ip + 10, 0);
    copy(ip + 12, guest_ip, 4);
    copy(ip + 16, gateway_ip, 4);
    put16(ip + 10, csum(ip, 20, 0));
    put16(udp, guest_port);
    put16(udp + 2, host_port);
    put16(udp + 4, 8 + n);
    put16(udp + 6, 0);
    copy(udp + 8, payload, n);
    uint32_t sum = csum(udp, 8 + n, pseudo(guest_ip, gateway_ip, 8 + n));
    put16(udp + 6, sum ? sum : 0xFFFF);
    return 42 + n;
}

/* The answer: from 10.0.2.2:host_port to 10.0.2.15:guest_port, checksums right. */
static int check_answer(const uint8_t *f, uint32_t len)
{
    const uint8_t *ip = f + 14, *udp = ip + 20;
    uint32_t n = sizeof answer - 1;
    return len == 42 + n && same(f, my_mac, 6) && same(f + 6, gateway_mac, 6)
        && get16(f + 12) == 0x0800 && ip[0] == 0x45 && ip[9] == 17 && get16(ip + 2) == 28 + n
        && csum(ip, 20, 0) == 0 && same(ip + 12, gateway_ip, 4) && same(ip + 16, guest_ip, 4)
        && get16(udp) == host_port && get16(udp + 2) == guest_port && get16(udp + 4) == 8 + n
        && csum(udp, 8 + n, pseudo(gateway_ip, guest_ip, 8 + n)) == 0 && same(udp + 8, answer, n);
}

int test_main(void)
{
    uint8_t *frame;
    uint32_t len;

    if (rd(R_ID) != NIC_ID)
        return 1;
    if (!(rd(R_STATUS) & 1))
        return 2;                       /* link down: the test attaches the bridge first */
    uint32_t lo = rd(R_MAC_LO), hi = rd(R_MAC_HI);
    for (int i = 0; i < 4; i++)
        my_mac[i] = lo >> (8 * i);
    my_mac[4] = hi;
    my_mac[5] = hi >> 8;
    if (my_mac[0] != 0x52 || my_mac[5] != 0x56)
        return 3;

    for (int i = 0; i < RX_N; i++) {
        rx_ring[i].addr = (uint32_t)rx_buf[i];
        rx_ring[i].len = BUF;
        rx_ring[i].status = 0;
    }
    fence();
    wr(R_RX_BASE, (uint32_t)rx_ring);
    wr(R_RX_SIZE, RX_N);
    wr(R_RX_TAIL, RX_N - 1);            /* all but one: HEAD == TAIL means none free */
    wr(R_TX_BASE, (uint32_t)tx_ring);
    wr(R_TX_SIZE, TX_N);
    wr(R_INT_STATUS, ~0u);              /* the link-up event */
    wr(R_INT_ENABLE, INT_RX);
    INTC_ENABLE_M = 1u << SRC_NIC;
    wr(R_CTRL, CTRL_RX_EN | CTRL_TX_EN);

    if (!transmit(build_arp_request(tx_buf[tx_next])))
        return 4;
    if (!wait_interrupt())
        return 5;
    len = received(&frame);
    if (len < 42 || get16(frame + 12) != 0x0806 || get16(frame + 20) != 2
        || !same(frame + 28, gateway_ip, 4) || !same(frame, my_mac, 6))
        return 6;
    copy(gateway_mac, frame + 22, 6);
    recycle();

    if (!transmit(build_udp(tx_buf[tx_next], hello, sizeof hello - 1)))
        return 7;
    if (!wait_interrupt())
        return 8;
    len = received(&frame);
    if (!check_answer(frame, len))
        return 9;
    recycle();

    if (rd(R_RX_FRAMES) != 2 || rd(R_RX_BYTES) != 42 + 42 + sizeof answer - 1)
        return 10;
    if (rd(R_TX_FRAMES) != 2 || rd(R_TX_BYTES) != 42 + 42 + sizeof hello - 1)
        return 11;
    if (rd(R_RX_DROP_FULL) != 0 || rd(R_BAD_DESC) != 0 || rd(R_RX_HEAD) != 2)
        return 12;
    if (trap_count != 2)
        return 13;
    return 0;
}
