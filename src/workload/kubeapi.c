/* kubeapi.c — the labels of the pods on the GPUs, from the Kubernetes API server, as
 * dcgm-exporter's --kubernetes-enable-pod-labels reads them: GET /api/v1/namespaces/NS/pods/NAME
 * with the service account's bearer token, the server's certificate checked against the CA file.
 * libcurl is loaded at the first request (common/curl_dl.h), so a daemon without pod labels never
 * maps it. Requests run on the workload reader thread only (kubeapi_refresh), one pod at a time,
 * each within the kubelet timeout.
 *
 * The cache holds one entry per pod (namespace/name) found on a GPU at the last read, with the
 * UID the API server gave: entries of pods no longer found are dropped at the next read, a pod
 * whose UID changed (its name reused) is fetched again, and a lookup whose UID disagrees gets
 * nothing. A failed request leaves its pod without labels (never the old ones) until a retry
 * (every KUBEAPI_RETRY_US) succeeds; an answered pod is fetched again after the refresh period. */
#include "workload-internal.h"
#include "workload.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/curl_dl.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"

#define KUBEAPI_RETRY_US  (10 * USEC_PER_SEC) /* a failed pod is asked again after this long */
#define KUBEAPI_BODY_MAX  (4u << 20)          /* bytes of one answer (a Pod is ~10-50 KiB) */
#define KUBEAPI_TOKEN_MAX (64u << 10)         /* bytes of the token file */

/* ---- label names and the allowlist ---- */

int workload_pod_label_name(const char *key, char *out, size_t len)
{
        size_t k = 0;

        if (!key || !key[0] || len < 2)
                return -EINVAL;
        if (isdigit((unsigned char)key[0]))
                out[k++] = '_';
        for (const char *s = key; *s; s++) {
                unsigned char c = (unsigned char)*s;
                if (k + 1 >= len)
                        return -ENAMETOOLONG;
                out[k++] = (isascii(c) && (isalnum(c) || c == '_')) ? (char)c : '_';
        }
        out[k] = '\0';
        return 0;
}

int kube_allow_compile(const char *list, kube_allow *out, char *err, size_t errlen)
{
        size_t n = 0, cap = 0;
        regex_t *re = NULL;
        const char *s = list ? list : "";

        memset(out, 0, sizeof(*out));
        for (const char *p = s; *p; p++)
                if (*p == ',')
                        cap++;
        cap += 1;
        if (!*s)
                return 0;
        re = calloc(cap, sizeof(*re));
        if (!re) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        while (*s) {
                const char *e = strchrnul(s, ',');
                char one[1024], why[256];
                int r;
                if ((size_t)(e - s) >= sizeof(one)) {
                        snprintf(err, errlen, "bad regex '%.64s…': longer than %zu bytes", s,
                                 sizeof(one) - 1);
                        goto fail;
                }
                snprintf(one, sizeof(one), "%.*s", (int)(e - s), s);
                r = regcomp(&re[n], one, REG_EXTENDED | REG_NOSUB);
                if (r != 0) {
                        regerror(r, &re[n], why, sizeof(why));
                        snprintf(err, errlen, "bad regex '%s': %s", one, why);
                        goto fail;
                }
                n++;
                s = *e ? e + 1 : e;
        }
        out->re = re;
        out->n = n;
        return 0;
fail:
        for (size_t i = 0; i < n; i++)
                regfree(&re[i]);
        free(re);
        return -EINVAL;
}

bool kube_allow_match(const kube_allow *a, const char *key)
{
        if (!a->n)
                return true;
        for (size_t i = 0; i < a->n; i++)
                if (regexec(&a->re[i], key, 0, NULL, 0) == 0)
                        return true;
        return false;
}

void kube_allow_free(kube_allow *a)
{
        for (size_t i = 0; i < a->n; i++)
                regfree(&a->re[i]);
        free(a->re);
        memset(a, 0, sizeof(*a));
}

int workload_pod_label_allowlist_check(const char *list, char *why, size_t whylen)
{
        kube_allow a;
        int r = kube_allow_compile(list, &a, why, whylen);

        if (r == 0)
                kube_allow_free(&a);
        return r;
}

bool workload_pod_label_allowed(const char *list, const char *key)
{
        kube_allow a;
        char err[64];
        bool ok;

        if (kube_allow_compile(list, &a, err, sizeof(err)) < 0)
                return false;
        ok = kube_allow_match(&a, key);
        kube_allow_free(&a);
        return ok;
}

/* ---- the Pod object ---- */

