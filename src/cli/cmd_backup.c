/* cmd_backup.c — `vigil backup create|list|verify|prune|restore|rollback`. create and list ask
 * the daemon (it makes a consistent copy while it runs); verify, prune --dir, restore and rollback
 * work offline on files and need no daemon — restore and rollback need it STOPPED. verify and
 * restore also take s3://BUCKET/KEY (downloaded first, then the same checks), and list --remote
 * lists a bucket (store/s3.h). This is the one CLI file that links the store module
 * (libsqlite3, libarchive, libcrypto) for that. */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/vtime.h"
#include "store/backup.h"
#include "store/crypto.h"
#include "store/s3.h"

/* restore and rollback change a data directory: it is named, never guessed */
#define DATA_DIR_ENV "VIGIL_DATA_DIR"

static const char usage[] =
    "vigil backup create | list [--dir DIR | --remote s3://BUCKET[/PREFIX]] | verify FILE|S3URL "
    "[--key-file FILE] | prune --dir DIR [--keep N] [--max-age DURATION] | restore FILE|S3URL "
    "--data-dir DIR [--no-check] [--key-file FILE] | rollback --data-dir DIR [PRE_RESTORE_DIR] "
    "(S3: [--endpoint URL] [--region R] [--credentials-file FILE] [--addressing path|virtual])";

