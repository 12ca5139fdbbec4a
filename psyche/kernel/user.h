/*
 * user.h: running user code in a protection domain, and the programs the
 * kernel image carries (until there is a loader).
 */
#ifndef PSYCHE_USER_H
#define PSYCHE_USER_H

#include "types.h"

struct domain;
struct trapframe;

/* One program, generated into the image by psyche/user/build.py. */
struct uprog {
    const char *name;
    const uint8_t *image;        /* flat image, linked at 0 */
    uint32_t filesz;
    uint32_t codesz;             /* code and read-only data, page-aligned: the code realm */
    uint32_t memsz;              /* with .bss */
    uint32_t entry;              /* offset of _start */
    const uint32_t *relocs;      /* (offset, addend) pairs: R_RISCV_RELATIVE */
    uint32_t nrelocs;
};

/* In the king's RAM only (kernel.ld): other nodes read them at official addresses. */
extern const struct uprog user_programs[];

#define USER_STACK (16 * 1024)

int run_program(int argc, char **argv);
void start_init(uint32_t files_port);
int user_run(struct domain *d, uint32_t pc, uint32_t sp, const uint32_t args[3], bool *stopped);
int split_args(char *line, char **argv, int max);
void run_on_daemon(void);
void user_exception(struct trapframe *tf);
void kcall(struct trapframe *tf);
NORETURN void user_leave(int status, bool stopped);

#endif
