/*
 * prog.c: the run-time of a program the user-level loader places (psyprog.h).
 *
 * The loader makes the program's domain one VP, whose descriptor is _psy_vp:
 * it starts in _psy_vp_init, which waits for software interrupts for ever;
 * a protected call of one of the program's operations arrives as a call-in,
 * and _psy_call_in runs it on the operation stack.  Software interrupts stay
 * disabled while an operation runs, so calls are taken one at a time; the
 * kernel resumes the waiting loop when the operation returns.
 *
 * Programs the kernel's `run` starts never use any of this.
 */
#include "psyprog.h"
#include "ulib.h"

#define OP_STACK   16384
#define INIT_STACK 8192

struct psy_vp _psy_vp __attribute__((aligned(512)));
struct psy_links _psy_links;
static uint8_t op_stack[OP_STACK] __attribute__((aligned(16)));
uint8_t _psy_init_stack[INIT_STACK] __attribute__((aligned(16)));   /* crt0.S: its top */

/* A program with operations besides main defines its own (psyprog.h): 0-ended. */
__attribute__((weak)) const psy_operation psy_operations[PSY_PROG_OPS] = { 0 };

int main(int argc, char **argv, struct psy_domain *self);

/* The main operation: main, in the program's domain. */
int _psy_main(int argc, char **argv)
{
    return main(argc, argv, (struct psy_domain *)magic_page()->domain);
}

void _psy_vp_init(uint32_t kind, uint32_t id)
{
    (void)kind, (void)id;
    _psy_vp.disabled = 0;
    for (;;)
        psy_block();
}

void _psy_call_in(uint32_t kind, uint32_t name, uint32_t op)
{
    (void)kind, (void)name, (void)op;
    struct psy_state st = _psy_vp.arrived;
    st.x[1] = (uint32_t)op_stack + sizeof op_stack;
    psy_resume(&st);
}
