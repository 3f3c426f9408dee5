#!/usr/bin/env python3
"""dcgm-exporter drop-in: `vigild --collectors deploy/dcgm/default-counters.csv` prints exactly the
families dcgm-exporter's default file asks for (those the fake NVML supports), with its names,
HELP/TYPE text, labels in its order, DCGM_FI_DRIVER_VERSION as a label, XID err_code/err_msg,
4.6 names, malformed files refused at start, and OpenMetrics negotiation in both namings."""
import os
import re
import shutil
import subprocess
import sys

from harness import (Failure, SRC, Vigild, check, main, parse_metrics, scratch_dir, series, wait_for)

CSV = os.path.join(SRC, "deploy", "dcgm", "default-counters.csv")
OM_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
             "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
OM_CTYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
TEXT_CTYPE = "text/plain; version=0.0.4; charset=utf-8"
# released dcgm-exporter (4.5.x) spells the host label "Hostname"; its main branch "hostname"
LABEL_ORDER = ["gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname",
               "DCGM_FI_DRIVER_VERSION"]
# Enabled in dcgm-exporter's default file but not supported here, so absent: NVLink bandwidth has no
# NVML reader; the vGPU license is not supported on bare-metal GPUs (the default scenario's).
# (The profiling fields 1001/1004/1005 are read through NVML GPM and present.)
UNSUPPORTED = {"DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "DCGM_FI_DEV_VGPU_LICENSE_STATUS"}


def read_csv(path):
    """[(name, type, help)] of the enabled records, parsed independently of vigild."""
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            cols = [c.strip() for c in line.split(",")]
            out.append((cols[0], cols[1], ",".join(cols[2:]).strip()))
    return out


def families(text):
    """{name: (type, help)} from HELP/TYPE lines."""
    helps, types = {}, {}
    for line in text.splitlines():
        m = re.match(r"# HELP (\S+) (.*)$", line)
        if m:
            helps[m.group(1)] = m.group(2)
        m = re.match(r"# TYPE (\S+) (\S+)$", line)
        if m:
            types[m.group(1)] = m.group(2)
    check(set(helps) == set(types), "HELP and TYPE families differ: %s" % (set(helps) ^ set(types)))
    return {n: (types[n], helps[n]) for n in types}


def label_names(line):
    inside = line[line.index("{") + 1:line.rindex("}")]
    return re.findall(r'(?:^|,)([A-Za-z_][A-Za-z0-9_]*)="', inside)


def check_openmetrics(text, counters_total=True):
    """Structural OpenMetrics 1.0.0 checks (no client library on the box; Prometheus itself parses
    it in test_prometheus.py): '# EOF' last and once, each family declared once before its
    samples, counter families named without _total and their samples with it, unknown/gauge
    samples named exactly as the family, histogram samples with the right suffixes."""
    lines = text.split("\n")
    check(lines[-1] == "" and lines[-2] == "# EOF", "OpenMetrics does not end with '# EOF\\n'")
    check(text.count("# EOF") == 1, "more than one # EOF")
    declared, current, seen_samples = {}, None, set()
    for line in lines[:-2]:
        check(line != "", "blank line in OpenMetrics")
        m = re.match(r"# TYPE (\S+) (\S+)$", line)
        if m:
            name, typ = m.groups()
            check(name not in declared, "family %s declared twice" % name)
            check(typ in ("gauge", "counter", "histogram", "unknown", "summary", "info",
                          "stateset", "gaugehistogram"), "bad OM type %s" % typ)
            check(not (typ == "counter" and name.endswith("_total")),
                  "counter family %s keeps _total" % name)
            declared[name] = typ
            current = name
            continue
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            check(name not in seen_samples, "HELP for %s after its samples" % name)
            check(not re.search(r'(?<!\\)"', line.split(" ", 3)[3] if line.count(" ") >= 3 else ""),
                  "unescaped quote in HELP: %s" % line)
            continue
        check(not line.startswith("#"), "unexpected comment %r" % line)
        sname = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)", line).group(1)
        typ = declared[current]
        allowed = {"counter": [current + "_total", current + "_created"],
                   "histogram": [current + "_bucket", current + "_sum", current + "_count"],
                   }.get(typ, [current])
        check(sname in allowed, "sample %s not part of family %s (%s)" % (sname, current, typ))
        seen_samples.add(current)
    return declared


