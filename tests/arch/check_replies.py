#!/usr/bin/env python3
"""check_replies.py — a response is built in one place, errors take one path, security knows no
HTTP library (docs/internals/api.md, docs/internals/security.md).

Fails when:
- a file under src/ other than api/reply.c creates or queues a libmicrohttpd response
  (MHD_create_response_*, MHD_queue_response);
- a file under src/api/ other than reply.c writes the error body itself ("error" with "code");
- api_reply_json is called with a literal status of 400 or more, except the probes' own state
  (/readyz "starting", listed below): errors go through api_reply_errno (the errno table);
- api_reply_http_error (the statuses no errno stands for) is called outside server.c;
- a file under src/security/ includes <microhttpd.h> or names MHD_, or security's CMakeLists
  links libmicrohttpd.

Usage: check_replies.py SOURCE_DIR"""
import os
import re
import sys

CREATE = re.compile(r"\bMHD_(create_response\w*|queue_response)\s*\(")
ERROR_BODY = re.compile(r'"error"\s*,\s*"code"')
JSON_STATUS = re.compile(r"\bapi_reply_json\s*\(\s*\w+\s*,\s*([0-9]+)")
HTTP_ERROR = re.compile(r"\bapi_reply_http_error\s*\(")
# (file, status): answers that are not errors although their status is >= 400
ALLOWED_JSON = {("api/handlers.c", 503)}  # GET /readyz {"status": "starting"}


def strip_comments(text):
    return re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)


def main():
    src = os.path.join(sys.argv[1], "src")
    bad = []
    for d, _, files in os.walk(src):
        for name in sorted(files):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(d, name)
            rel = os.path.relpath(path, src)
            with open(path, errors="replace") as f:
                text = strip_comments(f.read())
            lines = text.splitlines()
            for i, line in enumerate(lines, 1):
                where = "%s:%d" % (rel, i)
                if CREATE.search(line) and rel != "api/reply.c":
                    bad.append("%s: builds a response outside api/reply.c" % where)
                if rel.startswith("api/") and rel != "api/reply.c" and ERROR_BODY.search(line):
                    bad.append("%s: writes an error body outside api/reply.c" % where)
                m = JSON_STATUS.search(line)
                if m and int(m.group(1)) >= 400 and (rel, int(m.group(1))) not in ALLOWED_JSON:
                    bad.append("%s: api_reply_json with error status %s: use api_reply_errno"
                               % (where, m.group(1)))
                if HTTP_ERROR.search(line) and rel not in ("api/reply.c", "api/reply.h",
                                                           "api/server.c"):
                    bad.append("%s: api_reply_http_error outside server.c" % where)
                if rel.startswith("security/") and ("microhttpd" in line or "MHD_" in line):
                    bad.append("%s: security must not use libmicrohttpd" % where)
    with open(os.path.join(src, "security", "CMakeLists.txt")) as f:
        if "MHD" in f.read():
            bad.append("security/CMakeLists.txt: links libmicrohttpd")
    for b in bad:
        print("FAIL: " + b)
    print("check_replies: %d problem(s)" % len(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
