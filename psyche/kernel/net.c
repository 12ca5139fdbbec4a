/*
 * net.c: the NIC driver, ARP, IPv4 and UDP (paper, section 4.1: "UDP send
 * and receive commands are part of the kernel interface").  The design is
 * in docs/kernel.md ("The network"), the calls in docs/kernel-interface.md.
 *
 * The machine has one network address, 10.0.2.15, on the NIC of the
 * lowest-numbered node that has one (docs/network.md).  All of the stack's
 * state is in memory every node reaches at its official address: the
 * `struct net` in the shared heap, the rings, frame buffers and datagram
 * buffers in the NIC node's RAM (so the NIC's DMA stays local).  One spin
 * lock with interrupts locked out guards it all: the NIC node's receive
 * interrupt handler takes it, and so does a kernel call on any node.
 *
 * So a call on another node does its work itself, in shared memory: it
 * copies its frame into a transmit descriptor and moves the ring's producer
 * index.  Only the store to the NIC's TX_TAIL register must be made by the
 * NIC node (device registers are node-local); the caller rings it with
 * IPI_NET and goes on without waiting (net_kick).  No call ever blocks a
 * virtual processor: a full ring is PSY_EAGAIN, an address not yet
 * resolved holds the datagram until ARP answers.
 *
 * Receiving runs in the NIC node's interrupt handler: each frame is checked
 * layer by layer and either delivered or dropped, and counted exactly once
 * either way (the counters after rx_frames add up to it).  A datagram for a
 * bound port is copied out of the ring into a datagram buffer queued on the
 * port, and PSY_SWI_NET becomes pending on the VP that bound it.
 */
#include "console.h"
#include "ipi.h"
#include "memlayout.h"
#include "net.h"
#include "nic.h"
#include "node.h"
#include "realm.h"
#include "riscv.h"
#include "sched.h"
#include "trap.h"
#include "vp.h"


#define NET_RX_N   16                  /* receive descriptors (the NIC gets 15) */
#define NET_TX_N   16
#define NET_BUF    1536                /* a frame buffer: MAX_FRAME 1514, rounded */
#define NET_PORTS  16                  /* the bound-port table */
#define NET_QUEUE  8                   /* datagrams waiting on one port */
#define NET_POOL   32                  /* datagram buffers for the whole machine */
#define NET_ARP    4

#define ETH_HLEN   14
#define IP_HLEN    20
#define UDP_HLEN   8
#define UDP_MAX    1472                /* one frame's worth: 1500 - 20 - 8 */
#define ETH_IP     0x0800
#define ETH_ARP    0x0806
#define IP_UDP     17

#define OUR_IP     PSY_IP(10, 0, 2, 15)
#define GATEWAY_IP PSY_IP(10, 0, 2, 2)
#define NETMASK    0xFFFFFF00u

/* What happened to frames: every received one ends in exactly one of the rx outcomes. */
enum {
    NC_RX_FRAMES,
    NC_RX_BAD_DESC, NC_RUNT, NC_NOT_FOR_US, NC_ETHERTYPE,
    NC_ARP_TRUNCATED, NC_ARP_MALFORMED, NC_ARP_NOT_FOR_US, NC_ARP_REQUESTS, NC_ARP_REPLIES,
    NC_IP_TRUNCATED, NC_IP_MALFORMED, NC_IP_CHECKSUM, NC_IP_FRAGMENT, NC_IP_NOT_FOR_US,
    NC_IP_PROTOCOL,
    NC_UDP_TRUNCATED, NC_UDP_MALFORMED, NC_UDP_CHECKSUM, NC_UDP_NO_PORT, NC_UDP_QUEUE_FULL,
    NC_UDP_DELIVERED,
    NC_TX_UDP, NC_TX_ARP_REQUESTS, NC_TX_ARP_REPLIES, NC_TX_RING_FULL, NC_ARP_HELD_DROPPED,
    NC_COUNT
};
#define NC_RX_FIRST NC_RX_BAD_DESC
#define NC_RX_LAST  NC_UDP_DELIVERED