def start(args=(), config=None, auth=None):
    v = Vigild(args=args, config=config)
    hdr = {}
    if auth:
        import base64
        hdr = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
    try:
        v.wait_listening()
        # ready: the first sweeps of both tiers are done and XIDs are watched
        wait_for(lambda: v.request("GET", "/readyz", headers=hdr)[0] == 200, 10, "vigild to be ready")
        wait_for(lambda: 'gpu="0"' in v.request("GET", "/metrics", headers=hdr)[2].decode(), 10,
                 "first sweep")
    except BaseException:
        v.__exit__(*sys.exc_info())  # stops vigild and prints its log
        raise
    return v


def test_default_counters_exact_families():
    csv = read_csv(CSV)
    check(len(csv) == 26, "deploy CSV has %d enabled records, want 26" % len(csv))
    with start(["--collectors", CSV]) as v:
        # slow-tier fields (energy, PCIe replay) arrive with the first slow sweep
        wait_for(lambda: "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{" in v.metrics(), 15, "slow tier")
        text = v.metrics()
        fam = families(text)
        want = {n: (t, h) for n, t, h in csv if t != "label" and n not in UNSUPPORTED}
        check(set(fam) == set(want), "families differ from the CSV: extra %s, missing %s" % (
            sorted(set(fam) - set(want)), sorted(set(want) - set(fam))))
        for n, (t, h) in want.items():
            check(fam[n] == (t, h), "%s: HELP/TYPE %r, CSV says %r" % (n, fam[n], (t, h)))
        for n in UNSUPPORTED:
            check(n not in text, "%s is NOT_SUPPORTED and must be absent" % n)
        check("vigil_" not in text, "native families leak into dcgm naming")
        check("9223372036854775" not in text, "a DCGM sentinel value leaked")
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            names = label_names(line)
            base = [x for x in names if x not in ("err_code", "err_msg")]
            check(base == LABEL_ORDER, "label order %s in %s" % (names, line[:120]))
        m = parse_metrics(text)
        temps = series(m, "DCGM_FI_DEV_GPU_TEMP")
        check(len(temps) == 8, "%d GPU temperature series" % len(temps))
        gpus = {g["index"]: g for g in v.get_json("/api/v1/gpus")["gpus"]}
        for d, _ in temps:
            g = gpus[int(d["gpu"])]
            check(d["UUID"] == g["uuid"] and d["pci_bus_id"] == g["pci_bus_id"]
                  and d["modelName"] == g["name"], "identity labels %s vs %s" % (d, g))
            check(d["device"] == "nvidia%d" % g.get("minor_number", g["index"]), "device %s" % d)
            check(re.match(r"^\d+\.\d+", d["DCGM_FI_DRIVER_VERSION"]), "driver label %s" % d)
        # DCGM units, unscaled: FB in MiB, utilization in %, energy in mJ
        fb = series(m, "DCGM_FI_DEV_FB_USED", gpu="0")[0][1]
        check(0 < fb < 200000, "FB_USED %s is not in MiB" % fb)
        util = series(m, "DCGM_FI_DEV_GPU_UTIL", gpu="0")[0][1]
        check(0 <= util <= 100 and float(util).is_integer(), "GPU_UTIL %s not in %%" % util)
        promtool_check(text)


def promtool_check(text):
    promtool = shutil.which("promtool")
    if not promtool:
        raise Failure("promtool is not installed")
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    out = (p.stdout + p.stderr).strip().splitlines()
    # dcgm-exporter's own names and labels trip promtool's style lints; parse errors must not occur.
    style = ("label names should be written in 'snake_case'", 'counter metrics should have "_total"',
             "metric name should not include type 'counter'")
    bad = [l for l in out if not any(s in l for s in style)]
    check(not bad, "promtool check metrics:\n%s" % "\n".join(bad))


