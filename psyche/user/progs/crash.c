/*
 * crash: programs that go wrong, each in its own way.  The kernel must stop
 * the program and say why, and never panic.
 *
 *   crash null | kernel | illegal | magic | misaligned | jump
 */
#include "ulib.h"

int main(int argc, char **argv, struct psy_domain *self)
{
    const char *how = argc > 1 ? argv[1] : "";
    if (strcmp(how, "null") == 0)
        return *(volatile int *)0;
    if (strcmp(how, "kernel") == 0)
        return *(volatile int *)0xC0000000;
    if (strcmp(how, "illegal") == 0)
        __asm__ volatile(".word 0");
    if (strcmp(how, "magic") == 0)
        *(volatile uint32_t *)PSY_MAGIC_PAGE = 1;
    if (strcmp(how, "misaligned") == 0)
        return *(volatile int *)((uint32_t)self + 2);
    if (strcmp(how, "jump") == 0)
        ((void (*)(void))0x40000000)();
    printf("usage: crash null | kernel | illegal | magic | misaligned | jump\n");
    return 1;
}
