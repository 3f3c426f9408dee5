/* gate.c — the per-request security gate (see gate.h). The running configuration is one
 * immutable struct behind a read-write lock: requests hold the read lock only while they check;
 * a reload builds a new struct and swaps it under the write lock. No HTTP library here: the
 * server hands in a gate_input and replies from the gate_verdict. */
#include "gate.h"

#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <limits.h>
#include <sys/random.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "audit.h"
#include "cidr.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"
#include "ratelimit.h"
#include "store/store.h"
#include "webconfig.h"

/* A revocation is enforced while the token could still be accepted: until its expiry plus the
 * largest leeway the configuration allows (security.authentication.leeway <= 300 s). */
#define REVOKE_GRACE_S 300
/* A revocation whose exp is already past cannot be the expiry of a token that still works: the
 * caller's exp is wrong or unknown, so it is kept as long as a revocation without exp. */
#define REVOKE_KEEP_UNKNOWN_S (366LL * 86400)

/* One revoked token id; the set is open-addressed and grows (no count limit). */
typedef struct rev_entry {
        char *jti;       /* owned; NULL = empty slot */
        int64_t expires; /* seconds since epoch: enforced until expires + REVOKE_GRACE_S */
} rev_entry;

struct gate_cfg {
        auth_policy pol;         /* decision inputs */
        auth_jwt_key key;        /* verification key (owned) */
        bool have_key;           /* authn on and key loaded */
        cidr_list allow;         /* accept allowlist; n == 0 = any */
        cidr_list proxies;       /* trusted proxies */
        bool rl;                 /* rate limits on */
        unsigned rl_per_minute;  /* rate */
        unsigned rl_burst;       /* burst */
        bool audit;              /* records on */
        unsigned retention_days; /* 0 = forever */
        gid_t admin_gid;         /* unix_admin_group's gid, or (gid_t)-1 */
        basic_auth *basic;       /* web-config basic_auth_users, or NULL */
        enum auth_role web_role; /* role of a basic-auth user */
        bool audit_bodies;       /* audit.include_sensitive_data */
        /* web-config rate_limit: one token bucket for every TCP request but the probes */
        int64_t wrl_interval_us; /* a token per interval; 0 = off */
        unsigned wrl_burst;      /* bucket size */
        pthread_mutex_t wrl_lock;
        double wrl_tokens;
        int64_t wrl_last_us; /* when wrl_tokens was last brought up to date */

        /* web-config response headers (name, value), owned */
        char *hdr[WEBCONFIG_MAX_HEADERS][2];
        size_t n_hdr; /* pairs in hdr */
};

struct auth_gate {
        pthread_rwlock_t lock; /* guards cfg */
        struct gate_cfg *cfg;  /* current configuration */
        ratelimit *rl;         /* buckets (survive reloads) */
        struct store *store;   /* borrowed */
        pthread_mutex_t rev_lock;
        audit_key akey;              /* authenticates checkpoints and heads; unset = audit off */
        char audit_dir[PATH_MAX];    /* where the key and the sidecar live */
        char sidecar[PATH_MAX + 16]; /* audit_dir/audit.head */
        pthread_mutex_t exp_lock; /* guards exp, exp_url, exp_stop, last_seq; serialises exports */
        pthread_cond_t exp_wake;  /* wakes the export thread (stop, reload) */
        audit_export_options exp; /* current head export settings (exp_url owned) */
        char *exp_url;            /* exp.webhook_url's storage */
        bool exp_stop;            /* gate_free began */
        bool exp_started;         /* the export thread exists */
        pthread_t exp_thread;     /* exports every exp.interval_s */
        int64_t exp_last_seq;     /* head seq of the last successful export, -1 = none */
        rev_entry *rev;           /* revoked token ids (open addressing), under rev_lock */
        size_t rev_cap;           /* slots in rev: 0 or a power of two */
        size_t n_revoked;         /* used slots */
};

static bool revoked_token(auth_gate *g, const char *jti, int64_t token_exp);

static void cfg_free(struct gate_cfg *c)
{
        if (!c)
                return;
        auth_jwt_key_release(&c->key);
        basic_auth_free(c->basic);
        pthread_mutex_destroy(&c->wrl_lock);
        for (size_t i = 0; i < c->n_hdr; i++) {
                free(c->hdr[i][0]);
                free(c->hdr[i][1]);
        }
        free(c);
}