static const char *const counter_names[NC_COUNT] = {
    "rx_frames",
    "bad_desc", "runt", "not_for_us", "ethertype",
    "arp_truncated", "arp_malformed", "arp_not_for_us", "arp_requests", "arp_replies",
    "ip_truncated", "ip_malformed", "ip_checksum", "ip_fragment", "ip_not_for_us", "ip_protocol",
    "udp_truncated", "udp_malformed", "udp_checksum", "udp_no_port", "udp_queue_full",
    "udp_delivered",
    "tx_udp", "tx_arp_requests", "tx_arp_replies", "tx_ring_full", "arp_held_dropped",
};

static const char *const nic_counter_names[NIC_NCOUNTERS] = {
    "rx_frames", "rx_bytes", "tx_frames", "tx_bytes", "rx_drop_full", "rx_drop_oversize",
    "tx_drop_oversize", "bad_desc", "rx_drop_off",
};

/* A received datagram waiting on its port. */
struct dgram {
    struct dgram *next;
    struct psy_udp_from from;            /* its source, and its length */
    uint8_t data[UDP_MAX];
};

/* A bound port: it belongs to the VP that bound it (and that VP's domain). */
struct binding {
    uint32_t port;                       /* 0: a free entry */
    struct vp *vp;                       /* told by PSY_SWI_NET */
    struct domain *dom;                  /* may send from it and receive on it */
    int dom_id;
    struct dgram *head, *tail;
    uint32_t queued;
    uint32_t received, sent;
    int vp_id, vp_node;                  /* for the monitor, which must not follow vp */
};

enum { ARP_FREE, ARP_WAITING, ARP_KNOWN };

struct arp_entry {
    uint32_t ip;
    uint8_t mac[6];
    uint8_t state;
    uint32_t used;                       /* when last used: the oldest goes first */
    uint8_t *held;                       /* a frame waiting for the answer (NET_BUF bytes) */
    uint32_t held_len;
};

struct net {
    struct spinlock lock;
    volatile int node;                   /* the NIC's node; -1 until net_init, or none */
    uint8_t mac[6];
    struct nic_desc *rx, *tx;            /* official addresses in the NIC node's RAM */
    uint32_t rx_next;                    /* the next receive descriptor to look at */
    uint32_t tx_prod;                    /* the next transmit descriptor to fill */
    uint32_t tx_done;                    /* the oldest not yet seen sent */
    uint32_t ident;                      /* IPv4 identification */
    uint32_t clock;                      /* ARP use stamps */
    struct dgram *free;
    struct binding ports[NET_PORTS];
    struct arp_entry arp[NET_ARP];
    uint32_t count[NC_COUNT];
};

static inline struct net *net(void) { return kg.net; }
static void count(int c) { net()->count[c]++; }

/* -- bytes -------------------------------------------------------------------- */

static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t get32(const uint8_t *p) { return get16(p) << 16 | get16(p + 2); }
static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v); }

/* The Internet checksum of n bytes, `sum` carrying a pseudo-header's. */
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

