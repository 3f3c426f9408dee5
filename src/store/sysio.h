/* sysio.h — the file-system calls of the store's writers (the database's open and fsync helpers,
 * the keyring, backup archives, extraction and restore) go through one table, as SQLite's
 * aSyscall[] does, so a test can make any of them fail in turn and check that no half-written
 * file, no lost acknowledged state and no silent failure follow.
 *
 * Two libraries write files for the store too, and are covered by the same table:
 *  - libarchive: backup_create writes the tar through archive_write_open() with callbacks on a
 *    descriptor from sysio.open (write, fsync at close), and every unpack reads it through
 *    archive_read_open() with sysio.read;
 *  - SQLite: while a table other than the real one is set (sysio_set with non-NULL), the "unix"
 *    VFS's own system calls open, read, pread, pread64, write, pwrite, pwrite64, ftruncate and
 *    unlink are pointed at this table (sqlite3_vfs.xSetSystemCall, SQLite's test_syscall.c
 *    idea), and a VFS "vigil-sysio" is the default: the "unix" VFS with each file's xSync calling
 *    sysio.fsync first (SQLite's fsync is not one of its overridable system calls). Connections
 *    opened while the table is set use it. sysio_set(NULL) restores SQLite's calls and its
 *    default VFS.
 *
 * Production never changes the table and pays nothing: SQLite runs on its own calls and VFS.
 * sysio_set is for tests, before the calls it affects run (not thread-safe against calls in
 * flight). */
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
        ssize_t (*read)(int fd, void *buf, size_t len);        /* read(2) */
        ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);        /* pread(2) */
        ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off); /* pwrite(2) */
        int (*ftruncate)(int fd, off_t len);                               /* ftruncate(2) */
} sysio_table;

/* The table in use. Call through it: sysio.open(path, flags, mode). */
extern sysio_table sysio;
/* The real calls. */
extern const sysio_table sysio_default;

/* Tests: replace the table (NULL restores the real calls); a member left NULL is the real call.
 * A non-NULL table also routes SQLite's file I/O through it (see above). */
void sysio_set(const sysio_table *t);

/* Whether a table other than the real one is set. */
bool sysio_armed(void);

/* fsync a file (dir false) or a directory, opened through the table: 0 or -errno. */
int sysio_fsync_path(const char *path, bool dir);
/* fsync the directory that holds path. 0 or -errno. */
int sysio_fsync_dir_of(const char *path);

/* Write all of buf (short writes and EINTR retried): 0 or -errno (-EIO when write returned 0). */
int sysio_write_all(int fd, const void *buf, size_t len);

#endif