static int cfg_build(const gate_options *o, struct gate_cfg **ret, char *err, size_t errlen)
{
        struct gate_cfg *c = calloc(1, sizeof(*c));
        char bad[128];
        int r;

        if (!c)
                return -ENOMEM;
        pthread_mutex_init(&c->wrl_lock, NULL);
        /* basic_auth_users make TCP authenticated, as JWT does: same decision table */
        c->pol.authn = o->authn || (o->web && o->web->n_users);
        c->pol.authz = o->authz;
        c->pol.metrics_public = o->metrics_public;
        c->pol.inject_open = o->inject_open && !o->authn;
        for (int i = ROLE_VIEWER; i < ROLE_COUNT; i++) {
                if (auth_perm_mask(o->role_perms[i] ? o->role_perms[i] : "",
                                   &c->pol.roles.mask[i]) < 0) {
                        snprintf(err, errlen, "role '%s': bad permission list",
                                 auth_role_name((enum auth_role)i));
                        cfg_free(c);
                        return -EINVAL;
                }
        }
        if (o->authn) {
                r = auth_jwt_key_load(o->jwt_secret, o->public_key_file, &c->key, err, errlen);
                if (r < 0) {
                        cfg_free(c);
                        return r;
                }
                c->key.issuer = o->issuer;
                c->key.audience = o->audience;
                c->key.leeway_s = o->leeway_s;
                c->have_key = true;
        }
        if (cidr_list_parse(o->allowed_ips, &c->allow, bad, sizeof(bad)) < 0 ||
            cidr_list_parse(o->trusted_proxies, &c->proxies, bad, sizeof(bad)) < 0) {
                snprintf(err, errlen, "'%s' is not a CIDR", bad);
                cfg_free(c);
                return -EINVAL;
        }
        c->rl = o->rl_enabled;
        c->rl_per_minute = o->rl_per_minute ? o->rl_per_minute : 100;
        c->rl_burst = o->rl_burst ? o->rl_burst : 20;
        c->audit = o->audit && o->store;
        c->retention_days = o->retention_days;
        c->audit_bodies = o->audit_bodies;
        c->web_role =
            o->web_role >= ROLE_VIEWER && o->web_role < ROLE_COUNT ? o->web_role : ROLE_VIEWER;
        if (o->web && o->web->rl_interval_us > 0) {
                c->wrl_interval_us = o->web->rl_interval_us;
                c->wrl_burst = o->web->rl_burst;
                c->wrl_tokens = o->web->rl_burst; /* starts full, as Go's rate.Limiter */
                c->wrl_last_us = time_mono_us();
        }
        if (o->web && o->web->n_users &&
            (r = basic_auth_new(o->web, o->basic_auth_slots, &c->basic)) < 0) {
                snprintf(err, errlen, "cannot set up basic authentication: %s", strerror(-r));
                cfg_free(c);
                return r;
        }
        for (size_t i = 0; o->web && i < o->web->n_headers && i < WEBCONFIG_MAX_HEADERS; i++) {
                c->hdr[i][0] = strdup(o->web->headers[i][0]);
                c->hdr[i][1] = strdup(o->web->headers[i][1]);
                c->n_hdr++;
                if (!c->hdr[i][0] || !c->hdr[i][1]) {
                        cfg_free(c);
                        return -ENOMEM;
                }
        }
        c->admin_gid = (gid_t)-1;
        if (o->unix_admin_group && *o->unix_admin_group) {
                struct group gr, *res = NULL;
                char pwbuf[4096];
                if (getgrnam_r(o->unix_admin_group, &gr, pwbuf, sizeof(pwbuf), &res) == 0 && res)
                        c->admin_gid = gr.gr_gid;
        }
        *ret = c;
        return 0;
}

static uint64_t rev_hash(const char *s)
{
        uint64_t h = 1469598103934665603ULL; /* FNV-1a */

        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        return h;
}

/* The slot holding jti, or the empty slot where it would go. rev_cap > 0. */
static rev_entry *rev_slot(rev_entry *tab, size_t cap, const char *jti)
{
        size_t i = (size_t)rev_hash(jti) & (cap - 1);

        while (tab[i].jti && strcmp(tab[i].jti, jti) != 0)
                i = (i + 1) & (cap - 1);
        return &tab[i];
}

/* Find jti; NULL when not revoked. Under rev_lock. */
static rev_entry *rev_find(auth_gate *g, const char *jti)
{
        rev_entry *e;

        if (!g->rev_cap)
                return NULL;
        e = rev_slot(g->rev, g->rev_cap, jti);
        return e->jti ? e : NULL;
}

/* Add jti (or raise its expiry). Under rev_lock. 0 or -ENOMEM. */
static int rev_put(auth_gate *g, const char *jti, int64_t expires)
{
        rev_entry *e;

        if ((g->n_revoked + 1) * 2 > g->rev_cap) { /* keep the load under 1/2 */
                size_t cap = g->rev_cap ? g->rev_cap * 2 : 1024;
                rev_entry *tab = calloc(cap, sizeof(*tab));
                if (!tab)
                        return -ENOMEM;
                for (size_t i = 0; i < g->rev_cap; i++)
                        if (g->rev[i].jti)
                                *rev_slot(tab, cap, g->rev[i].jti) = g->rev[i];
                free(g->rev);
                g->rev = tab;
                g->rev_cap = cap;
        }
        e = rev_slot(g->rev, g->rev_cap, jti);
        if (e->jti) {
                if (expires > e->expires)
                        e->expires = expires;
                return 0;
        }
        e->jti = strdup(jti);
        if (!e->jti)
                return -ENOMEM;
        e->expires = expires;
        g->n_revoked++;
        return 0;
}

static void rev_clear(auth_gate *g)
{
        for (size_t i = 0; i < g->rev_cap; i++)
                free(g->rev[i].jti);
        free(g->rev);
        g->rev = NULL;
        g->rev_cap = g->n_revoked = 0;
}

/* Every revocation whose token could still be accepted. A failure refuses start: a daemon that
 * silently forgot its revocations would accept revoked tokens. */
