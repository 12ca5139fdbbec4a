/*
 * tftp: a TFTP client (RFC 1350, with the block size option of RFC 2348) on the
 * kernel's UDP calls: the machine's file service, from user space.
 *
 *   tftp get PORT NAME         fetch NAME (at most 1 MiB) from the host's server at 10.0.2.2:PORT into a
 *                              realm; prints its size and FNV-1a hash
 *   tftp put PORT NAME SIZE    store SIZE bytes of a known pattern as NAME (byte i is
 *                              (i * 31 + 7) & 255); prints the same
 *
 * Losses are recovered as RFC 1350 says: a receiver sends its last ACK again, a
 * sender its last block, when nothing comes within TIMEOUT; the request is sent
 * again until the server answers.  The wait is the VP's wall-clock timer, a
 * store into its descriptor; its software interrupt only marks the wait over.
 * Ends with "tftp: got|put N bytes, hash H" or the reason it could not.
 */
#include "ulib.h"

#define LOCAL_PORT      1069
#define BLKSIZE         1428            /* one block per Ethernet frame */
#define TIMEOUT         2000000ull      /* 0.2 s of the 10 MHz clock */
#define TRIES           100
#define FINAL_SILENCE   5               /* timeouts of silence after the last block: delivered */
#define KEY             0x7F7F1234u
#define FILE_MAX        PSY_REALM_MAX   /* 1 MiB, the largest realm */

#define OP_RRQ          1
#define OP_WRQ          2
#define OP_DATA         3
#define OP_ACK          4
#define OP_ERROR        5
#define OP_OACK         6

static struct psy_vp vp __attribute__((aligned(8)));
static volatile int timed_out;
static uint8_t packet[4 + BLKSIZE + 64];
static uint32_t server;                 /* the server's port for this transfer (its TID), 0 till it answers */
static uint64_t began;                  /* the clock when the request went out */

static void on_timer(uint32_t kind, uint32_t a1, uint32_t a2)
{
    (void)kind, (void)a1, (void)a2;
    struct psy_state st = vp.saved;
    timed_out = 1;
    vp.disabled = 0;
    psy_resume(&st);
}

static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

static uint32_t fnv1a(const uint8_t *p, uint32_t n)
{
    uint32_t h = 2166136261u;
    while (n--)
        h = (h ^ *p++) * 16777619u;
    return h;
}

/* A datagram from the server into packet, or PSY_EAGAIN after TIMEOUT. */
static int wait_datagram(void)
{
    timed_out = 0;
    vp.timer_at = rdtime64() + TIMEOUT;
    for (;;) {
        struct psy_udp_from from;
        int n = udp_recv(LOCAL_PORT, packet, sizeof packet, &from);
        if (n >= 0 && server && from.port != server)
            continue;                               /* another transfer's, or a stray */
        if (n != PSY_EAGAIN) {
            vp.timer_at = 0;
            if (n >= 0 && !server)
                server = from.port;
            return n;
        }
        if (timed_out)
            return PSY_EAGAIN;
        psy_block();                                /* a datagram, or the timer */
    }
}

static int send(uint32_t port, const void *p, uint32_t n)
{
    return udp_send(LOCAL_PORT, PSY_IP(10, 0, 2, 2), port, p, n);
}

/* The request (RRQ or WRQ) with the block size option, in request; its length. */
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

static int failed(const char *what)
{
    if ((get16(packet) == OP_ERROR))
        printf("tftp: %s: the server says %s\n", what, (const char *)packet + 4);
    else
        printf("tftp: %s\n", what);
    return 1;
}

static int get(uint32_t port, const char *name, uint8_t *file)
{
    uint8_t req[96];
    uint32_t req_len = request(req, OP_RRQ, name), blksize = 512, block = 0, size = 0, tries = 0;
    uint8_t ack[4];
    began = rdtime64();
    send(port, req, req_len);
    for (;;) {
        int n = wait_datagram();
        if (n == PSY_EAGAIN) {
            if (++tries > TRIES)
                return failed("the server does not answer");
            if (!server)
                send(port, req, req_len);             /* the request was lost */
            else
                send(server, ack, 4);                 /* our last ACK was, or its block */
            continue;
        }
        if (n < 4)
            continue;
        tries = 0;
        uint32_t op = get16(packet), arg = get16(packet + 2);
        if (op == OP_ERROR)
            return failed("get");
        if (op == OP_OACK) {
            blksize = BLKSIZE;
        } else if (op == OP_DATA && arg == ((block + 1) & 0xFFFF)) {
            uint32_t got = (uint32_t)n - 4;
            if (size + got > FILE_MAX)
                return failed("the file is larger than 1 MiB");
            memcpy(file + size, packet + 4, got);
            size += got;
            block++;
            put16(ack, OP_ACK), put16(ack + 2, block);
            send(server, ack, 4);
            if (got < blksize) {
                printf("tftp: got %u bytes, hash %x, in %u cycles\n", size, fnv1a(file, size),
                       (uint32_t)(rdtime64() - began));
                return 0;
            }
            continue;
        } else if (op != OP_DATA) {
            continue;
        }
        put16(ack, OP_ACK), put16(ack + 2, block);    /* OACK: ACK 0; a repeat: ACK it again */
        send(server, ack, 4);
    }
}