static uint32_t pseudo(uint32_t src, uint32_t dst, uint32_t len)
{
    return (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + IP_UDP + len;
}

static const uint8_t broadcast[6] = { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF };

/* -- probing and initialisation ------------------------------------------------- */

/* Does this node have a NIC?  A node without one faults at its address. */
bool net_probe(void)
{
    uint32_t id;
    return probe_read32(NIC_V + R_ID, &id) && id == NIC_ID;
}

/* King, before replication: the state every node finds through kg.net. */
void net_shared_init(void)
{
    struct net *n = kalloc_shared(sizeof *n);
    spin_init(&n->lock, "net");
    n->node = -1;
    kg.net = n;
}

/* A buffer of this node's local heap, at its official address; not zeroed (boot time counts). */
static void *local_official(uint32_t size)
{
    return official(kalloc_stack(size));
}

static struct nic_desc *ring(int n, uint32_t len)
{
    struct nic_desc *r = local_official(n * sizeof *r);
    uint8_t *bufs = local_official(n * NET_BUF);
    for (int i = 0; i < n; i++)
        r[i] = (struct nic_desc){ (uint32_t)(bufs + i * NET_BUF), len, 0, 0 };
    return r;
}

static void nic_write(uint32_t reg, uint32_t v) { mmio_write32(NIC_V + reg, v); }
static uint32_t nic_read(uint32_t reg) { return mmio_read32(NIC_V + reg); }

/*
 * On every node after the first barrier: the lowest-numbered node with a
 * NIC takes it, sets up its rings and buffers in its own RAM and enables
 * the receive interrupt.  The others leave their NICs alone.
 */
void net_init(void)
{
    struct net *n = net();
    if (!this_node.has_nic)
        return;
    for (int k = 0; k < this_node.id; k++)
        if (node_ptr(k)->has_nic)
            return;
    uint32_t lo = nic_read(R_MAC_LO), hi = nic_read(R_MAC_HI);
    for (int i = 0; i < 4; i++)
        n->mac[i] = (uint8_t)(lo >> (8 * i));
    n->mac[4] = (uint8_t)hi;
    n->mac[5] = (uint8_t)(hi >> 8);
    n->rx = ring(NET_RX_N, NET_BUF);
    n->tx = ring(NET_TX_N, 0);
    for (int i = 0; i < NET_POOL; i++) {
        struct dgram *g = local_official(sizeof *g);
        g->next = n->free;
        n->free = g;
    }
    for (int i = 0; i < NET_ARP; i++)
        n->arp[i].held = local_official(NET_BUF);

    nic_write(R_CTRL, CTRL_RESET);
    nic_write(R_RX_BASE, (uint32_t)n->rx);
    nic_write(R_RX_SIZE, NET_RX_N);
    nic_write(R_RX_TAIL, NET_RX_N - 1);     /* lend it all but one: HEAD == TAIL is empty */
    nic_write(R_TX_BASE, (uint32_t)n->tx);
    nic_write(R_TX_SIZE, NET_TX_N);
    nic_write(R_INT_ENABLE, INT_RX);
    nic_write(R_CTRL, CTRL_RX_EN | CTRL_TX_EN);
    uint32_t enable = mmio_read32(INTC_V + INTC_ENABLE_S);
    mmio_write32(INTC_V + INTC_ENABLE_S, enable | (1u << SRC_NIC));
    fence();
    n->node = this_node.id;                  /* last: calls may use the stack from now on */
}

static bool up(void)
{
    return net() && net()->node >= 0;
}

/* -- transmitting ---------------------------------------------------------------- */

/* From IPI_NET: another node queued frames; hand them to the NIC. */
void net_kick(void)
{
    struct net *n = net();
    if (!up() || n->node != this_node.id)
        return;
    uint32_t flags = spin_lock_irqsave(&n->lock);
    nic_write(R_TX_TAIL, n->tx_prod);
    spin_unlock_irqrestore(&n->lock, flags);
}

/*
 * Queue one frame on the transmit ring (the lock held).  On the NIC node
 * the store to TX_TAIL sends it at once; another node rings the NIC node,
 * which makes the store when it takes the interrupt.
 */
static bool tx_frame(const uint8_t *frame, uint32_t len)
{
    struct net *n = net();
    while (n->tx_done != n->tx_prod && (n->tx[n->tx_done].status & DESC_DONE))
        n->tx_done = (n->tx_done + 1) % NET_TX_N;
    uint32_t next = (n->tx_prod + 1) % NET_TX_N;
    if (next == n->tx_done) {
        count(NC_TX_RING_FULL);
        return false;
    }
    struct nic_desc *d = &n->tx[n->tx_prod];
    memcpy((void *)d->addr, frame, len);
    d->len = len;
    d->status = 0;
    fence();
    n->tx_prod = next;
    if (n->node == this_node.id)
        nic_write(R_TX_TAIL, next);
    else
        ipi_send(n->node, IPI_NET);
    return true;
}

static uint32_t eth_header(uint8_t *f, const uint8_t *dst, uint32_t type)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, net()->mac, 6);
    put16(f + 12, type);
    return ETH_HLEN;
}