static void help(cli_ctx *ctx)
{
        fprintf(ctx->out,
                "usage: %s\n\n"
                "Backups of the daemon's state (the SQLite store, keyring and config file).\n\n"
                "  create                the daemon makes a backup now (online, consistent) in\n"
                "                        its backup.dir and prints the archive path\n"
                "                        (POST /api/v1/backup); with backup.s3 set the\n"
                "                        daemon then uploads it to its bucket\n"
                "  list [--dir DIR]      the daemon's archives, newest first; with --dir: the\n"
                "                        archives in DIR, without asking the daemon\n"
                "  list --remote s3://BUCKET[/PREFIX]\n"
                "                        the archives in a bucket, newest first\n"
                "  verify FILE|S3URL     offline: decrypt (tag), every member's SHA-256, and\n"
                "                        PRAGMA integrity_check on the database\n"
                "  prune --dir DIR       offline: keep --keep N (default 7) archives no older\n"
                "                        than --max-age (default 30d; the newest is always kept)\n"
                "  restore FILE|S3URL    offline, with vigild STOPPED: verify, keep the current\n"
                "                        state in DATA_DIR/pre-restore-STAMP/, swap the database\n"
                "                        in atomically, open and check it, roll back on failure\n"
                "      --data-dir DIR    the daemon's data directory (storage.data_dir); required\n"
                "                        (or env %s); it must exist\n"
                "      --no-check        skip the full integrity_check after the swap\n"
                "  rollback              offline: put back the newest pre-restore-* state\n"
                "      --data-dir DIR    as for restore\n"
                "  -j, --json            print JSON\n\n"
                "S3 (verify/restore s3://BUCKET/KEY, list --remote s3://BUCKET[/PREFIX]):\n"
                "  --endpoint URL        http(s)://HOST[:PORT] (env VIGIL_S3_ENDPOINT or\n"
                "                        AWS_ENDPOINT_URL; default AWS for the region)\n"
                "  --region R            signing region (env AWS_REGION; default us-east-1)\n"
                "  --addressing STYLE    path (default) or virtual (BUCKET.HOST)\n"
                "  --credentials-file F  AWS credentials file (mode 0600); default the\n"
                "                        environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,\n"
                "                        AWS_SESSION_TOKEN\n"
                "  A downloaded archive gets exactly the checks of a local one; restore\n"
                "  downloads into the data directory's filesystem and removes the copy after.\n\n"
                "Encrypted archives (.enc) need the key: env VIGIL_ENCRYPTION_KEY or\n"
                "--key-file FILE (the value of security.encryption.encryption_key).\n"
                "systemd: systemctl stop vigild && vigil backup restore FILE && systemctl start\n"
                "vigild && curl -f http://127.0.0.1:5555/readyz || (systemctl stop vigild &&\n"
                "vigil backup rollback && systemctl start vigild)\n",
                usage, DATA_DIR_ENV);
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

static int do_create(cli_ctx *ctx)
{
        json_t *res = NULL, *body = json_object();
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
        if (ctx->json) {
                json_t *arr = json_array(), *j;
                for (size_t i = 0; i < n; i++)
                        json_array_append_new(
                            arr, json_pack("{s:s, s:I, s:b, s:f}", "path", v[i].path, "size",
                                           (json_int_t)v[i].size, "encrypted", v[i].encrypted,
                                           "time", (double)v[i].time_us / 1e6));
                j = json_pack("{s:o}", "backups", arr);
                if (!j)
                        return -ENOMEM;
                client_print_json(ctx, j, false);
                json_decref(j);
                return 0;
        }
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

static int do_verify_file(cli_ctx *ctx, const char *file, const char *shown, const char *key_file);

struct s3_opts {
        const char *endpoint; /* --endpoint, else env */
        const char *region;   /* --region, else env */
        const char *creds;    /* --credentials-file */
        bool virtual_host;    /* --addressing virtual */
};

static bool is_s3(const char *name)
{
        return !strncmp(name, "s3://", 5);
}

static s3_target s3_target_of(const struct s3_opts *so, const char *bucket)
{
        const char *ep = so->endpoint, *rg = so->region;
        if (!ep)
                ep = getenv("VIGIL_S3_ENDPOINT");
        if (!ep)
                ep = getenv("AWS_ENDPOINT_URL");
        if (!rg)
                rg = getenv("AWS_REGION");
        if (!rg)
                rg = getenv("AWS_DEFAULT_REGION");
        s3_target t = {.endpoint = ep ? ep : "",
                       .bucket = bucket,
                       .prefix = "",
                       .region = rg && *rg ? rg : "us-east-1",
                       .virtual_host = so->virtual_host,
                       .credentials_file = so->creds};
        return t;
}

/* Download s3://BUCKET/KEY into a new private directory under parent (mkdtemp), keeping the
 * object's base name; *file and *tmpdir get the paths (remove both after). */
static int s3_fetch(cli_ctx *ctx, const struct s3_opts *so, const char *url, const char *parent,
                    char *tmpdir, size_t tlen, char *file, size_t flen)
{
        char bucket[256], key[S3_MAX_KEY], err[2048] = "";
        int r = s3_parse_url(url, bucket, sizeof(bucket), key, sizeof(key), err, sizeof(err));

        if (r < 0) {
                cli_error(ctx, "%s", err);
                return r;
        }
        const char *base = strrchr(key, '/') ? strrchr(key, '/') + 1 : key;
        if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
                cli_error(ctx, "'%s' does not name an object", url);
                return -EINVAL;
        }
        snprintf(tmpdir, tlen, "%s/.s3-download-XXXXXX", parent);
        if (!mkdtemp(tmpdir)) {
                r = -errno;
                cli_error(ctx, "cannot create a directory in '%s' for the download: %s", parent,
                          strerror(errno));
                return r;
        }
        snprintf(file, flen, "%s/%s", tmpdir, base);
        s3_target t = s3_target_of(so, bucket);
        r = s3_get_file(&t, key, file, S3_MAX_GET, err, sizeof(err));
        if (r < 0) {
                rmdir(tmpdir);
                cli_error(ctx, "%s", err);
                return r;
        }
        return 0;
}

static void s3_fetch_done(const char *tmpdir, const char *file)
{
        unlink(file);
        rmdir(tmpdir);
}

static int newest_object_first(const void *a, const void *b)
{
        const s3_object *x = a, *y = b;
        if (x->mtime_us != y->mtime_us)
                return x->mtime_us < y->mtime_us ? 1 : -1;
        return strcmp(x->key, y->key);
}

static int do_list_remote(cli_ctx *ctx, const struct s3_opts *so, const char *url)
{
        char bucket[256] = "", err[2048] = "";
        const char *b = url + 5, *slash;

        if (!is_s3(url) || !*b || *b == '/')
                return cli_usage_error(ctx, usage, "--remote needs s3://BUCKET[/PREFIX], not '%s'",
                                       url);
        slash = strchr(b, '/');
        size_t bl = slash ? (size_t)(slash - b) : strlen(b);
        if (bl >= sizeof(bucket))
                return cli_usage_error(ctx, usage, "bucket name too long in '%s'", url);
        memcpy(bucket, b, bl);
        const char *prefix = slash ? slash + 1 : "";
        s3_target t = s3_target_of(so, bucket);
        s3_object *v = NULL;
        size_t n = 0, shown = 0;
        int r = s3_list(&t, prefix, &v, &n, err, sizeof(err));
        if (r < 0) {
                cli_error(ctx, "%s", err);
                return r;
        }
        /* newest first by the time in the name (as a local list), else LastModified */
        for (size_t i = 0; i < n; i++) {
                int64_t made = s3_backup_time(v[i].key);
                if (made >= 0)
                        v[i].mtime_us = made;
        }
        qsort(v, n, sizeof(*v), newest_object_first);
        json_t *arr = ctx->json ? json_array() : NULL;
        for (size_t i = 0; i < n; i++) {
                const char *base = strrchr(v[i].key, '/') ? strrchr(v[i].key, '/') + 1 : v[i].key;
                if (strncmp(base, BACKUP_PREFIX, strlen(BACKUP_PREFIX)))
                        continue;
                size_t l = strlen(base);
                bool enc = l > 4 && !strcmp(base + l - 4, ".enc");
                char u[S3_MAX_KEY + 300], tm[32];
                snprintf(u, sizeof(u), "s3://%s/%s", bucket, v[i].key);
                shown++;
                if (arr) {
                        json_array_append_new(arr,
                                              json_pack("{s:s, s:I, s:b, s:f}", "path", u, "size",
                                                        (json_int_t)v[i].size, "encrypted", enc,
                                                        "time", (double)v[i].mtime_us / 1e6));
                        continue;
                }
                fmt_time(v[i].mtime_us, tm, sizeof(tm));
                fprintf(ctx->out, "%s  %12llu  %-9s  %s\n", tm, (unsigned long long)v[i].size,
                        enc ? "encrypted" : "plain", u);
        }
        free(v);
        if (arr) {
                json_t *j = json_pack("{s:s, s:o}", "remote", url, "backups", arr);
                if (!j)
                        return -ENOMEM;
                client_print_json(ctx, j, false);
                json_decref(j);
        } else if (!shown) {
                fprintf(ctx->out, "no backups in %s\n", url);
        }
        return 0;
}

static int do_verify(cli_ctx *ctx, const char *name, const char *key_file, const struct s3_opts *so)
{
        char tmpdir[PATH_MAX] = "", local[PATH_MAX] = "";
        const char *file = name;
        if (is_s3(name)) {
                const char *td = getenv("TMPDIR");
                int fr = s3_fetch(ctx, so, name, td && *td ? td : "/tmp", tmpdir, sizeof(tmpdir),
                                  local, sizeof(local));
                if (fr < 0)
                        return fr;
                file = local;
        }
        int vr = do_verify_file(ctx, file, name, key_file);
        if (tmpdir[0])
                s3_fetch_done(tmpdir, local);
        return vr;
}

static int do_verify_file(cli_ctx *ctx, const char *file, const char *shown, const char *key_file)
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
                    json_pack("{s:s, s:b, s:s, s:s, s:s, s:i, s:i, s:I, s:s}", "archive", shown,
                              "ok", 1, "host", info.host, "created", info.created, "version",
                              info.version, "schema", info.schema, "members", (int)info.members,
                              "db_size", (json_int_t)info.db_size, "integrity", "ok");
                client_print_json(ctx, j, false);
                json_decref(j);
        } else {
                fprintf(ctx->out,
                        "%s: OK (%s, host %s, created %s, vigil %s, schema v%d, %u members "
                        "match the manifest, database integrity_check ok)\n",
                        shown, info.encrypted ? "encrypted, tag ok" : "not encrypted", info.host,
                        info.created, info.version, info.schema, info.members);
        }
        return 0;
}