static uint8_t out[4 + BLKSIZE];

/* Send block `block` of the file (its bytes from (block - 1) * blksize); its length. */
static uint32_t send_block(uint32_t block, const uint8_t *file, uint32_t size, uint32_t blksize)
{
    uint32_t at = (block - 1) * blksize;
    uint32_t len = at >= size ? 0 : size - at < blksize ? size - at : blksize;
    put16(out, OP_DATA), put16(out + 2, block);
    memcpy(out + 4, file + at, len);
    send(server, out, 4 + len);
    return len;
}

static int put_done(const uint8_t *file, uint32_t size)
{
    printf("tftp: put %u bytes, hash %x, in %u cycles\n", size, fnv1a(file, size),
           (uint32_t)(rdtime64() - began));
    return 0;
}

static int put(uint32_t port, const char *name, uint8_t *file, uint32_t size)
{
    uint8_t req[96];
    uint32_t req_len = request(req, OP_WRQ, name), blksize = 512, block = 0, len = 0, tries = 0;
    for (uint32_t i = 0; i < size; i++)
        file[i] = (uint8_t)(i * 31 + 7);
    began = rdtime64();
    send(port, req, req_len);
    for (;;) {
        int n = wait_datagram();
        if (n == PSY_EAGAIN) {
            /* The last block's ACK may be lost for good: the server ends its side when the last
             * block comes, and does not wait to acknowledge it again.  Had that block been lost
             * instead, it would still ask for it (its ACK of the block before, again): after
             * FINAL_SILENCE timeouts without a word, the file is the server's. */
            if (block && len < blksize && tries >= FINAL_SILENCE)
                return put_done(file, size);
            if (++tries > TRIES)
                return failed("the server does not answer");
            if (!server)
                send(port, req, req_len);             /* the request was lost */
            else if (block)
                send_block(block, file, size, blksize);   /* the block was, or its ACK */
            continue;
        }
        if (n < 4)
            continue;
        uint32_t op = get16(packet), arg = get16(packet + 2);
        if (op == OP_ERROR)
            return failed("put");
        if (op == OP_OACK && block == 0) {
            blksize = BLKSIZE;                        /* as good as ACK 0 */
        } else if (op != OP_ACK || arg != (block & 0xFFFF)) {
            if (op == OP_ACK && block && arg == ((block - 1) & 0xFFFF))
                tries = 0;                            /* it still wants the block: not done */
            continue;                                 /* a repeat of an older one */
        }
        tries = 0;
        if (block && len < blksize)
            return put_done(file, size);
        len = send_block(++block, file, size, blksize);
    }
}

/* A realm for the file: in this node's memory if its pool has room, else the nearest that has. */
static int file_realm(void)
{
    const struct psy_magic *m = magic_page();
    int realm = PSY_ENOMEM;
    for (uint32_t i = 0; i < m->nnodes && realm == PSY_ENOMEM; i++) {
        uint32_t node = (m->node + i) % m->nnodes;
        realm = make_realm(FILE_MAX, PSY_R | PSY_W | PSY_REALM_NODE(node), KEY, 0);
    }
    return realm;
}

int main(int argc, char **argv, struct psy_domain *self)
{
    if (argc < 4 || (strcmp(argv[1], "put") == 0 && argc < 5)) {
        printf("usage: tftp get PORT NAME | tftp put PORT NAME SIZE\n");
        return 2;
    }
    add_key(self, KEY);
    int realm = file_realm();
    if (realm < 0) {
        printf("tftp: a realm for the file: %s\n", error_name(realm));
        return 1;
    }
    vp.magic = PSY_VP_MAGIC;
    vp.handler[PSY_SWI_TIMER] = (uint32_t)on_timer;
    int err = set_vp(&vp);
    if (!err)
        err = udp_bind(LOCAL_PORT);
    if (err < 0) {
        printf("tftp: UDP port %u: %s\n", LOCAL_PORT, error_name(err));
        return 1;
    }
    uint32_t port = parse_number(argv[2]);
    uint32_t size = argc > 4 ? parse_number(argv[4]) : 0;
    int status;
    if (strcmp(argv[1], "get") == 0) {
        status = get(port, argv[3], (uint8_t *)realm);
    } else if (size > FILE_MAX) {
        printf("tftp: %u bytes: at most 1 MiB\n", size);
        status = 2;
    } else {
        status = put(port, argv[3], (uint8_t *)realm, size);
    }
    destroy_realm((uint32_t)realm, KEY);   /* (realms a program made outlive it otherwise) */
    return status;
}