int kubeapi_parse_pod(const char *json, size_t len, const kube_allow *allow, char *uid,
                      size_t uidlen, workload_pod_label *out, size_t max, size_t *n,
                      size_t *left_out, char *err, size_t errlen)
{
        json_error_t je;
        json_t *root, *md, *labels, *v, *u;
        const char *key;
        size_t k = 0, left = 0;

        root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
        if (!root) {
                snprintf(err, errlen, "the answer is not JSON: %s (line %d)", je.text, je.line);
                return -EBADMSG;
        }
        md = json_object_get(root, "metadata");
        u = json_object_get(md, "uid");
        if (!json_is_object(md) || !json_is_string(u) ||
            !json_is_string(json_object_get(root, "kind")) ||
            strcmp(json_string_value(json_object_get(root, "kind")), "Pod")) {
                json_decref(root);
                snprintf(err, errlen, "the answer is not a Pod with metadata.uid");
                return -EBADMSG;
        }
        labels = json_object_get(md, "labels");
        if (labels && !json_is_object(labels) && !json_is_null(labels)) {
                json_decref(root);
                snprintf(err, errlen, "metadata.labels is not an object");
                return -EBADMSG;
        }
        json_object_foreach(labels, key, v)
        {
                char name[WORKLOAD_POD_LABEL_NAME_MAX];
                bool dup = false;
                if (!json_is_string(v)) {
                        snprintf(err, errlen, "label '%.64s' is not a string", key);
                        json_decref(root); /* key lives in root */
                        return -EBADMSG;
                }
                if (!kube_allow_match(allow, key))
                        continue;
                if (k >= max || workload_pod_label_name(key, name, sizeof(name)) < 0 ||
                    json_string_length(v) >= WORKLOAD_POD_LABEL_VALUE_MAX ||
                    strlen(json_string_value(v)) != json_string_length(v)) {
                        left++;
                        continue;
                }
                for (size_t i = 0; i < k; i++)
                        if (!strcmp(out[i].name, name))
                                dup = true;
                if (dup) { /* "a.b" and "a_b": the first one keeps the name */
                        left++;
                        continue;
                }
                snprintf(out[k].name, sizeof(out[k].name), "%s", name);
                snprintf(out[k].value, sizeof(out[k].value), "%s", json_string_value(v));
                k++;
        }
        snprintf(uid, uidlen, "%s", json_string_value(u));
        json_decref(root);
        *n = k;
        if (left_out)
                *left_out = left;
        return 0;
}

/* ---- the client and its cache ---- */

typedef struct kube_entry {
        kube_pod_ref ref;        /* ns, pod; uid as the API server gave it ("" until answered) */
        bool seen;               /* found at the current read */
        bool ok;                 /* labels hold the last answer */
        bool fetched;            /* asked at least once */
        int64_t fetched_us;      /* monotonic usec of the last request */
        workload_pod_label *lab; /* WORKLOAD_POD_LABELS_MAX, n used */
        size_t n;
        int logged;        /* the failure last logged for this pod (-errno); 0 after an answer */
        char seen_uid[80]; /* the UID the reads last showed for the name ("" = not yet) */
} kube_entry;

struct kubeapi {
        char *url;        /* "https://host:port", no trailing '/' */
        char *token_file; /* owned */
        char *ca_file;    /* owned */
        int64_t timeout_us;
        int64_t refresh_us;
        kube_allow allow;
        pthread_mutex_t lock; /* guards entries, n, st */
        kube_entry *entries;  /* KUBEAPI_PODS_MAX */
        size_t n;
        workload_kubeapi st;
        int64_t down_until_us; /* reader thread: no request before (monotonic usec) */
};