static bool tx_arp(uint32_t op, const uint8_t *mac, uint32_t ip)
{
    uint8_t f[ETH_HLEN + 28];
    uint8_t *a = f + eth_header(f, op == 1 ? broadcast : mac, ETH_ARP);
    put16(a, 1);
    put16(a + 2, ETH_IP);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, op);
    memcpy(a + 8, net()->mac, 6);
    put32(a + 14, OUR_IP);
    memset(a + 18, 0, 6);
    if (op == 2)
        memcpy(a + 18, mac, 6);
    put32(a + 24, ip);
    count(op == 1 ? NC_TX_ARP_REQUESTS : NC_TX_ARP_REPLIES);
    return tx_frame(f, sizeof f);
}

static struct arp_entry *arp_find(uint32_t ip)
{
    for (int i = 0; i < NET_ARP; i++)
        if (net()->arp[i].state != ARP_FREE && net()->arp[i].ip == ip)
            return &net()->arp[i];
    return NULL;
}

/* An entry for ip: its own, a free one, or the least recently used. */
static struct arp_entry *arp_slot(uint32_t ip)
{
    struct arp_entry *e = arp_find(ip), *oldest = &net()->arp[0];
    for (int i = 0; !e && i < NET_ARP; i++) {
        struct arp_entry *c = &net()->arp[i];
        if (c->state == ARP_FREE)
            e = c;
        else if (c->used < oldest->used)
            oldest = c;
    }
    if (!e) {
        e = oldest;
        if (e->held_len)
            count(NC_ARP_HELD_DROPPED);
        e->held_len = 0;
        e->state = ARP_FREE;
    }
    e->ip = ip;
    e->used = ++net()->clock;
    return e;
}

/* ip is at mac: remember it (create: even if we did not ask), send what waited for it. */
static void arp_learn(uint32_t ip, const uint8_t *mac, bool create)
{
    if ((ip & NETMASK) != (OUR_IP & NETMASK))
        return;
    struct arp_entry *e = arp_find(ip);
    if (!e && !create)
        return;
    if (!e)
        e = arp_slot(ip);
    memcpy(e->mac, mac, 6);
    e->state = ARP_KNOWN;
    if (e->held_len) {
        memcpy(e->held, mac, 6);
        tx_frame(e->held, e->held_len);
        e->held_len = 0;
    }
}

/*
 * Send an IPv4 frame (Ethernet header still to fill) to its next hop: the
 * destination on our network, the gateway beyond it.  An address not yet
 * resolved holds the frame (one per entry; a newer one replaces it) and
 * asks by ARP.  The lock is held.  False: the ring is full.
 */
static bool tx_ip(uint8_t *f, uint32_t len, uint32_t dst)
{
    if (dst == 0xFFFFFFFFu) {
        eth_header(f, broadcast, ETH_IP);
        return tx_frame(f, len);
    }
    uint32_t hop = (dst & NETMASK) == (OUR_IP & NETMASK) ? dst : GATEWAY_IP;
    struct arp_entry *e = arp_find(hop);
    if (e && e->state == ARP_KNOWN) {
        e->used = ++net()->clock;
        eth_header(f, e->mac, ETH_IP);
        return tx_frame(f, len);
    }
    e = arp_slot(hop);
    if (e->held_len)
        count(NC_ARP_HELD_DROPPED);
    eth_header(f, broadcast, ETH_IP);        /* the destination comes with the answer */
    memcpy(e->held, f, len);
    e->held_len = len;
    e->state = ARP_WAITING;
    tx_arp(1, broadcast, hop);               /* if the ring is full, the next send asks again */
    return true;
}

