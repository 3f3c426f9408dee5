/* cmd_audit.c — `vigil audit [--since 1h]` lists the audit trail (daemon, admin);
 * `vigil audit verify [--db PATH] [--head SEQ:HASH | --head-file FILE] [--key-file FILE]` checks
 * its hash chain, through the daemon or offline on the database file (opened read-only for real,
 * store_open_ro, so it works while vigild runs and on a copy, and changes nothing). Offline, the
 * audit key (DIR/audit.key, or DIR/audit.key.sealed with VIGIL_ENCRYPTION_KEY) authenticates the
 * checkpoint, and the exported head (--head, else DIR/audit.head) must be reached: deleting the
 * oldest or the newest records is reported as truncation. */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "security/audit.h"
#include "security/audit_export.h"
#include "store/crypto.h"
#include "store/store.h"
#include "common/vtime.h"

typedef struct verify_args {
        const char *db;        /* --db */
        const char *head;      /* --head SEQ:HASH */
        const char *head_file; /* --head-file (default: DIR/audit.head when it exists) */
        const char *key_file;  /* --key-file (default: DIR/audit.key or the sealed one) */
} verify_args;

/* The audit key for an offline verify: --key-file, else the data dir's (plain, or sealed with
 * $VIGIL_ENCRYPTION_KEY). Unset key (and 0) when there is none. */
static int offline_key(cli_ctx *ctx, const verify_args *a, const char *dir, audit_key *key)
{
        char err[PATH_MAX + 256];
        crypto_keyring *kr = NULL;
        const char *secret = getenv("VIGIL_ENCRYPTION_KEY");
        int r;

        memset(key, 0, sizeof(*key));
        if (a->key_file) {
                r = audit_key_load_file(a->key_file, key, err, sizeof(err));
                if (r < 0)
                        cli_error(ctx, "%s", err);
                return r;
        }
        if (secret && *secret && crypto_keyring_new(secret, &kr, err, sizeof(err)) < 0) {
                cli_error(ctx, "%s", err);
                return -EINVAL;
        }
        r = audit_key_load(dir, kr, false, key, NULL, err, sizeof(err));
        crypto_keyring_free(kr);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                cli_error(ctx, "%s", err);
        return r;
}

/* {"db":..., "ok":false, "reason":...} for a broken chain; returns 1 (the verdict's exit). */
static int print_verdict_json(cli_ctx *ctx, const char *path, bool ok, const char *reason)
{
        json_t *j = json_pack("{s:s, s:b, s:s}", "db", path, "ok", ok, "reason", reason);

        if (!j)
                return -ENOMEM;
        client_print_json(ctx, j, false);
        json_decref(j);
        return ok ? 0 : 1;
}

