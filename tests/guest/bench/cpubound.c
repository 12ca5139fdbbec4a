/*
 * cpubound: a CPU-bound benchmark guest (compiled with -O2).
 *
 * Each iteration runs a mix of typical integer work on data derived from
 * `seed`:
 *   - fills a 1 KiB buffer from a linear congruential generator
 *     and computes its CRC-32 (table-driven, byte loads, shifts, xors),
 *   - multiplies two 16x16 int32 matrices (mul, loads/stores, loops),
 *   - counts primes below 4096 with a sieve of Eratosthenes (byte stores,
 *     branches),
 *   - evaluates fib() recursively (calls, stack traffic),
 * and folds the results into one 32-bit value, which must equal
 * EXPECTED_ITERATION_RESULT in every iteration (so the program checks
 * itself whatever `iterations` is). The start-up code is common/crt0.S,
 * which calls test_main(): 0 = pass (tohost = 1), 1 = wrong result.
 *
 * `iterations` is a volatile global so that a harness can patch it in the
 * ELF image / guest memory before running; the default makes a run about
 * 60 million instructions. `bench_instret` receives the minstret delta.
 *
 * To recompute the expected value on the host:
 *     cc -O2 -DHOST_CHECK tests/guest/bench/cpubound.c -o /tmp/cpubound && /tmp/cpubound
 */
#include <stdint.h>

#define DEFAULT_ITERATIONS 350u
#define EXPECTED_ITERATION_RESULT 0x580b45f3u

#define BUF_SIZE 1024
#define MAT_N 16
#define SIEVE_N 4096
#define FIB_N 16

volatile uint32_t iterations = DEFAULT_ITERATIONS;
volatile uint32_t seed = 0x2545f491u;
volatile uint32_t bench_checksum;
volatile uint32_t bench_instret;

static uint8_t buf[BUF_SIZE];
static uint32_t crc_table[256];
static int32_t mat_a[MAT_N][MAT_N];
static int32_t mat_b[MAT_N][MAT_N];
static int32_t mat_c[MAT_N][MAT_N];
static uint8_t composite[SIEVE_N];

static uint32_t lcg_next(uint32_t *state) {
    *state = *state * 1664525u + 1013904223u;
    return *state;
}

static void crc32_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1u) ? (c >> 1) ^ 0xedb88320u : c >> 1;
        }
        crc_table[i] = c;
    }
}

static uint32_t crc32(const uint8_t *p, uint32_t n) {
    uint32_t crc = 0xffffffffu;
    for (uint32_t i = 0; i < n; i++) {
        crc = crc_table[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
    }
    return ~crc;
}

static uint32_t buffer_crc(uint32_t *state) {
    for (uint32_t i = 0; i < BUF_SIZE; i++) {
        buf[i] = (uint8_t)(lcg_next(state) >> 24);
    }
    return crc32(buf, BUF_SIZE);
}

static uint32_t matmul(uint32_t *state) {
    for (int i = 0; i < MAT_N; i++) {
        for (int j = 0; j < MAT_N; j++) {
            mat_a[i][j] = (int32_t)(lcg_next(state) >> 16) - 32768;
            mat_b[i][j] = (int32_t)(lcg_next(state) >> 20) - 2048;
        }
    }
    for (int i = 0; i < MAT_N; i++) {
        for (int j = 0; j < MAT_N; j++) {
            int32_t sum = 0;
            for (int k = 0; k < MAT_N; k++) {
                sum += mat_a[i][k] * mat_b[k][j];
            }
            mat_c[i][j] = sum;
        }
    }
    uint32_t h = 0;
    for (int i = 0; i < MAT_N; i++) {
        for (int j = 0; j < MAT_N; j++) {
            h = (h ^ (uint32_t)mat_c[i][j]) * 16777619u;
        }
    }
    return h;
}

static uint32_t sieve(uint32_t limit) {
    for (uint32_t i = 0; i < limit; i++) {
        composite[i] = 0;
    }
    uint32_t count = 0;
    for (uint32_t i = 2; i < limit; i++) {
        if (!composite[i]) {
            count++;
            for (uint32_t j = i * i; j < limit; j += i) {
                composite[j] = 1;
            }
        }
    }
    return count;
}

__attribute__((noinline)) static uint32_t fib(uint32_t n) {
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

static uint32_t one_iteration(uint32_t s) {
    uint32_t state = s;
    uint32_t r = buffer_crc(&state);
    r = (r << 5 | r >> 27) ^ matmul(&state);
    r = (r << 5 | r >> 27) ^ sieve(SIEVE_N - (s & 1u));
    r = (r << 5 | r >> 27) ^ fib(FIB_N + (s & 1u));
    return r;
}

#ifdef HOST_CHECK
#include <stdio.h>
int main(void) {
    crc32_init();
    printf("EXPECTED_ITERATION_RESULT 0x%08xu\n", one_iteration(seed));
    return 0;
}
#else
#ifdef PAGED
/* Entered from paged.S in S mode with Sv32 translation on. */
#define BENCH_ENTRY bench_main
#define INSTRET_CSR "instret"
#else
#define BENCH_ENTRY test_main
#define INSTRET_CSR "minstret"
#endif

static inline uint32_t read_instret(void) {
    uint32_t v;
    __asm__ volatile("csrr %0, " INSTRET_CSR : "=r"(v));
    return v;
}

int BENCH_ENTRY(void) {
    uint32_t start = read_instret();
    crc32_init();
    uint32_t checksum = 0;
    uint32_t n = iterations;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t r = one_iteration(seed);
        if (r != EXPECTED_ITERATION_RESULT) {
            return 1;
        }
        checksum += r;
    }
    bench_checksum = checksum;
    bench_instret = read_instret() - start;
    return 0;
}
#endif
