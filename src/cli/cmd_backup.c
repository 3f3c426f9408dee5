/* cmd_backup.c — `vigil backup create|list|verify|prune|restore|rollback`. create and list ask
 * the daemon (it makes a consistent copy while it runs); verify, prune --dir, restore and rollback
 * work offline on files and need no daemon — restore and rollback need it STOPPED. This is the
 * one CLI file that links the store module (libsqlite3, libarchive, libcrypto) for that. */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/fileio.h"
#include "common/vtime.h"
#include "store/backup.h"
#include "store/crypto.h"

#define DEFAULT_DATA_DIR "/var/lib/vigil"

static const char usage[] =
    "vigil backup create [--dir DIR] | list [--dir DIR] | verify FILE | prune --dir DIR "
    "[--keep N] [--max-age DURATION] | restore FILE [--data-dir DIR] [--no-check] | rollback "
    "[--data-dir DIR] [PRE_RESTORE_DIR]";

static void help(cli_ctx *ctx)
{
        fprintf(ctx->out,
                "usage: %s\n\n"
                "Backups of the daemon's state (the SQLite store, keyring and config file).\n\n"
                "  create [--dir DIR]    the daemon makes a backup now (online, consistent) and\n"
                "                        prints the archive path (POST /api/v1/backup)\n"
                "  list [--dir DIR]      the daemon's archives, newest first; with --dir: the\n"
                "                        archives in DIR, without asking the daemon\n"
                "  verify FILE           offline: decrypt (tag), every member's SHA-256, and\n"
                "                        PRAGMA integrity_check on the database\n"
                "  prune --dir DIR       offline: keep --keep N (default 7) archives no older\n"
                "                        than --max-age (default 30d; the newest is always kept)\n"
                "  restore FILE          offline, with vigild STOPPED: verify, keep the current\n"
                "                        state in DATA_DIR/pre-restore-STAMP/, swap the database\n"
                "                        in atomically, open and check it, roll back on failure\n"
                "      --data-dir DIR    data directory (default %s)\n"
                "      --no-check        skip the full integrity_check after the swap\n"
                "  rollback              offline: put back the newest pre-restore-* state\n\n"
                "Encrypted archives (.enc) need the key: env VIGIL_ENCRYPTION_KEY or\n"
                "--key-file FILE (the value of security.encryption.encryption_key).\n"
                "systemd: systemctl stop vigild && vigil backup restore FILE && systemctl start\n"
                "vigild && curl -f http://127.0.0.1:5555/readyz || (systemctl stop vigild &&\n"
                "vigil backup rollback && systemctl start vigild)\n",
                usage, DEFAULT_DATA_DIR);
}

/* The key for offline commands: --key-file, else $VIGIL_ENCRYPTION_KEY; NULL keyring if none. */
static int load_key(cli_ctx *ctx, const char *key_file, crypto_keyring **ret)
{
        char key[4096] = "", err[512];
        const char *env = getenv("VIGIL_ENCRYPTION_KEY");

        *ret = NULL;
        if (key_file) {
                /* refused when it does not fit, never cut off into a different key */
                char *text = NULL;
                size_t n = 0;
                int r = file_read_all(key_file, sizeof(key) - 1, &text, &n);
                if (r < 0) {
                        char why[PATH_MAX + 128];
                        cli_error(ctx, "%s",
                                  file_read_strerror(r, "key file", key_file, sizeof(key) - 1, why,
                                                     sizeof(why)));
                        return r;
                }
                memcpy(key, text, n + 1);
                explicit_bzero(text, n);
                free(text);
                key[strcspn(key, "\r\n")] = 0;
        } else if (env) {
                snprintf(key, sizeof(key), "%s", env);
        }
        if (!key[0])
                return 0;
        int r = crypto_keyring_new(key, ret, err, sizeof(err));
        memset(key, 0, sizeof(key));
        if (r < 0)
                cli_error(ctx, "%s", err);
        return r;
}