static int load_revoked_fn(sqlite3 *db, void *ctx)
{
        auth_gate *g = ctx;
        sqlite3_stmt *st = NULL;
        int rc, r = 0;

        if (sqlite3_prepare_v2(
                db,
                "SELECT vigil_open(jti, 'auth_revoked.jti'), expires FROM auth_revoked "
                "WHERE expires >= ?",
                -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_int64(st, 1, time_real_us() / 1000000 - REVOKE_GRACE_S);
        while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *jti = (const char *)sqlite3_column_text(st, 0);
                if (jti)
                        r = rev_put(g, jti, sqlite3_column_int64(st, 1));
        }
        sqlite3_finalize(st);
        if (r < 0)
                return r;
        return rc == SQLITE_DONE ? 0 : store_errno(rc) ?: -EIO;
}

static char *dup_or_empty(const char *s)
{
        return strdup(s ? s : "");
}

/* issuer/audience must outlive the options: the cfg keeps its own copies (freed with the key). */
static int cfg_own_strings(struct gate_cfg *c)
{
        char *i = dup_or_empty(c->key.issuer), *a = dup_or_empty(c->key.audience);

        if (!i || !a) {
                free(i);
                free(a);
                return -ENOMEM;
        }
        c->key.issuer = i;
        c->key.audience = a;
        return 0;
}

static void cfg_destroy(struct gate_cfg *c)
{
        if (!c)
                return;
        free((char *)c->key.issuer);
        free((char *)c->key.audience);
        cfg_free(c);
}

/* exp->webhook_url copied into g (under exp_lock). */
static int export_set(auth_gate *g, const audit_export_options *o)
{
        char *url = o->webhook_url && *o->webhook_url ? strdup(o->webhook_url) : NULL;

        if (o->webhook_url && *o->webhook_url && !url)
                return -ENOMEM;
        free(g->exp_url);
        g->exp_url = url;
        g->exp = *o;
        g->exp.webhook_url = url;
        return 0;
}

static int64_t export_interval_s(const audit_export_options *o)
{
        return o->interval_s == 0 ? 60 : o->interval_s;
}

/* One export if the head moved (or always when force). Under exp_lock. */
static int export_locked(auth_gate *g, bool force, char *err, size_t errlen)
{
        audit_head h = {0};
        int r;

        err[0] = '\0';
        if (!g->store || !g->akey.set)
                return 0;
        r = store_read(g->store, audit_head_fn, &h);
        if (r < 0) {
                snprintf(err, errlen, "cannot read the audit head: %s", strerror(-r));
                return r;
        }
        /* An empty chain has nothing a head would protect: its head is written at stop only,
         * so an idle daemon with no audit record never loads libcrypto for it. */
        if (!force && (h.seq == g->exp_last_seq || h.seq == 0))
                return 0;
        r = audit_export_head(&g->exp, &g->akey, &h, g->sidecar, err, errlen);
        if (r == 0)
                g->exp_last_seq = h.seq;
        return r;
}

/* When the sidecar is the only sink and already holds the chain's head (the previous run's stop
 * wrote it), that head counts as exported: the first interval does not rewrite the same line
 * (and load libcrypto for its MAC). After a crash the sidecar is behind and the head is
 * exported at the first interval as before. */
static void adopt_sidecar_head(auth_gate *g)
{
        audit_head db = {0}, side = {0};

        if (g->exp.no_sidecar || g->exp.syslog || (g->exp.webhook_url && *g->exp.webhook_url))
                return;
        if (store_read(g->store, audit_head_fn, &db) < 0 ||
            audit_head_read(g->sidecar, &side, NULL) < 0)
                return;
        if (db.seq == side.seq && strcmp(db.hash, side.hash) == 0)
                g->exp_last_seq = db.seq;
}

static void *export_main(void *arg)
{
        auth_gate *g = arg;
        char err[512];

        pthread_mutex_lock(&g->exp_lock);
        while (!g->exp_stop) {
                int64_t iv = export_interval_s(&g->exp);
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_sec += iv > 0 ? iv : 3600;
                pthread_cond_timedwait(&g->exp_wake, &g->exp_lock, &ts);
                if (g->exp_stop || export_interval_s(&g->exp) < 0)
                        continue;
                if (export_locked(g, false, err, sizeof(err)) < 0)
                        log_warn("security", "failed to export the audit head: %s", err);
        }
        pthread_mutex_unlock(&g->exp_lock);
        return NULL;
}

/* The audit key and the export thread, when the trail is kept. */
static int audit_setup(auth_gate *g, const gate_options *o, char *err, size_t errlen)
{
        const char *dir = o->audit_dir;
        char sdir[PATH_MAX];
        bool created = false;
        pthread_condattr_t ca;
        int r;

        r = audit_export_options_check(&o->head_export, err, errlen);
        if (r < 0)
                return r;
        r = export_set(g, &o->head_export);
        if (r < 0)
                return r;
        if (!g->store || !o->audit)
                return 0;
        if (!dir || !*dir) {
                const char *p = store_path(g->store), *slash = strrchr(p, '/');
                if (!slash)
                        snprintf(sdir, sizeof(sdir), ".");
                else
                        snprintf(sdir, sizeof(sdir), "%.*s", (int)(slash - p), p);
                dir = slash == p ? "/" : sdir;
        }
        snprintf(g->audit_dir, sizeof(g->audit_dir), "%s", dir);
        snprintf(g->sidecar, sizeof(g->sidecar), "%s/" AUDIT_HEAD_FILE, dir);
        r = audit_key_load(dir, o->keyring, true, &g->akey, &created, err, errlen);
        if (r < 0)
                return r;
        if (created) {
                /* Trust on first use: a checkpoint written before checkpoints were
                 * authenticated is signed now; later, an unsigned one is an intrusion. */
                r = store_write(g->store, audit_checkpoint_adopt_fn, &g->akey);
                if (r < 0) {
                        snprintf(err, errlen, "cannot authenticate the audit checkpoint: %s",
                                 strerror(-r));
                        return r;
                }
                log_info("security", "created the audit key in '%s'%s", dir,
                         o->keyring ? " (sealed by the master key)" : "");
        }
        adopt_sidecar_head(g);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&g->exp_wake, &ca);
        pthread_condattr_destroy(&ca);
        r = -pthread_create(&g->exp_thread, NULL, export_main, g);
        if (r < 0) {
                snprintf(err, errlen, "cannot start the audit head export: %s", strerror(-r));
                pthread_cond_destroy(&g->exp_wake);
                return r;
        }
        g->exp_started = true;
        return 0;
}

