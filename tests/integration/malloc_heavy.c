/* malloc_heavy: glibc malloc from many threads, with cross-thread frees.
 * gmp-test: mode=compare
 *
 * glibc malloc keeps per-thread state in TLS (the tcache and the thread's
 * arena pointer). Under libgmp each G has its own TLS block and may migrate
 * between OS threads, so this is a sharp test of TLS-per-G plus locking.
 * 8 threads each perform 200,000 operations (malloc / calloc / posix_memalign
 * / realloc / free) on random sizes from a per-thread deterministic PRNG,
 * filling every block with a pattern derived from a per-block tag and
 * verifying it before every realloc/free (realloc must preserve the prefix,
 * calloc must zero, posix_memalign must align). About 1 live block in 8 is
 * handed to the next thread's mutex-protected mailbox and freed there (after
 * verification), so it is always freed by a thread other than its allocator
 * (main drains what is left at the end). The summary is deterministic:
 * per-thread operation counts depend only on that thread's PRNG; cross-thread
 * frees are reported only as totals.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NTHREADS 8
#define OPS 200000
#define SLOTS 512

#include "lib/check.h"

/* Every block starts with this header; the rest is filled with pattern(tag). */
struct hdr {
    uint32_t magic;
    uint32_t tag;
    size_t size;        /* total usable size we asked for, header included */
    int owner;
};
#define MAGIC 0xB10CB10Cu

struct qnode {          /* the queue links blocks through this, past the header */
    struct qnode *next;
};

struct mailbox {
    pthread_mutex_t mu;
    struct hdr *head, *tail;
    long pushed, popped;
};
static struct mailbox mbox[NTHREADS];

struct stats {
    long mallocs, callocs, memaligns, reallocs, frees, handed_off, freed_foreign;
};
static struct stats st[NTHREADS];

static uint64_t xs(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static size_t pick_size(uint64_t *s)
{
    uint64_t r = xs(s);
    switch (r % 100) {
    case 0:
        if ((r >> 40) % 4 == 0)
            return 64 * 1024 + (r >> 8) % (192 * 1024); /* mmap-sized */
        return 1024 + (r >> 8) % 3072;
    case 1: case 2: case 3: case 4:
        return 4096 + (r >> 8) % 12288;
    default:
        return sizeof(struct hdr) + sizeof(struct qnode) + (r >> 8) % 480;
    }
}

static unsigned char pat(uint32_t tag, size_t i) { return (unsigned char)(tag * 31u + i * 7u + (i >> 8)); }

static void fill(struct hdr *h, size_t from)
{
    unsigned char *p = (unsigned char *)h;
    size_t start = sizeof *h + sizeof(struct qnode);
    for (size_t i = from > start ? from : start; i < h->size; i++)
        p[i] = pat(h->tag, i);
}

static void verify(struct hdr *h, size_t upto, int who, const char *when)
{
    CHECK(h->magic == MAGIC, "thread %d %s: block %p header clobbered (magic %#x)", who, when, (void *)h, h->magic);
    unsigned char *p = (unsigned char *)h;
    size_t end = upto < h->size ? upto : h->size;
    size_t i = sizeof *h + sizeof(struct qnode);
    while (i < end && p[i] == pat(h->tag, i))
        i++;
    CHECK(i >= end, "thread %d %s: block %p (tag %u size %zu, owner %d) byte %zu is %#x, want %#x", who, when,
          (void *)h, h->tag, h->size, h->owner, i, p[i], pat(h->tag, i));
}

static void q_push(struct mailbox *q, struct hdr *h)
{
    ((struct qnode *)(h + 1))->next = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->tail)
        ((struct qnode *)(q->tail + 1))->next = (struct qnode *)h;
    else
        q->head = h;
    q->tail = h;
    q->pushed++;
    pthread_mutex_unlock(&q->mu);
}

static struct hdr *q_pop(struct mailbox *q)
{
    pthread_mutex_lock(&q->mu);
    struct hdr *h = q->head;
    if (h) {
        q->head = (struct hdr *)((struct qnode *)(h + 1))->next;
        if (!q->head)
            q->tail = NULL;
        q->popped++;
    }
    pthread_mutex_unlock(&q->mu);
    return h;
}

