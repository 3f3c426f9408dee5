#!/usr/bin/env python3
"""Check that every metric the Prometheus rules and Grafana dashboards reference exists.

    check-metric-refs.py EXPOSITION            # a /metrics scrape saved to a file (text format)
    check-metric-refs.py --catalog FIELDS_DEF  # the names vigild promises: fields.def + fixed families
    check-metric-refs.py --self-test           # run against synthetic inputs (used by make test)

Options: --rules GLOB (repeatable, default deploy/prometheus/*.yml), --dashboards GLOB (repeatable,
default deploy/grafana/*.json), --root DIR (repository root, default: this script's parent's parent),
-v (print every reference).

References are taken from `expr:` of alerting and recording rules and from Grafana panel targets
(`expr`) and query-variable definitions (`label_values(metric, label)`, `query_result(...)`).
Ignored: PromQL functions, keywords, label names (inside {...}, by/without/on/ignoring/group_*
lists, strings), durations, numbers, Grafana variables ($var, ${var}, [[var]]), Prometheus' own
series (up, ALERTS, ALERTS_FOR_STATE, scrape_*), and the outputs of recording rules defined in the
rule files. A reference NAME_bucket / NAME_sum / NAME_count is satisfied by a histogram (or, for
_sum/_count, summary) family NAME; NAME_total by a counter family declared as NAME (OpenMetrics style).

Exit: 0 all found, 1 some missing (listed on stderr, one per line with where it is used), 2 usage error.
"""

import argparse
import glob
import json
import os
import re
import sys
import tempfile

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.stderr.write("check-metric-refs: python3-yaml is required\n")
    sys.exit(2)

PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "offset", "bool", "inf", "nan", "atan2", "start", "end",
}
PROMQL_FUNCTIONS = {
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
    "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg",
    "delta", "deriv", "exp", "floor", "histogram_count", "histogram_fraction",
    "histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum",
    "holt_winters", "double_exponential_smoothing", "hour", "idelta", "increase", "irate",
    "label_join", "label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time",
    "max_over_time", "min_over_time", "minute", "month", "pi", "predict_linear",
    "present_over_time", "quantile_over_time", "rad", "rate", "resets", "round", "scalar", "sgn",
    "sin", "sinh", "sort", "sort_desc", "sort_by_label", "sort_by_label_desc", "sqrt",
    "stddev_over_time", "stdvar_over_time", "sum_over_time", "tan", "tanh", "time", "timestamp",
    "vector", "year",
    # aggregations
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
    "topk", "quantile", "limitk", "limit_ratio",
}
# Series Prometheus itself makes, not the exporter.
BUILTIN_SERIES = {
    "up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling", "scrape_series_added", "scrape_timeout_seconds",
    "scrape_sample_limit", "scrape_body_size_bytes",
}

IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")

# Families vigild exports besides fields.def (DESIGN.md contract; the lead's brief).
FIXED_FAMILIES = {
    "vigil_build_info": "gauge",
    "vigil_gpu_info": "gauge",
    "vigil_gpu_up": "gauge",
    "vigil_gpu_responsive": "gauge",
    "vigil_gpu_health": "gauge",
    "vigil_gpu_health_monitored": "gauge",
    "vigil_gpu_anomaly": "gauge",
    "vigil_incidents": "gauge",
    "vigil_gpus": "gauge",
    "vigil_gpu_xid_errors_total": "counter",
    "vigil_gpu_clock_event_active": "gauge",
    "vigil_collection_duration_seconds": "histogram",
    "vigil_collection_sweeps_total": "counter",
    "vigil_collection_late_sweeps_total": "counter",
    "vigil_collection_last_sweep_timestamp_seconds": "gauge",
    "vigil_backup_upload_failures_total": "counter",
    "vigil_backup_uploads_pending": "gauge",
}

# Families vigild exports only when a feature is configured: a scrape of a vigild without it
# lacks them, and that is not a missing metric (the rules that use them say so).
CONFIGURED_ONLY = {
    "vigil_backup_upload_failures_total": "backup.s3",
    "vigil_backup_uploads_pending": "backup.s3",
}


# ---------------------------------------------------------------- PromQL name extraction

def _strip_strings(q):
    """Remove string literals ("...", '...', `...`)."""
    out, i, n = [], 0, len(q)
    while i < n:
        c = q[i]
        if c in "\"'`":
            j = i + 1
            while j < n and q[j] != c:
                j += 2 if (q[j] == "\\" and c != "`") else 1
            out.append(' "" ')
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _strip_braces(q):
    """Remove label matchers {...} (strings already gone)."""
    return re.sub(r"\{[^{}]*\}", " ", q)