int gate_new(const gate_options *o, auth_gate **ret, char *err, size_t errlen)
{
        auth_gate *g = calloc(1, sizeof(*g));
        int r;

        if (!g)
                return -ENOMEM;
        r = cfg_build(o, &g->cfg, err, errlen);
        if (r == 0 && (r = cfg_own_strings(g->cfg)) < 0)
                cfg_destroy(g->cfg);
        if (r == 0)
                r = ratelimit_new(g->cfg->rl_per_minute, g->cfg->rl_burst, &g->rl);
        if (r < 0) {
                free(g);
                return r;
        }
        pthread_rwlock_init(&g->lock, NULL);
        pthread_mutex_init(&g->rev_lock, NULL);
        pthread_mutex_init(&g->exp_lock, NULL);
        g->exp_last_seq = -1;
        g->store = o->store;
        if (g->store && (r = store_read(g->store, load_revoked_fn, g)) < 0) {
                snprintf(err, errlen,
                         "cannot load the token revocation list from '%s': %s (refusing to start: "
                         "revoked tokens would be accepted)",
                         store_path(g->store), strerror(-r));
                gate_free(g);
                return r;
        }
        r = audit_setup(g, o, err, errlen);
        if (r < 0) {
                gate_free(g);
                return r;
        }
        *ret = g;
        return 0;
}

int gate_reload(auth_gate *g, const gate_options *o, char *err, size_t errlen)
{
        struct gate_cfg *c = NULL, *old;
        int r = cfg_build(o, &c, err, errlen);

        if (r == 0 && (r = cfg_own_strings(c)) < 0)
                cfg_destroy(c);
        if (r < 0)
                return r;
        pthread_mutex_lock(&g->exp_lock);
        r = audit_export_options_check(&o->head_export, err, errlen);
        if (r == 0)
                r = export_set(g, &o->head_export);
        if (g->exp_started)
                pthread_cond_signal(&g->exp_wake);
        pthread_mutex_unlock(&g->exp_lock);
        if (r < 0) {
                cfg_destroy(c);
                return r;
        }
        pthread_rwlock_wrlock(&g->lock);
        old = g->cfg;
        g->cfg = c;
        ratelimit_set(g->rl, c->rl_per_minute, c->rl_burst);
        pthread_rwlock_unlock(&g->lock);
        cfg_destroy(old);
        return 0;
}

auth_gate *gate_free(auth_gate *g)
{
        if (!g)
                return NULL;
        if (g->exp_started) {
                char err[512];
                pthread_mutex_lock(&g->exp_lock);
                g->exp_stop = true;
                pthread_cond_signal(&g->exp_wake);
                pthread_mutex_unlock(&g->exp_lock);
                pthread_join(g->exp_thread, NULL);
                /* the last head, as the daemon stops */
                pthread_mutex_lock(&g->exp_lock);
                if (export_locked(g, false, err, sizeof(err)) < 0)
                        log_warn("security", "failed to export the audit head: %s", err);
                pthread_mutex_unlock(&g->exp_lock);
                pthread_cond_destroy(&g->exp_wake);
        }
        pthread_mutex_destroy(&g->exp_lock);
        free(g->exp_url);
        explicit_bzero(&g->akey, sizeof(g->akey));
        cfg_destroy(g->cfg);
        ratelimit_free(g->rl);
        pthread_rwlock_destroy(&g->lock);
        pthread_mutex_destroy(&g->rev_lock);
        rev_clear(g);
        free(g);
        return NULL;
}

struct store *gate_store(auth_gate *g)
{
        return g ? g->store : NULL;
}

void gate_describe(auth_gate *g, const char *tcp_url, const char *socket_path, bool tls, char *out,
                   size_t len)
{
        struct gate_cfg *c;
        const char *tcp = tcp_url && *tcp_url ? tcp_url : NULL;

        pthread_rwlock_rdlock(&g->lock);
        c = g->cfg;
        if (!tcp)
                snprintf(out, len,
                         "no TCP listener; API via unix socket %s (admin: root "
                         "and the admin group, others read-only)",
                         socket_path && *socket_path ? socket_path : "(none)");
        else if (c->pol.authn)
                snprintf(out, len,
                         "TCP %s%s with %s%s authentication, roles %s, allowlist %s, "
                         "rate limit %s, audit %s; /metrics %s",
                         tcp, tls ? " (TLS)" : " (plain HTTP)",
                         c->have_key ? auth_alg_name(c->key.alg) : "",
                         c->basic ? (c->have_key ? " JWT and web-config user" : "web-config user")
                                  : " JWT",
                         c->pol.authz ? "enforced" : "off (any valid token is admin)",
                         c->allow.n ? "on" : "off", c->rl ? "on" : "off", c->audit ? "on" : "off",
                         c->pol.metrics_public && !c->basic ? "public" : "needs read");
        else
                snprintf(out, len,
                         "TCP %s%s read-only without authentication%s; mutations via "
                         "unix socket %s",
                         tcp, tls ? " (TLS)" : "",
                         c->pol.inject_open ? " (except POST /api/v1/inject: simulated GPUs)" : "",
                         socket_path && *socket_path ? socket_path : "(none)");
        pthread_rwlock_unlock(&g->lock);
}

