/* testutil.h — the helpers every C unit test shares: a scratch directory that is created and
 * removed with its contents, and a wait-until loop that polls a condition with a deadline and
 * says what it waited for. Header only (static functions), for tests; not part of any module.
 *
 * Contract: test_tmpdir_new fills buf (at least TEST_TMPDIR_LEN bytes) with a fresh directory
 * under $TMPDIR (default /tmp) and returns 0 or -errno. test_tmpdir_remove deletes it and
 * everything below it (no symlink is followed) and returns 0 or -errno. test_wait_until returns
 * true as soon as cond(arg) is true, false after timeout_ms without it (and prints what it waited
 * for on stderr). Any thread may call them. */
#ifndef VIGIL_TESTS_TESTUTIL_H
#define VIGIL_TESTS_TESTUTIL_H

#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define TEST_TMPDIR_LEN 256 /* bytes for a scratch directory path */

/* Create a scratch directory "$TMPDIR/vigil-test-PREFIX-XXXXXX" into buf (TEST_TMPDIR_LEN). */
static inline int test_tmpdir_new(const char *prefix, char *buf, size_t len)
{
        const char *base = getenv("TMPDIR");
        int n;

        n = snprintf(buf, len, "%s/vigil-test-%s-XXXXXX", base && *base ? base : "/tmp",
                     prefix ? prefix : "x");
        if (n < 0 || (size_t)n >= len)
                return -ENAMETOOLONG;
        return mkdtemp(buf) ? 0 : -errno;
}

static inline int test_tmpdir_rm_one(const char *path, const struct stat *st, int flag,
                                     struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        return remove(path) == 0 ? 0 : -errno;
}

/* Remove a scratch directory and all it holds; a missing one is fine. */
static inline int test_tmpdir_remove(const char *dir)
{
        int r;

        if (!dir || !*dir || access(dir, F_OK) != 0)
                return 0;
        r = nftw(dir, test_tmpdir_rm_one, 16, FTW_DEPTH | FTW_PHYS);
        return r == 0 ? 0 : (r < 0 ? r : -EIO);
}

static inline int64_t test_mono_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void test_sleep_ms(int ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

        nanosleep(&ts, NULL);
}

/* Poll cond(arg) every 10 ms until it is true (returns true) or timeout_ms pass (returns false
 * and prints "timed out after N ms waiting for WHAT"). The timeout is a safety net, not a
 * measurement: make it generous. */
static inline bool test_wait_until(bool (*cond)(void *), void *arg, int timeout_ms,
                                   const char *what)
{
        int64_t deadline = test_mono_ms() + timeout_ms;

        for (;;) {
                if (cond(arg))
                        return true;
                if (test_mono_ms() >= deadline)
                        break;
                test_sleep_ms(10);
        }
        fprintf(stderr, "timed out after %d ms waiting for %s\n", timeout_ms, what);
        return false;
}

#endif
