/* redact.h — hide the secrets a piece of text may hold before it is shown: in API answers
 * (GET /api/v1/config), log lines and stored records. One function, so that every place that
 * shows configuration text hides the same things the same way.
 *
 * What counts as a secret (docs/security.md, "What is never shown"):
 *   - in a URL: the userinfo ("https://user:pass@host" -> "https://<redacted>@host"), the query
 *     string and the fragment ("...?token=abc" -> "...?<redacted>");
 *   - in a command line: the value of an option whose name looks like a credential
 *     ("--token X", "--password=X", "-api-key X"), of a NAME=value assignment whose name is an
 *     environment variable (all capitals: "API_KEY=x", "FOO=x") or looks like a credential
 *     ("password=x"), and the word after "Bearer", "Basic" or "Authorization:".
 * Words are separated by white space; quotes around a word are kept around "<redacted>".
 * Over-redaction (a path after "--key-file") is accepted: the text is for people to read, never
 * to run. Plain data: any thread. */
#ifndef VIGIL_COMMON_REDACT_H
#define VIGIL_COMMON_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#define REDACT_MARK "<redacted>"

/* Copy s into out (outlen bytes, always terminated; a longer result is cut) with every secret
 * replaced by REDACT_MARK. Returns true when something was replaced. s NULL reads as "". */
bool redact_text(const char *s, char *out, size_t outlen);

/* Does name (an option or variable name, leading dashes ignored, any case) look like it holds a
 * credential: password, passwd, pwd, secret, token, key, auth, credential, cookie, session,
 * signature, private? */
bool redact_name_is_secret(const char *name, size_t len);

#endif