int kubeapi_new(const workload_options *opt, kubeapi **ret, char *err, size_t errlen)
{
        _cleanup_free_ kubeapi *k = calloc(1, sizeof(*k));
        char url[512];
        int r;

        if (!k)
                return -ENOMEM;
        if (opt->kube_api_url && opt->kube_api_url[0]) {
                size_t l = strlen(opt->kube_api_url);
                while (l > 1 && opt->kube_api_url[l - 1] == '/')
                        l--;
                snprintf(url, sizeof(url), "%.*s", (int)l, opt->kube_api_url);
        } else {
                const char *h = getenv("KUBERNETES_SERVICE_HOST");
                const char *p = getenv("KUBERNETES_SERVICE_PORT");
                if (!h || !h[0] || !p || !p[0]) {
                        snprintf(err, errlen,
                                 "workload.kube_api_url is not set and KUBERNETES_SERVICE_HOST / "
                                 "KUBERNETES_SERVICE_PORT are not in the environment");
                        return -EINVAL;
                }
                /* as client-go's InClusterConfig: host:port, an IPv6 address in brackets */
                snprintf(url, sizeof(url), strchr(h, ':') ? "https://[%s]:%s" : "https://%s:%s", h,
                         p);
        }
        r = kube_allow_compile(opt->pod_label_allowlist, &k->allow, err, errlen);
        if (r < 0)
                return r;
        k->url = strdup(url);
        k->token_file = strdup(opt->kube_token_file ? opt->kube_token_file : "");
        k->ca_file = strdup(opt->kube_ca_file ? opt->kube_ca_file : "");
        k->entries = calloc(KUBEAPI_PODS_MAX, sizeof(*k->entries));
        if (!k->url || !k->token_file || !k->ca_file || !k->entries) {
                free(k->url);
                free(k->token_file);
                free(k->ca_file);
                free(k->entries);
                kube_allow_free(&k->allow);
                return -ENOMEM;
        }
        k->timeout_us = opt->kubelet_timeout_us > 0 ? opt->kubelet_timeout_us : 2 * USEC_PER_SEC;
        k->refresh_us =
            opt->pod_labels_refresh_us > 0 ? opt->pod_labels_refresh_us : 5 * 60 * USEC_PER_SEC;
        k->st.enabled = true;
        pthread_mutex_init(&k->lock, NULL);
        *ret = TAKE_PTR(k);
        return 0;
}

kubeapi *kubeapi_free(kubeapi *k)
{
        if (!k)
                return NULL;
        for (size_t i = 0; i < k->n; i++)
                free(k->entries[i].lab);
        free(k->entries);
        free(k->url);
        free(k->token_file);
        free(k->ca_file);
        kube_allow_free(&k->allow);
        pthread_mutex_destroy(&k->lock);
        free(k);
        return NULL;
}

typedef struct body {
        char *data;
        size_t len;
        bool too_big;
} body;

static size_t on_data(char *p, size_t size, size_t nmemb, void *userdata)
{
        body *b = userdata;
        size_t n = size * nmemb;
        char *nd;

        if (b->len + n > KUBEAPI_BODY_MAX) {
                b->too_big = true;
                return 0; /* aborts the transfer */
        }
        nd = realloc(b->data, b->len + n + 1);
        if (!nd)
                return 0;
        memcpy(nd + b->len, p, n);
        b->data = nd;
        b->len += n;
        b->data[b->len] = '\0';
        return n;
}

/* GET the pod; on an answer (200) parse it into the labels. Returns 0 (200), -ENOENT (404: no
 * such pod), -EACCES (401/403), -EPROTO (another status), -EBADMSG (bad Pod), -ELIBACC (no
 * libcurl), -EIO (transport, TLS, timeout), -ENOKEY (the token file unreadable or empty); the
 * reason in err. */
