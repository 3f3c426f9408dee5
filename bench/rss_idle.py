#!/usr/bin/env python3
"""RSS of an idle vigild watching one simulated GPU, broken down per mapping.

Starts vigild (VIGIL_BUILD_DIR picks the build) on bench/scenarios/1gpu.yaml, waits until it is
ready plus --settle seconds with nothing scraped, then sums /proc/PID/smaps Rss per mapping name
(anonymous mappings: "[anon]"; thread stacks are anonymous too) and reads smaps_rollup. --runs
repeats it with a fresh daemon each time and reports the median total.

--heap adds one more daemon, started with build/bench/libvigil-heapmap.so preloaded (bench/heapmap.c):
after the same wait it lists the live heap blocks by the code that allocated them (resident bytes
from mincore, the caller resolved with addr2line) and summarises malloc_info(3) per arena. That
daemon's RSS is not counted: the tracker's table and thread would inflate it.

--load-floor also starts `sleep` with every shared library vigild mapped preloaded (LD_PRELOAD):
what each library costs merely by being loaded (relocations, constructors) with none of vigild's
code running, printed next to vigild's figure for the same mapping."""
import argparse
import collections
import os
import re
import statistics
import subprocess
import tempfile
import time

from _common import BUILD, Vigild, write_json

HEAPMAP = os.path.join(BUILD, "bench", "libvigil-heapmap.so")

SCEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios", "1gpu.yaml")


def breakdown(pid):
    per = collections.Counter()
    name = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                name = os.path.basename(parts[5]) if len(parts) > 5 else "[anon]"
                if name.startswith("lib") and ".so" in name:
                    name = name.split(".so")[0]
            elif parts[0] == "Rss:":
                per[name] += int(parts[1])
    return per


def shared_libs(pid):
    """The shared libraries mapped by pid, in first-mapped order (not ld.so)."""
    seen = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            p = line.split()
            if len(p) > 5 and ".so" in os.path.basename(p[5]) and p[5] not in seen \
                    and "ld-linux" not in p[5] and "heapmap" not in p[5]:
                seen.append(p[5])
    return seen


def load_floor(libs, settle=1.0):
    """Per-mapping RSS of `sleep` with libs preloaded: the cost of loading them, no code run."""
    env = dict(os.environ, LD_PRELOAD=":".join(libs))
    proc = subprocess.Popen(["sleep", "60"], env=env)
    try:
        time.sleep(settle)
        return dict(breakdown(proc.pid))
    finally:
        proc.kill()
        proc.wait()


def one(settle, extra_env):
    v = Vigild(scenario=SCEN)
    try:
        v.wait_addr()
        v.wait_ready()
        time.sleep(settle)
        per = breakdown(v.pid)
        with open("/proc/%d/smaps_rollup" % v.pid) as f:
            rollup = {l.split(":")[0]: int(l.split()[1]) for l in f if l.split()[0].endswith(":")
                      and l.split()[1].isdigit()}
        threads = len(os.listdir("/proc/%d/task" % v.pid))
        return {"rss_kib": rollup.get("Rss"), "anon_kib": rollup.get("Anonymous"),
                "threads": threads, "per_mapping_kib": dict(per.most_common()),
                "libraries": shared_libs(v.pid)}
    finally:
        v.stop()


def symbolize(obj_offsets):
    """{(object, offset): "function (file:line)"} through addr2line, one call per object."""
    names = {}
    by_obj = collections.defaultdict(list)
    for obj, off in obj_offsets:
        by_obj[obj].append(off)
    for obj, offs in by_obj.items():
        # The return address is after the call: look one byte back so the line is the call's.
        args = ["addr2line", "-f", "-C", "-s", "-e", obj] + ["%#x" % max(o - 1, 0) for o in offs]
        try:
            out = subprocess.run(args, capture_output=True, text=True, timeout=60).stdout.split("\n")
        except (OSError, subprocess.TimeoutExpired):
            out = []
        for i, off in enumerate(offs):
            fn = out[2 * i] if 2 * i < len(out) else "??"
            line = out[2 * i + 1] if 2 * i + 1 < len(out) else "??"
            if fn == "??":
                names[(obj, off)] = "%s+%#x" % (os.path.basename(obj), off)
            else:
                names[(obj, off)] = "%s (%s)" % (fn, line.split(" ")[0])
    return names


def malloc_summary(xml):
    """Per arena: bytes obtained from the system and bytes free in it; plus the mmap'd blocks."""
    arenas = []
    for m in re.finditer(r'<heap nr="(\d+)">(.*?)</heap>', xml, re.S):
        body = m.group(2)
        cur = re.search(r'<system type="current" size="(\d+)"', body)
        free = sum(int(x) for x in re.findall(r'<total type="(?:fast|rest)" count="\d+" size="(\d+)"', body))
        arenas.append({"arena": int(m.group(1)), "system": int(cur.group(1)) if cur else 0,
                       "free": free})
    mm = re.search(r'<total type="mmap" count="(\d+)" size="(\d+)"/>\s*<system', xml)
    return {"arenas": arenas, "mmap_blocks": int(mm.group(1)) if mm else 0,
            "mmap_bytes": int(mm.group(2)) if mm else 0}