bool gate_accept_addr(auth_gate *g, const struct sockaddr *addr)
{
        uint8_t a[16];
        bool ok;

        if (!g)
                return true;
        if (cidr_from_sockaddr(addr, a) < 0)
                return false;
        pthread_rwlock_rdlock(&g->lock);
        ok = g->cfg->allow.n == 0 || cidr_list_match(&g->cfg->allow, a);
        pthread_rwlock_unlock(&g->lock);
        if (!ok) {
                char ip[64];
                log_warn("security", "refused connection from %s: not in allowed_ips",
                         cidr_addr_str(a, ip, sizeof(ip)));
        }
        return ok;
}

void gate_each_header(auth_gate *g, gate_header_fn fn, void *ctx)
{
        if (!g)
                return;
        pthread_rwlock_rdlock(&g->lock);
        for (size_t i = 0; i < g->cfg->n_hdr; i++)
                fn(ctx, g->cfg->hdr[i][0], g->cfg->hdr[i][1], true);
        pthread_rwlock_unlock(&g->lock);
}

void gate_xff_client(const uint8_t peer[16], const char *xff, const cidr_list *proxies,
                     uint8_t out[16])
{
        uint8_t cur[16];
        const char *end;

        memcpy(cur, peer, 16);
        if (!xff || !proxies || !cidr_list_match(proxies, cur)) {
                memcpy(out, cur, 16);
                return;
        }
        end = xff + strlen(xff);
        while (end > xff) {
                const char *start = end, *a, *z;
                uint8_t hop[16];
                while (start > xff && start[-1] != ',')
                        start--;
                a = start;
                z = end;
                while (a < z && (*a == ' ' || *a == '\t'))
                        a++;
                while (z > a && (z[-1] == ' ' || z[-1] == '\t'))
                        z--;
                if (cidr_addr_parse(a, (size_t)(z - a), hop) < 0)
                        break;
                memcpy(cur, hop, 16);
                if (!cidr_list_match(proxies, cur))
                        break;
                end = start > xff ? start - 1 : xff;
        }
        memcpy(out, cur, 16);
}

void gate_begin(gate_req *s)
{
        unsigned char rnd[16];

        memset(s, 0, sizeof(*s));
        if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd)) {
                uint64_t t = (uint64_t)time_mono_us() ^ (uint64_t)(uintptr_t)s;
                memcpy(rnd, &t, 8);
                memcpy(rnd + 8, &t, 8);
        }
        for (size_t i = 0; i < sizeof(rnd); i++)
                snprintf(s->request_id + 2 * i, 3, "%02x", rnd[i]);
        s->role = ROLE_NONE;
        snprintf(s->principal, sizeof(s->principal), "anonymous");
}

static bool in_admin_group(uid_t uid, gid_t gid, gid_t admin)
{
        struct passwd pw, *res = NULL;
        char pwbuf[4096];
        gid_t groups[256];
        int n = (int)ARRAY_SIZE(groups);

        if (admin == (gid_t)-1)
                return false;
        if (gid == admin)
                return true;
        if (getpwuid_r(uid, &pw, pwbuf, sizeof(pwbuf), &res) != 0 || !res)
                return false;
        if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) < 0)
                return false;
        for (int i = 0; i < n; i++)
                if (groups[i] == admin)
                        return true;
        return false;
}

static void resolve_peer(const gate_input *in, gate_req *s, const struct gate_cfg *c)
{
        s->peer_checked = true;
        s->is_unix = in->is_unix;
        if (s->is_unix) {
                snprintf(s->source_ip, sizeof(s->source_ip), "unix");
                s->role = ROLE_VIEWER;
                if (in->peer_cred_ok) {
                        snprintf(s->principal, sizeof(s->principal), "uid:%u", (unsigned)in->uid);
                        if (in->uid == 0 || in->uid == geteuid() ||
                            in_admin_group(in->uid, in->gid, c->admin_gid))
                                s->role = ROLE_ADMIN;
                } else {
                        snprintf(s->principal, sizeof(s->principal), "uid:?");
                }
                s->authenticated = true;
                return;
        }
        if (c->proxies.n)
                gate_xff_client(in->peer, in->forwarded_for, &c->proxies, s->addr);
        else
                memcpy(s->addr, in->peer, 16);
        cidr_addr_str(s->addr, s->source_ip, sizeof(s->source_ip));
}

