/*
 * printf.c: formatting for kprintf and ksnprintf.
 *
 * Conversions: %d %i %u %x %X %p %s %c %%, with '-' and '0' flags, a field
 * width, and the l and ll length modifiers.  There is no compiler runtime,
 * so 64-bit numbers are divided by 10 with 32-bit arithmetic.
 */
#include "console.h"
#include "types.h"

struct out {
    char *buf;
    size_t size;
    size_t len;      /* characters produced, even those that did not fit */
};

static void put(struct out *o, char c)
{
    if (o->len + 1 < o->size)
        o->buf[o->len] = c;
    o->len++;
}

/* *n /= 10, returning the remainder; 16 bits at a time, so no __udivdi3. */
static uint32_t divmod10(uint64_t *n)
{
    uint32_t parts[4] = {
        (uint32_t)(*n >> 48) & 0xFFFF, (uint32_t)(*n >> 32) & 0xFFFF,
        (uint32_t)(*n >> 16) & 0xFFFF, (uint32_t)*n & 0xFFFF,
    };
    uint32_t rem = 0;
    uint64_t q = 0;
    for (int i = 0; i < 4; i++) {
        uint32_t cur = (rem << 16) | parts[i];
        q = (q << 16) | (cur / 10);
        rem = cur % 10;
    }
    *n = q;
    return rem;
}

static void put_number(struct out *o, uint64_t v, int base, bool upper, bool negative,
                       int width, char pad, bool left)
{
    char digits[24];
    int n = 0;
    const char *set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        uint32_t d;
        if (base == 10) {
            d = divmod10(&v);
        } else {
            d = (uint32_t)v & 15;
            v >>= 4;
        }
        digits[n++] = set[d];
    } while (v);
    int len = n + (negative ? 1 : 0);
    if (negative && pad == '0')
        put(o, '-');
    for (; !left && width > len; width--)
        put(o, pad);
    if (negative && pad != '0')
        put(o, '-');
    while (n)
        put(o, digits[--n]);
    for (; left && width > len; width--)
        put(o, ' ');
}

static void put_string(struct out *o, const char *s, int width, bool left)
{
    if (!s)
        s = "(null)";
    int len = (int)strlen(s);
    for (; !left && width > len; width--)
        put(o, ' ');
    while (*s)
        put(o, *s++);
    for (; left && width > len; width--)
        put(o, ' ');
}

int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct out o = { buf, size, 0 };
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put(&o, *fmt);
            continue;
        }
        fmt++;
        bool left = false;
        char pad = ' ';
        for (;; fmt++) {
            if (*fmt == '-')
                left = true;
            else if (*fmt == '0')
                pad = '0';
            else
                break;
        }
        int width = 0;
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        int longs = 0;
        while (*fmt == 'l') {
            longs++;
            fmt++;
        }
        switch (*fmt) {
        case 'd':
        case 'i': {
            int64_t v = longs >= 2 ? va_arg(ap, long long) : longs ? va_arg(ap, long) : va_arg(ap, int);
            bool neg = v < 0;
            put_number(&o, neg ? (uint64_t)-v : (uint64_t)v, 10, false, neg, width, pad, left);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uint64_t v = longs >= 2 ? va_arg(ap, unsigned long long)
                       : longs ? va_arg(ap, unsigned long) : va_arg(ap, unsigned int);
            put_number(&o, v, *fmt == 'u' ? 10 : 16, *fmt == 'X', false, width, pad, left);
            break;
        }
        case 'p':
            put(&o, '0');
            put(&o, 'x');
            put_number(&o, (uint32_t)va_arg(ap, void *), 16, false, false, 8, '0', false);
            break;
        case 's':
            put_string(&o, va_arg(ap, const char *), width, left);
            break;
        case 'c':
            put(&o, (char)va_arg(ap, int));
            break;
        case '%':
            put(&o, '%');
            break;
        case 0:
            fmt--;
            break;
        default:
            put(&o, '%');
            put(&o, *fmt);
        }
    }
    if (o.size)
        o.buf[o.len < o.size ? o.len : o.size - 1] = 0;
    return (int)o.len;
}

int ksnprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = kvsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}
