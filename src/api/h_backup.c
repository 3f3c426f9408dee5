/* h_backup.c — backups and keys over the API: POST /api/v1/backup (the daemon makes the archive),
 * GET /api/v1/backups, GET /api/v1/keys, POST /api/v1/keys/rotate. The work is in the store
 * module (service.h); this file only maps it to JSON and HTTP statuses. */
#include <errno.h>
#include <string.h>

#include "api-internal.h"
#include "reply.h"
#include "common/errmap.h"
#include "common/vtime.h"
#include "store/service.h"

static backup_service *service(request *r)
{
        return r->api->opt.backup;
}

enum MHD_Result h_backup_create(request *r)
{
        backup_result res = {0};
        char err[1024] = "";
        backup_service *b = service(r);

        if (!b)
                return api_reply_errno(r, -EAGAIN, "backups are not available: no store");
        int rc = backup_service_run(b, &res, err, sizeof(err));
        if (rc < 0)
                return api_reply_errno(r, rc, "backup failed: %s", err);
        return api_reply_json(r, 201,
                              json_pack("{s:s, s:I, s:s, s:b, s:f}", "path", res.path, "size",
                                        (json_int_t)res.size, "sha256", res.sha256, "encrypted",
                                        backup_service_keyring(b) != NULL, "duration_seconds",
                                        (double)res.duration_us / 1e6));
}

enum MHD_Result h_backups(request *r)
{
        backup_service *b = service(r);
        backup_entry *v = NULL;
        size_t n = 0;
        char err[512];

        if (!b)
                return api_reply_errno(r, -EAGAIN, "backups are not available: no store");
        int rc = backup_list(backup_service_dir(b), &v, &n, err, sizeof(err));
        if (rc < 0)
                return api_reply_errno(r, rc, "%s", err);
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, json_pack("{s:s, s:I, s:f, s:b}", "path", v[i].path,
                                                     "size", (json_int_t)v[i].size, "time",
                                                     (double)v[i].time_us / 1e6, "encrypted",
                                                     v[i].encrypted));
        free(v);
        return api_reply_json(
            r, 200, json_pack("{s:s, s:o}", "dir", backup_service_dir(b), "backups", arr));
}

enum MHD_Result h_keys(request *r)
{
        backup_service *b = service(r);
        crypto_keyring *kr = b ? backup_service_keyring(b) : NULL;
        bool running = false;

        if (!kr)
                return api_reply_json(r, 200, json_pack("{s:b}", "encryption", 0));
        uint64_t done = backup_service_reencrypted(b, &running);
        return api_reply_json(
            r, 200,
            json_pack("{s:b, s:i, s:i, s:f, s:I, s:b}", "encryption", 1, "active_key",
                      (int)crypto_keyring_active(kr), "keys", (int)crypto_keyring_count(kr),
                      "active_key_age_seconds",
                      (double)(time_real_us() - crypto_keyring_active_created(kr)) / 1e6,
                      "reencrypted", (json_int_t)done, "reencrypting", running));
}

enum MHD_Result h_keys_rotate(request *r)
{
        backup_service *b = service(r);
        uint32_t id = 0;
        char err[512] = "";

        if (!b)
                return api_reply_errno(r, -EAGAIN, "key rotation is not available: no store");
        int rc = backup_service_rotate_key(b, &id, err, sizeof(err));
        if (rc < 0) /* -ENOKEY: encryption is off, a conflict with the request (409) */
                return api_reply_errno(r, rc, "%s", err);
        return api_reply_json(r, 200,
                              json_pack("{s:i, s:b}", "active_key", (int)id, "reencrypting", 1));
}