/* -- receiving ------------------------------------------------------------------- */

static struct binding *binding(uint32_t port)
{
    for (int i = 0; i < NET_PORTS; i++)
        if (net()->ports[i].port == port)
            return &net()->ports[i];
    return NULL;
}

/* Tell the binding VP; a VP running on another node notices at once (the interrupt's return). */
static void tell(struct vp *v)
{
    vp_pend(v, PSY_SWI_NET);
    if (v->node != this_node.id)
        ipi_send(v->node, IPI_RESCHED);
}

static int rx_udp(uint32_t src, const uint8_t *u, uint32_t n)
{
    struct net *net_ = net();
    if (n < UDP_HLEN)
        return NC_UDP_TRUNCATED;
    uint32_t ulen = get16(u + 4);
    if (ulen < UDP_HLEN || ulen > n)
        return NC_UDP_MALFORMED;
    if (get16(u + 6) && csum(u, ulen, pseudo(src, OUR_IP, ulen)))
        return NC_UDP_CHECKSUM;
    struct binding *b = get16(u + 2) ? binding(get16(u + 2)) : NULL;
    if (!b)
        return NC_UDP_NO_PORT;
    struct dgram *g = net_->free;
    if (!g || b->queued >= NET_QUEUE)
        return NC_UDP_QUEUE_FULL;
    net_->free = g->next;
    g->next = NULL;
    g->from = (struct psy_udp_from){ src, (unsigned short)get16(u), (unsigned short)(ulen - UDP_HLEN) };
    memcpy(g->data, u + UDP_HLEN, ulen - UDP_HLEN);
    if (b->tail)
        b->tail->next = g;
    else
        b->head = g;
    b->tail = g;
    b->queued++;
    b->received++;
    tell(b->vp);
    return NC_UDP_DELIVERED;
}

static int rx_ip(const uint8_t *ip, uint32_t n)
{
    if (n < IP_HLEN)
        return NC_IP_TRUNCATED;
    uint32_t ihl = (ip[0] & 15u) * 4;
    if (ip[0] >> 4 != 4 || ihl < IP_HLEN)
        return NC_IP_MALFORMED;
    if (n < ihl)
        return NC_IP_TRUNCATED;
    uint32_t total = get16(ip + 2);
    if (total < ihl)
        return NC_IP_MALFORMED;
    if (total > n)
        return NC_IP_TRUNCATED;      /* bytes after `total` are padding */
    if (csum(ip, ihl, 0))
        return NC_IP_CHECKSUM;
    if (get16(ip + 6) & 0x3FFF)              /* more fragments, or an offset: refused */
        return NC_IP_FRAGMENT;
    if (get32(ip + 16) != OUR_IP)
        return NC_IP_NOT_FOR_US;
    if (ip[9] != IP_UDP)
        return NC_IP_PROTOCOL;
    return rx_udp(get32(ip + 12), ip + ihl, total - ihl);   /* options, if any, are skipped */
}

static int rx_arp(const uint8_t *a, uint32_t n)
{
    if (n < 28)
        return NC_ARP_TRUNCATED;
    uint32_t op = get16(a + 6), sender = get32(a + 14);
    if (get16(a) != 1 || get16(a + 2) != ETH_IP || a[4] != 6 || a[5] != 4 || (op != 1 && op != 2)
        || (a[8] & 1) || sender == 0 || sender == OUR_IP)
        return NC_ARP_MALFORMED;      /* a multicast sender, or one claiming our address */
    if (get32(a + 24) != OUR_IP)
        return NC_ARP_NOT_FOR_US;
    arp_learn(sender, a + 8, op == 1);       /* RFC 826: a request to us is worth keeping */
    if (op == 2)
        return NC_ARP_REPLIES;
    tx_arp(2, a + 8, sender);
    return NC_ARP_REQUESTS;
}

