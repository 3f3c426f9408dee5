#!/usr/bin/env python3
"""check_cycles.py — no two source files include or call each other in a loop (DESIGN.md §3).

Includes: every `#include "..."` under src/ (a path with a slash is relative to src/, a bare
name to the including file's directory) makes an edge file -> file. Calls: every object file the
build made from src/ is read with `nm`; a symbol one object uses and another defines makes an
edge between their source files. A strongly connected component of more than one file is a loop
and fails the test, printed with the edges that close it. Callbacks passed as function pointers
are not edges: that is how a lower layer calls back up without depending on it.

Usage: check_cycles.py BUILD_DIR SOURCE_DIR"""
import collections
import os
import re
import subprocess
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def include_graph(src):
    root = os.path.join(src, "src")
    g = collections.defaultdict(set)
    for d, _, files in os.walk(root):
        for name in files:
            if not name.endswith((".c", ".h", ".def")):
                continue
            path = os.path.join(d, name)
            rel = os.path.relpath(path, root)
            with open(path, errors="replace") as f:
                text = f.read()
            for inc in INCLUDE.findall(text):
                target = inc if "/" in inc else os.path.join(os.path.dirname(rel), inc)
                if os.path.exists(os.path.join(root, target)) and target != rel:
                    g[rel].add(target)
    return g


def call_graph(build, src):
    defined, used = {}, collections.defaultdict(set)
    for d, _, files in os.walk(os.path.join(build, "src")):
        for name in files:
            if not name.endswith(".c.o") or "/CMakeFiles/" not in d + "/":
                continue
            obj = os.path.join(d, name)
            # src/<module>/CMakeFiles/<target>.dir/<file>.c.o -> <module>/<file>.c
            module = os.path.relpath(d, os.path.join(build, "src")).split(os.sep)[0]
            srcname = name[:-2]
            if not os.path.exists(os.path.join(src, "src", module, srcname)):
                continue  # generated files and tests
            key = f"{module}/{srcname}"
            out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] == "U":
                    used[key].add(parts[1])
                elif len(parts) == 3 and parts[1] in "TDBRVW" and parts[1].isupper():
                    defined.setdefault(parts[2], key)
    g = collections.defaultdict(set)
    for f, syms in used.items():
        for s in syms:
            t = defined.get(s)
            if t and t != f:
                g[f].add(t)
    return g


def sccs(g):
    """Tarjan's algorithm, iterative."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    nodes = set(g) | {t for ts in g.values() for t in ts}

    def visit(v):
        work = [(v, iter(sorted(g.get(v, ()))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(g.get(w, ())))))
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    build, src = sys.argv[1], sys.argv[2]
    bad = 0
    for kind, g in (("include", include_graph(src)), ("call", call_graph(build, src))):
        for comp in sccs(g):
            bad += 1
            print(f"FAIL: {kind} loop between {', '.join(comp)}")
            for f in comp:
                for t in sorted(g[f] & set(comp)):
                    print(f"    {f} -> {t}")
        print(f"check_cycles: {kind} graph: {len(g)} files, "
              f"{sum(len(v) for v in g.values())} edges")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
