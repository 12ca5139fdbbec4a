/*
 * heap.c: first-fit allocation with coalescing, for the shared heap and the
 * per-node local heaps (heap.h says which is which).
 *
 * Blocks carry a 16-byte header so that payloads stay 16-byte aligned; the
 * free list is kept in address order so that frees merge with neighbours.
 */
#include "heap.h"
#include "node.h"
#include "panic.h"

#define HB_MAGIC_FREE  0x46524545u  /* "FREE" */
#define HB_MAGIC_USED  0x55534544u  /* "USED" */
#define HB_MIN_SPLIT   32u

struct hblock {
    uint32_t size;            /* bytes, header included */
    uint32_t magic;
    struct hblock *next;      /* next free block (free blocks only) */
    uint32_t pad;
};

void heap_init(struct heap *h, const char *name, uint32_t base, uint32_t size)
{
    spin_init(&h->lock, name);
    h->name = name;
    h->base = ALIGN_UP(base, 16);
    h->size = (size - (h->base - base)) & ~15u;
    h->free = (struct hblock *)h->base;
    h->free->size = h->size;
    h->free->magic = HB_MAGIC_FREE;
    h->free->next = NULL;
    h->used = h->peak = h->allocs = 0;
}

void *heap_alloc(struct heap *h, uint32_t size)
{
    uint32_t need = ALIGN_UP(size, 16) + sizeof(struct hblock);
    spin_lock(&h->lock);
    struct hblock **link = &h->free;
    struct hblock *b;
    for (b = h->free; b; link = &b->next, b = b->next)
        if (b->size >= need)
            break;
    if (!b) {
        spin_unlock(&h->lock);
        return NULL;
    }
    if (b->size - need >= HB_MIN_SPLIT) {
        struct hblock *rest = (struct hblock *)((uint8_t *)b + need);
        rest->size = b->size - need;
        rest->magic = HB_MAGIC_FREE;
        rest->next = b->next;
        *link = rest;
        b->size = need;
    } else {
        *link = b->next;
    }
    b->magic = HB_MAGIC_USED;
    b->next = NULL;
    h->used += b->size;
    if (h->used > h->peak)
        h->peak = h->used;
    h->allocs++;
    spin_unlock(&h->lock);
    return b + 1;
}

void heap_free(struct heap *h, void *p)
{
    if (!p)
        return;
    struct hblock *b = (struct hblock *)p - 1;
    if (b->magic != HB_MAGIC_USED)
        panic("heap %s: free of %p, not an allocated block", h->name, p);
    spin_lock(&h->lock);
    b->magic = HB_MAGIC_FREE;
    h->used -= b->size;
    struct hblock *prev = NULL, *cur = h->free;
    while (cur && cur < b) {
        prev = cur;
        cur = cur->next;
    }
    b->next = cur;
    if (prev)
        prev->next = b;
    else
        h->free = b;
    if (cur && (uint8_t *)b + b->size == (uint8_t *)cur) {
        b->size += cur->size;
        b->next = cur->next;
    }
    if (prev && (uint8_t *)prev + prev->size == (uint8_t *)b) {
        prev->size += b->size;
        prev->next = b->next;
    }
    spin_unlock(&h->lock);
}

void *kalloc_shared(uint32_t size)
{
    void *p = heap_alloc(kg.shared_heap, size);
    if (!p)
        panic("shared heap exhausted (%u bytes asked)", size);
    return memset(p, 0, size);
}

/* Local memory not worth zeroing (a stack): boot makes many, and zeroing costs cycles. */
void *kalloc_stack(uint32_t size)
{
    void *p = heap_alloc(&this_node.heap, size);
    if (!p)
        panic("local heap exhausted (%u bytes asked)", size);
    return p;
}

void *kalloc_local(uint32_t size)
{
    void *p = heap_alloc(&this_node.heap, size);
    if (!p)
        panic("local heap exhausted (%u bytes asked)", size);
    return memset(p, 0, size);
}
