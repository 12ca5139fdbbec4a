/*
 * elfload.c: check a Psyche program's ELF file and place it (elfload.h).
 *
 * The file comes from somewhere the loader does not trust, so elf_check
 * reads every field byte by byte (no alignment or byte-order assumptions
 * about the buffer), bounds every read by len, and compares sizes in a form
 * that cannot wrap in 32 bits: "off <= limit && size <= limit - off", never
 * "off + size <= limit".  What it accepts is what psyche/user/build.py's
 * linker produces -- ET_DYN for RV32 linked at 0, PT_LOADs in address order,
 * R_RISCV_RELATIVE relocations found through PT_DYNAMIC, and for a program
 * linked against the library (DT_NEEDED) R_RISCV_JUMP_SLOT and R_RISCV_32
 * relocations naming symbols the library exports -- with room for small
 * variations (fewer segments, no PT_DYNAMIC and so no relocations, extra
 * note-like headers).  A symbol's name is read within DT_STRSZ, its entry
 * within the symbol table's segment, and it is looked up by name in the
 * library's table (a linear search: the library exports a few dozen).  ET_EXEC is refused: nothing says its code is
 * position-independent, and it carries no relocations to move it.
 */
#include <stdarg.h>
#include <stddef.h>

#include "elfload.h"

/* From ulib.c in the guest, libc on the host. */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);

/* ELF constants (the System V ABI and the RISC-V psABI). */
#define EHDR_SIZE     52
#define PHDR_SIZE     32
#define RELA_SIZE     12
#define DYN_SIZE      8
#define ET_REL        1
#define ET_EXEC       2
#define ET_DYN        3
#define EM_RISCV      243
#define EF_RISCV_RVC  0x1
#define EF_RISCV_RVE  0x8
#define PT_LOAD       1
#define PT_DYNAMIC    2
#define PT_INTERP     3
#define PT_SHLIB      5
#define PT_TLS        7
#define PF_X          1
#define SYM_SIZE      16
#define DT_NULL       0
#define DT_NEEDED     1
#define DT_PLTRELSZ   2
#define DT_HASH       4
#define DT_STRTAB     5
#define DT_SYMTAB     6
#define DT_RELA       7
#define DT_RELASZ     8
#define DT_RELAENT    9
#define DT_STRSZ      10
#define DT_SYMENT     11
#define DT_REL        17
#define DT_PLTREL     20
#define DT_TEXTREL    22
#define DT_JMPREL     23
#define DT_RELR       36
#define R_RISCV_32        1
#define R_RISCV_RELATIVE  3
#define R_RISCV_JUMP_SLOT 5
#define STB_GLOBAL    1
#define STB_WEAK      2
#define SHN_UNDEF     0
#define SHN_LORESERVE 0xff00

static uint32_t get16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = v;
    p[1] = v >> 8;
    p[2] = v >> 16;
    p[3] = v >> 24;
}

/* Does [off, off + size) lie inside [0, limit)?  No sum, so nothing wraps. */
static int fits(uint32_t off, uint32_t size, uint32_t limit)
{
    return off <= limit && size <= limit - off;
}

/* Would off + size pass 2^32? */
static int wraps(uint32_t off, uint32_t size)
{
    return size > 0xffffffffu - off;
}

/*
 * Write the reason for a refusal into why (a tiny printf: %s, %u, and %x,
 * which prints 0x and hex digits) and return code.  There is no libc in the
 * guest, and a loader should say precisely what it refused.
 */
struct line {
    char *buf;
    uint32_t len, n;
};

static void put(struct line *l, char c)
{
    if (l->n + 1 < l->len)
        l->buf[l->n++] = c;
}

