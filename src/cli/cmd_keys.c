/* cmd_keys.c — `vigil keys status|rotate`: the daemon's data-encryption keyring. rotate adds a
 * key (DATA_DIR/keyring, sealed by the master key), makes it active for new data and re-encrypts
 * the sealed columns in the background; old keys stay for decryption. */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>

static const char usage[] = "vigil keys [status | rotate] [-j]";

static void help(cli_ctx *ctx)
{
        fprintf(ctx->out,
                "usage: %s\n\n"
                "  status   active key, its age, keys in the keyring (GET /api/v1/keys)\n"
                "  rotate   add a key and re-encrypt in the background (POST "
                "/api/v1/keys/rotate)\n"
                "  -j, --json   print the daemon's JSON\n",
                usage);
}

int cmd_keys(int argc, char **argv, cli_ctx *ctx)
{
        static const struct option opts[] = {
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        const char *sub = NULL;
        json_t *res = NULL;
        int c, r;

        optind = 0; /* 0: GNU getopt starts over (main() parsed the global options) */
        opterr = 0;
        while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
                if (c == 'j') {
                        ctx->json = true;
                } else if (c == 'h') {
                        help(ctx);
                        return 0;
                } else {
                        return cli_usage_error(ctx, usage, "unknown option '%s'", argv[optind - 1]);
                }
        }
        if (optind < argc)
                sub = argv[optind++];
        if (optind < argc)
                return cli_usage_error(ctx, usage, "unexpected argument '%s'", argv[optind]);
        if (!sub || !strcmp(sub, "status")) {
                r = client_get(ctx, "/api/v1/keys", &res);
                if (r < 0)
                        return r;
                if (ctx->json)
                        client_print_json(ctx, res, false);
                else if (!json_is_true(json_object_get(res, "encryption")))
                        fprintf(ctx->out, "encryption at rest is off (no "
                                          "security.encryption.encryption_key)\n");
                else
                        fprintf(ctx->out,
                                "active key %lld (of %lld), %.1f days old%s; %lld sealed values "
                                "re-encrypted since the last rotation\n",
                                (long long)json_integer_value(json_object_get(res, "active_key")),
                                (long long)json_integer_value(json_object_get(res, "keys")),
                                json_number_value(json_object_get(res, "active_key_age_seconds")) /
                                    86400.0,
                                json_is_true(json_object_get(res, "reencrypting"))
                                    ? ", re-encrypting"
                                    : "",
                                (long long)json_integer_value(json_object_get(res, "reencrypted")));
                json_decref(res);
                return 0;
        }
        if (!strcmp(sub, "rotate")) {
                json_t *body = json_object();
                r = client_request(ctx, "POST", "/api/v1/keys/rotate", body, &res);
                json_decref(body);
                if (r < 0)
                        return r;
                if (ctx->json)
                        client_print_json(ctx, res, false);
                else
                        fprintf(ctx->out,
                                "key %lld is now active; re-encrypting in the "
                                "background\n",
                                (long long)json_integer_value(json_object_get(res, "active_key")));
                json_decref(res);
                return 0;
        }
        return cli_usage_error(ctx, usage, "unknown subcommand '%s'", sub);
}
