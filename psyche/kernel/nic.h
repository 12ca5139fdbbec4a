/*
 * nic.h: the machine's network interface as software drives it: its registers,
 * their bits, and a ring descriptor (docs/memory-map.md, "Network interface";
 * the device is psyche/machine/nic.py).  One definition for every program that
 * drives it: the kernel's driver (net.c), the network boot loader
 * (psyche/netboot) and the machine's own tests (tests/guest/machine/nic.c).
 */
#ifndef PSYCHE_NIC_H
#define PSYCHE_NIC_H

#include <stdint.h>

/* (Where it is, at 0x1000_4000 in the node-local device window, is memlayout.h's NIC_PHYS.) */
#define NIC_ID          0x4E494331u     /* "NIC1" */

#define R_ID            0x00
#define R_MAC_LO        0x04            /* MAC bytes 0-3, byte 0 lowest */
#define R_MAC_HI        0x08            /* MAC bytes 4-5 */
#define R_STATUS        0x0C            /* bit 0: link up */
#define R_CTRL          0x10
#define R_INT_STATUS    0x14            /* write 1 to clear */
#define R_INT_ENABLE    0x18
#define R_MAX_FRAME     0x1C
#define R_RX_BASE       0x20            /* physical, 16-byte aligned; writing it empties the ring */
#define R_RX_SIZE       0x24
#define R_RX_HEAD       0x28
#define R_RX_TAIL       0x2C            /* the NIC owns HEAD up to TAIL - 1 */
#define R_TX_BASE       0x30
#define R_TX_SIZE       0x34
#define R_TX_HEAD       0x38
#define R_TX_TAIL       0x3C            /* the store to it sends the frames */
#define R_COUNTERS      0x40            /* NIC_NCOUNTERS words, from here: */
#define R_RX_FRAMES     0x40
#define R_RX_BYTES      0x44
#define R_TX_FRAMES     0x48
#define R_TX_BYTES      0x4C
#define R_RX_DROP_FULL  0x50
#define R_RX_DROP_OVERSIZE 0x54
#define R_TX_DROP_OVERSIZE 0x58
#define R_BAD_DESC      0x5C
#define R_RX_DROP_OFF   0x60
#define NIC_NCOUNTERS   9

#define CTRL_RX_EN      1u
#define CTRL_TX_EN      2u
#define CTRL_RESET      (1u << 31)
#define INT_RX          1u
#define INT_TX          2u
#define DESC_DONE       1u              /* status: the NIC is done with it */
#define DESC_ERRORS     6u              /* status: ERR_BAD, ERR_OVERSIZE */

/* A ring descriptor; a received frame's length is in status bits 16-31. */
struct nic_desc {
    uint32_t addr, len;
    volatile uint32_t status;
    uint32_t cookie;                    /* the driver's own: the NIC never touches it */
};

#endif