static void put_number(struct line *l, uint32_t v, uint32_t base)
{
    char digits[12];
    int n = 0;
    if (base == 16) {
        put(l, '0');
        put(l, 'x');
    }
    do {
        digits[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (n)
        put(l, digits[--n]);
}

static int fail(char *why, uint32_t whylen, int code, const char *fmt, ...)
{
    struct line l = { why, whylen, 0 };
    const char *s;
    va_list ap;

    if (why == 0 || whylen == 0)
        return code;
    va_start(ap, fmt);
    for (; *fmt; fmt++) {
        if (*fmt != '%' || fmt[1] == 0) {
            put(&l, *fmt);
            continue;
        }
        switch (*++fmt) {
        case 'u':
            put_number(&l, va_arg(ap, uint32_t), 10);
            break;
        case 'x':
            put_number(&l, va_arg(ap, uint32_t), 16);
            break;
        case 's':
            for (s = va_arg(ap, const char *); *s; s++)     /* names from the file: printable */
                put(&l, *s >= 0x20 && *s < 0x7f ? *s : '?');
            break;
        default:
            put(&l, *fmt);
        }
    }
    va_end(ap);
    why[l.n] = 0;
    return code;
}

#define FAIL(code, ...) fail(why, whylen, code, __VA_ARGS__)

/* The identification and file header: is this an RV32 PIE at all? */
static int check_header(const uint8_t *f, uint32_t len, char *why, uint32_t whylen)
{
    uint32_t type, flags;

    /* The magic first: a text file shorter than a header is not a truncated program. */
    if (len >= 4 && (f[0] != 0x7f || f[1] != 'E' || f[2] != 'L' || f[3] != 'F'))
        return FAIL(ELF_ENOTPSY, "not ELF: bad magic");
    if (len < EHDR_SIZE)
        return FAIL(ELF_ETRUNC, "truncated: the ELF header ends at %x, the file at %x",
                    EHDR_SIZE, len);
    if (f[4] != 1)
        return FAIL(ELF_ENOTPSY, "not 32-bit: ELF class %u%s", f[4],
                    f[4] == 2 ? " (ELFCLASS64)" : "");
    if (f[5] != 1)
        return FAIL(ELF_ENOTPSY, "not little-endian: ELF data encoding %u%s", f[5],
                    f[5] == 2 ? " (big-endian)" : "");
    if (f[6] != 1 || get32(f + 20) != 1)
        return FAIL(ELF_ENOTPSY, "bad ELF version %u/%u, want 1 (EV_CURRENT)",
                    f[6], get32(f + 20));
    type = get16(f + 16);
    if (type == ET_EXEC)
        return FAIL(ELF_ENOTPSY, "not position-independent: ET_EXEC, want ET_DYN (-fPIE)");
    if (type != ET_DYN)
        return FAIL(ELF_ENOTPSY, "not a program: ELF type %u%s, want ET_DYN", type,
                    type == ET_REL ? " (ET_REL, an object file)" : "");
    if (get16(f + 18) != EM_RISCV)
        return FAIL(ELF_ENOTPSY, "not RISC-V: e_machine %u", get16(f + 18));
    flags = get32(f + 36);
    if (flags & EF_RISCV_RVE)
        return FAIL(ELF_ENOTPSY, "RVE program: built for 16 registers (e_flags %x)", flags);
    if (flags & EF_RISCV_RVC)
        return FAIL(ELF_ENOTPSY, "needs the C (compressed) extension, which the machine lacks");
    if (get16(f + 42) != PHDR_SIZE)
        return FAIL(ELF_EBAD, "bad e_phentsize %u, want %u", get16(f + 42), PHDR_SIZE);
    return 0;
}

/*
 * Is [off, off + size) inside the file?  what names it for the reason
 * ("the program headers").
 */
static int check_in_file(const char *what, uint32_t off, uint32_t size, uint32_t len,
                         char *why, uint32_t whylen)
{
    if (wraps(off, size))
        return FAIL(ELF_EBAD, "bad offsets: %s at %x + size %x wraps past 2^32", what, off, size);
    if (!fits(off, size, len))
        return FAIL(ELF_ETRUNC, "truncated: %s end at %x, the file at %x", what, off + size, len);
    return 0;
}

/* One PT_LOAD: record it after the one before, which it must follow in memory. */
static int add_segment(struct elf_image *img, const uint8_t *ph, uint32_t len,
                       char *why, uint32_t whylen)
{
    struct elf_segment s;
    uint32_t n = img->nsegs;

    s.offset = get32(ph + 4);
    s.vaddr = get32(ph + 8);
    s.filesz = get32(ph + 16);
    s.memsz = get32(ph + 20);
    s.flags = get32(ph + 24);
    if (n == ELF_MAX_SEGMENTS)
        return FAIL(ELF_EBAD, "too many PT_LOAD segments: more than %u", ELF_MAX_SEGMENTS);
    if (s.filesz > s.memsz)
        return FAIL(ELF_EBAD, "segment %u: file size %x > memory size %x", n, s.filesz, s.memsz);
    if (wraps(s.offset, s.filesz))
        return FAIL(ELF_EBAD, "bad offsets: segment %u at %x + size %x wraps past 2^32",
                    n, s.offset, s.filesz);
    if (!fits(s.offset, s.filesz, len))
        return FAIL(ELF_ETRUNC, "truncated: segment %u ends at %x, the file at %x",
                    n, s.offset + s.filesz, len);
    if (wraps(s.vaddr, s.memsz))
        return FAIL(ELF_EBAD, "segment %u: address %x + size %x wraps past 2^32",
                    n, s.vaddr, s.memsz);
    /* Sorted and disjoint, so the image is the segments in order with gaps between. */
    if (n > 0 && s.vaddr < img->seg[n - 1].vaddr + img->seg[n - 1].memsz)
        return FAIL(ELF_EBAD, "segment %u at %x overlaps or precedes segment %u, which ends at %x",
                    n, s.vaddr, n - 1, img->seg[n - 1].vaddr + img->seg[n - 1].memsz);
    img->seg[n] = s;
    img->nsegs = n + 1;
    return 0;
}

/* The program headers: the PT_LOADs into img, the PT_DYNAMIC's file range into *dyn. */
static int read_phdrs(const uint8_t *f, uint32_t len, struct elf_image *img,
                      uint32_t *dyn_off, uint32_t *dyn_size, char *why, uint32_t whylen)
{
    uint32_t phoff = get32(f + 28), phnum = get16(f + 44);
    uint32_t i, type, ndyn = 0;
    const uint8_t *ph;
    int r;

    if (phnum == 0)
        return FAIL(ELF_EBAD, "no program headers");
    if (phnum > ELF_MAX_PHDRS)
        return FAIL(ELF_EBAD, "too many program headers: %u, at most %u", phnum, ELF_MAX_PHDRS);
    if ((r = check_in_file("the program headers", phoff, phnum * PHDR_SIZE, len, why, whylen)) < 0)
        return r;
    for (i = 0; i < phnum; i++) {
        ph = f + phoff + i * PHDR_SIZE;
        type = get32(ph);
        if (type == PT_LOAD) {
            if ((r = add_segment(img, ph, len, why, whylen)) < 0)
                return r;
        } else if (type == PT_DYNAMIC) {
            if (ndyn++)
                return FAIL(ELF_EBAD, "more than one PT_DYNAMIC");
            *dyn_off = get32(ph + 4);
            *dyn_size = get32(ph + 16);
            if ((r = check_in_file("the dynamic entries", *dyn_off, *dyn_size, len, why, whylen)) < 0)
                return r;
        } else if (type == PT_INTERP) {
            return FAIL(ELF_ENOTPSY, "needs a dynamic linker (PT_INTERP)");
        } else if (type == PT_TLS) {
            return FAIL(ELF_ENOTPSY, "uses thread-local storage (PT_TLS)");
        } else if (type == PT_SHLIB) {
            return FAIL(ELF_EBAD, "reserved program header type PT_SHLIB");
        }
        /* Anything else (PT_PHDR, PT_NOTE, PT_GNU_STACK, PT_RISCV_ATTRIBUTES...)
         * says nothing about where the bytes go. */
    }
    if (img->nsegs == 0)
        return FAIL(ELF_EBAD, "no PT_LOAD segment");
    return 0;
}

/* Is the entry point an instruction in the file part of an executable segment? */
static int check_entry(const struct elf_image *img, char *why, uint32_t whylen)
{
    const struct elf_segment *s;
    uint32_t i;

    if (img->entry & 3)
        return FAIL(ELF_EBAD, "entry %x is not 4-aligned", img->entry);
    for (i = 0; i < img->nsegs; i++) {
        s = &img->seg[i];
        if ((s->flags & PF_X) && img->entry >= s->vaddr && fits(img->entry - s->vaddr, 4, s->filesz))
            return 0;
    }
    return FAIL(ELF_EBAD, "entry %x is not in an executable segment", img->entry);
}

/* Where the file holds the `size` bytes at address va: in a segment's file part.  1 and *off, or 0. */
static int file_part(const struct elf_image *img, uint32_t va, uint32_t size, uint32_t *off)
{
    const struct elf_segment *s;
    uint32_t i;

    for (i = 0; i < img->nsegs; i++) {
        s = &img->seg[i];
        if (va >= s->vaddr && fits(va - s->vaddr, size, s->filesz)) {
            *off = s->offset + (va - s->vaddr);
            return 1;
        }
    }
    return 0;
}

/* A table of RELA relocations at address va, size bytes: its file offset and count. */
static int find_rela(const struct elf_image *img, const char *what, uint32_t va, uint32_t size,
                     uint32_t *off, uint32_t *n, char *why, uint32_t whylen)
{
    if (size % RELA_SIZE)
        return FAIL(ELF_EBAD, "%s %u is not a multiple of %u", what, size, RELA_SIZE);
    if (!file_part(img, va, size, off))
        return FAIL(ELF_EBAD, "relocations at %x (%x bytes) are not in the file part of a segment",
                    va, size);
    *n = size / RELA_SIZE;
    return 0;
}

/* The dynamic symbol and string tables, which symbol relocations and DT_NEEDED name into. */
static int find_symbols(const uint8_t *f, struct elf_image *img, uint32_t hash, int have_hash,
                        char *why, uint32_t whylen)
{
    const struct elf_segment *s;
    uint32_t i, hash_off, nchain;

    if (img->strsz && !file_part(img, img->strtab, img->strsz, &img->strtab_off))
        return FAIL(ELF_EBAD, "the string table at %x (%x bytes) is not in the file part of a segment",
                    img->strtab, img->strsz);
    if (!img->symtab)
        return 0;
    for (i = 0; i < img->nsegs; i++) {
        s = &img->seg[i];
        if (img->symtab >= s->vaddr && fits(img->symtab - s->vaddr, SYM_SIZE, s->filesz))
            break;
    }
    if (i == img->nsegs)
        return FAIL(ELF_EBAD, "the symbol table at %x is not in the file part of a segment", img->symtab);
    img->symtab_off = s->offset + (img->symtab - s->vaddr);
    img->nsyms = (s->filesz - (img->symtab - s->vaddr)) / SYM_SIZE;
    /* DT_HASH's second word is the number of symbols: fewer, if it says so. */
    if (have_hash && file_part(img, hash, 8, &hash_off)) {
        nchain = get32(f + hash_off + 4);
        if (nchain < img->nsyms)
            img->nsyms = nchain;
    }
    return 0;
}

/*
 * The dynamic section: where the relocations and symbols are.  Anything
 * that asks for more than relocations applied in place, against the one
 * library (REL or RELR relocations, relocations in code) is refused rather
 * than ignored.
 */
static int read_dynamic(const uint8_t *f, uint32_t off, uint32_t size, struct elf_image *img,
                        const struct elf_library *lib, char *why, uint32_t whylen)
{
    uint32_t i, tag, val, rela = 0, relasz = 0, relaent = 0, have = 0;
    uint32_t jmprel = 0, pltrelsz = 0, pltrel = DT_RELA, have_plt = 0, hash = 0, have_hash = 0;
    uint32_t needed_at = 0, syment = SYM_SIZE;
    int r;

    for (i = 0; i + DYN_SIZE <= size; i += DYN_SIZE) {
        tag = get32(f + off + i);
        val = get32(f + off + i + 4);
        if (tag == DT_NULL)
            break;
        if (tag == DT_RELA) {
            rela = val;
            have |= 1;
        } else if (tag == DT_RELASZ) {
            relasz = val;
            have |= 2;
        } else if (tag == DT_RELAENT) {
            relaent = val;
            have |= 4;
        } else if (tag == DT_NEEDED) {
            if (!lib)
                return FAIL(ELF_ENOTPSY, "needs a shared library (DT_NEEDED), and none is here");
            if (img->needed++ == 0)
                needed_at = val;
            else if (val != needed_at)
                return FAIL(ELF_ENOTPSY, "needs more than one shared library (DT_NEEDED)");
        } else if (tag == DT_JMPREL) {
            jmprel = val;
            have_plt |= 1;
        } else if (tag == DT_PLTRELSZ) {
            pltrelsz = val;
            have_plt |= 2;
        } else if (tag == DT_PLTREL) {
            pltrel = val;
        } else if (tag == DT_SYMTAB) {
            img->symtab = val;
        } else if (tag == DT_STRTAB) {
            img->strtab = val;
        } else if (tag == DT_STRSZ) {
            img->strsz = val;
        } else if (tag == DT_SYMENT) {
            syment = val;
        } else if (tag == DT_HASH) {
            hash = val;
            have_hash = 1;
        } else if (tag == DT_REL) {
            return FAIL(ELF_EREL, "REL relocations (DT_REL); only RELA can be applied");
        } else if (tag == DT_RELR) {
            return FAIL(ELF_EREL, "RELR relocations (DT_RELR); only RELA can be applied");
        } else if (tag == DT_TEXTREL) {
            return FAIL(ELF_EREL, "relocations in code (DT_TEXTREL)");
        }
    }
    if (have_plt && !lib && pltrelsz)
        return FAIL(ELF_EREL, "PLT relocations (DT_PLTRELSZ %u), and no library to resolve them", pltrelsz);
    if (syment != SYM_SIZE)
        return FAIL(ELF_EBAD, "DT_SYMENT %u, want %u", syment, SYM_SIZE);
    if ((r = find_symbols(f, img, hash, have_hash, why, whylen)) < 0)
        return r;
    if (img->needed) {
        /* The library's name: NUL-ended inside the string table. */
        for (i = needed_at; i < img->strsz && f[img->strtab_off + i]; i++)
            ;
        if (needed_at >= img->strsz || i == img->strsz)
            return FAIL(ELF_EBAD, "DT_NEEDED's name at %x is not in the string table (%x bytes)",
                        needed_at, img->strsz);
        for (i = 0; lib->name[i] && lib->name[i] == (char)f[img->strtab_off + needed_at + i]; i++)
            ;
        if (lib->name[i] || f[img->strtab_off + needed_at + i])
            return FAIL(ELF_ENOTPSY, "needs the shared library %s; only %s is here",
                        (const char *)f + img->strtab_off + needed_at, lib->name);
    }
    if (have_plt && pltrelsz) {
        if (have_plt != 3)
            return FAIL(ELF_EBAD, "incomplete dynamic section: DT_JMPREL and DT_PLTRELSZ go together");
        if (pltrel != DT_RELA)
            return FAIL(ELF_EREL, "PLT relocations of kind %u (DT_PLTREL); only RELA can be applied", pltrel);
        if ((r = find_rela(img, "DT_PLTRELSZ", jmprel, pltrelsz, &img->jmprel_off, &img->njmprel,
                           why, whylen)) < 0)
            return r;
    }
    if (have == 0 || (have == 2 && relasz == 0))
        return 0;       /* no relocations */
    if (have != 7)
        return FAIL(ELF_EBAD, "incomplete dynamic section: DT_RELA, DT_RELASZ and DT_RELAENT "
                    "go together");
    if (relaent != RELA_SIZE)
        return FAIL(ELF_EBAD, "DT_RELAENT %u, want %u", relaent, RELA_SIZE);
    return find_rela(img, "DT_RELASZ", rela, relasz, &img->rela_off, &img->nrela, why, whylen);
}

/* Is the string at strtab[at] (strtab of size max) equal to the NUL-ended `name`? */
static int same_name(const char *strtab, uint32_t max, uint32_t at, const uint8_t *name)
{
    uint32_t i;

    for (i = 0; at + i < max && strtab[at + i] && strtab[at + i] == (char)name[i]; i++)
        ;
    return at + i < max && strtab[at + i] == 0 && name[i] == 0;
}

/* The library's address for `name` (NUL-ended): 1 and *value, or 0 if it exports none. */
static int lookup(const struct elf_library *lib, const uint8_t *name, uint32_t *value)
{
    const uint8_t *sym;
    uint32_t i, bind;

    for (i = 1; i < lib->nsyms; i++) {
        sym = lib->symtab + i * SYM_SIZE;
        bind = sym[12] >> 4;
        if (get16(sym + 14) == SHN_UNDEF || get16(sym + 14) >= SHN_LORESERVE ||
            (bind != STB_GLOBAL && bind != STB_WEAK))
            continue;
        if (get32(sym) < lib->strsz && same_name(lib->strtab, lib->strsz, get32(sym), name)) {
            *value = lib->base + get32(sym + 4);
            return 1;
        }
    }
    return 0;
}

/*
 * The symbol relocation r (R_RISCV_32 or R_RISCV_JUMP_SLOT) names: check
 * it is an undefined symbol of the program with a name inside the string
 * table, and resolve it; 0 and *value, or why not.
 */
static int resolve(const uint8_t *f, const struct elf_image *img, const struct elf_library *lib,
                   uint32_t i, const uint8_t *r, uint32_t *value, char *why, uint32_t whylen)
{
    uint32_t sym = get32(r + 4) >> 8, name, n;
    const uint8_t *s;

    if (sym == 0)
        return FAIL(ELF_EREL, "relocation %u: type %u without a symbol", i, get32(r + 4) & 0xff);
    if (sym >= img->nsyms)
        return FAIL(ELF_EREL, "relocation %u: symbol %u is outside the symbol table (%u symbols)",
                    i, sym, img->nsyms);
    s = f + img->symtab_off + sym * SYM_SIZE;
    name = get32(s);
    for (n = name; n < img->strsz && f[img->strtab_off + n]; n++)
        ;
    if (name >= img->strsz || n == img->strsz)
        return FAIL(ELF_EREL, "relocation %u: symbol %u's name at %x is not in the string table",
                    i, sym, name);
    if (get16(s + 14) != SHN_UNDEF)
        return FAIL(ELF_EREL, "relocation %u: symbol %s is the program's own; only the library's "
                    "are resolved", i, (const char *)f + img->strtab_off + name);
    if (!lookup(lib, f + img->strtab_off + name, value))
        return FAIL(ELF_ESYM, "unresolved symbol %s", (const char *)f + img->strtab_off + name);
    return 0;
}

/* Every relocation of one table: of a kind we apply, aligned, writing inside a non-code segment,
 * and a symbol's resolved by the library. */
static int check_table(const uint8_t *f, const struct elf_image *img, const struct elf_library *lib,
                       uint32_t off, uint32_t n, uint32_t first, char *why, uint32_t whylen)
{
    const uint8_t *r = f + off;
    const struct elf_segment *s;
    uint32_t i, j, target, info, type, value;
    int err;

    for (i = first; i < first + n; i++, r += RELA_SIZE) {
        target = get32(r);
        info = get32(r + 4);
        type = info & 0xff;
        if (type == R_RISCV_RELATIVE) {
            if (info >> 8)
                return FAIL(ELF_EREL, "relocation %u: R_RISCV_RELATIVE with symbol %u", i, info >> 8);
        } else if (lib && (type == R_RISCV_32 || type == R_RISCV_JUMP_SLOT)) {
            if ((err = resolve(f, img, lib, i, r, &value, why, whylen)) < 0)
                return err;
        } else if (lib) {
            return FAIL(ELF_EREL, "relocation %u: type %u, only R_RISCV_RELATIVE (3), R_RISCV_32 (1) "
                        "and R_RISCV_JUMP_SLOT (5) can be applied", i, type);
        } else {
            return FAIL(ELF_EREL, "relocation %u: type %u, only R_RISCV_RELATIVE (3) can be applied "
                        "without a library", i, type);
        }
        if (target & 3)
            return FAIL(ELF_EREL, "relocation %u: target %x is misaligned", i, target);
        for (j = 0; j < img->nsegs; j++) {
            s = &img->seg[j];
            if (target >= s->vaddr && fits(target - s->vaddr, 4, s->memsz))
                break;
        }
        if (j == img->nsegs)
            return FAIL(ELF_EREL, "relocation %u: target %x is outside the image's segments",
                        i, target);
        /* The code may be shared by every node that runs the program: never patch it. */
        if (s->flags & PF_X)
            return FAIL(ELF_EREL, "relocation %u: target %x is in code (segment %u)", i, target, j);
    }
    return 0;
}

/* Both tables: DT_RELA's, then DT_JMPREL's, numbered on from the first. */
static int check_relocations(const uint8_t *f, const struct elf_image *img,
                             const struct elf_library *lib, char *why, uint32_t whylen)
{
    int r = check_table(f, img, lib, img->rela_off, img->nrela, 0, why, whylen);
    return r < 0 ? r : check_table(f, img, lib, img->jmprel_off, img->njmprel, img->nrela, why, whylen);
}

int elf_check(const void *file, uint32_t len, uint32_t max_memsz, const struct elf_library *lib,
              struct elf_image *img, char *why, uint32_t whylen)
{
    const uint8_t *f = file;
    uint32_t dyn_off = 0, dyn_size = 0;
    const struct elf_segment *last;
    int r;

    memset(img, 0, sizeof *img);
    if (why && whylen)
        why[0] = 0;
    if ((r = check_header(f, len, why, whylen)) < 0)
        return r;
    if ((r = read_phdrs(f, len, img, &dyn_off, &dyn_size, why, whylen)) < 0)
        return r;
    last = &img->seg[img->nsegs - 1];
    img->memsz = last->vaddr + last->memsz;         /* add_segment checked: no wrap */
    if (img->memsz > max_memsz)
        return FAIL(ELF_EBIG, "too big: %x bytes in memory, at most %x", img->memsz, max_memsz);
    img->entry = get32(f + 24);
    if ((r = check_entry(img, why, whylen)) < 0)
        return r;
    if ((r = read_dynamic(f, dyn_off, dyn_size, img, lib, why, whylen)) < 0)
        return r;
    return check_relocations(f, img, lib, why, whylen);
}

/* Apply one checked table of relocations. */
static void apply(const uint8_t *f, const struct elf_image *img, uint32_t off, uint32_t n, uint8_t *dest,
                  uint32_t base, const struct elf_library *lib)
{
    const uint8_t *r = f + off, *sym;
    uint32_t i, type, value;

    for (i = 0; i < n; i++, r += RELA_SIZE) {
        type = get32(r + 4) & 0xff;
        if (type == R_RISCV_RELATIVE) {
            put32(dest + get32(r), base + get32(r + 8));
            continue;
        }
        sym = f + img->symtab_off + (get32(r + 4) >> 8) * SYM_SIZE;
        value = 0;
        lookup(lib, f + img->strtab_off + get32(sym), &value);     /* elf_check found it */
        put32(dest + get32(r), type == R_RISCV_32 ? value + get32(r + 8) : value);
    }
}

void elf_place(const void *file, const struct elf_image *img, uint8_t *dest, uint32_t base,
               const struct elf_library *lib)
{
    const uint8_t *f = file;
    const struct elf_segment *s;
    uint32_t i, done = 0;

    /* Segments in address order: zero the gap before each, copy its bytes; the
     * zeroing before the next (or at the end) covers this one's .bss. */
    for (i = 0; i < img->nsegs; i++) {
        s = &img->seg[i];
        memset(dest + done, 0, s->vaddr - done);
        memcpy(dest + s->vaddr, f + s->offset, s->filesz);
        done = s->vaddr + s->filesz;
    }
    memset(dest + done, 0, img->memsz - done);
    apply(f, img, img->rela_off, img->nrela, dest, base, lib);
    apply(f, img, img->jmprel_off, img->njmprel, dest, base, lib);
}
