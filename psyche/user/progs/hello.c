/* hello: the first user program.  Prints where it runs and its arguments. */
#include "ulib.h"

int main(int argc, char **argv, struct psy_domain *self)
{
    psy_call(PSY_PUTC, 'h', 0, 0, 0);   /* the single-character console call */
    printf("ello from domain %u on node %u of %u, main at %p\n", self->id,
           magic_page()->node, magic_page()->nnodes, (void *)main);
    for (int i = 1; i < argc; i++)
        printf("hello: argument %d: %s\n", i, argv[i]);
    return argc - 1;
}