static void audit_req(auth_gate *g, const gate_input *in, gate_req *s, unsigned status,
                      const char *event, const char *detail)
{
        char *d = NULL;

        if (s->audited)
                return;
        s->audited = true;
        /* include_sensitive_data: the body of a mutation, scrubbed and capped (webconfig.h) */
        if (s->audit_body && strcmp(in->method, "GET") && strcmp(in->method, "HEAD") && in->body &&
            in->body_len) {
                size_t n = AUDIT_BODY_MAX + 256 + strlen(detail);
                char *sb = malloc(AUDIT_BODY_MAX + 64);
                d = malloc(n);
                if (sb && d) {
                        audit_body_scrub(in->body, in->body_len, sb, AUDIT_BODY_MAX + 64);
                        snprintf(d, n, "%s%sbody=%s", detail, *detail ? "; " : "", sb);
                        detail = d;
                }
                free(sb);
        }
        gate_audit(g, s->principal, auth_role_name(s->role), s->source_ip, in->method, in->path,
                   (int)status, event, detail, s->request_id);
        free(d);
}

/* s for a log line: bytes outside printable ASCII as \xNN (a probing client chooses the path). */
static const char *log_safe(const char *s, char *buf, size_t len)
{
        size_t o = 0;

        for (; s && *s && o + 5 < len; s++) {
                unsigned char c = (unsigned char)*s;
                if (c >= 0x20 && c < 0x7f && c != '\\')
                        buf[o++] = (char)c;
                else
                        o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
        }
        buf[o] = '\0';
        return buf;
}

/* Fill a denial; the server replies and gate_done audits it. */
static void deny(const gate_input *in, const gate_req *s, gate_verdict *v, unsigned status,
                 const char *event, const char *detail, unsigned retry_after)
{
        v->allow = false;
        v->status = status;
        v->err = status == 401 ? -EPERM : status == 403 ? -EACCES : status == 503 ? -EAGAIN : 0;
        snprintf(v->event, sizeof(v->event), "%s", event);
        snprintf(v->reason, sizeof(v->reason), "%s", detail);
        v->retry_after = status == 429 ? retry_after : 0;
        if (status == 401)
                snprintf(v->message, sizeof(v->message), "authentication required");
        else if (status == 429 && retry_after)
                snprintf(v->message, sizeof(v->message), "too many requests; retry in %u s",
                         retry_after);
        else if (status == 429)
                snprintf(v->message, sizeof(v->message), "Too Many Requests");
        else if (status == 503)
                snprintf(v->message, sizeof(v->message),
                         "busy verifying other credentials; retry shortly");
        else
                snprintf(v->message, sizeof(v->message), "forbidden: %s", detail);
        char path[256];
        log_info("security", "denied %s %s from %s (%s): %u %s", in->method,
                 log_safe(in->path, path, sizeof(path)), s->source_ip, s->principal, status, event);
}

/* The web-config rate_limit bucket (golang.org/x/time/rate's Allow): false when empty, with
 * *retry the seconds until the next token. */
static bool web_rate_take(struct gate_cfg *c, int64_t now_us, unsigned *retry)
{
        bool ok;

        pthread_mutex_lock(&c->wrl_lock);
        if (now_us > c->wrl_last_us) {
                c->wrl_tokens += (double)(now_us - c->wrl_last_us) / (double)c->wrl_interval_us;
                if (c->wrl_tokens > c->wrl_burst)
                        c->wrl_tokens = c->wrl_burst;
                c->wrl_last_us = now_us;
        }
        ok = c->wrl_tokens >= 1.0;
        if (ok)
                c->wrl_tokens -= 1.0;
        *retry =
            c->wrl_burst ? (unsigned)((c->wrl_interval_us * (1.0 - c->wrl_tokens)) / 1e6) + 1 : 0;
        pthread_mutex_unlock(&c->wrl_lock);
        return ok;
}

