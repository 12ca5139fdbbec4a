/*
 * crash: programs that go wrong, each in its own way.  The kernel must stop
 * the program and say why, and never panic.
 *
 *   crash null | kernel | illegal | magic | misaligned | jump | readonly | invoke
 *
 * readonly writes to a realm its key opens for reading only; invoke calls
 * into a realm its key opens for protected invocation only.
 */
#include "ulib.h"

#define KEY 0xC4A54u

/* A one-page realm that our own key opens with `rights`. */
static uint32_t own_realm(struct psy_domain *self, uint32_t rights)
{
    int va = make_realm(PSY_PAGE_SIZE, rights, KEY, 0);
    add_key(self, KEY);
    return (uint32_t)va;
}

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
    if (strcmp(how, "misaligned") == 0) {
        /* The machine performs misaligned loads and stores; an lr.w must be aligned. */
        int value;
        __asm__ volatile("lr.w %0, (%1)" : "=r"(value) : "r"((uint32_t)self + 2) : "memory");
        return value;
    }
    if (strcmp(how, "jump") == 0)
        ((void (*)(void))0x40000000)();
    if (strcmp(how, "readonly") == 0) {
        volatile uint32_t *p = (volatile uint32_t *)own_realm(self, PSY_R);
        printf("crash: read %x\n", *p);
        *p = 1;
    }
    if (strcmp(how, "invoke") == 0)
        ((void (*)(void))own_realm(self, PSY_INVOKE))();
    printf("usage: crash null | kernel | illegal | magic | misaligned | jump | readonly | invoke\n");
    return 1;
}
