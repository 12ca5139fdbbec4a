/*
 * tftpc.h: a TFTP client (RFC 1350, with the block size option of RFC 2348)
 * on the kernel's UDP calls, for the host's file server at 10.0.2.2.
 *
 * It waits for datagrams with block(), software interrupts disabled in the
 * VP's descriptor, so it runs alike in a program's own code and inside an
 * operation a server runs for a caller (where they are disabled anyway).
 */
#ifndef PSYCHE_TFTPC_H
#define PSYCHE_TFTPC_H

#include "psyprog.h"
#include "ulib.h"

#define TFTP_BLKSIZE 1428            /* one block per Ethernet frame */

struct tftp {
    uint32_t port;                  /* our UDP port: bound by the caller, on this VP */
    uint32_t server_port;           /* the host's server, 10.0.2.2:server_port */
    uint32_t tid;                   /* the server's port for this transfer, 0 till it answers */
    uint64_t began;                 /* the clock when the request went out */
    char error[80];                 /* why the last transfer failed */
    uint8_t packet[4 + TFTP_BLKSIZE + 64];
    uint8_t out[4 + TFTP_BLKSIZE];
};

/* Fetch `name` into buf (at most max bytes): its size, or SVC_EIO / SVC_ETIMEDOUT / SVC_ETOOBIG
 * with t->error saying why. */
int tftp_get(struct tftp *t, const char *name, uint8_t *buf, uint32_t max);

/* Store len bytes at buf as `name`: len, or an error as for tftp_get. */
int tftp_put(struct tftp *t, const char *name, const uint8_t *buf, uint32_t len);

#endif
