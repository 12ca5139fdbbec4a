/*
 * place.h: making a program from its ELF file (psyprog.h): a realm where the
 * kernel chooses, a domain as its home, a VP there, the links resolved.
 * The loader does it for programs read from the file server, and init for
 * the servers the boot image carries.
 */
#ifndef PSYCHE_PLACE_H
#define PSYCHE_PLACE_H

#include "psyprog.h"

/* A placed program: its realm, domain and VP, and the keys that reach them. */
struct placed {
    uint32_t base, size;            /* its two realms: code (replicated), then data and arguments */
    uint32_t code;                  /* the code realm's size; the data realm is at base + code */
    uint32_t entry;                 /* its ELF entry (the header), an address */
    uint32_t domain;                /* its domain's descriptor */
    uint32_t domain_id;
    int vp;
    uint32_t node;
    uint32_t main;                  /* its main operation */
    uint32_t ops[PSY_PROG_OPS];     /* its other operations, 0-ended */
    uint32_t argc, argv;            /* main's arguments, in its realm */
    uint32_t owner_key;             /* owns the realm (read/write, not execute) */
    uint32_t domain_key;            /* writes the domain's descriptor */
    uint32_t invoke_key;            /* invokes its operations */
    uint32_t program_key;           /* read/write/execute on the realm: only its domain holds it */
    uint32_t linked;                /* 1: linked against the library, whose key its domain holds */
};

/* Place the ELF `file` (len bytes) as a program whose VP runs on `node`, with the argument line
 * `args` (its name first) and the name server `links`; its references to the library `lib` (0:
 * none; the caller holds lib->key) resolved.  0, or a PSY_E* / SVC_EREFUSED error with
 * why[whylen] saying what was wrong; nothing is left behind on an error. */
int place_program(const void *file, uint32_t len, uint32_t node, const char *args,
                  const struct psy_links *links, const struct psy_library *lib, struct placed *out,
                  char *why, uint32_t whylen);

/* Place the ELF `file` as the reentrant library (psyprog.h): a realm of its own, its code
 * replicated on demand on each node that runs it, which `key` reads and executes; its
 * descriptor in the realm's last page.  The library must have no writable segment and no
 * relocation.  The descriptor's address, or a PSY_E* / SVC_EREFUSED error with why. */
int place_library(const void *file, uint32_t len, const char *name, uint32_t key, char *why,
                  uint32_t whylen);

/* Undo place_program: the domain's VPs, the domain and the realm.  0 or the first error. */
int unplace_program(const struct placed *p);

#endif