static int fetch(kubeapi *k, const kube_pod_ref *ref, char *uid, size_t uidlen,
                 workload_pod_label *lab, size_t *n, char *err, size_t errlen)
{
        const curl_dl *cu;
        _cleanup_free_ char *token = NULL;
        char *ens = NULL, *epod = NULL;
        size_t tlen = 0;
        struct curl_slist *hl = NULL, *nl;
        body b = {0};
        char url[1024], ebuf[CURL_ERROR_SIZE] = "";
        _cleanup_free_ char *auth = NULL;
        size_t alen;
        long code = 0;
        CURL *h;
        CURLcode cr;
        int r;

        r = curl_dl_get(&cu, err, errlen);
        if (r < 0)
                return r;
        r = file_read_all(k->token_file, KUBEAPI_TOKEN_MAX, &token, &tlen);
        if (r < 0) {
                file_read_strerror(r, "the service account token", k->token_file, KUBEAPI_TOKEN_MAX,
                                   err, errlen);
                return -ENOKEY; /* not -ENOENT: that is a pod the API server does not know */
        }
        while (tlen &&
               (token[tlen - 1] == '\n' || token[tlen - 1] == '\r' || token[tlen - 1] == ' '))
                token[--tlen] = '\0';
        if (!tlen || strpbrk(token, "\r\n")) {
                snprintf(err, errlen, "the token file '%s' is empty or holds several lines",
                         k->token_file);
                explicit_bzero(token, tlen);
                return -ENOKEY;
        }
        alen = tlen + 32;
        auth = malloc(alen);
        h = cu->easy_init();
        if (!auth || !h) {
                explicit_bzero(token, tlen);
                if (h)
                        cu->easy_cleanup(h);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        snprintf(auth, alen, "Authorization: Bearer %s", token);
        explicit_bzero(token, tlen);
        ens = cu->easy_escape(h, ref->ns, 0);
        epod = cu->easy_escape(h, ref->pod, 0);
        if (!ens || !epod) {
                r = -ENOMEM;
                snprintf(err, errlen, "out of memory");
                goto out;
        }
        if ((size_t)snprintf(url, sizeof(url), "%s/api/v1/namespaces/%s/pods/%s", k->url, ens,
                             epod) >= sizeof(url)) {
                r = -ENAMETOOLONG;
                snprintf(err, errlen, "the pod's URL is longer than %zu bytes", sizeof(url) - 1);
                goto out;
        }
        nl = cu->slist_append(hl, auth);
        if (nl)
                hl = nl;
        nl = nl ? cu->slist_append(hl, "Accept: application/json") : NULL;
        if (!nl) {
                r = -ENOMEM;
                snprintf(err, errlen, "out of memory");
                goto out;
        }
        hl = nl;
        cu->easy_setopt(h, CURLOPT_URL, url);
        cu->easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
        cu->easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        cu->easy_setopt(h, CURLOPT_HTTPHEADER, hl);
        cu->easy_setopt(h, CURLOPT_CAINFO, k->ca_file);
        cu->easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
        cu->easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
        cu->easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(k->timeout_us / 1000));
        cu->easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(k->timeout_us / 1000));
        cu->easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
        cu->easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
        cu->easy_setopt(h, CURLOPT_WRITEDATA, &b);
        cr = cu->easy_perform(h);
        if (cr != CURLE_OK) {
                r = -EIO;
                if (b.too_big)
                        snprintf(err, errlen, "%.100s: the answer is larger than %u bytes", k->url,
                                 KUBEAPI_BODY_MAX);
                else
                        snprintf(err, errlen, "%.100s: %.120s", k->url,
                                 ebuf[0] ? ebuf : cu->easy_strerror(cr));
                goto out;
        }
        cu->easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        if (code == 200) {
                char why[200];
                r = kubeapi_parse_pod(b.data ? b.data : "", b.len, &k->allow, uid, uidlen, lab,
                                      WORKLOAD_POD_LABELS_MAX, n, NULL, why, sizeof(why));
                if (r < 0)
                        snprintf(err, errlen, "%.100s: %.140s", k->url, why);
        } else {
                r = code == 404 ? -ENOENT : code == 401 || code == 403 ? -EACCES : -EPROTO;
                snprintf(err, errlen, "%.100s: HTTP %ld%s", k->url, code,
                         code == 403   ? " (the service account may not get pods: RBAC)"
                         : code == 401 ? " (the token was refused)"
                                       : "");
        }
out:
        if (ens)
                cu->free(ens);
        if (epod)
                cu->free(epod);
        cu->slist_free_all(hl);
        cu->easy_cleanup(h);
        explicit_bzero(auth, alen);
        free(b.data);
        return r;
}

static kube_entry *find(kubeapi *k, const char *ns, const char *pod)
{
        for (size_t i = 0; i < k->n; i++)
                if (!strcmp(k->entries[i].ref.ns, ns) && !strcmp(k->entries[i].ref.pod, pod))
                        return &k->entries[i];
        return NULL;
}