def metric_names(expr):
    """Metric names an expression selects. Raises ValueError on something it cannot parse."""
    q = expr
    q = re.sub(r"#[^\n]*", " ", q)                      # comments
    q = _strip_strings(q)
    q = re.sub(r"\$\{[^}]*\}|\[\[[^\]]*\]\]|\$[A-Za-z_][A-Za-z0-9_]*", " 1 ", q)  # Grafana vars
    q = _strip_braces(q)
    q = re.sub(r"\[[^\]]*\]", " ", q)                   # ranges / subqueries [5m], [1h:1m]
    # label lists after by/without/on/ignoring/group_left/group_right
    q = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", r" \1 ", q)
    q = re.sub(r"\boffset\s+-?[0-9a-zA-Z]+", " ", q)
    q = re.sub(r"@\s*(start\(\)|end\(\)|[0-9.]+)", " ", q)
    names = set()
    for m in IDENT.finditer(q):
        tok = m.group(0)
        start, end = m.start(), m.end()
        if start > 0 and (q[start - 1].isdigit() or q[start - 1] == "."):
            continue                                      # part of a number like 1e9 or 0.5
        if tok in PROMQL_KEYWORDS:
            continue
        rest = q[end:].lstrip()
        if rest.startswith("("):
            if tok in PROMQL_FUNCTIONS or tok in ("label_values", "query_result", "metrics",
                                                  "label_names"):
                continue
            raise ValueError("unknown function %r" % tok)
        if tok in PROMQL_FUNCTIONS:
            continue
        if re.fullmatch(r"(?i)inf|nan", tok):
            continue
        names.add(tok)
    return names


def grafana_variable_names(query):
    """Metric names a Grafana Prometheus query variable uses."""
    if isinstance(query, dict):
        query = query.get("query", "")
    if not isinstance(query, str):
        return set()
    q = query.strip()
    m = re.fullmatch(r"label_values\((.*)\)", q, re.S)
    if m:
        inner = m.group(1)
        depth, cut = 0, None
        for i, c in enumerate(inner):                     # split off the trailing ", label"
            if c in "({[":
                depth += 1
            elif c in ")}]":
                depth -= 1
            elif c == "," and depth == 0:
                cut = i
        selector = inner[:cut] if cut is not None else ""
        return metric_names(selector) if selector.strip() else set()
    m = re.fullmatch(r"query_result\((.*)\)", q, re.S)
    if m:
        return metric_names(m.group(1))
    if re.fullmatch(r"(label_names|metrics)\(.*\)", q, re.S):
        return set()
    return metric_names(q) if q else set()


# ---------------------------------------------------------------- inputs

def rule_refs(path):
    """({name: [where]}, {recorded names}) from one Prometheus rule file."""
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    refs, recorded = {}, set()
    if not isinstance(doc, dict) or "groups" not in doc:
        return refs, recorded                             # e.g. prometheus.yml, tests
    for g in doc.get("groups") or []:
        for r in g.get("rules") or []:
            what = r.get("alert") or r.get("record")
            if r.get("record"):
                recorded.add(r["record"])
            for n in metric_names(str(r.get("expr", ""))):
                refs.setdefault(n, []).append("%s: %s" % (path, what))
    return refs, recorded


def dashboard_refs(path):
    with open(path) as f:
        doc = json.load(f)
    refs = {}

    def add(names, where):
        for n in names:
            refs.setdefault(n, []).append("%s: %s" % (path, where))

    def walk_panels(panels):
        for p in panels or []:
            for t in p.get("targets") or []:
                if isinstance(t, dict) and t.get("expr"):
                    add(metric_names(t["expr"]), "panel %r" % p.get("title", "?"))
            walk_panels(p.get("panels"))

    walk_panels(doc.get("panels"))
    for row in doc.get("rows") or []:                     # old (pre-5) dashboards
        walk_panels(row.get("panels"))
    for v in (doc.get("templating") or {}).get("list") or []:
        if v.get("type") == "query":
            add(grafana_variable_names(v.get("definition") or v.get("query")),
                "variable %r" % v.get("name"))
    for a in (doc.get("annotations") or {}).get("list") or []:
        if a.get("expr"):
            add(metric_names(a["expr"]), "annotation %r" % a.get("name"))
    return refs


def exposition_names(text):
    """Names a text-format exposition provides (samples and declared families)."""
    have = set()
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                name, typ = parts[2], parts[3].lower()
                have.add(name)
                if typ == "histogram":
                    have.update(name + s for s in ("_bucket", "_sum", "_count"))
                elif typ == "summary":
                    have.update(name + s for s in ("_sum", "_count"))
                elif typ == "counter" and not name.endswith("_total"):
                    have.add(name + "_total")         # OpenMetrics declares counters without _total
            continue
        m = IDENT.match(line)
        if m:
            have.add(m.group(0))
    return have


