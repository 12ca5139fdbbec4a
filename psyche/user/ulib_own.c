/*
 * ulib_own.c: the part of ulib.h each program keeps a copy of, because it has
 * writable state: the shared library (ulib.c) has none (docs/user-level.md).
 */
#include "ulib.h"

/* A fresh key, unlikely to be anyone else's (from the cycle counter: not a secret from a determined guesser). */
uint32_t new_key(void)
{
    static uint32_t made;
    uint32_t k = (rdcycle() ^ (++made << 20) ^ (magic_page()->node << 26)) * 2654435761u;
    return k ? k : 1;
}