def test_xid_err_code_and_msg():
    with start(["--collectors", CSV]) as v:
        v.inject(gpu=0, xid=79)

        def xid():
            m = parse_metrics(v.metrics())
            s = series(m, "DCGM_FI_DEV_XID_ERRORS", gpu="0")
            return s and s[0][1] == 79 and s[0][0]
        d = wait_for(xid, 10, "XID 79 in DCGM_FI_DEV_XID_ERRORS")
        check(d["err_code"] == "79" and d["err_msg"] == "GPU has fallen off the bus", "xid labels %s" % d)
        line = [l for l in v.metrics().splitlines() if l.startswith("DCGM_FI_DEV_XID_ERRORS{gpu=\"0\"")][0]
        check(label_names(line)[-2:] == ["err_code", "err_msg"], "err labels order: %s" % line)
        other = series(parse_metrics(v.metrics()), "DCGM_FI_DEV_XID_ERRORS", gpu="1")
        check(other and other[0][1] == 0, "GPU 1 XID %s" % other)
        check(other[0][0]["err_msg"] == "No Error", "XID 0 err_msg %s" % other)
        # catalog wording as dcgm-exporter carries it, and "Unknown Error" past its table
        for code, msg in ((70, "CE3: Unknown Error"), (173, "Unknown Error")):
            v.inject(gpu=0, xid=code)
            wait_for(lambda: (lambda s: s and s[0][1] == code and s[0][0])(
                series(parse_metrics(v.metrics()), "DCGM_FI_DEV_XID_ERRORS", gpu="0")), 10,
                "XID %d" % code)
            d = series(parse_metrics(v.metrics()), "DCGM_FI_DEV_XID_ERRORS", gpu="0")[0][0]
            check(d["err_msg"] == msg, "XID %d err_msg %r, want %r" % (code, d["err_msg"], msg))


def test_naming_dcgm_and_46_names():
    with start(config="metrics:\n  naming: dcgm\n  extra_labels:\n    cluster: c1\n") as v:
        text = v.metrics()
        fam = families(text)
        check("DCGM_FI_DEV_GPU_TEMP" in fam and "vigil_gpu_up" not in fam, "naming dcgm families %s" % sorted(fam))
        line = [l for l in text.splitlines() if l.startswith("DCGM_FI_DEV_GPU_TEMP{")][0]
        check(label_names(line) == LABEL_ORDER + ["cluster"], "labels %s" % label_names(line))
    with start(config="metrics:\n  naming: dcgm\n  dcgm_exporter_compat: \"main\"\n") as v:
        line = [l for l in v.metrics().splitlines() if l.startswith("DCGM_FI_DEV_GPU_TEMP{")][0]
        check(label_names(line)[5] == "hostname", "compat main labels %s" % label_names(line))
    with scratch_dir() as d:
        p = os.path.join(d, "c46.csv")
        with open(p, "w") as f:
            f.write("# 4.6 names\nDCGM_FI_DEV_GPU_TEMP_CELSIUS, gauge, GPU temperature (in C).\n"
                    "DCGM_FI_DEV_BOARD_POWER_WATTS, gauge, Power draw (in W).\n"
                    "DCGM_FI_SYSTEM_DRIVER_VERSION, label, Driver Version\n"
                    "DCGM_FI_DEV_SERIAL, label, Device Serial Number\n"
                    "DCGM_FI_DEV_OEM_INFOROM_VER, gauge, not collected\n")
        with start(config="metrics:\n  counters_csv: %s\n" % p) as v:
            text = v.metrics()
            fam = families(text)
            check(set(fam) == {"DCGM_FI_DEV_GPU_TEMP_CELSIUS", "DCGM_FI_DEV_BOARD_POWER_WATTS"},
                  "4.6 families %s" % sorted(fam))
            line = [l for l in text.splitlines() if l.startswith("DCGM_FI_DEV_GPU_TEMP_CELSIUS{")][0]
            names = label_names(line)
            check(names[:6] == LABEL_ORDER[:6] and names[6] == "DCGM_FI_SYSTEM_DRIVER_VERSION",
                  "labels %s" % names)