def catalog_exposition(fields_def):
    """A synthetic exposition with every family vigild promises: fields.def natives + fixed."""
    lines = []
    with open(fields_def) as f:
        src = f.read()
    for m in re.finditer(r"^FIELD\((.*)\)\s*$", src, re.M):
        cols = [c.strip() for c in re.findall(r'"(?:[^"\\]|\\.)*"|[^,]+', m.group(1))]
        native, kind = cols[4], cols[6]
        if native == "NULL" or kind == "LABEL":
            continue
        lines.append("# TYPE %s %s" % (native.strip('"'), kind.lower()))
    for name, typ in FIXED_FAMILIES.items():
        lines.append("# TYPE %s %s" % (name, typ))
    return "\n".join(lines) + "\n"


def check(have, rule_globs, dash_globs, root, verbose=False, out=sys.stdout, err=sys.stderr):
    refs, recorded = {}, set()
    files = []
    for pat in rule_globs:
        for p in sorted(glob.glob(os.path.join(root, pat))):
            r, rec = rule_refs(p)
            recorded |= rec
            for k, v in r.items():
                refs.setdefault(k, []).extend(v)
            files.append(p)
    for pat in dash_globs:
        for p in sorted(glob.glob(os.path.join(root, pat))):
            for k, v in dashboard_refs(p).items():
                refs.setdefault(k, []).extend(v)
            files.append(p)
    if not files:
        err.write("check-metric-refs: no rule or dashboard files matched\n")
        return 2
    missing = {}
    for name, where in sorted(refs.items()):
        ok = (name in have or name in BUILTIN_SERIES or name in recorded
              or name in CONFIGURED_ONLY)
        if verbose:
            out.write("%-50s %s\n" % (name, "ok" if ok else "MISSING"))
        if not ok:
            missing[name] = where
    for name, where in sorted(missing.items()):
        err.write("missing: %s  (used in %s)\n" % (name, "; ".join(sorted(set(where)))))
    out.write("check-metric-refs: %d files, %d metric names referenced, %d missing\n"
              % (len(files), len(refs), len(missing)))
    return 1 if missing else 0


# ---------------------------------------------------------------- self-test

