/*
 * The conformance guest: small C functions that the gdb scenarios of
 * tests/conformance/ break in, step through, call and watch.  It runs
 * unchanged on QEMU (-machine spike) and on a Psyche node, starting halted at
 * _start (common/crt0.S), which calls test_main.  test_main never returns: it
 * ends spinning in `spin`, so no run ever reaches tohost (QEMU would exit).
 *
 * Built with -O0, so every source line has code of its own and every local
 * lives on the stack, where gdb can watch it.
 */

void conf_setup(void);
void do_ecall(void);
void do_illegal(void);
void do_wfi(void);
void do_timer(void);
void do_mret(void);
void do_sret(void);
void spin(void);

volatile int counter;
volatile int watched;
int global_val = 5;
int values[8] = {1, 2, 3, 4, 5, 6, 7, 8};
int result;
/* Kept by the trap handler, conf_trap in conformance_asm.S. */
volatile unsigned trap_total;
volatile unsigned last_cause;

int f(int x)
{
    return x * 3 + 1;
}

int add(int a, int b)
{
    int s = a + b;                      /* @add-body */
    return s;
}

int square(int x)
{
    int r = x * x;                      /* @square-body */
    return r;
}

int fact(int n)
{
    if (n <= 1)
        return 1;
    return n * fact(n - 1);
}

int sum_to(int n)
{
    int s = 0;
    for (int i = 1; i <= n; i++)        /* @sum-for */
        s += i;                         /* @sum-add */
    return s;                           /* @sum-return */
}

void tick(int i)
{
    counter += i;
}

void ticks(void)
{
    for (int i = 0; i < 20; i++)
        tick(i);
}

int branchy(int x)
{
    if (x > 3)
        counter += 1;                   /* @then */
    else
        counter += 2;                   /* @else */
    return counter;
}

int scoped(void)
{
    int local = 0;
    for (int i = 0; i < 4; i++)
        local += i;
    return local;                       /* @scoped-return */
}

int scoped_caller(void)
{
    int r = scoped();
    r += 1;
    return r;
}

void writer(void)
{
    watched = 1;
    watched = watched + 2;
    counter = watched;
}

int test_main(void)
{
    conf_setup();
    int a = add(2, 3);                  /* @main-add */
    int b = square(a);                  /* @main-square */
    int c = fact(5);                    /* @main-fact */
    int d = sum_to(10);                 /* @main-sum */
    ticks();
    branchy(a);
    branchy(1);
    int e = scoped_caller();
    writer();
    do_ecall();
    do_illegal();
    do_wfi();
    do_timer();
    do_mret();
    do_sret();
    result = a + b + c + d + e;         /* @main-result */
    spin();
    return 0;
}
