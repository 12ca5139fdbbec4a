/*
 * ulib.h: the user side of the kernel calls, and a little printing.
 *
 * Every kernel call is an ecall with the number in a7 (uapi/psyche.h); the
 * result is a value >= 0 or a negative PSY_E* error.
 */
#ifndef PSYCHE_ULIB_H
#define PSYCHE_ULIB_H

#include <stdarg.h>
#include <stdint.h>

#include "uapi/psyche.h"

static inline int psy_call(int n, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3)
{
    register uint32_t r0 __asm__("a0") = a0;
    register uint32_t r1 __asm__("a1") = a1;
    register uint32_t r2 __asm__("a2") = a2;
    register uint32_t r3 __asm__("a3") = a3;
    register uint32_t r7 __asm__("a7") = (uint32_t)n;
    __asm__ volatile("ecall" : "+r"(r0) : "r"(r1), "r"(r2), "r"(r3), "r"(r7) : "memory");
    return (int)r0;
}

static inline int make_realm(uint32_t size, uint32_t flags, uint32_t key, uint32_t at)
{
    return psy_call(PSY_MAKE_REALM, size, flags, key, at);
}

static inline int destroy_realm(uint32_t va, uint32_t key)
{
    return psy_call(PSY_DESTROY_REALM, va, key, 0, 0);
}

static inline int make_domain(uint32_t key)
{
    return psy_call(PSY_MAKE_DOMAIN, key, 0, 0, 0);
}

static inline int destroy_domain(uint32_t va, uint32_t key)
{
    return psy_call(PSY_DESTROY_DOMAIN, va, key, 0, 0);
}

/* destroy_domain, ending its VPs first, whoever made them. */
static inline int end_domain(uint32_t va, uint32_t key)
{
    return psy_call(PSY_DESTROY_DOMAIN, va, key, PSY_DOMAIN_VPS, 0);
}

static inline int set_access(uint32_t va, uint32_t key, uint32_t other, uint32_t rights)
{
    return psy_call(PSY_SET_ACCESS, va, key, other, rights);
}

/* Virtual processors and software interrupts (docs/kernel-interface.md). */
static inline int create_vp(uint32_t domain, uint32_t node, struct psy_vp *desc)
{
    return psy_call(PSY_CREATE_VP, domain, node, (uint32_t)desc, 0);
}

static inline int destroy_vp(uint32_t vp)
{
    return psy_call(PSY_DESTROY_VP, vp, 0, 0, 0);
}

static inline int set_vp(struct psy_vp *desc)
{
    return psy_call(PSY_SET_VP, (uint32_t)desc, 0, 0, 0);
}

/* Protected calls to the realm at va run in the domain whose descriptor is at domain. */
static inline int set_home(uint32_t va, uint32_t key, uint32_t domain)
{
    return psy_call(PSY_SET_HOME, va, key, domain, 0);
}

/* The realm at va may be entered by protected calls only at the n addresses at ops. */
static inline int set_ops(uint32_t va, uint32_t key, const uint32_t *ops, uint32_t n)
{
    return psy_call(PSY_SET_OPS, va, key, (uint32_t)ops, n);
}

/* What the kernel knows of the realm holding va: size, operations, access list. */
static inline int realm_next(uint32_t va, struct psy_realm *info)
{
    return psy_call(PSY_REALM_INFO, va, (uint32_t)info, PSY_INFO_NEXT, 0);
}

/* What the kernel shows of VP number id, and of domain number id (for listings). */
static inline int vp_info(uint32_t id, struct psy_vp_info *info)
{
    return psy_call(PSY_VP_INFO, id, (uint32_t)info, 0, 0);
}

static inline int domain_info(uint32_t id, struct psy_domain_info *info)
{
    return psy_call(PSY_DOMAIN_INFO, id, (uint32_t)info, 0, 0);
}

static inline int realm_info(uint32_t va, struct psy_realm *info)
{
    return psy_call(PSY_REALM_INFO, va, (uint32_t)info, 0, 0);
}

