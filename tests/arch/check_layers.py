#!/usr/bin/env python3
"""check_layers.py — the layering of DESIGN.md §3 holds in the build, both ways.

For every pair of modules (M, N) it preprocesses a one-line file `#include "N/<header>"` with
exactly the include directory that the build gives M's targets (build/layers/M). The include
must resolve when M sees N and must fail with "No such file" for N's header when it does not.
So a module that gains an include against the arrows fails to build, and this test shows that
the mechanism refuses it (and that the table is transitively closed: a header of N that M may
include only includes what M may include too).

Usage: check_layers.py BUILD_DIR SOURCE_DIR CC  (ctest passes them)."""
import os
import subprocess
import sys
import tempfile

# One header per module that stands alone.
HEADER = {
    "common": "common/macros.h",
    "fields": "fields/fields.h",
    "nvml": "nvml/nvml_types.h",
    "backend": "backend/backend.h",
    "cache": "cache/cache.h",
    "sampler": "sampler/sampler.h",
    "store": "store/store.h",
    "health": "health/health.h",
    "security": "security/auth.h",
    "api": "api/api.h",
    "daemon": "daemon/config.h",
    "fakenvml": "fakenvml/fake-internal.h",
    "cli": "cli/client.h",
}


def main():
    build, src, cc = sys.argv[1], sys.argv[2], sys.argv[3]
    sees = {}
    with open(os.path.join(build, "layers", "SEES")) as f:
        for line in f:
            mod, _, rest = line.partition(":")
            sees[mod.strip()] = set(rest.split())
    failures = []
    checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        for m in sorted(HEADER):
            inc = os.path.join(build, "layers", m)
            if not os.path.isdir(inc):
                failures.append(f"{m}: no include directory {inc}")
                continue
            for n, header in sorted(HEADER.items()):
                if not os.path.exists(os.path.join(src, "src", header)):
                    continue
                probe = os.path.join(tmp, f"{m}_{n}.c")
                with open(probe, "w") as f:
                    f.write(f'#include "{header}"\n')
                # Standard and package headers (microhttpd, jansson) come from /usr/include.
                p = subprocess.run([cc, "-E", "-D_GNU_SOURCE", "-I", inc, probe, "-o", os.devnull],
                                   capture_output=True, text=True)
                allowed = n in sees.get(m, set())
                checked += 1
                if allowed and p.returncode != 0:
                    failures.append(f"{m} sees {n} but '#include \"{header}\"' fails:\n"
                                    f"{p.stderr.strip()[:400]}")
                elif not allowed and p.returncode == 0:
                    failures.append(f"{m} must not see {n}, yet '#include \"{header}\"' builds")
                elif not allowed and "No such file" not in p.stderr:
                    failures.append(f"{m} -> {n}: failed for another reason than a missing "
                                    f"header:\n{p.stderr.strip()[:400]}")
    for f in failures:
        print("FAIL:", f)
    print(f"check_layers: {checked} module pairs checked, {len(failures)} wrong")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
