/* errmap.h — the one table that maps a negative errno to an HTTP status and a CLI exit code,
 * with the short reason phrase used in JSON errors. */
#ifndef VIGIL_COMMON_ERRMAP_H
#define VIGIL_COMMON_ERRMAP_H

/* err: negative errno (or 0). */
int errmap_http_status(int err);
int errmap_exit_code(int err);
const char *errmap_reason(int err);

#endif