static int do_restore(cli_ctx *ctx, const char *name, const char *data_dir, bool check,
                      const char *key_file, const struct s3_opts *so)
{
        crypto_keyring *kr = NULL;
        restore_result res;
        char err[2048] = "", tmpdir[PATH_MAX] = "", local[PATH_MAX] = "";
        const char *file = name;
        int r = load_key(ctx, key_file, &kr);

        if (r < 0)
                return r;
        if (is_s3(name)) {
                /* into the data directory's filesystem: what restore unpacks next to */
                r = s3_fetch(ctx, so, name, data_dir, tmpdir, sizeof(tmpdir), local, sizeof(local));
                if (r < 0) {
                        crypto_keyring_free(kr);
                        cli_error(ctx, "nothing was changed in '%s'", data_dir);
                        return r;
                }
                file = local;
        }
        restore_options o = {.archive = file, .data_dir = data_dir, .keyring = kr, .check = check};
        r = backup_restore(&o, &res, err, sizeof(err));
        crypto_keyring_free(kr);
        if (tmpdir[0])
                s3_fetch_done(tmpdir, local);
        file = name;
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
        if (ctx->json) {
                json_t *j =
                    json_pack("{s:s, s:s, s:s, s:i, s:s, s:s}", "archive", file, "host",
                              res.info.host, "created", res.info.created, "schema", res.info.schema,
                              "data_dir", data_dir, "previous", res.previous);
                if (!j)
                        return -ENOMEM;
                client_print_json(ctx, j, false);
                json_decref(j);
                return 0;
        }
        fprintf(ctx->out,
                "restored '%s' (host %s, created %s, schema v%d) into '%s'\n"
                "the previous state is in '%s' (undo: vigil backup rollback --data-dir %s)\n"
                "now start vigild and check /readyz\n",
                file, res.info.host, res.info.created, res.info.schema, data_dir, res.previous,
                data_dir);
        return 0;
}

