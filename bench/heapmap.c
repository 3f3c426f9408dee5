/* heapmap.c — LD_PRELOAD library that tells which allocations of a process are resident.
 *
 * bench/rss_idle.py --heap preloads it into vigild. It wraps malloc, calloc, realloc, free,
 * posix_memalign and aligned_alloc (calling glibc's __libc_* functions underneath), remembers
 * each live block with the address of the code that asked for it, and, once the file named by
 * VIGIL_HEAPMAP_TRIGGER exists, writes to VIGIL_HEAPMAP_OUT:
 *   - one line per live block: "block ADDR SIZE RESIDENT_BYTES CALLER_OBJECT CALLER_OFFSET"
 *     (resident bytes from mincore(2) on the block's pages, the caller as an object file and an
 *     offset into it for addr2line);
 *   - malloc_info(3)'s XML.
 * It then keeps tracking (one report per trigger file; the file is removed after the report).
 * A bench tool only: its table (mmap'd, 6 MiB reserved) and its thread add to the process's RSS,
 * so RSS totals are measured without it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

#define SLOTS (1u << 18) /* live blocks tracked; more are counted as lost */

struct slot {
        uintptr_t addr; /* 0: empty, 1: deleted */
        size_t size;
        void *caller;
};

static struct slot *tab;
static unsigned long lost;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static __thread int busy; /* no tracking of the tracker's own allocations */

static size_t hash(uintptr_t a)
{
        return (size_t)((a >> 4) * 0x9E3779B97F4A7C15ull >> 46) & (SLOTS - 1);
}

static void track(void *p, size_t size, void *caller)
{
        if (!p || !tab || busy)
                return;
        pthread_mutex_lock(&lock);
        for (size_t i = hash((uintptr_t)p), n = 0; n < SLOTS; i = (i + 1) & (SLOTS - 1), n++) {
                if (tab[i].addr <= 1) {
                        tab[i] = (struct slot){(uintptr_t)p, size, caller};
                        pthread_mutex_unlock(&lock);
                        return;
                }
        }
        lost++;
        pthread_mutex_unlock(&lock);
}

static void untrack(void *p)
{
        if (!p || !tab)
                return;
        pthread_mutex_lock(&lock);
        for (size_t i = hash((uintptr_t)p), n = 0; n < SLOTS; i = (i + 1) & (SLOTS - 1), n++) {
                if (tab[i].addr == (uintptr_t)p) {
                        tab[i].addr = 1;
                        break;
                }
                if (tab[i].addr == 0)
                        break;
        }
        pthread_mutex_unlock(&lock);
}

void *malloc(size_t n)
{
        void *p = __libc_malloc(n);

        track(p, n, __builtin_return_address(0));
        return p;
}

void *calloc(size_t a, size_t b)
{
        void *p = __libc_calloc(a, b);

        track(p, a * b, __builtin_return_address(0));
        return p;
}

void *realloc(void *old, size_t n)
{
        void *p = __libc_realloc(old, n);

        if (p || n == 0)
                untrack(old);
        track(p, n, __builtin_return_address(0));
        return p;
}

void free(void *p)
{
        untrack(p);
        __libc_free(p);
}

int posix_memalign(void **ret, size_t align, size_t n)
{
        void *p = __libc_memalign(align, n);

        if (!p)
                return ENOMEM;
        track(p, n, __builtin_return_address(0));
        *ret = p;
        return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
        void *p = __libc_memalign(align, n);

        track(p, n, __builtin_return_address(0));
        return p;
}

static size_t resident(uintptr_t a, size_t size, long pg)
{
        uintptr_t first = a & ~(uintptr_t)(pg - 1), end = a + size;
        size_t np = (end - first + pg - 1) / pg, res = 0;
        unsigned char v[256];

        for (size_t done = 0; done < np;) {
                size_t k = np - done < sizeof(v) ? np - done : sizeof(v);

                if (mincore((void *)(first + done * pg), k * pg, v) < 0)
                        return 0;
                for (size_t j = 0; j < k; j++) {
                        uintptr_t lo = first + (done + j) * pg, hi = lo + pg;

                        if (!(v[j] & 1))
                                continue;
                        lo = lo < a ? a : lo;
                        hi = hi > end ? end : hi;
                        res += hi - lo;
                }
                done += k;
        }
        return res;
}

static void report(const char *out)
{
        long pg = sysconf(_SC_PAGESIZE);
        FILE *f = fopen(out, "w");

        if (!f)
                return;
        pthread_mutex_lock(&lock);
        for (size_t i = 0; i < SLOTS; i++) {
                Dl_info di;
                const struct slot *s = &tab[i];

                if (s->addr <= 1)
                        continue;
                if (!dladdr(s->caller, &di) || !di.dli_fname)
                        di = (Dl_info){.dli_fname = "?", .dli_fbase = NULL};
                fprintf(f, "block %#lx %zu %zu %s %#lx\n", (unsigned long)s->addr, s->size,
                        resident(s->addr, s->size, pg), di.dli_fname,
                        (unsigned long)((uintptr_t)s->caller - (uintptr_t)di.dli_fbase));
        }
        fprintf(f, "lost %lu\n", lost);
        pthread_mutex_unlock(&lock);
        malloc_info(0, f);
        fclose(f);
}

static void *watch(void *arg)
{
        const char *trig = getenv("VIGIL_HEAPMAP_TRIGGER"), *out = getenv("VIGIL_HEAPMAP_OUT");

        (void)arg;
        busy = 1;
        for (;;) {
                struct timespec ts = {0, 100 * 1000 * 1000};

                if (access(trig, F_OK) == 0) {
                        report(out);
                        unlink(trig);
                }
                nanosleep(&ts, NULL);
        }
        return NULL;
}

__attribute__((constructor)) static void heapmap_init(void)
{
        pthread_t t;
        void *m;

        if (!getenv("VIGIL_HEAPMAP_TRIGGER") || !getenv("VIGIL_HEAPMAP_OUT"))
                return;
        m = mmap(NULL, SLOTS * sizeof(struct slot), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
                return;
        busy = 1;
        if (pthread_create(&t, NULL, watch, NULL) == 0)
                pthread_detach(t);
        busy = 0;
        tab = m;
}