/* What became of one received frame: the counter it ends in. */
static int rx_frame(const uint8_t *f, uint32_t len)
{
    if (len < ETH_HLEN)
        return NC_RUNT;
    if (memcmp(f, net()->mac, 6) != 0 && memcmp(f, broadcast, 6) != 0)
        return NC_NOT_FOR_US;
    uint32_t type = get16(f + 12);
    if (type == ETH_ARP)
        return rx_arp(f + ETH_HLEN, len - ETH_HLEN);
    if (type == ETH_IP)
        return rx_ip(f + ETH_HLEN, len - ETH_HLEN);
    return NC_ETHERTYPE;
}

/*
 * The NIC's interrupt handler (its node only).  Acknowledge first, then
 * empty the ring: a frame that lands after the acknowledgement raises the
 * interrupt again instead of waiting unseen.  Each descriptor goes back to
 * the NIC as soon as its frame has been dealt with.
 */
void net_intr(void)
{
    struct net *n = net();
    nic_write(R_INT_STATUS, nic_read(R_INT_STATUS));
    if (!up())
        return;
    uint32_t flags = spin_lock_irqsave(&n->lock);
    for (;;) {
        struct nic_desc *d = &n->rx[n->rx_next];
        uint32_t status = d->status;
        if (!(status & DESC_DONE))
            break;
        count(NC_RX_FRAMES);
        count(status & DESC_ERRORS ? NC_RX_BAD_DESC
                                   : rx_frame((const uint8_t *)d->addr, status >> 16));
        d->status = 0;
        fence();
        nic_write(R_RX_TAIL, n->rx_next);    /* the slot kept empty moves along */
        n->rx_next = (n->rx_next + 1) % NET_RX_N;
    }
    spin_unlock_irqrestore(&n->lock, flags);
}

/* -- the kernel calls ------------------------------------------------------------- */

static bool bad_port(uint32_t port)
{
    return port == 0 || port > 0xFFFF;
}

/* udp_bind(port): the port is the calling VP's (and its domain's) until unbound or the VP ends. */
int net_udp_bind(uint32_t port)
{
    struct vp *v = this_node.current->vp;
    if (!up())
        return PSY_ENODEV;
    if (bad_port(port) || !v)
        return PSY_EINVAL;
    struct net *n = net();
    int err = 0;
    uint32_t flags = spin_lock_irqsave(&n->lock);
    struct binding *b = binding(port);
    if (b)
        err = PSY_EBUSY;
    else if (!(b = binding(0)))
        err = PSY_ENOMEM;
    else
        *b = (struct binding){ .port = port, .vp = v, .dom = v->dom, .dom_id = v->dom_id, .vp_id = v->id,
                                .vp_node = v->node };
    spin_unlock_irqrestore(&n->lock, flags);
    return err;
}

/* Forget a binding and what waits on it (the lock held). */
static void unbind(struct binding *b)
{
    while (b->head) {
        struct dgram *g = b->head;
        b->head = g->next;
        g->next = net()->free;
        net()->free = g;
    }
    *b = (struct binding){ 0 };
}

int net_udp_unbind(struct domain *d, uint32_t port)
{
    if (!up())
        return PSY_ENODEV;
    if (bad_port(port))
        return PSY_EINVAL;
    int err = PSY_EPERM;
    uint32_t flags = spin_lock_irqsave(&net()->lock);
    struct binding *b = binding(port);
    if (b && b->dom == d) {
        unbind(b);
        err = 0;
    }
    spin_unlock_irqrestore(&net()->lock, flags);
    return err;
}

/* A VP ends (vp.c): its ports are free again. */
void net_vp_gone(struct vp *v)
{
    if (!up())
        return;
    uint32_t flags = spin_lock_irqsave(&net()->lock);
    for (int i = 0; i < NET_PORTS; i++)
        if (net()->ports[i].port && net()->ports[i].vp == v)
            unbind(&net()->ports[i]);
    spin_unlock_irqrestore(&net()->lock, flags);
}

