/* console.h: the king's console line, kernel printf, and console input. */
#ifndef PSYCHE_CONSOLE_H
#define PSYCHE_CONSOLE_H

#include "spinlock.h"
#include "types.h"

#define CONRING_SIZE 4096

struct domain;
struct kthread;
struct vp;

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
int console_readline(char *buf, int size);   /* -1: woken without a line (the shell went) */

/* The console's user reader (console.c, "the user reader"; docs/kernel-interface.md). */
int console_attach(void);
int console_read(struct domain *d, uint32_t va, uint32_t len);
int console_detach(void);
void console_vp_gone(struct vp *v);
/* ... and the monitor's side of it. */
void console_set_monitor(struct kthread *t);
int console_shell_start(void);
void console_shell_stop(void);
bool console_shell_active(void);
int console_forward(const char *line, int n);
int console_gone(bool *ended);
int console_reader(uint32_t *queued, uint32_t *forwarded, uint32_t *dropped);
void kputs(const char *s);
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kvprintf(const char *fmt, va_list ap);
void onboard_puts(const char *s);

/* printf.c */
int ksnprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap);

#endif