void gate_check(auth_gate *g, const gate_input *in, gate_req *s, gate_verdict *v)
{
        struct gate_cfg *c;
        const char *authz_hdr, *reason = NULL;
        unsigned retry = 0;
        int64_t now_us = time_mono_us();
        int decision;
        char key[RATELIMIT_KEY_MAX];
        enum auth_perm perm = in->perm;

        memset(v, 0, sizeof(*v));
        v->allow = true;
        if (!g)
                return;
        pthread_rwlock_rdlock(&g->lock);
        c = g->cfg;
        s->audit_body = c->audit_bodies;
        v->challenge = c->basic != NULL;
        if (!s->peer_checked)
                resolve_peer(in, s, c);
        /* Proxied clients are held to the allowlist too. */
        if (!s->is_unix && c->allow.n && !cidr_list_match(&c->allow, s->addr)) {
                deny(in, s, v, 403, "ip_denied", "address not allowed", 0);
                goto out;
        }
        /* The TLS layer only asks for a client certificate: enforce it here. */
        if (!s->is_unix && !in->tls_client_ok) {
                deny(in, s, v, 403, "client_cert_refused", "a valid client certificate is required",
                     0);
                goto out;
        }
        /* Probes (/healthz, /readyz) are never rate limited: a limit must not fail liveness. */
        if (!s->is_unix && c->wrl_interval_us && perm != PERM_OPEN &&
            !web_rate_take(c, now_us, &retry)) {
                deny(in, s, v, 429, "rate_limited", "web-config rate_limit", retry);
                goto out;
        }
        if (!s->is_unix && c->rl && perm != PERM_OPEN) {
                snprintf(key, sizeof(key), "ip:%.64s", s->source_ip);
                if (!ratelimit_take(g->rl, key, now_us, &retry)) {
                        deny(in, s, v, 429, "rate_limited", "per-address limit", retry);
                        goto out;
                }
        }
        authz_hdr = s->is_unix ? NULL : in->authorization;
        if (authz_hdr && c->basic && !strncasecmp(authz_hdr, "Basic", 5) &&
            (authz_hdr[5] == ' ' || authz_hdr[5] == '\t')) {
                /* web-config basic_auth_users: bcrypt (cached on success), then the same
                 * decision, audit and per-principal limit as a JWT principal */
                char user[WEBCONFIG_MAX_USER];
                int br = basic_auth_check(c->basic, authz_hdr, now_us, user, sizeof(user), &reason);
                if (br == 0) {
                        reason = NULL;
                        s->authenticated = true;
                        s->role = c->web_role;
                        snprintf(s->principal, sizeof(s->principal), "basic:%s", user);
                } else if (br == -EBUSY) {
                        deny(in, s, v, 503, "auth_busy",
                             "every bcrypt slot busy; credentials not checked", 0);
                        goto out;
                } else {
                        char ev[64];
                        snprintf(ev, sizeof(ev), "auth_failure:%s", reason);
                        deny(in, s, v, 401, ev, reason, 0);
                        goto out;
                }
        } else if (authz_hdr && c->have_key) {
                const char *tok;
                size_t toklen;
                auth_claims cl;
                if (auth_parse_bearer(authz_hdr, &tok, &toklen) < 0) {
                        reason = "not_bearer";
                } else if (auth_jwt_verify(&c->key, tok, toklen, time_real_us() / 1000000, &cl,
                                           &reason) == 0) {
                        if (cl.jti[0] && revoked_token(g, cl.jti, cl.exp)) {
                                reason = "revoked";
                        } else {
                                s->authenticated = true;
                                s->role = cl.role;
                                snprintf(s->principal, sizeof(s->principal), "jwt:%s", cl.sub);
                        }
                }
                if (reason) {
                        char ev[64];
                        snprintf(ev, sizeof(ev), "auth_failure:%s", reason);
                        deny(in, s, v, 401, ev, reason, 0);
                        goto out;
                }
        }
        /* With basic_auth_users every TCP route but the probes needs credentials, /metrics
         * included, as on node_exporter. */
        if (c->basic && !s->is_unix && !s->authenticated && perm != PERM_OPEN) {
                deny(in, s, v, 401, "auth_failure:missing", "no credentials", 0);
                goto out;
        }
        decision = auth_decide(&c->pol, s->is_unix ? AUTH_UNIX : AUTH_TCP, s->role,
                               s->authenticated, perm, in->is_inject);
        if (decision) {
                char why[96];
                if (decision == 401)
                        snprintf(why, sizeof(why), "no credentials");
                else if (!c->pol.authn && !s->is_unix)
                        snprintf(why, sizeof(why),
                                 "TCP is read-only without authentication; use the unix socket");
                else
                        snprintf(why, sizeof(why), "role %s lacks permission %s",
                                 auth_role_name(s->role), auth_perm_name(perm));
                deny(in, s, v, (unsigned)decision,
                     decision == 401 ? "auth_failure:missing" : "forbidden", why, 0);
                goto out;
        }
        if (!s->is_unix && c->rl && s->authenticated && perm != PERM_OPEN) {
                snprintf(key, sizeof(key), "p:%.90s", s->principal);
                if (!ratelimit_take(g->rl, key, now_us, &retry))
                        deny(in, s, v, 429, "rate_limited", "per-principal limit", retry);
        }
out:
        pthread_rwlock_unlock(&g->lock);
}

void gate_done(auth_gate *g, const gate_input *in, gate_req *s, unsigned status,
               const gate_verdict *v)
{
        if (!g || s->audited)
                return;
        if (v && !v->allow) {
                audit_req(g, in, s, status, v->event, v->reason);
                return;
        }
        if (!strcmp(in->method, "GET") || !strcmp(in->method, "HEAD"))
                return;
        audit_req(g, in, s, status, "request", "");
}

int gate_audit(auth_gate *g, const char *principal, const char *role, const char *ip,
               const char *method, const char *route, int status, const char *event,
               const char *detail, const char *request_id)
{
        audit_record rec = {
            .ts = time_real_us(),
            .request_id = request_id ? request_id : "",
            .principal = principal,
            .role = role,
            .source_ip = ip,
            .method = method,
            .route = route,
            .status = status,
            .event = event,
            .detail = detail,
        };
        bool on;
        int r;

        if (!g)
                return 0;
        pthread_rwlock_rdlock(&g->lock);
        on = g->cfg->audit;
        pthread_rwlock_unlock(&g->lock);
        if (!on || !g->store)
                return 0;
        r = store_write(g->store, audit_append_fn, &rec);
        if (r < 0)
                log_error("security", "failed to write an audit record (%s %s): %s", method, route,
                          strerror(-r));
        return r;
}

struct revoke_ctx {
        const char *jti, *by;
        int64_t exp;
};

