/* sparse.h — zeroed memory for large tables that are mostly never written.
 *
 * A ring or a table sized for the worst case (incident store, policy and notification queues,
 * rate-limit slots) is mostly zeros that nothing writes at idle. Taken straight from mmap(2), a
 * page of it becomes resident only when something writes to it. calloc gives the same only while
 * the block is above glibc's mmap threshold, which rises at run time (after a large block is
 * freed); below it the block comes from the heap and calloc zeroes it, making all of it resident.
 * bench/rss_idle.py --heap shows what each such table costs. */
#pragma once

#include <stddef.h>

/* size bytes of zeroed memory, page-aligned, or NULL (errno set) on failure. */
void *sparse_zalloc(size_t size);
/* Give back p, from sparse_zalloc(size) with the same size; p may be NULL. */
void sparse_free(void *p, size_t size);
