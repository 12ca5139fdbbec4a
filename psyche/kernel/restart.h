/*
 * restart.h: restart without reloading (paper, sections 3.3 and 5).
 *
 * The first boot saves a copy of the kernel's initialized data and a
 * checksum of its code in a record in the king's RAM that no boot clears.
 * `restart` checks the code against the checksum and, if it still matches,
 * parks every node, restores the data and boots again.
 */
#ifndef PSYCHE_RESTART_H
#define PSYCHE_RESTART_H

#include "memlayout.h"
#include "types.h"

/* Field offsets used by start.S are in memlayout.h: keep them in step. */
struct persist {
    uint32_t magic;                      /* 0x00: PERSIST_MAGIC once data are saved */
    volatile uint32_t restart_state;     /* 0x04: RESTART_* */
    volatile uint32_t reserved;          /* 0x08 */
    uint32_t code_sum;                   /* 0x0C: checksum of text and rodata at first boot */
    uint32_t code_bytes;                 /* 0x10 */
    uint32_t code_sum_valid;             /* 0x14 */
    uint32_t boots;                      /* 0x18: 1 at first boot, +1 per restart */
    uint32_t refused;                    /* 0x1C: restarts refused */
    volatile uint8_t parked[MAX_NODES];  /* 0x20: set by start.S when a node parks */
    uint8_t pad[PERSIST_DATA_SAVE_OFF - 0x20 - MAX_NODES];
    uint8_t data_save[];                 /* PERSIST_DATA_SAVE_OFF: pristine .data */
};

extern struct persist *const persist;

uint32_t code_checksum(void);
void restart_record_boot(void);
void restart_boot_done(void);
int restart_request(void);
NORETURN void restart_park(void);
NORETURN void sbi_restart(void);

#endif
