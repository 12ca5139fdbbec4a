/*
 * elfload.h: check a Psyche program's ELF file and place it in memory.
 *
 * A program (psyche/user/build.py) is an RV32 little-endian position-
 * independent executable (ET_DYN) linked at 0 whose dynamic relocations are
 * R_RISCV_RELATIVE, and, if it is linked against the reentrant library
 * (DT_NEEDED libpsy.so), R_RISCV_JUMP_SLOT and R_RISCV_32 naming the
 * library's symbols.  It runs at any base once its PT_LOAD segments are
 * copied to base + p_vaddr, the rest zeroed, and each relocation applied,
 * a symbol's against the library's exported table (struct elf_library).  A loader that got the file from somewhere it does not
 * trust calls elf_check first: only a file it accepts may go to elf_place.
 *
 * Plain C for the guest (freestanding; uses only memcpy and memset, from
 * ulib.c) and the host (the tests): no global state, no allocation.
 */
#ifndef PSYCHE_ELFLOAD_H
#define PSYCHE_ELFLOAD_H

#include <stdint.h>

/* lld gives a program up to five PT_LOADs (code, read-only data, data, the
 * dynamic-linking tables, .bss); leave room for a little variation. */
#define ELF_MAX_SEGMENTS 8

/* More program headers than this is not a program we build (ours have 7 or 8). */
#define ELF_MAX_PHDRS 32

/* elf_check's results: 0 or one of these, with the detail in `why`. */
#define ELF_ETRUNC  (-1)   /* the file ends before something its headers place in it */
#define ELF_ENOTPSY (-2)   /* an ELF file, but not a program this machine can run */
#define ELF_EBAD    (-3)   /* malformed: sizes that wrap, overlap, or make no sense */
#define ELF_EBIG    (-4)   /* needs more memory than the caller allows */
#define ELF_EREL    (-5)   /* a relocation the loader cannot or must not apply */
#define ELF_ESYM    (-6)   /* a symbol the library does not export: "unresolved symbol NAME" */

/*
 * The library a program may be linked against, as the loader finds it in
 * memory: its name and its dynamic symbol table (Elf32_Sym, 16 bytes each;
 * defined GLOBAL or WEAK symbols are its exports, at base + st_value).
 * The loader trusts it (init placed it from the boot image), but reads it
 * within these bounds all the same.
 */
struct elf_library {
    const char *name;       /* its soname: what a program's DT_NEEDED must say */
    uint32_t base;          /* where its address 0 is */
    const uint8_t *symtab;
    uint32_t nsyms;
    const char *strtab;
    uint32_t strsz;
};

struct elf_segment {
    uint32_t offset;        /* where its bytes are in the file */
    uint32_t vaddr;         /* where they go, relative to the base */
    uint32_t filesz;        /* bytes from the file; the rest up to memsz is zero */
    uint32_t memsz;
    uint32_t flags;         /* PF_R 4, PF_W 2, PF_X 1 */
};

/* What elf_check learned; all addresses are relative to base 0. */
struct elf_image {
    uint32_t memsz;         /* bytes from 0 to the end of the last segment (with .bss) */
    uint32_t entry;         /* e_entry */
    uint32_t nsegs;         /* PT_LOADs, sorted by vaddr, not overlapping */
    struct elf_segment seg[ELF_MAX_SEGMENTS];
    uint32_t rela_off;      /* file offset of the Elf32_Rela entries to apply */
    uint32_t nrela;         /* how many (12 bytes each) */
    uint32_t jmprel_off;    /* ... and of the PLT's (DT_JMPREL: R_RISCV_JUMP_SLOT), also RELA */
    uint32_t njmprel;
    uint32_t needed;        /* DT_NEEDED entries: each names the library */
    /* The dynamic symbol table (0s if none): addresses, and file offsets of the same bytes.
     * nsyms is DT_HASH's count if it has one, else as many as the file part holds. */
    uint32_t symtab, symtab_off, nsyms;
    uint32_t strtab, strtab_off, strsz;
};

/*
 * 0 if `file` (len bytes) is a loadable Psyche program needing at most
 * max_memsz bytes of memory, with *img filled in; otherwise a negative
 * ELF_E* code and a one-line reason in why[whylen] (always NUL-terminated
 * if whylen > 0; why may be 0).  Reads only file[0, len) and lib's tables.
 * lib may be 0: then a program that needs a library is refused.
 */
int elf_check(const void *file, uint32_t len, uint32_t max_memsz, const struct elf_library *lib,
              struct elf_image *img, char *why, uint32_t whylen);

/*
 * Put a checked file in dest[0, img->memsz): copy its segments, zero
 * everything else (gaps and .bss), and relocate it to run at address base
 * (dest may equal base, or be a window onto memory mapped at base
 * elsewhere), its symbols resolved against lib, the library elf_check was
 * given.  dest must not overlap file.
 */
void elf_place(const void *file, const struct elf_image *img, uint8_t *dest, uint32_t base,
               const struct elf_library *lib);

#endif