/*
 * udp_send(ports, ip, va, len): len bytes at va from local port (ports &
 * 0xFFFF, bound by the caller's domain) to ip:(ports >> 16).  The frame is
 * built here, on the caller's node and stack, and queued; the call returns
 * len without waiting for the wire.
 */
int net_udp_send(struct domain *d, uint32_t ports, uint32_t ip, uint32_t va, uint32_t len)
{
    uint8_t f[ETH_HLEN + IP_HLEN + UDP_HLEN + UDP_MAX];
    uint8_t *iph = f + ETH_HLEN, *u = iph + IP_HLEN;
    uint32_t sport = ports & 0xFFFF, dport = ports >> 16;
    if (!up())
        return PSY_ENODEV;
    if (sport == 0 || dport == 0 || len > UDP_MAX || ip == 0 || ip == OUR_IP)
        return PSY_EINVAL;
    if (domain_read(d, va, u + UDP_HLEN, len))
        return PSY_EFAULT;
    put16(u, sport);
    put16(u + 2, dport);
    put16(u + 4, UDP_HLEN + len);
    put16(u + 6, 0);
    uint32_t sum = csum(u, UDP_HLEN + len, pseudo(OUR_IP, ip, UDP_HLEN + len));
    put16(u + 6, sum ? sum : 0xFFFF);        /* 0 would mean "no checksum" */
    iph[0] = 0x45;
    iph[1] = 0;
    put16(iph + 2, IP_HLEN + UDP_HLEN + len);
    put16(iph + 6, 0x4000);                  /* don't fragment: we never do */
    iph[8] = 64;
    iph[9] = IP_UDP;
    put32(iph + 12, OUR_IP);
    put32(iph + 16, ip);

    struct net *n = net();
    int err = PSY_EPERM;
    uint32_t flags = spin_lock_irqsave(&n->lock);
    struct binding *b = binding(sport);
    if (b && b->dom == d) {
        put16(iph + 4, n->ident++);
        put16(iph + 10, 0);
        put16(iph + 10, csum(iph, IP_HLEN, 0));
        err = tx_ip(f, ETH_HLEN + IP_HLEN + UDP_HLEN + len, ip) ? 0 : PSY_EAGAIN;
        if (!err) {
            count(NC_TX_UDP);
            b->sent++;
        }
    }
    spin_unlock_irqrestore(&n->lock, flags);
    return err ? err : (int)len;
}

/* Does some port of v still have datagrams waiting?  (The lock held.) */
static bool vp_has_waiting(struct vp *v)
{
    for (int i = 0; i < NET_PORTS; i++)
        if (net()->ports[i].vp == v && net()->ports[i].head)
            return true;
    return false;
}

/*
 * udp_recv(port, va, len, from): the oldest datagram waiting on a port the
 * caller's domain bound; at most len bytes of it into va (the rest is
 * dropped, as recvfrom does), its source and length into *from (if from is
 * not 0).  PSY_EAGAIN when none waits; and then, if none waits on any port
 * of the calling VP, its PSY_SWI_NET is no longer pending, so block() waits
 * for the next arrival.
 */
int net_udp_recv(struct domain *d, uint32_t port, uint32_t va, uint32_t len, uint32_t from_va)
{
    struct vp *self = this_node.current->vp;
    if (!up())
        return PSY_ENODEV;
    if (bad_port(port))
        return PSY_EINVAL;
    struct net *n = net();
    uint32_t flags = spin_lock_irqsave(&n->lock);
    struct binding *b = binding(port);
    struct dgram *g = b && b->dom == d ? b->head : NULL;
    if (g) {
        b->head = g->next;
        if (!b->head)
            b->tail = NULL;
        b->queued--;
    } else if (self && !vp_has_waiting(self)) {
        atomic_and(&self->pending, ~(1u << PSY_SWI_NET));
        if (self->desc)
            self->desc->pending = self->pending;
    }
    spin_unlock_irqrestore(&n->lock, flags);
    if (!g)
        return b && b->dom == d ? PSY_EAGAIN : PSY_EPERM;

    /* Copy out without the lock (domain_write takes the realm lock). */
    uint32_t copy = len < g->from.len ? len : g->from.len;
    int err = domain_write(d, va, g->data, copy);
    if (!err && from_va)
        err = domain_write(d, from_va, &g->from, sizeof g->from);
    flags = spin_lock_irqsave(&n->lock);
    if (err && b->port == port && b->dom == d) {
        g->next = b->head;                   /* put it back: a bad argument changes nothing */
        b->head = g;
        if (!b->tail)
            b->tail = g;
        b->queued++;
    } else {
        g->next = n->free;
        n->free = g;
    }
    spin_unlock_irqrestore(&n->lock, flags);
    return err ? err : (int)copy;
}

