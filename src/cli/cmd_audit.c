/* cmd_audit.c — `vigil audit [--since 1h]` lists the audit trail (daemon, admin);
 * `vigil audit verify [--db PATH]` checks its hash chain, through the daemon or offline on the
 * database file (opened read-only, so it works while vigild runs and on a copy). */
#include "commands.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "security/audit.h"
#include "store/store.h"
#include "common/vtime.h"

static int verify_offline(const char *path, cli_ctx *ctx)
{
        store_ro ro;
        audit_verify_result res;
        char err[PATH_MAX + 256];
        int r;

        /* Read-only for real: no -wal/-shm appears and no byte changes (store.h). */
        r = store_open_ro(path, &ro, err, sizeof(err));
        if (r < 0) {
                cli_error(ctx, "%s", err);
                return -EIO;
        }
        r = audit_verify(ro.db, &res);
        store_close_ro(&ro);
        if (r == -EIO) {
                cli_error(ctx, "cannot read the audit trail in '%s': %s", path, res.reason);
                return r;
        }
        if (r < 0) {
                fprintf(ctx->out, "audit chain BROKEN in '%s': %s\n", path, res.reason);
                return 1;
        }
        fprintf(ctx->out, "audit chain intact: %lld records (seq %lld..%lld), head %s\n",
                (long long)res.checked, (long long)res.first_seq, (long long)res.last_seq,
                res.head);
        return 0;
}

static int verify_online(cli_ctx *ctx)
{
        json_t *res = NULL;
        int r = client_get(ctx, "/api/v1/audit/verify", &res);
        int ok;

        if (r < 0)
                return r;
        ok = json_is_true(json_object_get(res, "ok"));
        if (ctx->json)
                client_print_json(ctx, res, false);
        else if (ok)
                fprintf(ctx->out, "audit chain intact: %lld records, head %s\n",
                        (long long)json_integer_value(json_object_get(res, "checked")),
                        json_string_value(json_object_get(res, "head")));
        else
                fprintf(ctx->out, "audit chain BROKEN: %s\n",
                        json_string_value(json_object_get(res, "reason")));
        json_decref(res);
        return ok ? 0 : 1;
}

int cmd_audit(int argc, char **argv, cli_ctx *ctx)
{
        static const char usage[] =
            "vigil audit [--since DURATION] | vigil audit verify [--db PATH]";
        int64_t since_us = 0;
        char path[128];
        json_t *res = NULL, *rows;
        size_t i;
        json_t *row;
        int r;

        if (argc >= 2 && !strcmp(argv[1], "verify")) {
                if (argc == 4 && !strcmp(argv[2], "--db"))
                        return verify_offline(argv[3], ctx);
                if (argc == 2)
                        return verify_online(ctx);
                return cli_usage_error(ctx, usage, NULL);
        }
        if (argc == 3 && !strcmp(argv[1], "--since")) {
                if (time_parse_duration(argv[2], &since_us) < 0)
                        return cli_usage_error(ctx, usage, "--since: '%s' is not a duration",
                                               argv[2]);
        } else if (argc != 1) {
                return cli_usage_error(ctx, usage, NULL);
        }
        snprintf(path, sizeof(path), "/api/v1/audit?since=%lld", (long long)(since_us / 1000000));
        r = client_get(ctx, path, &res);
        if (r < 0)
                return r;
        rows = json_object_get(res, "records");
        if (ctx->json) {
                client_print_json(ctx, res, false);
        } else {
                fprintf(ctx->out, "%-6s %-26s %-20s %-8s %-15s %-6s %-28s %-4s %s\n", "SEQ", "TIME",
                        "PRINCIPAL", "ROLE", "SOURCE", "METHOD", "ROUTE", "CODE", "EVENT");
                json_array_foreach(rows, i, row)
                {
                        char ts[64];
                        time_t t =
                            (time_t)(json_integer_value(json_object_get(row, "ts_us")) / 1000000);
                        struct tm tm;
                        gmtime_r(&t, &tm);
                        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
                        fprintf(ctx->out, "%-6lld %-26s %-20s %-8s %-15s %-6s %-28s %-4lld %s\n",
                                (long long)json_integer_value(json_object_get(row, "seq")), ts,
                                json_string_value(json_object_get(row, "principal")),
                                json_string_value(json_object_get(row, "role")),
                                json_string_value(json_object_get(row, "source_ip")),
                                json_string_value(json_object_get(row, "method")),
                                json_string_value(json_object_get(row, "route")),
                                (long long)json_integer_value(json_object_get(row, "status")),
                                json_string_value(json_object_get(row, "event")));
                }
        }
        json_decref(res);
        return 0;
}