def heap_run(settle, top):
    if not os.path.exists(HEAPMAP):
        raise SystemExit("rss_idle: %s missing: build the tree first (make build)" % HEAPMAP)
    tmp = tempfile.mkdtemp(prefix="vigil-heapmap-")
    trig, out = os.path.join(tmp, "trigger"), os.path.join(tmp, "report")
    env = {"LD_PRELOAD": HEAPMAP, "VIGIL_HEAPMAP_TRIGGER": trig, "VIGIL_HEAPMAP_OUT": out}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        v = Vigild(scenario=SCEN)
    finally:
        for k, val in saved.items():
            if val is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = val
    try:
        v.wait_addr()
        v.wait_ready()
        time.sleep(settle)
        open(trig, "w").close()
        end = time.monotonic() + 30
        while os.path.exists(trig) and time.monotonic() < end:
            time.sleep(0.05)
        if os.path.exists(trig):
            raise SystemExit("rss_idle: the heap tracker wrote no report (is %s preloaded?)" % HEAPMAP)
        text = open(out).read()
    finally:
        v.stop()
    blocks = []
    for line in text.splitlines():
        p = line.split()
        if p and p[0] == "block":
            blocks.append((int(p[2]), int(p[3]), p[4], int(p[5], 16)))
    names = symbolize({(b[2], b[3]) for b in blocks})
    by = collections.defaultdict(lambda: [0, 0, 0])
    for size, res, obj, off in blocks:
        e = by[names[(obj, off)]]
        e[0] += 1
        e[1] += size
        e[2] += res
    rows = sorted(by.items(), key=lambda kv: -kv[1][2])
    summ = malloc_summary(text[text.find("<malloc"):])
    tot_size = sum(b[0] for b in blocks)
    tot_res = sum(b[1] for b in blocks)
    print("heap: %d live blocks, %.2f MiB asked for, %.2f MiB of it resident" %
          (len(blocks), tot_size / 2**20, tot_res / 2**20))
    for a in summ["arenas"]:
        print("  malloc_info arena %-2d %8.1f KiB from the system, %7.1f KiB free in it" %
              (a["arena"], a["system"] / 1024, a["free"] / 1024))
    print("  malloc_info mmap'd blocks: %d, %.1f KiB" % (summ["mmap_blocks"], summ["mmap_bytes"] / 1024))
    print("  resident KiB  asked KiB  blocks  allocated by")
    for name, (n, size, res) in rows[:top]:
        print("  %12.1f %10.1f %7d  %s" % (res / 1024, size / 1024, n, name))
    return {"blocks": len(blocks), "asked_bytes": tot_size, "resident_bytes": tot_res,
            "malloc_info": summ,
            "by_caller": [{"caller": k, "blocks": n, "asked_bytes": s, "resident_bytes": r}
                          for k, (n, s, r) in rows]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--settle", type=float, default=10)
    ap.add_argument("--heap", action="store_true",
                    help="also list the resident heap blocks by allocating function (heapmap)")
    ap.add_argument("--load-floor", action="store_true",
                    help="also the RSS of vigild's libraries merely loaded into `sleep`")
    ap.add_argument("--top", type=int, default=25, help="callers listed with --heap")
    ap.add_argument("--json")
    a = ap.parse_args()
    runs = [one(a.settle, None) for _ in range(a.runs)]
    med = statistics.median(r["rss_kib"] for r in runs)
    best = min(runs, key=lambda r: abs(r["rss_kib"] - med))
    print("RSS median %.1f MiB over %d runs (%s KiB), anonymous %.1f MiB, %d threads" %
          (med / 1024, a.runs, [r["rss_kib"] for r in runs], best["anon_kib"] / 1024,
           best["threads"]))
    floor = load_floor(best["libraries"]) if a.load_floor else None
    if floor:
        print("  %-28s %9s %16s" % ("mapping", "vigild", "loaded only"))
    for k, kib in list(best["per_mapping_kib"].items())[:24]:
        if floor:
            print("  %-28s %5.2f MiB %11.2f MiB" % (k, kib / 1024, floor.get(k, 0) / 1024))
        else:
            print("  %-28s %7.2f MiB" % (k, kib / 1024))
    heap = heap_run(a.settle, a.top) if a.heap else None
    if a.json:
        write_json(a.json, {"median_rss_kib": med, "runs": runs, "heap": heap,
                            "load_floor_kib": floor})


if __name__ == "__main__":
    main()
