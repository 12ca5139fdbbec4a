/*
 * svc.h: reaching the user-level services from a program the loader placed:
 * names from the name server (its operations are in the program's links),
 * every other service through them.
 */
#ifndef PSYCHE_SVC_H
#define PSYCHE_SVC_H

#include "psyprog.h"

extern struct psy_links _psy_links;    /* prog.c; filled by the loader */

struct psy_name psy_name(const char *s);

/* Find a service's operation: 0 and *out, or SVC_ENOENT; the key is added to this domain. */
int svc_lookup(const char *name, struct psy_link *out);

/* Offer one of this program's operations under `name` (its realm's invoke key goes with it). */
int svc_enter(const char *name, psy_operation op);

/* Enter any (value, key) under `name`: an address and the key that reads it, say. */
int svc_offer(const char *name, uint32_t value, uint32_t key);

/* Withdraw what svc_offer entered under `name` (names.remove): 0, or an error. */
int svc_withdraw(const char *name, uint32_t value, uint32_t key);

/* Call an operation with up to four arguments: a protected call, since we only may invoke it. */
uint64_t svc_call(const struct psy_link *l, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3);

#endif