static void free_from_queue(int id, struct hdr *h)
{
    verify(h, h->size, id, "mailbox free");
    CHECK(h->owner != id, "thread %d found its own block in its mailbox", id);
    st[id].freed_foreign++;
    h->magic = 0;
    free(h);
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t seed = 0x9E3779B97F4A7C15ull * (uint64_t)(id + 1);
    struct hdr *slot[SLOTS] = {0};
    uint32_t next_tag = (uint32_t)id << 24;
    struct stats *s = &st[id];

    for (int op = 0; op < OPS; op++) {
        uint64_t r = xs(&seed);
        int k = (int)(r % SLOTS);
        struct hdr *h = slot[k];
        if (!h) {
            size_t size = pick_size(&seed);
            int how = (int)((r >> 20) % 8);
            if (how == 0) {
                h = calloc(1, size);
                CHECK(h != NULL, "calloc(%zu) failed", size);
                size_t i = 0;
                while (i < size && ((unsigned char *)h)[i] == 0)
                    i++;
                CHECK(i == size, "thread %d: calloc(%zu) byte %zu not zero", id, size, i);
                s->callocs++;
            } else if (how == 1) {
                size_t align = (size_t)64 << ((r >> 24) % 7);    /* 64 .. 4096 */
                void *p = NULL;
                int e = posix_memalign(&p, align, size);
                CHECK(e == 0 && p, "posix_memalign(%zu, %zu) = %d", align, size, e);
                CHECK(((uintptr_t)p & (align - 1)) == 0, "posix_memalign(%zu) returned %p", align, p);
                h = p;
                s->memaligns++;
            } else {
                h = malloc(size);
                CHECK(h != NULL, "malloc(%zu) failed", size);
                s->mallocs++;
            }
            h->magic = MAGIC;
            h->tag = next_tag++;
            h->size = size;
            h->owner = id;
            fill(h, 0);
            slot[k] = h;
        } else {
            verify(h, h->size, id, "before reuse");
            int action = (int)((r >> 20) % 8);
            if (action < 3) {                               /* realloc, grow or shrink */
                size_t old = h->size, nsize = pick_size(&seed);
                struct hdr *n = realloc(h, nsize);
                CHECK(n != NULL, "realloc(%zu) failed", nsize);
                n->size = nsize;
                verify(n, old, id, "after realloc");        /* prefix preserved */
                fill(n, old);
                slot[k] = n;
                s->reallocs++;
            } else if (action == 3) {                       /* hand to another thread */
                q_push(&mbox[(id + 1) % NTHREADS], h);
                slot[k] = NULL;
                s->handed_off++;
            } else {
                h->magic = 0;
                free(h);
                slot[k] = NULL;
                s->frees++;
            }
        }
        if (op % 16 == 0) {
            struct hdr *f = q_pop(&mbox[id]);
            if (f)
                free_from_queue(id, f);
        }
    }
    for (int k = 0; k < SLOTS; k++)
        if (slot[k]) {
            verify(slot[k], slot[k]->size, id, "final");
            free(slot[k]);
            s->frees++;
        }
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_mutex_init(&mbox[i].mu, NULL) == 0, "mutex_init");
    for (intptr_t i = 0; i < NTHREADS; i++)
        CHECK(pthread_create(&th[i], NULL, worker, (void *)i) == 0, "pthread_create %ld", (long)i);
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_join(th[i], NULL) == 0, "pthread_join %d", i);
    long drained = 0, pushed = 0, popped = 0;
    for (int i = 0; i < NTHREADS; i++) {
        struct hdr *h;
        while ((h = q_pop(&mbox[i]))) {
            verify(h, h->size, -1, "drain");
            free(h);
            drained++;
        }
        pushed += mbox[i].pushed;
        popped += mbox[i].popped;
    }

    long handed = 0, foreign = 0;
    for (int i = 0; i < NTHREADS; i++) {
        struct stats *s = &st[i];
        printf("thread %d: malloc %ld calloc %ld posix_memalign %ld realloc %ld free %ld handed-off %ld\n", i,
               s->mallocs, s->callocs, s->memaligns, s->reallocs, s->frees, s->handed_off);
        handed += s->handed_off;
        foreign += s->freed_foreign;
    }
    fprintf(stderr, "handed-off blocks freed by workers: %ld, by main: %ld\n", foreign, drained);
    CHECK(pushed == handed && popped == handed, "mailboxes pushed %ld popped %ld, handed off %ld", pushed, popped,
          handed);
    CHECK(foreign + drained == handed, "freed by workers %ld + by main %ld != handed off %ld", foreign, drained,
          handed);
    printf("handed off %ld blocks, each verified and freed once by another thread\n", handed);
    printf("all patterns verified\n");
    return 0;
}
