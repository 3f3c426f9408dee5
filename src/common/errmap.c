/* errmap.c — errno → HTTP status / CLI exit code. */
#include "errmap.h"

#include <errno.h>
#include <string.h>

static const struct {
        int err;       /* positive errno */
        int http;      /* HTTP status */
        int exit_code; /* CLI exit status */
        const char *reason;
} table[] = {
    {EINVAL, 400, 2, "bad request"},
    {EBADMSG, 400, 2, "malformed input"},
    {ERANGE, 400, 2, "value out of range"},
    {EACCES, 403, 4, "forbidden"},
    {EPERM, 401, 4, "unauthorized"},
    {ENOENT, 404, 5, "not found"},
    {ENODEV, 404, 5, "no such device"},
    {EOPNOTSUPP, 501, 6, "not supported"},
    {EMSGSIZE, 413, 2, "request too large"},
    {E2BIG, 413, 2, "result too large"},
    {EBUSY, 409, 7, "busy"},
    {EEXIST, 409, 7, "already exists"},
    {ENOKEY, 409, 7, "no key"}, /* key rotation while encryption is off */
    {EAGAIN, 503, 8, "try again"},
    {ENOSPC, 503, 8, "no space left"},
    {ETIMEDOUT, 504, 3, "timed out"},
    {ECONNREFUSED, 503, 3, "connection refused"},
    {EHOSTUNREACH, 503, 3, "host unreachable"},
    {ENOMEM, 500, 1, "out of memory"},
    {EIO, 500, 1, "i/o error"},
};

static int find(int err)
{
        if (err < 0)
                err = -err;
        for (unsigned i = 0; i < sizeof(table) / sizeof(table[0]); i++)
                if (table[i].err == err)
                        return (int)i;
        return -1;
}

int errmap_http_status(int err)
{
        int i;

        if (err == 0)
                return 200;
        i = find(err);
        return i < 0 ? 500 : table[i].http;
}

int errmap_exit_code(int err)
{
        int i;

        if (err == 0)
                return 0;
        i = find(err);
        return i < 0 ? 1 : table[i].exit_code;
}

const char *errmap_reason(int err)
{
        int i = find(err);

        return i < 0 ? strerror(err < 0 ? -err : err) : table[i].reason;
}