def test_health_status_when_listed():
    """DCGM_EXP_GPU_HEALTH_STATUS is opt-in, as in dcgm-exporter: present only when listed, with
    health_watch labels and DCGM's 0/10/20 values; an injected XID 79 turns a system to 20."""
    with scratch_dir() as d:
        p = os.path.join(d, "c.csv")
        with open(p, "w") as f:
            f.write("DCGM_FI_DEV_GPU_TEMP, gauge, GPU temperature (in C).\n"
                    "DCGM_EXP_GPU_HEALTH_STATUS, gauge, DCGM reported health status\n")
        with start(["--collectors", p]) as v:
            wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
            m = parse_metrics(v.metrics())
            hs = series(m, "DCGM_EXP_GPU_HEALTH_STATUS", gpu=0)
            check(hs and all(x in (0, 10, 20) for _, x in hs), "health status %s" % hs)
            check({d["health_watch"] for d, _ in hs} >= {"PCIE", "MEM", "THERMAL", "POWER"},
                  "health watches %s" % [d["health_watch"] for d, _ in hs])
            v.inject(gpu=0, xid=79)
            wait_for(lambda: any(x == 20 for _, x in series(parse_metrics(v.metrics()),
                                                               "DCGM_EXP_GPU_HEALTH_STATUS", gpu=0)),
                     3, "a FAIL (20) after XID 79")
    with start(["--collectors", CSV]) as v:
        check(not series(parse_metrics(v.metrics()), "DCGM_EXP_GPU_HEALTH_STATUS"),
              "health status exported without being listed")


def test_unreadable_rows_logged_and_count_matches():
    """A row naming what Vigil cannot read is logged by name and skipped; the "exporting N
    families" line counts exactly the families /metrics shows."""
    with scratch_dir() as d:
        p = os.path.join(d, "mixed.csv")
        with open(p, "w") as f:
            f.write("DCGM_FI_DEV_GPU_TEMP, gauge, t\nDCGM_FI_DEV_CPU_TEMP_CURRENT, gauge, cpu\n"
                    "DCGM_EXP_XID_ERRORS_COUNT, gauge, x\nDCGM_FI_DEV_POWER_USAGE, gauge, p\n")
        with start(["--collectors", p]) as v:
            for name in ("DCGM_FI_DEV_CPU_TEMP_CURRENT", "DCGM_EXP_XID_ERRORS_COUNT"):
                check("skipping '%s'" % name in v.logs(), "%s not logged:\n%s" % (name, v.logs()))
            check(set(families(v.metrics())) == {"DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE"},
                  "families %s" % sorted(families(v.metrics())))
    with start(["--collectors", CSV]) as v:
        m = wait_for(lambda: re.search(r"exporting (\d+) dcgm-exporter families", v.logs()), 10,
                     "the exporting line")
        shown = len(families(v.metrics()))
        check(int(m.group(1)) == shown, "log says %s families, /metrics has %d" % (m.group(1), shown))


def test_empty_page():
    """A counters file whose only field these GPUs do not provide gives an empty page, not a
    crash (rendering an empty page read a buffer never allocated: vigild died on the scrape)."""
    with scratch_dir() as d:
        p = os.path.join(d, "none.csv")
        with open(p, "w") as f:
            f.write("DCGM_FI_DEV_VGPU_LICENSE_STATUS, gauge, vGPU licence\n")
        with Vigild(args=["--collectors", p]) as v:
            v.wait_listening()
            wait_for(lambda: v.get("/readyz")[0] == 200, 10, "vigild to be ready")
            for _ in range(3):
                st, _, body = v.get("/metrics")
                check(st == 200 and not families(body.decode()), "empty page: %r %r" % (st, body[:200]))
            check(v.get("/healthz")[0] == 200, "vigild answers after the empty scrapes")


