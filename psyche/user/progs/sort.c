/*
 * sort: a parallel sort on the thread package, on VPs across several nodes.
 *
 *   sort N [NODES [VPS]]
 *
 * Generates N pseudo-random 32-bit numbers (xorshift32 from a fixed seed,
 * so every run sorts the same numbers), then sorts them on VPS VPs
 * (default 4, at most 8) spread round-robin over NODES nodes (default: all
 * of them), this one first:
 *
 *   1. each of VPS processes, one per VP, heapsorts its slice in place;
 *   2. merge rounds: in each, every pair of neighbouring sorted runs is
 *      merged into the other buffer by a process of its own, on the VP of
 *      the pair's first slice, until one run is left.
 *
 * A round's processes all end before the next round's are made (ut_run
 * returns when every process is done), which is the barrier between rounds.
 * The numbers and a buffer as large are in a realm of their own (at most
 * 1 MiB, so N <= 131072), made in this node's memory if it has room, else the
 * nearest node's.  The result is checked: in order, and a permutation of what
 * was generated (the same sum and xor).  Prints
 *
 *   sort: N numbers on K VPs across M nodes, sorted, checksum X, in C cycles
 *
 * X is the FNV-1a hash of the sorted numbers as little-endian bytes, C the
 * cycles of this node's clock from the first slice sort to the last merge.
 */
#include "uthread.h"

#define SEED      0x2545F491u
#define VPS_MAX   UT_VPS
#define N_MAX     (PSY_REALM_MAX / 8)

static uint32_t *buf[2];                /* the numbers, and the buffer merges write into */
static uint32_t n, nslices;
static uint32_t start[VPS_MAX + 1];     /* slice i is [start[i], start[i + 1]) */

struct merge {
    uint32_t from, lo, mid, hi;         /* merge buf[from][lo, mid) and [mid, hi) into the other */
};
static struct merge merges[VPS_MAX];

static void sift(uint32_t *a, uint32_t root, uint32_t len)
{
    uint32_t v = a[root];
    for (uint32_t child; (child = 2 * root + 1) < len; root = child) {
        if (child + 1 < len && a[child + 1] > a[child])
            child++;
        if (a[child] <= v)
            break;
        a[root] = a[child];
    }
    a[root] = v;
}

static void heapsort(uint32_t *a, uint32_t len)
{
    for (uint32_t i = len / 2; i-- > 0;)
        sift(a, i, len);
    for (uint32_t end = len; end > 1; end--) {
        uint32_t top = a[0];
        a[0] = a[end - 1];
        a[end - 1] = top;
        sift(a, 0, end - 1);
    }
}

static void sort_slice(void *arg)
{
    uint32_t i = (uint32_t)arg;
    heapsort(buf[0] + start[i], start[i + 1] - start[i]);
}

static void merge_runs(void *arg)
{
    const struct merge *m = arg;
    const uint32_t *src = buf[m->from];
    uint32_t *dst = buf[!m->from];
    uint32_t i = m->lo, j = m->mid, k = m->lo;
    while (i < m->mid && j < m->hi)
        dst[k++] = src[j] < src[i] ? src[j++] : src[i++];
    while (i < m->mid)
        dst[k++] = src[i++];
    while (j < m->hi)
        dst[k++] = src[j++];
}

static uint32_t fnv1a_words(const uint32_t *w, uint32_t count)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < count; i++)
        for (uint32_t b = 0; b < 32; b += 8)
            h = (h ^ ((w[i] >> b) & 0xFF)) * 16777619u;
    return h;
}

/* Sort buf[0] in parallel: the buffer the sorted numbers ended in. */
static int parallel_sort(void)
{
    for (uint32_t i = 0; i < nslices; i++)
        if (ut_create(sort_slice, (void *)i, 0, i) < 0)
            return -1;
    return 0;
}

