/* cmd_token.c — `vigil token create --role R [--ttl 24h] [--subject S] [--secret-file F]
 * [--issuer I] [--audience A]` signs an HS256 token locally with VIGIL_JWT_SECRET (or the
 * file) and prints it; `vigil token revoke JTI [--exp SECONDS]` asks the daemon (admin). The
 * secret is never printed or sent. */
#include "commands.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>

#include "security/auth.h"
#include "common/fileio.h"
#include "common/macros.h"
#include "common/vtime.h"

static const char usage_create[] =
    "vigil token create --role admin|operator|viewer [--ttl 24h] [--subject NAME] "
    "[--secret-file FILE] [--issuer ISS] [--audience AUD] [-j]";
static const char usage_revoke[] = "vigil token revoke JTI [--exp UNIX_SECONDS] [-j]";

/* The secret file's text without its trailing newline, into out. A file that does not fit is
 * refused (-EFBIG), never cut off: a truncated secret would sign tokens the daemon rejects. */
static int read_secret(const char *file, char *out, size_t len)
{
        char *text = NULL;
        size_t n = 0;
        int r = file_read_all(file, len - 1, &text, &n);

        if (r < 0)
                return r;
        while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
                n--;
        memcpy(out, text, n);
        out[n] = '\0';
        explicit_bzero(text, n);
        free(text);
        return 0;
}

static int token_create(int argc, char **argv, cli_ctx *ctx)
{
        static const struct option opts[] = {
            {"role", required_argument, NULL, 'r'},
            {"ttl", required_argument, NULL, 't'},
            {"subject", required_argument, NULL, 's'},
            {"secret-file", required_argument, NULL, 'f'},
            {"issuer", required_argument, NULL, 'i'},
            {"audience", required_argument, NULL, 'a'},
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        const char *role_s = NULL, *subject = NULL, *file = NULL, *iss = NULL, *aud = NULL;
        int64_t ttl_us = 24LL * 3600 * 1000000;
        char secret[4096] = "", jti[64];
        enum auth_role role;
        char *tok = NULL;
        int c, r;

        optind = 0; /* 0: GNU getopt starts over (main() parsed the global options) */
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":r:t:s:f:i:a:jh", opts, NULL)) != -1) {
                switch (c) {
                case 'r':
                        role_s = optarg;
                        break;
                case 't':
                        if (time_parse_duration(optarg, &ttl_us) < 0 || ttl_us < 1000000)
                                return cli_usage_error(ctx, usage_create,
                                                       "--ttl: '%s' is not a duration >= 1s",
                                                       optarg);
                        break;
                case 's':
                        subject = optarg;
                        break;
                case 'f':
                        file = optarg;
                        break;
                case 'i':
                        iss = optarg;
                        break;
                case 'a':
                        aud = optarg;
                        break;
                case 'j':
                        ctx->json = true;
                        break;
                case 'h':
                        fprintf(ctx->out, "usage: %s\n", usage_create);
                        return 0;
                case ':':
                        return cli_usage_error(ctx, usage_create, "option '%s' needs a value",
                                               argv[optind - 1]);
                default:
                        return cli_usage_error(ctx, usage_create, "unknown option '%s'",
                                               argv[optind - 1]);
                }
        }
        if (optind < argc)
                return cli_usage_error(ctx, usage_create, "unexpected argument '%s'", argv[optind]);
        if (!role_s || auth_role_from_name(role_s, &role) < 0)
                return cli_usage_error(ctx, usage_create,
                                       "--role must be admin, operator or viewer");
        if (file) {
                r = read_secret(file, secret, sizeof(secret));
                if (r < 0) {
                        char why[PATH_MAX + 128];
                        cli_error(ctx, "%s",
                                  file_read_strerror(r, "secret file", file, sizeof(secret) - 1,
                                                     why, sizeof(why)));
                        return r;
                }
        } else if (getenv("VIGIL_JWT_SECRET")) {
                snprintf(secret, sizeof(secret), "%s", getenv("VIGIL_JWT_SECRET"));
        } else {
                cli_error(ctx, "no signing secret: set VIGIL_JWT_SECRET or pass --secret-file");
                return -EINVAL;
        }
        if (strlen(secret) < 32) {
                cli_error(ctx, "the secret is shorter than 32 bytes; HS256 needs at least 32");
                return -EINVAL;
        }
        r = auth_jwt_mint((const unsigned char *)secret, strlen(secret),
                          subject ? subject : (getenv("USER") ? getenv("USER") : "vigil"), role,
                          time_real_us() / 1000000, ttl_us / 1000000, iss, aud, &tok, jti,
                          sizeof(jti));
        explicit_bzero(secret, sizeof(secret));
        if (r < 0) {
                cli_error(ctx, "failed to sign the token: %s", strerror(-r));
                return r;
        }
        if (ctx->json) {
                json_t *j = json_pack("{s:s, s:s, s:s, s:I}", "token", tok, "jti", jti, "role",
                                      role_s, "ttl_seconds", (json_int_t)(ttl_us / 1000000));
                if (j)
                        client_print_json(ctx, j, false);
                json_decref(j);
                explicit_bzero(tok, strlen(tok));
                free(tok);
                return j ? 0 : -ENOMEM;
        }
        fprintf(ctx->out, "%s\n", tok);
        fprintf(ctx->err ? ctx->err : stderr, "jti: %s\n", jti);
        free(tok);
        return 0;
}

