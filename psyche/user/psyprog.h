/*
 * psyprog.h: the user level's own conventions, which the kernel knows nothing
 * of: what the loader finds in a program, how a program reaches the standard
 * services, and the services' operations (docs/user-level.md).
 *
 * A program is a realm: its code and data, entered only at its operations.
 * The loader (or, at boot, init) places a program in a fresh realm with a
 * fresh protection domain as its home, gives that domain one VP, and hands
 * the key that invokes the realm to whoever will call it.  A call of the
 * program's main operation runs main(argc, argv) in the program's domain.
 */
#ifndef PSYCHE_PSYPROG_H
#define PSYCHE_PSYPROG_H

#include <stdint.h>

#include "uapi/psyche.h"

#define PSY_PROG_MAGIC   0x50595350u    /* "PSYP" */
#define PSY_LINKS_MAGIC  0x4B4E494Cu    /* "LINK" */
#define PSY_PROG_OPS     8              /* operations a program may offer besides main */
#define PSY_ARGS_SIZE    4096           /* the page at the top of a placed realm: argv */
#define PSY_NAME_MAX     16             /* a service's name, NUL included: four registers */

/*
 * At a program's entry, offset 0 (crt0.S): a jump over it, for the kernel's
 * `run`, which enters there; then where the loader finds the rest, as
 * offsets from the program's base.
 */
struct psy_prog_header {
    uint32_t jump;          /* `j` past the header */
    uint32_t magic;         /* PSY_PROG_MAGIC */
    uint32_t main;          /* the main operation: int (int argc, char **argv) */
    uint32_t vp_init;       /* its VP's handlers (prog.c) */
    uint32_t call_in;
    uint32_t vp;            /* the VP descriptor the loader fills (struct psy_vp, in .bss) */
    uint32_t init_sp;       /* the top of the stack its VP starts on */
    uint32_t links;         /* struct psy_links, filled by the loader */
    uint32_t ops;           /* PSY_PROG_OPS words: more operations (absolute once relocated), 0-ended */
};

/* An operation: a program's list of them holds their addresses (relocated when placed). */
typedef void (*psy_operation)(void);
extern const psy_operation psy_operations[PSY_PROG_OPS];

/* An operation of some realm, and the key that lets a domain invoke it. */
struct psy_link {
    uint32_t op;
    uint32_t key;
};

/*
 * The standard external symbols the loader resolves for every program it
 * places (section 3.3): the name server, which finds every other service,
 * and the key that invokes the program's own realm, which it hands out
 * when it offers operations of its own.
 */
struct psy_links {
    uint32_t magic;                 /* PSY_LINKS_MAGIC once filled */
    struct psy_link lookup;         /* names: lookup(name[4]) -> (op, key) */
    struct psy_link enter;          /* names: enter(name[4], op, key) -> 0 */
    uint32_t self_invoke;           /* invokes this program's realm */
};

/*
 * The reentrant library (docs/user-level.md, "The library realm"): init
 * places it at boot in a realm of its own, which any domain holding `key`
 * may read and execute, and enters this descriptor with the name server
 * under the library's name (PSY_LIBRARY_NAME: op = the descriptor's
 * address, key = `key`).  The descriptor is the realm's last page; the
 * library's ELF is placed whole at `base`, and its exported symbols are
 * its dynamic symbol table, at addresses in the realm.
 */
#define PSY_LIBRARY_MAGIC 0x4C595350u   /* "PSYL" */
#define PSY_LIBRARY_NAME  "libpsy.so"   /* its soname: what programs' DT_NEEDED says */
struct psy_library {
    uint32_t magic;                 /* PSY_LIBRARY_MAGIC */
    char name[PSY_NAME_MAX];        /* its soname */
    uint32_t base, size;            /* its realm (the descriptor's page included) */
    uint32_t key;                   /* reads and executes it */
    uint32_t symtab, nsyms;         /* its .dynsym: Elf32_Sym[nsyms], an address in the realm */
    uint32_t strtab, strsz;         /* its .dynstr */
};

/* A name in four registers: at most 15 characters, NUL-padded. */
struct psy_name {
    uint32_t w[4];
};

/* The results of an operation that gives two (a0, a1): an op returns a uint64_t. */
static inline uint32_t op_first(uint64_t r) { return (uint32_t)r; }
static inline uint32_t op_second(uint64_t r) { return (uint32_t)(r >> 32); }

/* Errors of the user-level services, below the kernel's PSY_E* (-1 .. -13). */
#define SVC_ENOENT     (-20)    /* no such name or file */
#define SVC_EEXIST     (-21)    /* the name is taken */
#define SVC_EFULL      (-22)    /* a table is full */
#define SVC_ETIMEDOUT  (-23)    /* the host's file server does not answer */
#define SVC_ETOOBIG    (-24)    /* more than the buffer holds */
#define SVC_EREFUSED   (-25)    /* the loader refused the file: the request says why */
#define SVC_EIO        (-26)    /* the host's file server refused: the request says why */

/*
 * The loader's request (loader.load), in a realm the caller shares with the
 * loader by passing its key.  The loader fills the second half.
 */
#define LOAD_WHY 96
struct load_request {
    char name[32];              /* the program's file */
    char args[160];             /* its argument line, the name first */
    uint32_t node;              /* the node its VP runs on */
    /* filled by the loader */
    uint32_t handle;            /* for loader.unload */
    uint32_t main;              /* the main operation */
    uint32_t key;               /* invokes it */
    uint32_t argc, argv;        /* main's arguments, in the program's realm */
    uint32_t base, size;        /* the program's realm */
    uint32_t domain;            /* its domain's descriptor */
    uint32_t cycles;            /* the load took, on the loader's clock */
    char why[LOAD_WHY];         /* why it failed */
};

/*
 * The loader's table of the programs it placed, published for debuggers
 * (uapi/psyche.h: its domain descriptor's `programs` points at `head`), and
 * read by the shell's `programs`.  A line is a struct psy_program; its
 * `domain` is 0 when the line is free.  The servers init placed at boot are
 * there too (PSY_PROGRAM_BOOT): init hands them to the loader
 * (loader.adopt) before it ends, since its own memory goes with it.
 */
#define LOADED_MAX      16
struct loaded_table {
    struct psy_programs head;   /* magic, gen, count LOADED_MAX, stride, first = &prog[0] */
    struct psy_program prog[LOADED_MAX];
};

#endif
