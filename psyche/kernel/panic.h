/* panic.h: stop this node, and only this node, with a report on the console. */
#ifndef PSYCHE_PANIC_H
#define PSYCHE_PANIC_H

#include "trap.h"
#include "types.h"

NORETURN void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
NORETURN void panic_trap(struct trapframe *tf, const char *why);
NORETURN void halt_node(void);

#define ASSERT(c) do { if (!(c)) panic("assertion failed: %s (%s:%d)", #c, __FILE__, __LINE__); } while (0)

#endif
