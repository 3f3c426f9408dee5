/* audit_export.h — what makes the audit trail's ends checkable from outside the database: the
 * audit key (authenticates checkpoints and heads; audit.h) and the export of the head.
 *
 * The key is never in the database. With encryption configured (a keyring with a master key) it
 * is a random key sealed by the master key in DATA_DIR/audit.key.sealed; otherwise a random key
 * in DATA_DIR/audit.key (64 hex digits, 0600). Either is created at the first start. Trade-off of
 * the plain file: whoever can read the data directory can read it, and then forge a checkpoint;
 * the exported head still catches truncation at the end, and the sealed form needs the master
 * key as well.
 *
 * The head — "vigil-audit-head seq=N hash=H mac=M" — is written to a small sidecar file
 * (DATA_DIR/audit.head: "SEQ:HASH:MAC\n", replaced atomically) and, when configured, to syslog
 * (journald picks it up) and to a webhook (POST of a JSON object), at an interval and when the
 * daemon stops. Only the copies that leave the machine (syslog forwarded, webhook) show that the
 * newest records were deleted by someone who can also rewrite the sidecar.
 *
 * Not thread-safe by itself: the gate (gate.c) serialises exports. No logging here except in
 * audit_export_head (which reports sink failures through err). */
#ifndef VIGIL_SECURITY_AUDIT_EXPORT_H
#define VIGIL_SECURITY_AUDIT_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"

struct crypto_keyring;

#define AUDIT_KEY_FILE        "audit.key"
#define AUDIT_KEY_SEALED_FILE "audit.key.sealed"
#define AUDIT_HEAD_FILE       "audit.head"

/* security.audit.head_export.* (see docs/security.md). All optional; zero values = defaults. */
typedef struct audit_export_options {
        int64_t interval_s;         /* seconds between exports; 0 = 60; < 0 = only at stop */
        bool no_sidecar;            /* sidecar: false (the default) = write DATA_DIR/audit.head */
        bool syslog;                /* syslog(LOG_AUTHPRIV | LOG_NOTICE), ident "vigild" */
        const char *webhook_url;    /* POST {"seq","hash","mac","ts","host"}; NULL/"" = none */
        int64_t webhook_timeout_ms; /* 0 = 5000 */
} audit_export_options;

/* Check options (the config parser calls it for `security.audit.head_export`): 0 or -EINVAL with
 * the reason in err (e.g. "webhook_url: must start with http:// or https://"). */
int audit_export_options_check(const audit_export_options *o, char *err, size_t errlen);

/* Load the audit key from dir, creating it (0600, fsync'd) when create and it does not exist.
 * kr non-NULL: the sealed form (the master key opens it); NULL: the plain file. When kr is
 * NULL but only the sealed file exists: -ENOKEY. *created tells a new key (may be NULL).
 * Returns 0 or -errno with err. */
int audit_key_load(const char *dir, struct crypto_keyring *kr, bool create, audit_key *key,
                   bool *created, char *err, size_t errlen);
/* Load a plain key file (64 hex digits). 0 or -errno with err. */
int audit_key_load_file(const char *path, audit_key *key, char *err, size_t errlen);

/* Write "SEQ:HASH:MAC\n" to path atomically (path.tmp 0600, fsync, rename, fsync dir). */
int audit_head_write(const char *path, const audit_head *h, const char *mac);
/* Read a sidecar: the head, and its mac when mac_out is non-NULL ("" when none). 0 or -errno. */
int audit_head_read(const char *path, audit_head *h, char mac_out[AUDIT_HASH_HEX]);

/* One export of head h (already read from the store) to every configured sink; sidecar is the
 * sidecar path (NULL = none). Returns 0 when every sink took it, else the first -errno with err
 * naming the sink. */
int audit_export_head(const audit_export_options *o, const audit_key *key, const audit_head *h,
                      const char *sidecar, char *err, size_t errlen);

#endif
