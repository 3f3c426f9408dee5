/* sparse.c — zeroed memory for large, mostly untouched tables (sparse.h). */
#include "sparse.h"

#include <errno.h>
#include <sys/mman.h>

void *sparse_zalloc(size_t size)
{
        void *p;

        if (size == 0) {
                errno = EINVAL;
                return NULL;
        }
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? NULL : p;
}

void sparse_free(void *p, size_t size)
{
        if (p)
                (void)munmap(p, size);
}
