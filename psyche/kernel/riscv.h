/*
 * riscv.h: CSRs, memory-mapped registers and atomics, as inline functions.
 *
 * The kernel runs in S mode, so only S-mode CSRs appear here; the few M-mode
 * settings live in start.S.
 */
#ifndef PSYCHE_RISCV_H
#define PSYCHE_RISCV_H

#include "types.h"

#define SSTATUS_SIE   (1u << 1)
#define SSTATUS_SPIE  (1u << 5)
#define SSTATUS_SPP   (1u << 8)
#define SSTATUS_SUM   (1u << 18)

#define SIE_SSIE      (1u << 1)
#define SIE_STIE      (1u << 5)
#define SIE_SEIE      (1u << 9)

#define SCAUSE_INTR   0x80000000u
#define IRQ_S_SOFT    1
#define IRQ_S_TIMER   5
#define IRQ_S_EXT     9
#define EXC_LOAD_ACCESS 5

#define SATP_SV32     (1u << 31)

/* Sv32 page-table entry bits. */
#define PTE_V (1u << 0)
#define PTE_R (1u << 1)
#define PTE_W (1u << 2)
#define PTE_X (1u << 3)
#define PTE_U (1u << 4)
#define PTE_G (1u << 5)
#define PTE_A (1u << 6)
#define PTE_D (1u << 7)

#define csr_read(name) ({ uint32_t v_; __asm__ volatile("csrr %0, " #name : "=r"(v_)); v_; })
#define csr_write(name, v) __asm__ volatile("csrw " #name ", %0" :: "r"((uint32_t)(v)) : "memory")
#define csr_set(name, v) __asm__ volatile("csrs " #name ", %0" :: "r"((uint32_t)(v)) : "memory")
#define csr_clear(name, v) __asm__ volatile("csrc " #name ", %0" :: "r"((uint32_t)(v)) : "memory")

static inline uint64_t rdtime(void)
{
    uint32_t hi, lo, hi2;
    do {  /* the high word may carry between the two reads */
        __asm__ volatile("rdtimeh %0" : "=r"(hi));
        __asm__ volatile("rdtime %0" : "=r"(lo));
        __asm__ volatile("rdtimeh %0" : "=r"(hi2));
    } while (hi != hi2);
    return ((uint64_t)hi << 32) | lo;
}

static inline void wfi(void) { __asm__ volatile("wfi" ::: "memory"); }
static inline void fence(void) { __asm__ volatile("fence rw, rw" ::: "memory"); }
static inline void sfence_vma(void) { __asm__ volatile("sfence.vma zero, zero" ::: "memory"); }
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }

/* Device registers: 32-bit words and bytes at fixed virtual addresses. */
static inline uint32_t mmio_read32(uint32_t addr) { return *(volatile uint32_t *)addr; }
static inline void mmio_write32(uint32_t addr, uint32_t v) { *(volatile uint32_t *)addr = v; }
static inline uint8_t mmio_read8(uint32_t addr) { return *(volatile uint8_t *)addr; }
static inline void mmio_write8(uint32_t addr, uint8_t v) { *(volatile uint8_t *)addr = v; }

/* Atomics on RAM words (the A extension), sequentially consistent. */
static inline uint32_t atomic_swap(volatile uint32_t *p, uint32_t v)
{
    uint32_t old;
    __asm__ volatile("amoswap.w.aqrl %0, %2, %1" : "=r"(old), "+A"(*p) : "r"(v) : "memory");
    return old;
}

static inline uint32_t atomic_add(volatile uint32_t *p, uint32_t v)
{
    uint32_t old;
    __asm__ volatile("amoadd.w.aqrl %0, %2, %1" : "=r"(old), "+A"(*p) : "r"(v) : "memory");
    return old;
}

static inline uint32_t atomic_or(volatile uint32_t *p, uint32_t v)
{
    uint32_t old;
    __asm__ volatile("amoor.w.aqrl %0, %2, %1" : "=r"(old), "+A"(*p) : "r"(v) : "memory");
    return old;
}

static inline uint32_t atomic_and(volatile uint32_t *p, uint32_t v)
{
    uint32_t old;
    __asm__ volatile("amoand.w.aqrl %0, %2, %1" : "=r"(old), "+A"(*p) : "r"(v) : "memory");
    return old;
}

static inline uint32_t read_fp(void)
{
    uint32_t fp;
    __asm__ volatile("mv %0, s0" : "=r"(fp));
    return fp;
}

#endif
