/* sd_dl.h — the libsystemd calls vigild makes, with libsystemd loaded by dlopen at first need.
 *
 * Linked, libsystemd.so.0 and what it pulls in (libgcrypt, libgpg-error, liblz4, libzstd,
 * liblzma, libcap) cost about 1 MiB of RSS merely by being loaded (bench/rss_idle.py
 * --load-floor). vigild needs it only when systemd asked for something: a readiness or MAINPID
 * notification (NOTIFY_SOCKET set), the watchdog (WATCHDOG_USEC set), or logging to the journal
 * (log.journald, or stderr connected to the journal). Started otherwise (a shell, a container,
 * the benchmarks), vigild never maps it. Under systemd it behaves as when linked.
 *
 * Each wrapper answers as the libsystemd function would when the variable it reads is unset
 * (0: nothing to do) without loading the library; otherwise it loads it once (common/lazydl.h)
 * and calls it, or returns -ELIBACC if it cannot be loaded. Only built with VIGIL_HAVE_SYSTEMD
 * (the headers give the functions' types, as in curl_dl.h). */
#ifndef VIGIL_COMMON_SD_DL_H
#define VIGIL_COMMON_SD_DL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define SD_DL_SONAME "libsystemd.so.0"

/* Load libsystemd now (log_configure, before the first journal line): 0, or -ELIBACC with err. */
int sd_dl_load(char *err, size_t errlen);
/* sd_notify(0, state): 0 without loading anything when NOTIFY_SOCKET is unset. */
int sd_dl_notify(const char *state);
/* sd_watchdog_enabled(0, usec): 0 without loading anything when WATCHDOG_USEC is unset. */
int sd_dl_watchdog_enabled(uint64_t *usec);
/* sd_journal_sendv(iov, n): loads libsystemd if log_configure has not. */
int sd_dl_journal_sendv(const struct iovec *iov, int n);

#endif