/* -- the monitor's `net` ---------------------------------------------------------- */

static void nic_snapshot(void *arg)
{
    uint32_t *out = arg;
    out[0] = nic_read(R_STATUS);
    for (int i = 0; i < NIC_NCOUNTERS; i++)
        out[1 + i] = nic_read(R_COUNTERS + 4 * i);
}

static void print_ip(uint32_t ip)
{
    kprintf("%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
}

static void print_mac(const uint8_t *m)
{
    kprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* Counters from first to last, `name=value`, a few a line. */
static void print_counters(const uint32_t *c, const char *const *names, int first, int last)
{
    for (int i = first, col = 0; i <= last; i++, col++)
        kprintf("%s%s=%u%s", col % 6 ? "" : "  ", names[i], c[i], col % 6 == 5 || i == last ? "\n" : " ");
}

void net_print(void)
{
    struct net *n = net();
    if (!up()) {
        kprintf("net: no network interface\n");
        return;
    }
    uint32_t nic[1 + NIC_NCOUNTERS];
    if (n->node == this_node.id)
        nic_snapshot(official(nic));
    else
        ipi_call(n->node, nic_snapshot, official(nic));   /* its registers are its own */
    kprintf("net: NIC of node %d, MAC ", n->node);
    print_mac(n->mac);
    kprintf(", address 10.0.2.15/24, gateway 10.0.2.2, link %s\n", nic[0] & 1 ? "up" : "down");
    kprintf("nic:\n");
    print_counters(nic + 1, nic_counter_names, 0, NIC_NCOUNTERS - 1);

    uint32_t c[NC_COUNT], sum = 0;
    struct binding ports[NET_PORTS];
    struct arp_entry arp[NET_ARP];
    uint32_t flags = spin_lock_irqsave(&n->lock);
    memcpy(c, n->count, sizeof c);
    memcpy(ports, n->ports, sizeof ports);
    memcpy(arp, n->arp, sizeof arp);
    spin_unlock_irqrestore(&n->lock, flags);
    for (int i = NC_RX_FIRST; i <= NC_RX_LAST; i++)
        sum += c[i];
    kprintf("stack: rx_frames=%u, accounted for %u:\n", c[NC_RX_FRAMES], sum);
    print_counters(c, counter_names, NC_RX_FIRST, NC_RX_LAST);
    kprintf("stack transmit:\n");
    print_counters(c, counter_names, NC_TX_UDP, NC_COUNT - 1);
    for (int i = 0; i < NET_ARP; i++) {
        if (arp[i].state == ARP_FREE)
            continue;
        kprintf("arp ");
        print_ip(arp[i].ip);
        kprintf(" ");
        if (arp[i].state == ARP_KNOWN)
            print_mac(arp[i].mac);
        else
            kprintf("(asked%s)", arp[i].held_len ? ", a frame waits" : "");
        kprintf("\n");
    }
    for (int i = 0; i < NET_PORTS; i++)
        if (ports[i].port)
            kprintf("port %u: vp %d on node %d, domain %d; %u received, %u sent, %u waiting\n",
                    ports[i].port, ports[i].vp_id, ports[i].vp_node, ports[i].dom_id,
                    ports[i].received, ports[i].sent, ports[i].queued);
}
