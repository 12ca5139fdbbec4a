/* console.h: the king's console line, kernel printf, and console input. */
#ifndef PSYCHE_CONSOLE_H
#define PSYCHE_CONSOLE_H

#include "spinlock.h"
#include "types.h"

#define CONRING_SIZE 4096

/* Output from nodes that have no console: the king prints it. */
struct conring {
    struct spinlock lock;
    volatile uint32_t head;      /* next byte to print */
    volatile uint32_t tail;      /* next free byte */
    uint32_t dropped;
    char buf[CONRING_SIZE];
};

void console_init(void);
void console_intr(void);
void console_drain_remote(void);
int console_readline(char *buf, int size);
void kputs(const char *s);
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kvprintf(const char *fmt, va_list ap);
void onboard_puts(const char *s);

/* printf.c */
int ksnprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap);

#endif
