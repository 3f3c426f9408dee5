/* fileio.h — whole-file reads with a size cap, and `mkdir -p`. The one copy of each: config,
 * scenario, trace, keyring, web-config and key files all read through file_read_all(). */
#ifndef VIGIL_COMMON_FILEIO_H
#define VIGIL_COMMON_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

/* Read the whole of PATH, at most MAX bytes. On success *ret is a malloc'd buffer NUL-terminated
 * after its *retlen bytes (so text can be parsed in place); the caller owns it. Returns 0, or
 * -errno from open/read, -EISDIR for a directory, -EFBIG when the file holds more than MAX bytes
 * (a file of exactly MAX bytes is read), -ENOMEM. *ret and *retlen are untouched on failure.
 * Any thread; the file may grow while read (the cap still holds). */
int file_read_all(const char *path, size_t max, char **ret, size_t *retlen);

/* The message for a file_read_all() failure, subject quoted: "cannot read WHAT 'PATH': REASON"
 * with REASON "larger than N bytes" for -EFBIG. Writes into buf (always NUL-terminated). */
const char *file_read_strerror(int r, const char *what, const char *path, size_t max, char *buf,
                               size_t len);

/* Create DIR and any missing parents (`mkdir -p`). Missing parents get PARENT_MODE, DIR itself
 * MODE; existing directories are left as they are. Returns 0, -ENAMETOOLONG (>= PATH_MAX),
 * -ENOTDIR (a component is a file) or another -errno from mkdir(2). */
int mkdir_p(const char *dir, mode_t parent_mode, mode_t mode);

#endif
