/*
 * memlayout.h: physical and virtual addresses of the Psyche kernel.
 *
 * Included by C and by assembly, so only #defines live here.  The map is
 * documented in docs/kernel.md ("Address spaces"); keep the two in step.
 *
 * Physical (docs/memory-map.md): node k's 4 MiB of RAM start at
 * NODE_RAM_BASE + k * NODE_RAM_SIZE; devices sit in a node-local window.
 *
 * Virtual (Sv32, set up by start.S and vm.c), the same on every node:
 *
 *   0x0000_0000 .. 0x7FFF_FFFF  user: the uniform address space of realms
 *                               (user/kernel space only; empty so far)
 *   0x8000_0000 .. 0x9FFF_FFFF  kernel/kernel: every kernel instance's RAM
 *                               at its physical address, its "official"
 *                               address; read/write, never executable
 *   0xC000_0000 .. 0xC03F_FFFF  the local kernel instance: this node's own
 *                               RAM, where its copy of the kernel runs
 *   0xF000_0000 .. 0xF0BF_FFFF  this node's devices
 */
#ifndef PSYCHE_MEMLAYOUT_H
#define PSYCHE_MEMLAYOUT_H

#define NODE_RAM_BASE   0x80000000
#define NODE_RAM_SHIFT  22
#define NODE_RAM_SIZE   (1 << NODE_RAM_SHIFT)          /* 4 MiB */
#define MAX_NODES       128

/* The king is node 0; its RAM holds the kernel/kernel shared data. */
#define KING_RAM_BASE   NODE_RAM_BASE

/* Kernel/kernel window: official addresses equal physical addresses. */
#define KK_WINDOW_BASE  0x80000000
#define KK_WINDOW_END   0xA0000000

/* Local kernel window: this node's RAM, wherever it is physically. */
#define KERNEL_VBASE    0xC0000000

/* Inside every node's RAM (offsets from its base). */
#define LOCAL_HEAP_END_OFF    0x200000  /* local heap runs from the image end to here */
#define SHARED_HEAP_OFF       0x200000  /* king only: 1 MiB shared heap */
#define SHARED_HEAP_SIZE      0x100000
#define PERSIST_OFF           0x300000  /* king only: restart record (survives restart) */
#define PERSIST_SIZE          0x010000  /* then: this node's frame pool (frame.c) */
#define DEBUG_SCRATCH_OFF     0x3F0000  /* the top 64 KiB: never the kernel's, so that a */
#define DEBUG_SCRATCH_SIZE    0x010000  /* debugger's test may write there (fuzz_mux) */

#define SHARED_HEAP_BASE  (KING_RAM_BASE + SHARED_HEAP_OFF)
#define PERSIST_BASE      (KING_RAM_BASE + PERSIST_OFF)

/* Restart record fields that start.S uses (struct persist in restart.h). */
#define PERSIST_MAGIC           0x50535943  /* "PSYC" */
#define PERSIST_MAGIC_OFF       0
#define PERSIST_STATE_OFF       4
#define PERSIST_PARKED_OFF      0x20  /* one byte per node */
#define PERSIST_DATA_SAVE_OFF   0x100

/* restart_state values */
#define RESTART_NONE      0
#define RESTART_PARKING   1   /* nodes are asked to park in M mode */
#define RESTART_RELEASED  2   /* parked nodes may start over at _entry */

/* Device window: three megapages, each mapping a 4 MiB-aligned physical range. */
#define DEV_VBASE       0xF0000000
#define CLINT_PHYS      0x02000000
#define INTC_PHYS       0x0C000000
#define UART_PHYS       0x10000000
#define CLINT_V         (DEV_VBASE + 0x000000)
#define INTC_V          (DEV_VBASE + 0x400000)
#define UART_V          (DEV_VBASE + 0x800000)        /* on-board serial line */
#define CONSOLE_V       (UART_V + 0x1000)             /* console line, king only */
#define DOORBELL_V      (UART_V + 0x3000)
#define DOORBELL_PHYS   (UART_PHYS + 0x3000)
#define NIC_V           (UART_V + 0x4000)             /* network interface, where present */
#define NIC_PHYS        (UART_PHYS + 0x4000)

/* Doorbell registers (offsets). */
#define DB_NODE_ID      0x00
#define DB_NODE_COUNT   0x04
#define DB_RING         0x08
#define DB_START_PC     0x0C
#define DB_PENDING_FROM 0x10
#define DB_HALTED       0x20    /* bit k of word k/32: node k is stopped by a debugger */

/* Interrupt controller registers and sources. */
#define INTC_PENDING    0x0
#define INTC_ENABLE_M   0x4
#define INTC_ENABLE_S   0x8
#define SRC_DOORBELL    1
#define SRC_ONBOARD     2
#define SRC_CONSOLE     3
#define SRC_NIC         4

/* User/kernel space: the per-node magic page, read-only to user code. */
#define MAGIC_PAGE_VA   0x7FFFF000

/* M-mode services, called with ecall from S mode (a7 = number). */
#define SBI_PARK        1   /* park this node in M mode until the king releases it */
#define SBI_RESTART     2   /* start over at _entry (the king, for restart) */

#define PGSIZE          4096

#endif