static int token_revoke(int argc, char **argv, cli_ctx *ctx)
{
        static const struct option opts[] = {
            {"exp", required_argument, NULL, 'e'},
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        long exp = 0;
        json_t *body, *res = NULL;
        const char *jti;
        int c, r;

        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
                switch (c) {
                case 'e':
                        if (cli_parse_long(optarg, 0, 0x7fffffffffffffffL, &exp) < 0)
                                return cli_usage_error(ctx, usage_revoke,
                                                       "--exp: '%s' is not unix seconds", optarg);
                        break;
                case 'j':
                        ctx->json = true;
                        break;
                case 'h':
                        fprintf(ctx->out, "usage: %s\n", usage_revoke);
                        return 0;
                case ':':
                        return cli_usage_error(ctx, usage_revoke, "option '%s' needs a value",
                                               argv[optind - 1]);
                default:
                        return cli_usage_error(ctx, usage_revoke, "unknown option '%s'",
                                               argv[optind - 1]);
                }
        }
        if (optind + 1 != argc)
                return cli_usage_error(ctx, usage_revoke,
                                       optind >= argc ? "missing JTI" : "one JTI only");
        jti = argv[optind];
        body = json_pack("{s:s,s:I}", "jti", jti, "exp", (json_int_t)exp);
        if (!body)
                return -ENOMEM;
        r = client_request(ctx, "POST", "/api/v1/tokens/revoke", body, &res);
        json_decref(body);
        if (r < 0)
                return r;
        if (ctx->json)
                client_print_json(ctx, res, false);
        else
                fprintf(ctx->out, "revoked %s\n", jti);
        json_decref(res);
        return 0;
}

int cmd_token(int argc, char **argv, cli_ctx *ctx)
{
        if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
                fprintf(ctx->out, "usage: %s\n       %s\n", usage_create, usage_revoke);
                return 0;
        }
        if (argc >= 2 && !strcmp(argv[1], "create"))
                return token_create(argc - 1, argv + 1, ctx);
        if (argc >= 2 && !strcmp(argv[1], "revoke"))
                return token_revoke(argc - 1, argv + 1, ctx);
        if (argc < 2)
                return cli_usage_error(ctx, "vigil token create|revoke ...", "missing subcommand");
        return cli_usage_error(ctx, "vigil token create|revoke ...", "unknown subcommand '%s'",
                               argv[1]);
}