def self_test():
    fails = []

    def expect(cond, what):
        if not cond:
            fails.append(what)

    # Extraction.
    expect(metric_names('rate(foo_total{a="b",c=~"x|y"}[5m]) > 0.1') == {"foo_total"}, "rate")
    expect(metric_names('sum by (hostname, gpu) (x) / on (gpu) group_left (model) y') == {"x", "y"},
           "by/on/group_left")
    expect(metric_names('time() - ts{tier="fast"} > 10') == {"ts"}, "time()")
    expect(metric_names('label_replace(a == 1, "pending", "row_remap", "", "") or b offset 5m')
           == {"a", "b"}, "label_replace/offset")
    expect(metric_names('histogram_quantile(0.99, sum by (le) (rate(h_bucket[$__rate_interval])))')
           == {"h_bucket"}, "histogram_quantile")
    expect(metric_names('x{hostname=~"$hostname", gpu=~"${gpu}"} * 1e-9 + 1.5e3') == {"x"},
           "grafana vars, numbers")
    expect(metric_names('count(ALERTS{alertstate="firing"}) or vector(0)') == {"ALERTS"}, "vector")
    expect(metric_names('max_over_time(a[1h:1m]) @ end()') == {"a"}, "subquery/@")
    expect(grafana_variable_names('label_values(vigil_gpu_info{hostname=~"$hostname"}, gpu)')
           == {"vigil_gpu_info"}, "label_values")
    expect(grafana_variable_names('label_values(hostname)') == set(), "label_values(label)")
    try:
        metric_names("nosuchfunction(x)")
        fails.append("unknown function not refused")
    except ValueError:
        pass

    # Exposition parsing: histogram suffixes only for histograms.
    expo = (
        "# HELP h_seconds d\n# TYPE h_seconds histogram\n"
        'h_seconds_bucket{le="+Inf"} 1\nh_seconds_sum 0.1\nh_seconds_count 1\n'
        "# TYPE c counter\nc_total 3\n"
        "# TYPE g gauge\n"
        'g{gpu="0"} 1\n'
    )
    have = exposition_names(expo)
    for n in ("h_seconds_bucket", "h_seconds_sum", "h_seconds_count", "c_total", "g"):
        expect(n in have, "exposition has " + n)
    expect("g_bucket" not in have and "g_count" not in have, "gauge gets no histogram suffixes")

    # End to end: a rule file with one missing metric must exit 1; without it, 0.
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "prom"))
        os.makedirs(os.path.join(d, "graf"))
        with open(os.path.join(d, "prom", "rules.yml"), "w") as f:
            f.write(
                "groups:\n- name: t\n  rules:\n"
                "  - record: job:g:sum\n    expr: sum(g)\n"
                "  - alert: A\n    expr: rate(c_total[5m]) > 0 and on() job:g:sum > 0 and up == 1\n"
                "  - alert: B\n    expr: histogram_quantile(0.9, rate(h_seconds_bucket[5m])) > 1\n"
                "  - alert: Missing\n    expr: g_does_not_exist > 0 or g_count > 0\n")
        with open(os.path.join(d, "graf", "d.json"), "w") as f:
            json.dump({"panels": [{"title": "p", "targets": [{"expr": 'rate(h_seconds_sum[$__rate_interval])'}]},
                                  {"type": "row", "panels": [{"title": "q", "targets": [{"expr": "g"}]}]}],
                       "templating": {"list": [{"type": "query", "name": "gpu",
                                                "definition": "label_values(g, gpu)"}]}}, f)
        null = open(os.devnull, "w")
        rc = check(have, ["prom/*.yml"], ["graf/*.json"], d, out=null, err=null)
        expect(rc == 1, "synthetic rule with missing metrics exits 1 (got %d)" % rc)
        import io
        e = io.StringIO()
        check(have, ["prom/*.yml"], ["graf/*.json"], d, out=null, err=e)
        listed = set(re.findall(r"missing: (\S+)", e.getvalue()))
        expect(listed == {"g_does_not_exist", "g_count"},
               "exactly the missing names listed (got %s)" % sorted(listed))
        with open(os.path.join(d, "prom", "rules.yml")) as f:
            good = f.read().replace("g_does_not_exist > 0 or g_count > 0", "g > 0")
        with open(os.path.join(d, "prom", "rules.yml"), "w") as f:
            f.write(good)
        rc = check(have, ["prom/*.yml"], ["graf/*.json"], d, out=null, err=null)
        expect(rc == 0, "all present exits 0 (got %d)" % rc)
        # A dashboard reference is checked too.
        with open(os.path.join(d, "graf", "d.json"), "w") as f:
            json.dump({"panels": [{"title": "p", "targets": [{"expr": "nope_metric"}]}]}, f)
        rc = check(have, ["prom/*.yml"], ["graf/*.json"], d, out=null, err=null)
        expect(rc == 1, "missing dashboard metric exits 1 (got %d)" % rc)
        null.close()

    # The catalog reader sees fields.def natives and skips LABEL fields.
    with tempfile.NamedTemporaryFile("w", suffix=".def", delete=False) as f:
        f.write('FIELD(150, GPU_TEMP, "DCGM_FI_DEV_GPU_TEMP", NULL, "vigil_gpu_temperature_celsius", '
                'I64, GAUGE, FAST, "C", 1, "GPU core temperature, in C", "x")\n'
                'FIELD(54, UUID, "DCGM_FI_DEV_UUID", NULL, NULL, STR, LABEL, STATIC, "", 1, "GPU UUID", NULL)\n')
        name = f.name
    try:
        cat = exposition_names(catalog_exposition(name))
        expect("vigil_gpu_temperature_celsius" in cat, "catalog native name")
        expect("vigil_collection_duration_seconds_bucket" in cat, "catalog fixed histogram")
        expect("NULL" not in cat, "catalog skips label fields")
    finally:
        os.unlink(name)

    for f_ in fails:
        sys.stderr.write("self-test FAILED: %s\n" % f_)
    print("check-metric-refs self-test: %s (%d failures)" % ("FAIL" if fails else "ok", len(fails)))
    return 1 if fails else 0


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("exposition", nargs="?", help="a /metrics scrape saved to a file")
    ap.add_argument("--catalog", metavar="FIELDS_DEF", help="check against fields.def + fixed families")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--rules", action="append", metavar="GLOB")
    ap.add_argument("--dashboards", action="append", metavar="GLOB")
    ap.add_argument("--root", default=os.path.dirname(here))
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    if bool(a.exposition) == bool(a.catalog):
        ap.print_usage(sys.stderr)
        sys.stderr.write("check-metric-refs: give an exposition file or --catalog FIELDS_DEF\n")
        return 2
    try:
        if a.catalog:
            have = exposition_names(catalog_exposition(a.catalog))
        else:
            with open(a.exposition) as f:
                have = exposition_names(f.read())
    except OSError as e:
        sys.stderr.write("check-metric-refs: %s\n" % e)
        return 2
    if not have:
        sys.stderr.write("check-metric-refs: no metrics found in the exposition\n")
        return 2
    try:
        return check(have, a.rules or ["deploy/prometheus/*.yml"],
                     a.dashboards or ["deploy/grafana/*.json"], a.root, a.verbose)
    except ValueError as e:
        sys.stderr.write("check-metric-refs: %s\n" % e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
