/*
 * tftpc.c: the TFTP client (tftpc.h).
 *
 * Losses are recovered as RFC 1350 says: a receiver sends its last ACK again,
 * a sender its last block, when nothing comes within TIMEOUT; the request is
 * sent again until the server answers.  The timeout runs from what we last
 * sent, not from the last datagram that came: a server that repeats its last
 * ACK on a timer of its own (tftpy does, every 0.2 s of the host's time) must
 * not keep us from ever timing out and sending the block it lacks.  The wait
 * is block() with the VP's wall-clock timer set: a datagram or the timer ends
 * it.  (A timer that fired
 * stays pending while software interrupts are disabled, so after a loss the
 * waits of the same transfer poll; the kernel drops it once they are enabled.)
 */
#include "tftpc.h"

#define TIMEOUT         2000000ull      /* 0.2 s of the 10 MHz clock */
#define TRIES           100
#define FINAL_SILENCE   5               /* timeouts of silence after the last block: delivered */

#define OP_RRQ          1
#define OP_WRQ          2
#define OP_DATA         3
#define OP_ACK          4
#define OP_ERROR        5
#define OP_OACK         6

static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

static int failed(struct tftp *t, int err, const char *what)
{
    if (err == SVC_EIO)
        copy_text(t->error, (const char *)t->packet + 4, sizeof t->error);
    else
        copy_text(t->error, what, sizeof t->error);
    return err;
}

/* A datagram from the server into t->packet, or PSY_EAGAIN once the clock reaches deadline. */
static int wait_datagram(struct tftp *t, uint64_t deadline)
{
    struct psy_vp *vp = self_vp();
    uint32_t was = vp->disabled;
    struct psy_udp_from from;
    int n;
    vp->disabled = 1;
    vp->timer_at = deadline;
    for (;;) {
        n = udp_recv(t->port, t->packet, sizeof t->packet, &from);
        if (n >= 0 && t->tid && from.port != t->tid)
            continue;                               /* another transfer's, or a stray */
        if (n != PSY_EAGAIN || rdtime64() >= deadline)
            break;
        psy_block();                                /* a datagram, or the timer */
    }
    vp->timer_at = 0;
    vp->disabled = was;
    if (n >= 0 && !t->tid)
        t->tid = from.port;
    return n;
}

/* Send a datagram to the server; when the reply to it is due. */
static uint64_t send(struct tftp *t, uint32_t port, const void *p, uint32_t n)
{
    udp_send(t->port, PSY_IP(10, 0, 2, 2), port, p, n);
    return rdtime64() + TIMEOUT;
}

/* The request (RRQ or WRQ) with the block size option, in req; its length. */
static uint32_t request(uint8_t *req, uint32_t op, const char *name)
{
    uint8_t *p = req;
    put16(p, op), p += 2;
    while (*name && p < req + 64)
        *p++ = (uint8_t)*name++;
    *p++ = 0;
    memcpy(p, "octet\0blksize\0" "1428\0", 19);
    return (uint32_t)(p + 19 - req);
}

static void begin(struct tftp *t)
{
    t->tid = 0;
    t->error[0] = 0;
    t->began = rdtime64();
}

int tftp_get(struct tftp *t, const char *name, uint8_t *buf, uint32_t max)
{
    uint8_t req[96], ack[4];
    uint32_t req_len = request(req, OP_RRQ, name), blksize = 512, block = 0, size = 0, tries = 0;
    begin(t);
    uint64_t due = send(t, t->server_port, req, req_len);
    for (;;) {
        int n = wait_datagram(t, due);
        if (n == PSY_EAGAIN) {
            if (++tries > TRIES)
                return failed(t, SVC_ETIMEDOUT, "the server does not answer");
            if (!t->tid)
                due = send(t, t->server_port, req, req_len);    /* the request was lost */
            else
                due = send(t, t->tid, ack, 4);                  /* our last ACK was, or its block */
            continue;
        }
        if (n < 4)
            continue;
        tries = 0;
        uint32_t op = get16(t->packet), arg = get16(t->packet + 2);
        if (op == OP_ERROR)
            return failed(t, SVC_EIO, "");
        if (op == OP_OACK) {
            blksize = TFTP_BLKSIZE;
        } else if (op == OP_DATA && arg == ((block + 1) & 0xFFFF)) {
            uint32_t got = (uint32_t)n - 4;
            if (got > max - size)
                return failed(t, SVC_ETOOBIG, "the file is larger than the buffer");
            memcpy(buf + size, t->packet + 4, got);
            size += got;
            block++;
            put16(ack, OP_ACK), put16(ack + 2, block);
            due = send(t, t->tid, ack, 4);
            if (got < blksize)
                return (int)size;
            continue;
        } else if (op != OP_DATA) {
            continue;
        }
        put16(ack, OP_ACK), put16(ack + 2, block);        /* OACK: ACK 0; a repeat: ACK it again */
        due = send(t, t->tid, ack, 4);
    }
}

/* Send block `block` of the file (its bytes from (block - 1) * blksize); its length. */
static uint32_t send_block(struct tftp *t, uint32_t block, const uint8_t *buf, uint32_t size,
                           uint32_t blksize, uint64_t *due)
{
    uint32_t at = (block - 1) * blksize;
    uint32_t len = at >= size ? 0 : size - at < blksize ? size - at : blksize;
    put16(t->out, OP_DATA), put16(t->out + 2, block);
    memcpy(t->out + 4, buf + at, len);
    *due = send(t, t->tid, t->out, 4 + len);
    return len;
}

int tftp_put(struct tftp *t, const char *name, const uint8_t *buf, uint32_t size)
{
    uint8_t req[96];
    uint32_t req_len = request(req, OP_WRQ, name), blksize = 512, block = 0, len = 0, tries = 0;
    begin(t);
    uint64_t due = send(t, t->server_port, req, req_len);
    for (;;) {
        int n = wait_datagram(t, due);
        if (n == PSY_EAGAIN) {
            /* The last block's ACK may be lost for good: the server ends its side when the last
             * block comes, and does not wait to acknowledge it again.  Had that block been lost
             * instead, it would still ask for it (its ACK of the block before, again): after
             * FINAL_SILENCE timeouts without a word, the file is the server's. */
            if (block && len < blksize && tries >= FINAL_SILENCE)
                return (int)size;
            if (++tries > TRIES)
                return failed(t, SVC_ETIMEDOUT, "the server does not answer");
            if (!t->tid)
                due = send(t, t->server_port, req, req_len);      /* the request was lost */
            else if (block)
                send_block(t, block, buf, size, blksize, &due);   /* the block was, or its ACK */
            else
                due = rdtime64() + TIMEOUT;                       /* nothing of ours to send again */
            continue;
        }
        if (n < 4)
            continue;
        uint32_t op = get16(t->packet), arg = get16(t->packet + 2);
        if (op == OP_ERROR)
            return failed(t, SVC_EIO, "");
        if (op == OP_OACK && block == 0) {
            blksize = TFTP_BLKSIZE;                       /* as good as ACK 0 */
        } else if (op != OP_ACK || arg != (block & 0xFFFF)) {
            if (op == OP_ACK && block && arg == ((block - 1) & 0xFFFF))
                tries = 0;                                /* it still wants the block: not done */
            continue;                                     /* a repeat: the block goes when due */
        }
        tries = 0;
        if (block && len < blksize)
            return (int)size;
        len = send_block(t, ++block, buf, size, blksize, &due);
    }
}