static void fmt_time(int64_t us, char *out, size_t len)
{
        time_t t = (time_t)(us / USEC_PER_SEC);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int do_create(cli_ctx *ctx, const char *dir)
{
        json_t *res = NULL, *body = dir ? json_pack("{s:s}", "dir", dir) : json_object();
        int64_t saved = ctx->timeout_us;

        /* A backup of a big store takes a while: do not give up after the default 5 s. */
        if (ctx->timeout_us < 600 * USEC_PER_SEC)
                ctx->timeout_us = 600 * USEC_PER_SEC;
        int r = client_request(ctx, "POST", "/api/v1/backup", body, &res);
        ctx->timeout_us = saved;
        json_decref(body);
        if (r < 0)
                return r;
        if (ctx->json)
                client_print_json(ctx, res, false);
        else
                fprintf(ctx->out, "%s\n", json_string_value(json_object_get(res, "path")));
        json_decref(res);
        return 0;
}

static int print_list(cli_ctx *ctx, const backup_entry *v, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                char t[32];
                fmt_time(v[i].time_us, t, sizeof(t));
                fprintf(ctx->out, "%s  %12llu  %-9s  %s\n", t, (unsigned long long)v[i].size,
                        v[i].encrypted ? "encrypted" : "plain", v[i].path);
        }
        if (n == 0)
                fprintf(ctx->out, "no backups\n");
        return 0;
}

static int do_list(cli_ctx *ctx, const char *dir)
{
        if (dir) {
                backup_entry *v = NULL;
                size_t n = 0;
                char err[512];
                int r = backup_list(dir, &v, &n, err, sizeof(err));
                if (r < 0) {
                        cli_error(ctx, "%s", err);
                        return r;
                }
                print_list(ctx, v, n);
                free(v);
                return 0;
        }
        json_t *res = NULL, *e;
        size_t i;
        int r = client_get(ctx, "/api/v1/backups", &res);
        if (r < 0)
                return r;
        if (ctx->json) {
                client_print_json(ctx, res, false);
        } else {
                json_t *arr = json_object_get(res, "backups");
                json_array_foreach(arr, i, e)
                {
                        char t[32];
                        fmt_time((int64_t)(json_number_value(json_object_get(e, "time")) * 1e6), t,
                                 sizeof(t));
                        fprintf(ctx->out, "%s  %12lld  %-9s  %s\n", t,
                                (long long)json_integer_value(json_object_get(e, "size")),
                                json_is_true(json_object_get(e, "encrypted")) ? "encrypted"
                                                                              : "plain",
                                json_string_value(json_object_get(e, "path")));
                }
                if (json_array_size(arr) == 0)
                        fprintf(ctx->out, "no backups in %s\n",
                                json_string_value(json_object_get(res, "dir")));
        }
        json_decref(res);
        return 0;
}

static int do_verify(cli_ctx *ctx, const char *file, const char *key_file)
{
        crypto_keyring *kr = NULL;
        backup_info info;
        char err[1024] = "";
        int r = load_key(ctx, key_file, &kr);

        if (r < 0)
                return r;
        r = backup_verify(file, kr, &info, err, sizeof(err));
        crypto_keyring_free(kr);
        if (r < 0) {
                cli_error(ctx, "verify failed: %s", err);
                return r == -ENOKEY ? -EACCES : -EBADMSG;
        }
        if (ctx->json) {
                json_t *j =
                    json_pack("{s:s, s:b, s:s, s:s, s:s, s:i, s:i, s:I, s:s}", "archive", file,
                              "ok", 1, "host", info.host, "created", info.created, "version",
                              info.version, "schema", info.schema, "members", (int)info.members,
                              "db_size", (json_int_t)info.db_size, "integrity", "ok");
                client_print_json(ctx, j, false);
                json_decref(j);
        } else {
                fprintf(ctx->out,
                        "%s: OK (%s, host %s, created %s, vigil %s, schema v%d, %u members "
                        "match the manifest, database integrity_check ok)\n",
                        file, info.encrypted ? "encrypted, tag ok" : "not encrypted", info.host,
                        info.created, info.version, info.schema, info.members);
        }
        return 0;
}

static int do_restore(cli_ctx *ctx, const char *file, const char *data_dir, bool check,
                      const char *key_file)
{
        crypto_keyring *kr = NULL;
        restore_result res;
        char err[2048] = "";
        int r = load_key(ctx, key_file, &kr);

        if (r < 0)
                return r;
        restore_options o = {.archive = file, .data_dir = data_dir, .keyring = kr, .check = check};
        r = backup_restore(&o, &res, err, sizeof(err));
        crypto_keyring_free(kr);
        if (r < 0) {
                cli_error(ctx, "restore failed: %s", err);
                if (res.rolled_back)
                        cli_error(ctx,
                                  "the previous state is back in place (a copy stays in "
                                  "'%s')",
                                  res.previous);
                else if (res.previous[0])
                        cli_error(ctx, "the previous state is kept in '%s'", res.previous);
                else
                        cli_error(ctx, "nothing was changed in '%s'", data_dir);
                return r == -EBUSY ? -EBUSY : r == -ENOKEY ? -EACCES : -EBADMSG;
        }
        fprintf(ctx->out,
                "restored '%s' (host %s, created %s, schema v%d) into '%s'\n"
                "the previous state is in '%s' (undo: vigil backup rollback --data-dir %s)\n"
                "now start vigild and check /readyz\n",
                file, res.info.host, res.info.created, res.info.schema, data_dir, res.previous,
                data_dir);
        return 0;
}