/* The options, as bits: each subcommand names the ones it honours; any other is refused. */
enum {
        O_DIR = 1 << 0,
        O_DATA_DIR = 1 << 1,
        O_KEEP = 1 << 2,
        O_MAX_AGE = 1 << 3,
        O_KEY_FILE = 1 << 4,
        O_CHECK = 1 << 5,
        O_S3 = 1 << 6,     /* --endpoint, --region, --credentials-file, --addressing */
        O_REMOTE = 1 << 7, /* --remote */
};

static const struct {
        const char *name; /* subcommand */
        unsigned allowed; /* O_* bits it honours (-j and -h always) */
} subs[] = {
    {"create", 0},
    {"list", O_DIR | O_REMOTE | O_S3},
    {"verify", O_KEY_FILE | O_S3},
    {"prune", O_DIR | O_KEEP | O_MAX_AGE},
    {"restore", O_DATA_DIR | O_KEY_FILE | O_CHECK | O_S3},
    {"rollback", O_DATA_DIR},
};

static const char *option_name(unsigned bit)
{
        switch (bit) {
        case O_DIR:
                return "--dir";
        case O_DATA_DIR:
                return "--data-dir";
        case O_KEEP:
                return "--keep";
        case O_MAX_AGE:
                return "--max-age";
        case O_KEY_FILE:
                return "--key-file";
        case O_S3:
                return "--endpoint/--region/--credentials-file/--addressing";
        case O_REMOTE:
                return "--remote";
        default:
                return "--check/--no-check";
        }
}

/* --data-dir, else $VIGIL_DATA_DIR; it must be an existing directory (never created here). */
static int resolve_data_dir(cli_ctx *ctx, const char *sub, const char *given, const char **ret)
{
        const char *d = given ? given : getenv(DATA_DIR_ENV);
        struct stat st;

        if (!d || !*d)
                return cli_usage_error(ctx, usage,
                                       "%s needs --data-dir DIR (the daemon's storage.data_dir, "
                                       "or env %s); nothing was changed",
                                       sub, DATA_DIR_ENV);
        errno = 0;
        if (stat(d, &st) < 0 || !S_ISDIR(st.st_mode)) {
                cli_error(ctx, "data directory '%s' is not a directory (%s); nothing was changed",
                          d, errno ? strerror(errno) : "not a directory");
                return -ENOENT;
        }
        *ret = d;
        return 0;
}

