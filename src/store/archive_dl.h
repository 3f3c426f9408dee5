/* archive_dl.h — libarchive, loaded with dlopen at first use. vigild maps libarchive (and the
 * libxml2 → ICU → libstdc++ chain behind it, several MiB of RSS) only once a backup is created,
 * verified or restored, so a daemon that never backs up does not carry it.
 *
 * Types and prototypes still come from <archive.h>: every entry in the table has the type of a
 * pointer to the real function (__typeof__(&archive_read_new)), so calls are checked by the
 * compiler exactly as direct calls would be. This is not a general wrapper: the table lists only
 * what the backup files call; add a line to ARCHIVE_DL_FUNCS to use another function. */
#ifndef VIGIL_STORE_ARCHIVE_DL_H
#define VIGIL_STORE_ARCHIVE_DL_H

#include <stddef.h>

#include <archive.h>
#include <archive_entry.h>

#define ARCHIVE_DL_SONAME "libarchive.so.13"

/* X(suffix): the member `suffix` points to archive_<suffix>. */
#define ARCHIVE_DL_FUNCS(X)                                                                        \
        X(error_string)                                                                            \
        X(set_error)                                                                               \
        X(entry_new)                                                                               \
        X(entry_free)                                                                              \
        X(entry_set_pathname)                                                                      \
        X(entry_set_size)                                                                          \
        X(entry_set_filetype)                                                                      \
        X(entry_set_perm)                                                                          \
        X(entry_set_mtime)                                                                         \
        X(entry_pathname)                                                                          \
        X(entry_filetype)                                                                          \
        X(entry_size)                                                                              \
        X(write_new)                                                                               \
        X(write_set_format_pax_restricted)                                                         \
        X(write_add_filter_gzip)                                                                   \
        X(write_add_filter_zstd)                                                                   \
        X(write_set_bytes_in_last_block)                                                           \
        X(write_open)                                                                              \
        X(write_header)                                                                            \
        X(write_data)                                                                              \
        X(write_close)                                                                             \
        X(write_free)                                                                              \
        X(read_new)                                                                                \
        X(read_support_filter_zstd)                                                                \
        X(read_support_filter_gzip)                                                                \
        X(read_support_format_tar)                                                                 \
        X(read_open)                                                                               \
        X(read_next_header)                                                                        \
        X(read_data)                                                                               \
        X(read_free)

typedef struct archive_dl {
#define ARCHIVE_DL_MEMBER(name) __typeof__(&archive_##name) name; /* archive_<name> */
        ARCHIVE_DL_FUNCS(ARCHIVE_DL_MEMBER)
#undef ARCHIVE_DL_MEMBER
} archive_dl;

/* Load libarchive on the first call (once per process, common/lazydl.h; any thread) and return its
 * table in *ret. Returns 0, or -ELIBACC with the reason in err ("cannot load
 * 'libarchive.so.13': …; backups need the libarchive13 package") when the library or one of its
 * symbols is missing; the same error is returned on every later call. The table is never freed
 * and the library never unloaded. *ret is untouched on failure. */
int archive_dl_get(const archive_dl **ret, char *err, size_t errlen);

#endif