static int verify_offline(const verify_args *a, cli_ctx *ctx)
{
        const char *path = a->db, *slash = strrchr(path, '/');
        char dir[PATH_MAX], sidecar[PATH_MAX + 16], mac[AUDIT_HASH_HEX] = "";
        char want[AUDIT_HASH_HEX], from[PATH_MAX + 32] = "";
        audit_head head;
        audit_key key;
        audit_verify_opts o = {0};
        store_ro ro;
        audit_verify_result res;
        char err[PATH_MAX + 256];
        int r;

        if (!slash)
                snprintf(dir, sizeof(dir), ".");
        else
                snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
        r = offline_key(ctx, a, dir, &key);
        if (r < 0)
                return r;
        if (key.set)
                o.key = &key;
        if (a->head) {
                if (audit_head_parse(a->head, &head) < 0)
                        return cli_usage_error(ctx, NULL, "--head: '%s' is not SEQ:HASH", a->head);
                o.head = &head;
                snprintf(from, sizeof(from), "--head");
        } else {
                const char *hf = a->head_file;
                snprintf(sidecar, sizeof(sidecar), "%s/" AUDIT_HEAD_FILE, dir);
                if (!hf && access(sidecar, F_OK) == 0)
                        hf = sidecar;
                if (hf) {
                        r = audit_head_read(hf, &head, mac);
                        if (r < 0) {
                                cli_error(ctx, "cannot read the audit head '%s': %s", hf,
                                          strerror(-r));
                                return r;
                        }
                        o.head = &head;
                        snprintf(from, sizeof(from), "'%s'", hf);
                        /* a sidecar carries the key's mac: a forged one is refused */
                        if (key.set &&
                            (audit_mac(&key, "vigil-audit-head", head.seq, head.hash, want) < 0 ||
                             strcmp(mac, want) != 0)) {
                                explicit_bzero(&key, sizeof(key));
                                if (ctx->json)
                                        return print_verdict_json(
                                            ctx, path, false,
                                            "the head is not authenticated by the audit key "
                                            "(forged or replaced)");
                                fprintf(ctx->out,
                                        "audit chain BROKEN in '%s': the head in '%s' is not "
                                        "authenticated by the audit key (forged or replaced)\n",
                                        path, hf);
                                return 1;
                        }
                }
        }

        /* Read-only for real: no -wal/-shm appears and no byte changes (store.h). */
        r = store_open_ro(path, &ro, err, sizeof(err));
        if (r < 0) {
                explicit_bzero(&key, sizeof(key));
                cli_error(ctx, "%s", err);
                return -EIO;
        }
        r = audit_verify_ex(ro.db, &o, &res);
        store_close_ro(&ro);
        bool have_key = key.set;
        explicit_bzero(&key, sizeof(key));
        if (r == -EIO) {
                cli_error(ctx, "cannot read the audit trail in '%s': %s", path, res.reason);
                return r;
        }
        if (r < 0) {
                if (ctx->json)
                        return print_verdict_json(ctx, path, false, res.reason);
                fprintf(ctx->out, "audit chain BROKEN in '%s': %s\n", path, res.reason);
                return 1;
        }
        if (ctx->json) {
                json_t *j = json_pack(
                    "{s:s, s:b, s:I, s:I, s:I, s:s, s:b, s:b, s:b, s:s}", "db", path, "ok", 1,
                    "checked", (json_int_t)res.checked, "first_seq", (json_int_t)res.first_seq,
                    "last_seq", (json_int_t)res.last_seq, "head", res.head,
                    "checkpoint_authenticated", res.checkpoint_authenticated, "head_checked",
                    res.head_checked, "audit_key", have_key, "note", res.note);
                if (!j)
                        return -ENOMEM;
                client_print_json(ctx, j, false);
                json_decref(j);
                return 0;
        }
        fprintf(ctx->out, "audit chain intact: %lld records (seq %lld..%lld), head %s\n",
                (long long)res.checked, (long long)res.first_seq, (long long)res.last_seq,
                res.head);
        if (res.checkpoint_authenticated)
                fprintf(ctx->out, "checkpoint at record %lld authenticated by the audit key\n",
                        (long long)res.checkpoint_seq);
        if (res.head_checked)
                fprintf(ctx->out, "reaches the exported head (record %lld, from %s)\n",
                        (long long)head.seq, from);
        else if (!o.head)
                fprintf(ctx->out, "note: no exported head given (--head SEQ:HASH): records "
                                  "deleted at the end cannot be detected\n");
        if (!have_key)
                fprintf(ctx->out, "note: no audit key (--key-file): a forged checkpoint cannot be "
                                  "detected\n");
        if (res.note[0])
                fprintf(ctx->out, "note: %s\n", res.note);
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

static void help(cli_ctx *ctx, const char *usage)
{
        fprintf(ctx->out,
                "usage: %s\n\n"
                "Show the audit trail (who did what through the API; admin), or check its hash\n"
                "chain.\n\n"
                "  --since DURATION     only records newer than this (e.g. 1h, 2d)\n"
                "  verify               ask the daemon to check the chain (exit 1 when broken)\n"
                "    --db PATH          offline, on the database file (read-only; works while\n"
                "                       vigild runs and on a copy)\n"
                "    --head SEQ:HASH    the exported head the chain must reach\n"
                "    --head-file FILE   the same, from a file (default: DIR/audit.head)\n"
                "    --key-file FILE    the audit key (default: DIR/audit.key, or the sealed\n"
                "                       one with VIGIL_ENCRYPTION_KEY)\n"
                "  -j, --json           print JSON\n"
                "  -h, --help           show this help\n",
                usage);
}

int cmd_audit(int argc, char **argv, cli_ctx *ctx)
{
        static const char usage[] = "vigil audit [--since DURATION] [-j] | vigil audit verify "
                                    "[--db PATH [--head SEQ:HASH | "
                                    "--head-file FILE] [--key-file FILE]] [-j]";
        static const struct option opts[] = {
            {"since", required_argument, NULL, 's'},    {"db", required_argument, NULL, 'd'},
            {"head", required_argument, NULL, 'H'},     {"head-file", required_argument, NULL, 'f'},
            {"key-file", required_argument, NULL, 'k'}, {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
        };
        verify_args a = {0};
        const char *since = NULL;
        bool verify = false;
        int64_t since_us = 0;
        char path[128];
        json_t *res = NULL, *rows;
        size_t i;
        json_t *row;
        int c, r;

        optind = 0; /* 0: GNU getopt starts over (main() parsed the global options) */
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
                switch (c) {
                case 's':
                        since = optarg;
                        break;
                case 'd':
                        a.db = optarg;
                        break;
                case 'H':
                        a.head = optarg;
                        break;
                case 'f':
                        a.head_file = optarg;
                        break;
                case 'k':
                        a.key_file = optarg;
                        break;
                case 'j':
                        ctx->json = true;
                        break;
                case 'h':
                        help(ctx, usage);
                        return 0;
                case ':':
                        return cli_usage_error(ctx, usage, "option '%s' needs a value",
                                               argv[optind - 1]);
                default:
                        return cli_usage_error(ctx, usage, "unknown option '%s'", argv[optind - 1]);
                }
        }
        if (optind < argc && !strcmp(argv[optind], "verify")) {
                verify = true;
                optind++;
        }
        if (optind < argc)
                return cli_usage_error(ctx, usage, "unexpected argument '%s'", argv[optind]);
        if (verify) {
                if (since)
                        return cli_usage_error(ctx, usage, "--since is for listing, not verify");
                if (!a.db && (a.head || a.head_file || a.key_file))
                        return cli_usage_error(ctx, usage,
                                               "--head, --head-file and --key-file need --db");
                if (a.head && a.head_file)
                        return cli_usage_error(ctx, usage, "--head or --head-file, not both");
                return a.db ? verify_offline(&a, ctx) : verify_online(ctx);
        }
        if (a.db || a.head || a.head_file || a.key_file)
                return cli_usage_error(ctx, usage,
                                       "--db, --head, --head-file and --key-file are for 'verify'");
        if (since && time_parse_duration(since, &since_us) < 0)
                return cli_usage_error(ctx, usage, "--since: '%s' is not a duration", since);
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