int cmd_backup(int argc, char **argv, cli_ctx *ctx)
{
        static const struct option opts[] = {
            {"dir", required_argument, NULL, 'd'},
            {"data-dir", required_argument, NULL, 'D'},
            {"keep", required_argument, NULL, 'k'},
            {"max-age", required_argument, NULL, 'a'},
            {"key-file", required_argument, NULL, 'K'},
            {"no-check", no_argument, NULL, 'n'},
            {"check", no_argument, NULL, 'c'},
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {"endpoint", required_argument, NULL, 'E'},
            {"region", required_argument, NULL, 'R'},
            {"credentials-file", required_argument, NULL, 'C'},
            {"addressing", required_argument, NULL, 'A'},
            {"remote", required_argument, NULL, 'r'},
            {NULL, 0, NULL, 0},
        };
        struct s3_opts so = {0};
        const char *remote = NULL;
        const char *dir = NULL, *data_dir = NULL, *key_file = NULL;
        long keep = 7;
        int64_t max_age = 30 * 86400 * USEC_PER_SEC;
        bool check = true;
        unsigned given = 0, allowed = 0;
        bool known = false;
        int c, r;

        if (argc < 2)
                return cli_usage_error(ctx, usage, "missing subcommand");
        if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
                help(ctx);
                return 0;
        }
        const char *sub = argv[1];
        for (size_t i = 0; i < ARRAY_SIZE(subs); i++)
                if (!strcmp(subs[i].name, sub)) {
                        allowed = subs[i].allowed;
                        known = true;
                }
        if (!known)
                return cli_usage_error(ctx, usage, "unknown subcommand '%s'", sub);
        optind = 0; /* 0: GNU getopt starts over (main() parsed the global options) */
        opterr = 0;
        while ((c = getopt_long(argc - 1, argv + 1, ":jh", opts, NULL)) != -1) {
                switch (c) {
                case 'd':
                        dir = optarg;
                        given |= O_DIR;
                        break;
                case 'D':
                        data_dir = optarg;
                        given |= O_DATA_DIR;
                        break;
                case 'k':
                        if (cli_parse_long(optarg, 1, 100000, &keep) < 0)
                                return cli_usage_error(ctx, usage, "--keep: '%s' is not 1..100000",
                                                       optarg);
                        given |= O_KEEP;
                        break;
                case 'a':
                        if (time_parse_duration(optarg, &max_age) < 0)
                                return cli_usage_error(ctx, usage,
                                                       "--max-age: '%s' is not a duration", optarg);
                        given |= O_MAX_AGE;
                        break;
                case 'K':
                        key_file = optarg;
                        given |= O_KEY_FILE;
                        break;
                case 'n':
                        check = false;
                        given |= O_CHECK;
                        break;
                case 'c':
                        check = true;
                        given |= O_CHECK;
                        break;
                case 'E':
                        so.endpoint = optarg;
                        given |= O_S3;
                        break;
                case 'R':
                        so.region = optarg;
                        given |= O_S3;
                        break;
                case 'C':
                        so.creds = optarg;
                        given |= O_S3;
                        break;
                case 'A':
                        if (strcmp(optarg, "path") && strcmp(optarg, "virtual"))
                                return cli_usage_error(ctx, usage,
                                                       "--addressing: '%s' is not path or virtual",
                                                       optarg);
                        so.virtual_host = !strcmp(optarg, "virtual");
                        given |= O_S3;
                        break;
                case 'r':
                        remote = optarg;
                        given |= O_REMOTE;
                        break;
                case 'j':
                        ctx->json = true;
                        break;
                case 'h':
                        help(ctx);
                        return 0;
                case ':':
                        return cli_usage_error(ctx, usage, "option '%s' needs a value",
                                               argv[optind]);
                default:
                        return cli_usage_error(ctx, usage, "unknown option '%s'", argv[optind]);
                }
        }
        if (given & ~allowed) {
                unsigned bit = given & ~allowed;
                bit &= -bit; /* the first one */
                if (!strcmp(sub, "create") && bit == O_DIR)
                        return cli_usage_error(ctx, usage,
                                               "'backup create' does not take --dir: the daemon "
                                               "writes into its backup.dir (see 'vigil backup "
                                               "list'); copy the archive from there");
                return cli_usage_error(ctx, usage, "'backup %s' does not take %s", sub,
                                       option_name(bit));
        }
        int nargs = argc - 1 - optind;
        char **args = argv + 1 + optind;

        if (!strcmp(sub, "create")) {
                if (nargs)
                        return cli_usage_error(ctx, usage, "unexpected argument '%s'", args[0]);
                return do_create(ctx);
        }
        if (!strcmp(sub, "list")) {
                if (nargs)
                        return cli_usage_error(ctx, usage, "unexpected argument '%s'", args[0]);
                if (remote && dir)
                        return cli_usage_error(ctx, usage, "--remote and --dir exclude each other");
                if (remote)
                        return do_list_remote(ctx, &so, remote);
                if (given & O_S3)
                        return cli_usage_error(ctx, usage, "S3 options need --remote");
                return do_list(ctx, dir);
        }
        if (!strcmp(sub, "verify")) {
                if (nargs != 1)
                        return cli_usage_error(ctx, usage, "verify needs one FILE");
                if ((given & O_S3) && !is_s3(args[0]))
                        return cli_usage_error(ctx, usage, "S3 options need an s3:// URL");
                return do_verify(ctx, args[0], key_file, &so);
        }
        if (!strcmp(sub, "prune")) {
                unsigned removed = 0;
                char err[512];
                if (!dir)
                        return cli_usage_error(ctx, usage, "prune needs --dir DIR");
                if (nargs)
                        return cli_usage_error(ctx, usage, "unexpected argument '%s'", args[0]);
                r = backup_prune(dir, (unsigned)keep, max_age, &removed, err, sizeof(err));
                if (r < 0) {
                        cli_error(ctx, "%s", err);
                        return r;
                }
                if (ctx->json) {
                        json_t *j = json_pack("{s:s, s:i}", "dir", dir, "removed", (int)removed);
                        if (!j)
                                return -ENOMEM;
                        client_print_json(ctx, j, false);
                        json_decref(j);
                } else {
                        fprintf(ctx->out, "removed %u archives from '%s'\n", removed, dir);
                }
                return 0;
        }
        if (!strcmp(sub, "restore")) {
                if (nargs != 1)
                        return cli_usage_error(ctx, usage, "restore needs one FILE");
                r = resolve_data_dir(ctx, sub, data_dir, &data_dir);
                if (r < 0)
                        return r;
                if ((given & O_S3) && !is_s3(args[0]))
                        return cli_usage_error(ctx, usage, "S3 options need an s3:// URL");
                return do_restore(ctx, args[0], data_dir, check, key_file, &so);
        }
        /* rollback */
        char used[PATH_MAX] = "", err[1024] = "";
        if (nargs > 1)
                return cli_usage_error(ctx, usage, "unexpected argument '%s'", args[1]);
        r = resolve_data_dir(ctx, sub, data_dir, &data_dir);
        if (r < 0)
                return r;
        r = backup_rollback(data_dir, nargs ? args[0] : NULL, used, sizeof(used), err, sizeof(err));
        if (r < 0) {
                cli_error(ctx, "rollback failed: %s", err);
                return r;
        }
        if (ctx->json) {
                json_t *j = json_pack("{s:s, s:s}", "data_dir", data_dir, "restored_from", used);
                if (!j)
                        return -ENOMEM;
                client_print_json(ctx, j, false);
                json_decref(j);
        } else {
                fprintf(ctx->out, "rolled back '%s' to '%s'\n", data_dir, used);
        }
        return 0;
}
