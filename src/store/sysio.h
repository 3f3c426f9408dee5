/* sysio.h — the file-system calls of the store's writers (the database's fsync helpers, the
 * keyring, backup archives, extraction and restore) go through one table, as SQLite's
 * aSyscall[] does, so a test can make any of them fail in turn and check that no half-written
 * file, no lost acknowledged state and no silent failure follow.
 *
 * Production never changes the table. sysio_set is for tests, before the calls it affects run
 * (not thread-safe against calls in flight). */
#ifndef VIGIL_STORE_SYSIO_H
#define VIGIL_STORE_SYSIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct sysio_table {
        int (*open)(const char *path, int flags, mode_t mode); /* open(2), mode always passed */
        ssize_t (*write)(int fd, const void *buf, size_t len); /* write(2) */
        int (*fsync)(int fd);                                  /* fsync(2) */
        int (*rename)(const char *from, const char *to);       /* rename(2) */
        int (*unlink)(const char *path);                       /* unlink(2) */
        int (*link)(const char *from, const char *to);         /* link(2) */
} sysio_table;

/* The table in use. Call through it: sysio.open(path, flags, mode). */
extern sysio_table sysio;
/* The real calls. */
extern const sysio_table sysio_default;

/* Tests: replace the table (NULL restores the real calls). */
void sysio_set(const sysio_table *t);

/* fsync a file (dir false) or a directory, opened through the table: 0 or -errno. */
int sysio_fsync_path(const char *path, bool dir);
/* fsync the directory that holds path. 0 or -errno. */
int sysio_fsync_dir_of(const char *path);

/* Write all of buf (short writes and EINTR retried): 0 or -errno (-EIO when write returned 0). */
int sysio_write_all(int fd, const void *buf, size_t len);

#endif
