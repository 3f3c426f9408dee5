#!/usr/bin/env python3
"""check_unsafe_strings.py — no sprintf, vsprintf, strcpy, strcat or stpcpy in the C files under
the given directories: every string write says how much room it has (snprintf, memcpy with a
size). Comments and string literals are ignored. Run by ctest (unsafe_strings).

usage: check_unsafe_strings.py SOURCE_DIR DIR...   (DIRs relative to SOURCE_DIR)"""
import os
import re
import sys

CALL = re.compile(r"(?<![A-Za-z0-9_])(v?sprintf|strcpy|strcat|stpcpy)\s*\(")
# Comments and literals, so that prose or a test string naming the calls is not a hit.
NOISE = re.compile(r"/\*.*?\*/|//[^\n]*|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'", re.S)


def blank(m):
    return re.sub(r"[^\n]", " ", m.group(0))


def main():
    src, dirs = sys.argv[1], sys.argv[2:]
    bad = []
    for d in dirs:
        for root, _, files in os.walk(os.path.join(src, d)):
            for name in sorted(files):
                if not name.endswith((".c", ".h")):
                    continue
                path = os.path.join(root, name)
                with open(path, encoding="utf-8", errors="replace") as f:
                    text = NOISE.sub(blank, f.read())
                for n, line in enumerate(text.split("\n"), 1):
                    m = CALL.search(line)
                    if m:
                        bad.append("%s:%d: %s" % (os.path.relpath(path, src), n, m.group(1)))
    if bad:
        print("unbounded string writes (use snprintf, or memcpy with a size):")
        print("\n".join("  " + b for b in bad))
        return 1
    print("no unbounded string writes in: " + " ".join(dirs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
