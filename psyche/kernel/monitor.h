/* monitor.h: the kernel monitor on the console line. */
#ifndef PSYCHE_MONITOR_H
#define PSYCHE_MONITOR_H

#include "types.h"

#define MONITOR_PROMPT "psyche> "

NORETURN void monitor_run(void);

#endif