def test_counters_file_reread_on_change():
    """Like dcgm-exporter, an edit of the counters file applies without SIGHUP; a broken edit
    keeps the families in use."""
    with scratch_dir() as d:
        p = os.path.join(d, "live.csv")
        with open(p, "w") as f:
            f.write("DCGM_FI_DEV_GPU_TEMP, gauge, t\n")
        with start(["--collectors", p]) as v:
            check(set(families(v.metrics())) == {"DCGM_FI_DEV_GPU_TEMP"}, "first set")
            tmp = p + ".new"
            with open(tmp, "w") as f:
                f.write("DCGM_FI_DEV_GPU_TEMP, gauge, t\nDCGM_FI_DEV_POWER_USAGE, gauge, p\n")
            os.rename(tmp, p)
            wait_for(lambda: "DCGM_FI_DEV_POWER_USAGE" in families(v.metrics()), 10,
                     "the new family after the file changed")
            with open(p, "w") as f:
                f.write("DCGM_FI_DEV_GPU_TEMP, gaug, t\n")
            wait_for(lambda: "failed to re-read the counters file" in v.logs(), 10, "the error")
            check("DCGM_FI_DEV_POWER_USAGE" in families(v.metrics()), "a broken file dropped families")


def test_basic_auth_401_says_unauthorized():
    """With dcgm naming, a failed basic auth answers as dcgm-exporter's web-config does: 401,
    WWW-Authenticate: Basic, body "Unauthorized" as plain text."""
    import base64
    import ctypes
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    h = lib.crypt(b"pw", lib.crypt_gensalt(b"$2y$", 5, None, 0)).decode()
    with scratch_dir() as d:
        web = os.path.join(d, "web.yml")
        with open(web, "w") as f:
            f.write("basic_auth_users:\n  alice: %s\n" % h)
        cfg = "security:\n  web_config_file: %s\n" % web
        with start(["--collectors", CSV], config=cfg, auth="alice:pw") as v:
            bad = base64.b64encode(b"alice:wrong").decode()
            st, hdr, body = v.request("GET", "/metrics", headers={"Authorization": "Basic " + bad})
            check(st == 401 and body == b"Unauthorized\n", "401 body %d %r" % (st, body))
            check(hdr.get("Content-Type", "").startswith("text/plain"), "401 type %r" % hdr)
            check(hdr.get("WWW-Authenticate") == "Basic", "401 challenge %r" % hdr)


def test_1x_compatibility_csv():
    """dcgm-exporter's etc/1.x-compatibility-metrics.csv loads: 1.x names, uuid label."""
    p = os.path.join(SRC, "deploy", "dcgm", "1.x-compatibility-metrics.csv")
    with start(["--collectors", p]) as v:
        text = v.metrics()
        fam = families(text)
        check({"dcgm_gpu_temp", "dcgm_sm_clock", "dcgm_power_usage", "dcgm_fb_used"} <= set(fam),
              "1.x families %s" % sorted(fam))
        line = [l for l in text.splitlines() if l.startswith("dcgm_gpu_temp{")][0]
        check(label_names(line)[:2] == ["gpu", "uuid"], "1.x labels %s" % label_names(line))


def test_malformed_csv_refused_at_start():
    with scratch_dir() as d:
        cases = [("DCGM_FI_DEV_GPU_TEMP, gauge\n", ":1: malformed CSV record"),
                 ("# ok\nDCGM_FI_DEV_GPU_TEMP, gauge, x\nGPU_NOPE, gauge, y\n",
                  ":3: unknown DCGM field 'GPU_NOPE'"),
                 ("DCGM_FI_DEV_GPU_TEMP, gaug, x\n", ":1: unknown metric type 'gaug'")]
        for i, (content, want) in enumerate(cases):
            p = os.path.join(d, "bad%d.csv" % i)
            with open(p, "w") as f:
                f.write(content)
            v = Vigild(args=["--collectors", p])
            try:
                rc = v.proc.wait(10)
            except subprocess.TimeoutExpired:
                v.stop()
                raise Failure("vigild started with malformed %s" % p)
            logs = v.logs()
            check(rc != 0, "vigild exited %d on a malformed CSV" % rc)
            check(p + want in logs, "error for %s does not say %r:\n%s" % (p, p + want, logs))


