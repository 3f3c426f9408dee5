#!/usr/bin/env bash
# Checks the Prometheus/Grafana deliverables under deploy/ with the real promtool:
#   1. promtool check rules   deploy/prometheus/vigil-*.yml
#   2. promtool test rules    deploy/prometheus/tests/*.yml
#   3. promtool check config  deploy/prometheus/prometheus.yml (+ targets/*.json shape)
#   4. the Grafana dashboard: valid JSON, every panel query is valid PromQL (via promtool check rules)
#   5. check-metric-refs.py --self-test, then against src/fields/fields.def (the catalog)
# Exits non-zero if any step fails; prints each command it runs.
# Usage: scripts/test-prometheus-rules.sh   (from anywhere; PROMTOOL=/path/to/promtool to override)
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PROM="$ROOT/deploy/prometheus"
GRAF="$ROOT/deploy/grafana"
PROMTOOL=${PROMTOOL:-promtool}
PYTHON=${PYTHON:-python3}
failed=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

if ! command -v "$PROMTOOL" >/dev/null 2>&1; then
    echo "test-prometheus-rules: promtool not found (Debian: apt-get install prometheus)" >&2
    exit 1
fi
echo "== using $("$PROMTOOL" --version 2>&1 | head -n1)"

run() {
    echo "+ $*"
    if "$@"; then echo "  -> ok"; else echo "  -> FAILED ($*)"; failed=1; fi
}

cd "$ROOT" || exit 1

# 1. rule syntax
run "$PROMTOOL" check rules "$PROM/vigil-alerts.yml" "$PROM/vigil-recording.yml"

# 2. rule unit tests
run "$PROMTOOL" test rules "$PROM"/tests/*.yml

# 3. scrape config. Debian's promtool is built without Kubernetes service discovery ("field
#    kubernetes_sd_configs not found"); there, check a copy without the Kubernetes job and validate
#    that job's relabel regexes with Python instead.
cp -r "$PROM" "$TMP/prometheus"
cat > "$TMP/k8s-probe.yml" <<'EOF'
scrape_configs:
  - job_name: probe
    kubernetes_sd_configs: [{role: pod}]
EOF
if "$PROMTOOL" check config "$TMP/k8s-probe.yml" >/dev/null 2>&1; then
    run "$PROMTOOL" check config "$PROM/prometheus.yml"
else
    echo "  (this promtool has no kubernetes_sd_configs: checking the Kubernetes job separately)"
    run "$PYTHON" - "$PROM/prometheus.yml" "$TMP/prometheus/prometheus.yml" <<'EOF'
import re, sys, yaml
src, dst = sys.argv[1], sys.argv[2]
c = yaml.safe_load(open(src))
k8s = [s for s in c["scrape_configs"] if "kubernetes_sd_configs" in s]
assert k8s, "no kubernetes_sd_configs job in the example"
for s in k8s:
    for r in s.get("relabel_configs", []):
        re.compile("^(?:%s)$" % r.get("regex", "(.*)"))
    keep = [r for r in s["relabel_configs"] if r.get("action") == "keep"
            and "__meta_kubernetes_pod_label_app_kubernetes_io_name" in r.get("source_labels", [])]
    assert keep and keep[0]["regex"] == "vigil", "keep rule for app.kubernetes.io/name=vigil missing"
    assert any(r.get("target_label") == "node" and r.get("source_labels") == ["__meta_kubernetes_pod_node_name"]
               for r in s["relabel_configs"]), "node label relabel missing"
c["scrape_configs"] = [s for s in c["scrape_configs"] if "kubernetes_sd_configs" not in s]
yaml.safe_dump(c, open(dst, "w"))
print("  kubernetes job(s) %s: relabel rules ok" % [s["job_name"] for s in k8s])
EOF
    run "$PROMTOOL" check config "$TMP/prometheus/prometheus.yml"
fi
run "$PYTHON" - "$PROM"/targets/*.json <<'EOF'
import json, re, sys
for p in sys.argv[1:]:
    groups = json.load(open(p))
    assert isinstance(groups, list) and groups, p + ": want a non-empty list of target groups"
    for g in groups:
        assert set(g) <= {"targets", "labels"} and g.get("targets"), p + ": bad target group %r" % g
        for t in g["targets"]:
            assert re.fullmatch(r"[^\s/:]+:\d+", t), p + ": target %r is not host:port" % t
        for k in g.get("labels", {}):
            assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", k), p + ": bad label name %r" % k
print("  file_sd targets ok: %s" % " ".join(sys.argv[1:]))
EOF

# 4. dashboards: JSON and PromQL syntax of every query (Grafana variables replaced by sample values)
run "$PYTHON" - "$TMP/dash-rules.yml" "$GRAF"/*.json <<'EOF'
import json, re, sys, yaml
out, files = sys.argv[1], sys.argv[2:]
rules = []
for p in files:
    d = json.load(open(p))
    assert d.get("schemaVersion", 0) >= 36, p + ": schemaVersion too old"
    assert any(i.get("name") == "DS_PROMETHEUS" for i in d.get("__inputs", [])), p + ": no DS_PROMETHEUS input"
    names = {v["name"] for v in d["templating"]["list"]}
    assert {"hostname", "gpu"} <= names, p + ": template variables hostname and gpu required"
    ids = set()
    def walk(panels):
        for pn in panels:
            assert pn["id"] not in ids, p + ": duplicate panel id %s" % pn["id"]
            ids.add(pn["id"])
            for t in pn.get("targets", []):
                e = t["expr"]
                e = e.replace("$__rate_interval", "1m").replace("$__range", "1h").replace("$__interval", "1m")
                e = re.sub(r"\$\{?(\w+)\}?", ".*", e)
                rules.append({"record": "dashboard_query_%d" % len(rules), "expr": e})
            walk(pn.get("panels", []))
    walk(d["panels"])
yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, open(out, "w"))
print("  %d dashboard queries extracted from %s" % (len(rules), " ".join(files)))
EOF
run "$PROMTOOL" check rules "$TMP/dash-rules.yml"

# 5. metric references
run "$PYTHON" "$ROOT/scripts/check-metric-refs.py" --self-test
run "$PYTHON" "$ROOT/scripts/check-metric-refs.py" --catalog "$ROOT/src/fields/fields.def"

if [ "$failed" -ne 0 ]; then
    echo "test-prometheus-rules: FAILED"
    exit 1
fi
echo "test-prometheus-rules: all checks passed"
