/* sd_dl.c — libsystemd loaded at first need (sd_dl.h). */
#include "sd_dl.h"

#include <errno.h>
#include <stdlib.h>

/* The plain sd_journal_sendv, not the macro that adds CODE_FILE/LINE/FUNC of this file. */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#include "lazydl.h"
#include "macros.h"

#define SD_DL_FUNCS(X) X(sd_notify) X(sd_watchdog_enabled) X(sd_journal_sendv)

static struct {
#define SD_DL_MEMBER(name) __typeof__(&name) name;
        SD_DL_FUNCS(SD_DL_MEMBER)
#undef SD_DL_MEMBER
} api; /* filled by the first lazy_dl_open(); read-only afterwards */

static lazy_dl lib =
    LAZY_DL_INIT(SD_DL_SONAME, "", "systemd integration needs the libsystemd0 package");

int sd_dl_load(char *err, size_t errlen)
{
        char buf[512];

        if (!err || !errlen) {
                err = buf;
                errlen = sizeof(buf);
        }
        return LAZY_DL_OPEN(&lib, SD_DL_FUNCS, api, err, errlen);
}

int sd_dl_notify(const char *state)
{
        const char *sock = getenv("NOTIFY_SOCKET");
        int r;

        if (!sock || !sock[0])
                return 0;
        r = sd_dl_load(NULL, 0);
        return r < 0 ? r : api.sd_notify(0, state);
}

int sd_dl_watchdog_enabled(uint64_t *usec)
{
        const char *w = getenv("WATCHDOG_USEC");
        int r;

        if (!w || !w[0])
                return 0;
        r = sd_dl_load(NULL, 0);
        return r < 0 ? r : api.sd_watchdog_enabled(0, usec);
}

int sd_dl_journal_sendv(const struct iovec *iov, int n)
{
        int r = sd_dl_load(NULL, 0);

        return r < 0 ? r : api.sd_journal_sendv(iov, n);
}
