/*
 * ulib.c: printing and small helpers for user programs.
 *
 * printf formats into a buffer and prints it with one PSY_PUTS call, so a
 * line from a program reaches the console whole.  It knows %d %u %x %s %c
 * %p and %%, with an optional width, 0 flag and (for %s) - flag: enough for programs that
 * report numbers and addresses.
 *
 * This is the reentrant library (docs/user-level.md, "The library realm"): programs the loader
 * places share one copy of it, in a realm of its own, so it has no writable data at all -- no
 * static variable, not even a table of pointers, which would need relocating.  What needs state
 * of its own is in ulib_own.c, which each program keeps.
 */
#include "ulib.h"

void *memset(void *dst, int c, unsigned int n)
{
    unsigned char *d = dst;
    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}

void *memcpy(void *dst, const void *src, unsigned int n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

int strcmp(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return (unsigned char)*a - (unsigned char)*b;
}

struct out {
    char buf[256];
    unsigned int n;
};

static void put(struct out *o, char c)
{
    if (o->n < sizeof o->buf)
        o->buf[o->n++] = c;
}

/* v in base, right-aligned in width with pad; a '-' first if neg (before zeros, after spaces). */
static void put_number(struct out *o, uint32_t v, unsigned int base, int width, char pad, int neg)
{
    char digits[12];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (neg && pad == '0')
        put(o, '-');
    while (width-- > n + neg)
        put(o, pad);
    if (neg && pad != '0')
        put(o, '-');
    while (n)
        put(o, digits[--n]);
}

int printf(const char *fmt, ...)
{
    struct out o = { .n = 0 };
    va_list ap;
    va_start(ap, fmt);
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put(&o, *fmt);
            continue;
        }
        char pad = ' ';
        int width = 0, left = 0;
        if (*++fmt == '-')
            left = 1, fmt++;
        if (*fmt == '0')
            pad = '0', fmt++;
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        switch (*fmt) {
        case 'd': {
            int v = va_arg(ap, int);
            put_number(&o, v < 0 ? 0u - (uint32_t)v : (uint32_t)v, 10, width, pad, v < 0);
            break;
        }
        case 'u': put_number(&o, va_arg(ap, uint32_t), 10, width, pad, 0); break;
        case 'x': put_number(&o, va_arg(ap, uint32_t), 16, width, pad, 0); break;
        case 'p':
            put(&o, '0'), put(&o, 'x');
            put_number(&o, (uint32_t)va_arg(ap, void *), 16, 8, '0', 0);
            break;
        case 'c': put(&o, (char)va_arg(ap, int)); break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            int n = 0;
            while (s[n])
                n++;
            for (int i = n; !left && i < width; i++)
                put(&o, ' ');
            for (int i = 0; i < n; i++)
                put(&o, s[i]);
            for (int i = n; left && i < width; i++)
                put(&o, ' ');
            break;
        }
        case '%': put(&o, '%'); break;
        default: put(&o, '?'); break;
        }
    }
    va_end(ap);
    return psy_call(PSY_PUTS, (uint32_t)o.buf, o.n, 0, 0);
}

uint32_t parse_number(const char *s)
{
    uint32_t v = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        for (s += 2; *s; s++) {
            char c = *s | 0x20;
            v = v * 16 + (uint32_t)(c <= '9' ? c - '0' : c - 'a' + 10);
        }
        return v;
    }
    for (; *s; s++)
        v = v * 10 + (uint32_t)(*s - '0');
    return v;
}

/* Handing oneself a key needs no kernel call: write it into the descriptor. */
void add_key(struct psy_domain *d, uint32_t key)
{
    d->keys[d->nkeys] = key;
    d->nkeys++;
}

void hold_key(struct psy_domain *d, uint32_t key)
{
    for (uint32_t i = 0; i < d->nkeys; i++)
        if (d->keys[i] == key)
            return;
    add_key(d, key);
}

void drop_key(struct psy_domain *d, uint32_t key)
{
    for (uint32_t i = 0; i < d->nkeys; i++)
        if (d->keys[i] == key) {
            d->keys[i] = d->keys[d->nkeys - 1];
            d->nkeys--;
            return;
        }
}

/* Copy the string src into dst[max], cut to fit and NUL-ended (nothing if max is 0). */
void copy_text(char *dst, const char *src, uint32_t max)
{
    uint32_t i = 0;
    if (!max)
        return;
    for (; i + 1 < max && src[i]; i++)
        dst[i] = src[i];
    dst[i] = 0;
}

/* The FNV-1a hash of n bytes: what the tests compute on the host to check a transfer. */
uint32_t fnv1a(const void *p, uint32_t n)
{
    const uint8_t *b = p;
    uint32_t h = 2166136261u;
    while (n--)
        h = (h ^ *b++) * 16777619u;
    return h;
}

/* make_realm with the frames of this node if its pool has room, else of the nearest that has. */
int make_realm_near(uint32_t size, uint32_t flags, uint32_t key)
{
    const struct psy_magic *m = magic_page();
    int realm = PSY_ENOMEM;
    for (uint32_t i = 0; i < m->nnodes && realm == PSY_ENOMEM; i++)
        realm = make_realm(size, flags | PSY_REALM_NODE((m->node + i) % m->nnodes), key, 0);
    return realm;
}

/* The n-th of the NUL-separated strings in `list` (a pointer table would need relocating). */
static const char *nth(const char *list, int n)
{
    while (n--)
        while (*list++)
            ;
    return list;
}

const char *error_name(int err)
{
    static const char names[] =
        "ok\0EINVAL\0EALIGN\0ERANGE\0ENOREALM\0EKEY\0ENOMEM\0EBUSY\0ENOSYS\0EFAULT\0EPERM\0"
        "ENOVP\0EAGAIN\0ENODEV";
    static const char services[] =             /* psyprog.h: SVC_ENOENT (-20) ... */
        "no such name or file\0the name is taken\0a table is full\0the file server does not answer\0"
        "too big\0refused\0the file server refused";
    if (err >= 0)
        return "ok";
    if (-err < 14)
        return nth(names, -err);
    if (-err >= 20 && -err < 27)
        return nth(services, -err - 20);
    return "?";
}