int cmd_backup(int argc, char **argv, cli_ctx *ctx)
{
        static const struct option opts[] = {
            {"dir", required_argument, NULL, 'd'},      {"data-dir", required_argument, NULL, 'D'},
            {"keep", required_argument, NULL, 'k'},     {"max-age", required_argument, NULL, 'a'},
            {"key-file", required_argument, NULL, 'K'}, {"no-check", no_argument, NULL, 'n'},
            {"check", no_argument, NULL, 'c'},          {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
        };
        const char *dir = NULL, *data_dir = DEFAULT_DATA_DIR, *key_file = NULL;
        long keep = 7;
        int64_t max_age = 30 * 86400 * USEC_PER_SEC;
        bool check = true;
        int c;

        if (argc < 2)
                return cli_usage_error(ctx, usage, "missing subcommand");
        if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
                help(ctx);
                return 0;
        }
        const char *sub = argv[1];
        optind = 0; /* 0: GNU getopt starts over (main() parsed the global options) */
        while ((c = getopt_long(argc - 1, argv + 1, "jh", opts, NULL)) != -1) {
                switch (c) {
                case 'd':
                        dir = optarg;
                        break;
                case 'D':
                        data_dir = optarg;
                        break;
                case 'k':
                        if (cli_parse_long(optarg, 1, 100000, &keep) < 0)
                                return cli_usage_error(ctx, usage, "--keep: '%s' is not 1..100000",
                                                       optarg);
                        break;
                case 'a':
                        if (time_parse_duration(optarg, &max_age) < 0)
                                return cli_usage_error(ctx, usage,
                                                       "--max-age: '%s' is not a duration", optarg);
                        break;
                case 'K':
                        key_file = optarg;
                        break;
                case 'n':
                        check = false;
                        break;
                case 'c':
                        check = true;
                        break;
                case 'j':
                        ctx->json = true;
                        break;
                case 'h':
                        help(ctx);
                        return 0;
                default:
                        return cli_usage_error(ctx, usage, "bad option");
                }
        }
        int nargs = argc - 1 - optind;
        char **args = argv + 1 + optind;

        if (!strcmp(sub, "create")) {
                char abs[PATH_MAX];
                if (dir && dir[0] != '/') {
                        if (!realpath(".", abs))
                                return -errno;
                        size_t l = strlen(abs);
                        snprintf(abs + l, sizeof(abs) - l, "/%s", dir);
                        dir = abs;
                }
                return do_create(ctx, dir);
        }
        if (!strcmp(sub, "list"))
                return do_list(ctx, dir);
        if (!strcmp(sub, "verify")) {
                if (nargs != 1)
                        return cli_usage_error(ctx, usage, "verify needs one FILE");
                return do_verify(ctx, args[0], key_file);
        }
        if (!strcmp(sub, "prune")) {
                unsigned removed = 0;
                char err[512];
                if (!dir)
                        return cli_usage_error(ctx, usage, "prune needs --dir DIR");
                int r = backup_prune(dir, (unsigned)keep, max_age, &removed, err, sizeof(err));
                if (r < 0) {
                        cli_error(ctx, "%s", err);
                        return r;
                }
                fprintf(ctx->out, "removed %u archives from '%s'\n", removed, dir);
                return 0;
        }
        if (!strcmp(sub, "restore")) {
                if (nargs != 1)
                        return cli_usage_error(ctx, usage, "restore needs one FILE");
                return do_restore(ctx, args[0], data_dir, check, key_file);
        }
        if (!strcmp(sub, "rollback")) {
                char used[PATH_MAX] = "", err[1024] = "";
                int r = backup_rollback(data_dir, nargs ? args[0] : NULL, used, sizeof(used), err,
                                        sizeof(err));
                if (r < 0) {
                        cli_error(ctx, "rollback failed: %s", err);
                        return r;
                }
                fprintf(ctx->out, "rolled back '%s' to '%s'\n", data_dir, used);
                return 0;
        }
        return cli_usage_error(ctx, usage, "unknown subcommand '%s'", sub);
}
