/* curl_dl.h — libcurl, loaded with dlopen at first use. vigild maps libcurl (and its dependency
 * chain: krb5, ldap, sasl, ssh2, rtmp, nghttp2, psl, brotli…, several MiB of RSS) only when the
 * notifier starts with at least one Alertmanager or webhook (health) or the first upload to an
 * S3 bucket runs (store/s3.c), so a daemon without either does not carry it. In common so that
 * both modules (and the CLI) share the one loader and its one curl_global_init.
 *
 * Types and prototypes still come from <curl/curl.h>: every entry in the table has the type of a
 * pointer to the real function (__typeof__(&curl_easy_init)), so calls are checked by the
 * compiler as direct calls would be (except curl's GCC-only option type checks, which live in the
 * curl_easy_setopt macro). The table lists only what its users (health/notifier.c, store/s3.c)
 * call; add a line to CURL_DL_FUNCS to use another function. */
#ifndef VIGIL_COMMON_CURL_DL_H
#define VIGIL_COMMON_CURL_DL_H

#include <stddef.h>

#include <curl/curl.h>

#define CURL_DL_SONAME "libcurl.so.4"

/* X(suffix): the member `suffix` points to curl_<suffix>. */
#define CURL_DL_FUNCS(X)                                                                           \
        X(global_init)                                                                             \
        X(easy_init)                                                                               \
        X(easy_setopt)                                                                             \
        X(easy_perform)                                                                            \
        X(easy_getinfo)                                                                            \
        X(easy_strerror)                                                                           \
        X(easy_cleanup)                                                                            \
        X(slist_append)                                                                            \
        X(slist_free_all)                                                                          \
        X(easy_escape)                                                                             \
        X(free)

typedef struct curl_dl {
#define CURL_DL_MEMBER(name) __typeof__(&curl_##name) name; /* curl_<name> */
        CURL_DL_FUNCS(CURL_DL_MEMBER)
#undef CURL_DL_MEMBER
} curl_dl;

/* Load libcurl on the first call (once per process, pthread_once; any thread), run
 * curl_global_init once, and return its table in *ret. Returns 0, or -ELIBACC with the reason in
 * err ("cannot load 'libcurl.so.4': …; alerting and S3 backups need the libcurl4 package") when the library
 * or one of its symbols is missing or it fails to initialize; the same error is returned on
 * every later call. The library is never unloaded. *ret is untouched on failure. */
int curl_dl_get(const curl_dl **ret, char *err, size_t errlen);

#endif