def test_dcgm_health_probe():
    """GET /health as dcgm-exporter's Helm chart probes it: 200, body "OK"."""
    with start(["--collectors", CSV]) as v:
        st, hdr, body = v.request("GET", "/health")
        check(st == 200 and body == b"OK", "/health %d %r" % (st, body))
        check(hdr.get("Content-Type", "").startswith("text/plain"), "/health type %s" % hdr)


def test_dcgm_naming_serves_text_only():
    """dcgm-exporter serves text 0.0.4 whatever Accept says: its counters stay counters."""
    with start(["--collectors", CSV]) as v:
        st, hdr, body = v.request("GET", "/metrics", headers={"Accept": OM_ACCEPT})
        check(st == 200 and hdr.get("Content-Type") == TEXT_CTYPE,
              "dcgm naming answered %r to an OpenMetrics Accept" % hdr.get("Content-Type"))
        check(b"# EOF" not in body, "dcgm naming served OpenMetrics")
        fam = families(body.decode())
        check(fam.get("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", ("",))[0] == "counter",
              "remapped rows type %r" % (fam.get("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"),))


def test_openmetrics_negotiation_both_namings():
    for args in ([],):
        with start(args) as v:
            st, hdr, body = v.request("GET", "/metrics", headers={"Accept": OM_ACCEPT})
            check(st == 200 and hdr.get("Content-Type") == OM_CTYPE, "OM content type %r" % hdr.get("Content-Type"))
            declared = check_openmetrics(body.decode())
            st, hdr, text = v.request("GET", "/metrics", headers={"Accept": "text/plain;version=0.0.4"})
            check(hdr.get("Content-Type") == TEXT_CTYPE, "text content type %r" % hdr.get("Content-Type"))
            check(b"# EOF" not in text, "text format carries # EOF")
            st, hdr, _ = v.request("GET", "/metrics", headers={
                "Accept": "application/openmetrics-text;q=0,text/plain;q=1"})
            check(hdr.get("Content-Type") == TEXT_CTYPE, "q=0 OpenMetrics still chosen")
            if args:
                check(declared.get("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS") == "unknown",
                      "dcgm counter without _total must be unknown in OM: %s" % declared)
            else:
                check(declared.get("vigil_gpu_xid_errors") == "counter"
                      and declared.get("vigil_collection_duration_seconds") == "histogram",
                      "native OM families: %s" % sorted(declared.items())[:10])
                # same series names in both formats: once both are wanted they are rendered from
                # the same sweep, so compare a pair taken after the next sweep
                v.wait_sweeps(1)
                _, _, body = v.request("GET", "/metrics", headers={"Accept": OM_ACCEPT})
                _, _, text = v.request("GET", "/metrics", headers={"Accept": "text/plain;version=0.0.4"})
                om = {k[0] for k in parse_metrics(body.decode().replace("# EOF\n", ""))}
                tx = {k[0] for k in parse_metrics(text.decode())}
                check(om == tx, "series names differ between formats: %s" % (om ^ tx))


if __name__ == "__main__":
    main([test_default_counters_exact_families, test_xid_err_code_and_msg,
          test_naming_dcgm_and_46_names, test_health_status_when_listed, test_malformed_csv_refused_at_start,
          test_openmetrics_negotiation_both_namings, test_dcgm_health_probe,
          test_dcgm_naming_serves_text_only, test_unreadable_rows_logged_and_count_matches,
          test_1x_compatibility_csv, test_counters_file_reread_on_change,
          test_basic_auth_401_says_unauthorized, test_empty_page])