static int revoke_fn(sqlite3 *db, void *ctx)
{
        struct revoke_ctx *rc = ctx;
        sqlite3_stmt *st = NULL;
        int r;

        if (sqlite3_prepare_v2(db,
                               "INSERT INTO auth_revoked (jti, expires, revoked, revoked_by) "
                               "VALUES (vigil_seal(?1, 'auth_revoked.jti'), ?2, ?3, "
                               "vigil_seal(?4, 'auth_revoked.revoked_by')) ON CONFLICT (jti) DO "
                               "UPDATE SET expires = max(expires, excluded.expires)",
                               -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_text(st, 1, rc->jti, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, rc->exp);
        sqlite3_bind_int64(st, 3, time_real_us() / 1000000);
        sqlite3_bind_text(st, 4, rc->by, -1, SQLITE_STATIC);
        r = sqlite3_step(st);
        sqlite3_finalize(st);
        return r == SQLITE_DONE ? 0 : store_errno(r);
}

/* The expiry a revocation is kept until: the token's exp as given, unless that is already past
 * (then the token's real expiry is unknown: REVOKE_KEEP_UNKNOWN_S). */
static int64_t revoke_expiry(int64_t exp, int64_t now)
{
        return exp < now ? now + REVOKE_KEEP_UNKNOWN_S : exp;
}

int gate_revoke(auth_gate *g, const char *jti, int64_t exp, const char *by)
{
        int64_t now = time_real_us() / 1000000;
        struct revoke_ctx rc = {.jti = jti, .by = by ? by : "", .exp = revoke_expiry(exp, now)};
        int r, w = 0;

        if (!g || !jti || !*jti || strlen(jti) >= AUTH_MAX_JTI)
                return -EINVAL;
        /* Enforced first, then persisted: a store failure still refuses the token until the
         * daemon stops, and the caller hears that it did not persist. */
        pthread_mutex_lock(&g->rev_lock);
        r = rev_put(g, jti, rc.exp);
        pthread_mutex_unlock(&g->rev_lock);
        if (g->store)
                w = store_write(g->store, revoke_fn, &rc);
        return r < 0 ? r : w;
}

bool gate_is_revoked(auth_gate *g, const char *jti)
{
        bool found;

        if (!g || !jti)
                return false;
        pthread_mutex_lock(&g->rev_lock);
        found = rev_find(g, jti) != NULL;
        pthread_mutex_unlock(&g->rev_lock);
        return found;
}

/* A revoked token was presented: its own exp is known now. If the revocation would lapse before
 * the token does (a wrong exp at revoke time), extend it to the token's exp. */
static bool revoked_token(auth_gate *g, const char *jti, int64_t token_exp)
{
        rev_entry *e;
        bool found, extend = false;

        pthread_mutex_lock(&g->rev_lock);
        e = rev_find(g, jti);
        found = e != NULL;
        if (e && token_exp > e->expires) {
                e->expires = token_exp;
                extend = true;
        }
        pthread_mutex_unlock(&g->rev_lock);
        if (extend && g->store) {
                struct revoke_ctx rc = {.jti = jti, .by = "", .exp = token_exp};
                int r = store_write(g->store, revoke_fn, &rc);
                if (r < 0)
                        log_error("security", "failed to extend the revocation of a token: %s",
                                  strerror(-r));
        }
        return found;
}

int64_t gate_prune(auth_gate *g)
{
        audit_prune_req req = {0};
        unsigned days;
        int r;

        pthread_rwlock_rdlock(&g->lock);
        days = g->cfg->retention_days;
        pthread_rwlock_unlock(&g->lock);
        if (!g->store || days == 0)
                return 0;
        req.before = time_real_us() - (int64_t)days * 86400 * 1000000;
        req.key = &g->akey;
        r = store_write(g->store, audit_prune_fn, &req);
        return r < 0 ? r : req.removed;
}

int gate_audit_head_export(auth_gate *g, char *err, size_t errlen)
{
        int r;

        if (!g) {
                err[0] = '\0';
                return 0;
        }
        pthread_mutex_lock(&g->exp_lock);
        r = export_locked(g, true, err, errlen);
        pthread_mutex_unlock(&g->exp_lock);
        return r;
}

const audit_key *gate_audit_key(auth_gate *g)
{
        return g ? &g->akey : NULL;
}

int gate_audit_reload(auth_gate *g, bool ok, const char *source, const char *reason)
{
        char detail[512];

        snprintf(detail, sizeof(detail), "%s%s%s", source && *source ? source : "reload",
                 ok ? "" : ": ", ok ? "" : (reason && *reason ? reason : "refused"));
        return gate_audit(g, "vigild", "admin", "local", "-", "config", ok ? 200 : 400,
                          ok ? "config_reload" : "config_reload_refused", detail, "");
}

struct verify_ctx {
        const audit_verify_opts *o; /* what to check */
        audit_verify_result *res;   /* out */
};

static int verify_fn(sqlite3 *db, void *ctx)
{
        struct verify_ctx *v = ctx;

        return audit_verify_ex(db, v->o, v->res);
}

int gate_audit_verify(auth_gate *g, audit_verify_result *res)
{
        audit_head head;
        audit_verify_opts o = {0};
        char mac[AUDIT_HASH_HEX], want[AUDIT_HASH_HEX];
        struct verify_ctx v = {.o = &o, .res = res};

        memset(res, 0, sizeof(*res));
        if (!g || !g->store) {
                snprintf(res->reason, sizeof(res->reason), "no store");
                return -EIO;
        }
        if (g->akey.set) {
                o.key = &g->akey;
                if (audit_head_read(g->sidecar, &head, mac) == 0) {
                        if (audit_mac(&g->akey, "vigil-audit-head", head.seq, head.hash, want) <
                                0 ||
                            strcmp(mac, want) != 0) {
                                snprintf(res->reason, sizeof(res->reason),
                                         "the head in '%.120s' is not authenticated by the audit "
                                         "key (forged or replaced)",
                                         g->sidecar);
                                return -EBADMSG;
                        }
                        o.head = &head;
                }
        }
        return store_read(g->store, verify_fn, &v);
}