void kubeapi_refresh(kubeapi *k, const kube_pod_ref *pods, size_t n)
{
        int64_t now = time_mono_us();
        kube_pod_ref *due;
        size_t ndue = 0, asked = 0, answered = 0;

        if (!k)
                return;
        due = calloc(n ? n : 1, sizeof(*due));
        if (!due)
                return;
        pthread_mutex_lock(&k->lock);
        for (size_t i = 0; i < k->n; i++)
                k->entries[i].seen = false;
        for (size_t i = 0; i < n; i++) {
                kube_entry *e = find(k, pods[i].ns, pods[i].pod);
                if (!e && k->n < KUBEAPI_PODS_MAX) {
                        e = &k->entries[k->n];
                        memset(e, 0, sizeof(*e));
                        e->lab = calloc(WORKLOAD_POD_LABELS_MAX, sizeof(*e->lab));
                        if (!e->lab)
                                continue;
                        e->ref = pods[i];
                        e->ref.uid[0] = '\0';
                        k->n++;
                }
                if (!e || e->seen)
                        continue;
                e->seen = true;
                if (pods[i].uid[0] && strcmp(e->seen_uid, pods[i].uid)) {
                        /* a new pod under the name on this node (or its UID seen first now):
                         * ask at once. An answer for another UID is not shown (kubeapi_lookup)
                         * and, the UID here unchanged, asked again only at the next refresh. */
                        if (e->seen_uid[0]) {
                                e->ok = false;
                                e->n = 0;
                                e->fetched = false;
                        }
                        snprintf(e->seen_uid, sizeof(e->seen_uid), "%s", pods[i].uid);
                }
                if (!e->fetched ||
                    now - e->fetched_us >= (e->ok ? k->refresh_us : KUBEAPI_RETRY_US))
                        due[ndue++] = e->ref;
        }
        for (size_t i = 0; i < k->n;) { /* pods gone: dropped */
                if (k->entries[i].seen) {
                        i++;
                        continue;
                }
                free(k->entries[i].lab);
                k->entries[i] = k->entries[--k->n];
        }
        k->st.pods = k->n;
        pthread_mutex_unlock(&k->lock);

        /* the API server unreachable: one timeout per KUBEAPI_RETRY_US at most, not one per pod
         * per read (the reader thread must not fall behind the reads) */
        if (now < k->down_until_us)
                ndue = 0;
        for (size_t i = 0; i < ndue; i++) {
                workload_pod_label lab[WORKLOAD_POD_LABELS_MAX];
                char uid[80] = "", err[256] = "";
                size_t nl = 0;
                int r = fetch(k, &due[i], uid, sizeof(uid), lab, &nl, err, sizeof(err));
                kube_entry *e;
                int was = 0;

                pthread_mutex_lock(&k->lock);
                k->st.requests++;
                asked++;
                answered += r == 0 || r == -ENOENT;
                if (r < 0) {
                        k->st.errors++;
                        snprintf(k->st.error, sizeof(k->st.error), "%s", err);
                } else {
                        k->st.last_ok_us = time_real_us();
                }
                e = find(k, due[i].ns, due[i].pod);
                if (e) {
                        e->fetched = true;
                        e->fetched_us = time_mono_us();
                        e->ok = r == 0;
                        e->n = r == 0 ? nl : 0;
                        snprintf(e->ref.uid, sizeof(e->ref.uid), "%s", r == 0 ? uid : "");
                        if (r == 0)
                                memcpy(e->lab, lab, nl * sizeof(*lab));
                        was = e->logged;
                        e->logged = r == -ENOENT ? was : r;
                }
                pthread_mutex_unlock(&k->lock);
                /* once per pod and kind of failure (the retries of the same one are quiet), and
                 * once when it answers again */
                if (r < 0 && r != -ENOENT && r != was)
                        log_warn("workload",
                                 "cannot get the labels of pod %s/%s: %s; its GPU metrics carry "
                                 "no pod labels until the API server answers",
                                 due[i].ns, due[i].pod, err);
                else if (r == 0 && was != 0)
                        log_info("workload", "the labels of pod %s/%s are read again", due[i].ns,
                                 due[i].pod);
                else if (r == -ENOENT)
                        log_debug("workload", "pod %s/%s: %s", due[i].ns, due[i].pod, err);
                if (r == -EIO || r == -ELIBACC || r == -ENOKEY) {
                        /* the others would fail alike: not asked now, but without labels (the API
                         * server is down for them too) until the pause ends */
                        k->down_until_us = time_mono_us() + KUBEAPI_RETRY_US;
                        pthread_mutex_lock(&k->lock);
                        for (size_t j = i + 1; j < ndue; j++) {
                                kube_entry *o = find(k, due[j].ns, due[j].pod);
                                if (!o)
                                        continue;
                                o->ok = false;
                                o->n = 0;
                                o->ref.uid[0] = '\0';
                                o->fetched = true;
                                o->fetched_us = time_mono_us();
                        }
                        pthread_mutex_unlock(&k->lock);
                        break;
                }
        }
        if (asked) { /* up: the API server answered at least one of this read's requests */
                pthread_mutex_lock(&k->lock);
                k->st.up = answered > 0;
                pthread_mutex_unlock(&k->lock);
        }
        free(due);
}

size_t kubeapi_lookup(kubeapi *k, const char *ns, const char *pod, const char *uid,
                      workload_pod_label *out, size_t max)
{
        const kube_entry *e;
        size_t n = 0;

        if (!k || !ns || !pod)
                return 0;
        pthread_mutex_lock(&k->lock);
        e = find(k, ns, pod);
        if (e && e->ok && (!uid || !uid[0] || !strcmp(uid, e->ref.uid))) {
                n = MIN(e->n, max);
                memcpy(out, e->lab, n * sizeof(*out));
        }
        pthread_mutex_unlock(&k->lock);
        return n;
}

void kubeapi_state(kubeapi *k, workload_kubeapi *out)
{
        memset(out, 0, sizeof(*out));
        if (!k)
                return;
        pthread_mutex_lock(&k->lock);
        *out = k->st;
        pthread_mutex_unlock(&k->lock);
}