static int merge_rounds(void)
{
    uint32_t from = 0;
    for (uint32_t width = 1; width < nslices; width *= 2, from = !from) {
        uint32_t made = 0;
        for (uint32_t i = 0; i < nslices; i += 2 * width) {
            uint32_t mid = i + width < nslices ? i + width : nslices;
            uint32_t hi = i + 2 * width < nslices ? i + 2 * width : nslices;
            merges[made] = (struct merge){ from, start[i], start[mid], start[hi] };
            if (ut_create(merge_runs, &merges[made], 0, made) < 0)    /* one a VP: across the nodes */
                return -1;
            made++;
        }
        ut_run();
    }
    return (int)from;
}

int main(int argc, char **argv, struct psy_domain *self)
{
    if (argc < 2) {
        printf("usage: sort N [NODES [VPS]]\n");
        return 2;
    }
    const struct psy_magic *m = magic_page();
    n = parse_number(argv[1]);
    uint32_t nodes = argc > 2 ? parse_number(argv[2]) : m->nnodes;
    nslices = argc > 3 ? parse_number(argv[3]) : 4;
    if (nodes < 1 || nodes > m->nnodes)
        nodes = m->nnodes;
    if (n < 1 || n > N_MAX || nslices < 1 || nslices > VPS_MAX) {
        printf("sort: N from 1 to %u, VPS from 1 to %u\n", N_MAX, VPS_MAX);
        return 2;
    }
    if (nodes > nslices)
        nodes = nslices;
    uint32_t key = new_key();
    uint32_t size = (2 * n * 4 + PSY_PAGE_SIZE - 1) & ~(PSY_PAGE_SIZE - 1);
    int realm = make_realm_near(size, PSY_R | PSY_W, key);
    if (realm < 0) {
        printf("sort: a realm of %u bytes: %s\n", size, error_name(realm));
        return 1;
    }
    add_key(self, key);
    buf[0] = (uint32_t *)realm;
    buf[1] = buf[0] + n;
    uint32_t x = SEED, sum = 0, xor = 0;
    for (uint32_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[0][i] = x;
        sum += x;
        xor ^= x;
    }
    for (uint32_t i = 0; i <= nslices; i++)
        start[i] = n / nslices * i + (i < n % nslices ? i : n % nslices);

    int status = 1, err = ut_init(UT_SCHED_RR);
    uint64_t t0 = rdtime64();
    if (!err)
        err = parallel_sort();
    for (uint32_t i = 1; !err && i < nslices; i++) {   /* after the processes: each starts with its own */
        int vp = ut_add_vp((m->node + i % nodes) % m->nnodes, UT_SCHED_RR);
        err = vp < 0 ? vp : 0;
    }
    int in = -1;
    if (!err) {
        ut_run();
        in = merge_rounds();
    }
    uint64_t t1 = rdtime64();
    if (err || in < 0) {
        printf("sort: %s\n", err ? error_name(err) : "too many processes");
        goto out;
    }
    const uint32_t *a = buf[in];
    uint32_t after_sum = 0, after_xor = 0, disorder = n;
    for (uint32_t i = 0; i < n; i++) {
        after_sum += a[i];
        after_xor ^= a[i];
        if (disorder == n && i > 0 && a[i - 1] > a[i])
            disorder = i;
    }
    if (disorder < n)
        printf("sort: not sorted: %x before %x at %u\n", a[disorder - 1], a[disorder], disorder);
    else if (after_sum != sum || after_xor != xor)
        printf("sort: not a permutation: sum %x xor %x, generated sum %x xor %x\n", after_sum,
               after_xor, sum, xor);
    else {
        printf("sort: %u numbers on %u VPs across %u nodes, sorted, checksum %x, in %u cycles\n", n,
               ut_table.nvps, nodes, fnv1a_words(a, n), (uint32_t)(t1 - t0));
        status = 0;
    }
out:
    destroy_realm((uint32_t)realm, key);       /* realms a program made outlive it otherwise */
    return status;
}