/* UDP (docs/kernel-interface.md, "UDP"): none of these ever waits. */
static inline int udp_bind(uint32_t port)
{
    return psy_call(PSY_UDP_BIND, port, 0, 0, 0);
}

static inline int udp_unbind(uint32_t port)
{
    return psy_call(PSY_UDP_UNBIND, port, 0, 0, 0);
}

static inline int udp_send(uint32_t port, uint32_t ip, uint32_t remote_port, const void *buf,
                           uint32_t len)
{
    return psy_call(PSY_UDP_SEND, PSY_UDP_PORTS(port, remote_port), ip, (uint32_t)buf, len);
}

static inline int udp_recv(uint32_t port, void *buf, uint32_t len, struct psy_udp_from *from)
{
    return psy_call(PSY_UDP_RECV, port, (uint32_t)buf, len, (uint32_t)from);
}

/* Console input (docs/kernel-interface.md, "Console input"): none of these ever waits. */
static inline int console_attach(void)
{
    return psy_call(PSY_CONSOLE_ATTACH, 0, 0, 0, 0);
}

/* The oldest input line for the reader, without its line end: the bytes copied, or PSY_EAGAIN. */
static inline int console_read(void *buf, uint32_t len)
{
    return psy_call(PSY_CONSOLE_READ, (uint32_t)buf, len, 0, 0);
}

static inline int console_detach(void)
{
    return psy_call(PSY_CONSOLE_DETACH, 0, 0, 0, 0);
}

static inline int psy_block(void)
{
    return psy_call(PSY_BLOCK, 0, 0, 0, 0);
}

/* Continue at a saved state (a handler's way back); returns only on an error. */
static inline int psy_resume(const struct psy_state *state)
{
    return psy_call(PSY_RESUME, (uint32_t)state, 0, 0, 0);
}

/* The running VP's descriptor, from the magic page. */
static inline struct psy_vp *self_vp(void)
{
    return (struct psy_vp *)((const struct psy_magic *)PSY_MAGIC_PAGE)->vp;
}

static inline void __attribute__((noreturn)) psy_exit(int status)
{
    psy_call(PSY_EXIT, (uint32_t)status, 0, 0, 0);
    __builtin_unreachable();
}

/* This node's clock, in cycles (64 bits). */
static inline uint64_t rdtime64(void)
{
    uint32_t hi, lo, again;
    do {
        __asm__ volatile("rdtimeh %0" : "=r"(hi));
        __asm__ volatile("rdtime %0" : "=r"(lo));
        __asm__ volatile("rdtimeh %0" : "=r"(again));
    } while (hi != again);
    return (uint64_t)hi << 32 | lo;
}

/* This node's cycle counter (low word): U mode may read it (scounteren). */
static inline uint32_t rdcycle(void)
{
    uint32_t c;
    __asm__ volatile("rdcycle %0" : "=r"(c));
    return c;
}

static inline const struct psy_magic *magic_page(void)
{
    return (const struct psy_magic *)PSY_MAGIC_PAGE;
}

int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int strcmp(const char *a, const char *b);
void *memcpy(void *dst, const void *src, unsigned int n);
void *memset(void *dst, int c, unsigned int n);
uint32_t parse_number(const char *s);    /* decimal or 0x hex */
void add_key(struct psy_domain *d, uint32_t key);
void hold_key(struct psy_domain *d, uint32_t key);     /* add_key, unless it holds it */
void drop_key(struct psy_domain *d, uint32_t key);
uint32_t new_key(void);                                  /* ulib_own.c: each program its own */
const char *error_name(int err);
void copy_text(char *dst, const char *src, uint32_t max);  /* cut to fit, always NUL-ended */
uint32_t fnv1a(const void *p, uint32_t n);
int make_realm_near(uint32_t size, uint32_t flags, uint32_t key);   /* this node's frames, or the nearest's */

#endif
