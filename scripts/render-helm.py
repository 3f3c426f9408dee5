#!/usr/bin/env python3
"""render-helm.py — render deploy/helm/vigil without helm (not packaged in Debian 12) and check
the result structurally, like `helm template` + kubeconform would.

    render-helm.py [--values FILE] [--set a.b=c ...]     print the rendered manifests
    render-helm.py --write                                regenerate deploy/kubernetes/daemonset.yaml
    render-helm.py --check                                CI: render, validate, compare (exit 0/1)

The renderer implements the subset of Go templates the chart uses, and fails on anything else:
{{ .Values.x }}, .Release.Name/.Namespace, .Chart.*, pipes (quote, b64enc, toYaml, nindent N,
indent N, default X), {{- if }} / {{- else }} / {{- with }} / {{- end }}, and {{- / -}} trimming.
A missing value is an error (helm would print nothing), so typos fail CI.
--check also validates values.yaml against values.schema.json (the schema subset used there),
each document (apiVersion/kind/metadata; DaemonSet probes, ports, selectors, volumes, GPU node
selector and tolerations, downward-API NODE_NAME; Service/ServiceMonitor port names), the config
map with `vigild --check-config` when a built vigild is found, and runs `helm lint/template` too
when helm happens to be installed.
"""
import base64
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CHART = os.path.join(ROOT, "deploy", "helm", "vigil")
PLAIN = os.path.join(ROOT, "deploy", "kubernetes", "daemonset.yaml")
RELEASE = {"Name": "vigil", "Namespace": "monitoring"}


class TemplateError(Exception):
    pass


# ---- the template engine ------------------------------------------------------------------------
ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def tokenize(text):
    out, pos = [], 0
    for m in ACTION.finditer(text):
        out.append(["text", text[pos:m.start()]])
        out.append(["action", m.group(2), m.group(1) == "-", m.group(3) == "-"])
        pos = m.end()
    out.append(["text", text[pos:]])
    for i, t in enumerate(out):  # whitespace trimming
        if t[0] == "action":
            if t[2] and i > 0:
                out[i - 1][1] = out[i - 1][1].rstrip()
            if t[3] and i + 1 < len(out):
                out[i + 1][1] = out[i + 1][1].lstrip()
    return out


def parse(tokens, i=0, stop=("end",)):
    """Returns (nodes, index, the stopping keyword)."""
    nodes = []
    while i < len(tokens):
        t = tokens[i]
        if t[0] == "text":
            nodes.append(("text", t[1]))
            i += 1
            continue
        expr = t[1]
        word = expr.split(" ", 1)[0]
        if word in ("end", "else"):
            if word not in stop:
                raise TemplateError("unexpected {{ %s }}" % expr)
            return nodes, i + 1, word
        if word in ("if", "with"):
            body, i, how = parse(tokens, i + 1, ("end", "else"))
            other = []
            if how == "else":
                other, i, _ = parse(tokens, i, ("end",))
            nodes.append((word, expr.split(" ", 1)[1], body, other))
            continue
        if word in ("range", "define", "template", "include", "block") or expr.startswith("/*"):
            raise TemplateError("unsupported template action '%s' (keep the chart simple)" % expr)
        nodes.append(("expr", expr))
        i += 1
    if stop != ("end",) or True:
        if "end" in stop and stop != ("end",):
            raise TemplateError("missing {{ end }}")
    return nodes, i, None


def lookup(path, dot, ctx):
    if path == ".":
        return dot
    cur = ctx if path.split(".")[1] in ("Values", "Release", "Chart") else dot
    for part in path.split(".")[1:]:
        if not isinstance(cur, dict) or part not in cur:
            raise TemplateError("no value for '%s'" % path)
        cur = cur[part]
    return cur


def to_yaml(v):
    return yaml.safe_dump(v, default_flow_style=False, sort_keys=True).rstrip("\n") if v not in ({}, [], None) else (
        "{}" if v == {} else "[]" if v == [] else "null")


def go_str(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return ""
    return str(v)


FUNCS = {
    "quote": lambda v: json.dumps(go_str(v)),
    "b64enc": lambda v: base64.b64encode(go_str(v).encode()).decode(),
    "toYaml": to_yaml,
    "nindent": lambda n, s: "\n" + "\n".join((" " * int(n) + l) if l else l for l in go_str(s).split("\n")),
    "indent": lambda n, s: "\n".join((" " * int(n) + l) if l else l for l in go_str(s).split("\n")),
    "default": lambda d, v: v if truthy(v) else d,
    "not": lambda v: not truthy(v),
}


def truthy(v):
    return not (v is None or v is False or v == 0 or v == "" or v == {} or v == [])


def term(tok, dot, ctx):
    if tok.startswith('"'):
        return json.loads(tok)
    if re.fullmatch(r"-?\d+", tok):
        return int(tok)
    if tok in ("true", "false"):
        return tok == "true"
    if tok.startswith("."):
        return lookup(tok, dot, ctx)
    raise TemplateError("cannot evaluate '%s'" % tok)


def evaluate(expr, dot, ctx):
    val, first = None, True
    for seg in [s.strip() for s in re.split(r"\|(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", expr)]:
        toks = re.findall(r'"(?:[^"\\]|\\.)*"|\S+', seg)
        if toks[0] in FUNCS:
            args = [term(t, dot, ctx) for t in toks[1:]]
            if not first:
                args.append(val)
            val = FUNCS[toks[0]](*args)
        elif first and len(toks) == 1:
            val = term(toks[0], dot, ctx)
        else:
            raise TemplateError("unsupported expression '%s'" % expr)
        first = False
    return val


def execute(nodes, dot, ctx):
    out = []
    for n in nodes:
        if n[0] == "text":
            out.append(n[1])
        elif n[0] == "expr":
            out.append(go_str(evaluate(n[1], dot, ctx)))
        else:
            v = evaluate(n[1], dot, ctx)
            if truthy(v):
                out.append(execute(n[2], v if n[0] == "with" else dot, ctx))
            else:
                out.append(execute(n[3], dot, ctx))
    return "".join(out)


def render_text(text, ctx):
    nodes, _, _ = parse(tokenize(text))
    return execute(nodes, ctx, ctx)


def deep_merge(base, over):
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = v
    return base


def set_value(values, spec):
    key, _, raw = spec.partition("=")
    cur = values
    parts = key.split(".")
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = yaml.safe_load(raw) if raw else ""


def render(values_over=None):
    with open(os.path.join(CHART, "values.yaml")) as f:
        values = yaml.safe_load(f)
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        chart = yaml.safe_load(f)
    deep_merge(values, values_over or {})
    ctx = {"Values": values, "Release": dict(RELEASE),
           "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"]}}
    docs = []
    tdir = os.path.join(CHART, "templates")
    for name in sorted(os.listdir(tdir)):
        if not name.endswith(".yaml"):
            continue
        with open(os.path.join(tdir, name)) as f:
            try:
                text = render_text(f.read(), ctx)
            except TemplateError as e:
                raise TemplateError("%s: %s" % (name, e))
        if text.strip() and any(l.strip() and not l.lstrip().startswith("#") for l in text.splitlines()):
            docs.append("---\n# Source: vigil/templates/%s\n%s\n" % (name, text.strip("\n")))
    return values, "".join(docs)


# ---- checks -------------------------------------------------------------------------------------
class Checker:
    def __init__(self):
        self.errors = []

    def ok(self, cond, msg):
        if not cond:
            self.errors.append(msg)
        return cond


def schema_check(c, value, schema, path="values"):
    t = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int}
    if t:
        allowed = t if isinstance(t, list) else [t]
        if not any(isinstance(value, types[a]) and not (a == "integer" and isinstance(value, bool))
                   for a in allowed):
            c.ok(False, "%s: expected %s, got %r" % (path, t, value))
            return
    if "enum" in schema:
        c.ok(value in schema["enum"], "%s: %r not in %r" % (path, value, schema["enum"]))
    if "pattern" in schema and isinstance(value, str):
        c.ok(re.search(schema["pattern"], value), "%s: %r does not match %s" % (path, value, schema["pattern"]))
    if isinstance(value, dict):
        for r in schema.get("required", []):
            c.ok(r in value, "%s: '%s' is required" % (path, r))
        props = schema.get("properties", {})
        for k, v in value.items():
            if k in props:
                schema_check(c, v, props[k], path + "." + k)
            elif schema.get("additionalProperties") is False:
                c.ok(False, "%s: unknown key '%s'" % (path, k))
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            schema_check(c, v, schema["items"], "%s[%d]" % (path, i))


def find_vigild():
    for b in (os.environ.get("VIGIL_BUILD_DIR"), os.path.join(ROOT, "build"), os.path.join(ROOT, "build-deploy")):
        if b and os.access(os.path.join(b, "bin", "vigild"), os.X_OK):
            return os.path.join(b, "bin", "vigild")
    return None


def check_docs(c, text, label, values):
    docs = [d for d in yaml.safe_load_all(text) if d]
    by_kind = {}
    for d in docs:
        for k in ("apiVersion", "kind", "metadata"):
            c.ok(k in d, "%s: a document has no %s" % (label, k))
        c.ok(bool(d.get("metadata", {}).get("name")), "%s: %s without metadata.name" % (label, d.get("kind")))
        by_kind.setdefault(d.get("kind"), []).append(d)
    ds = by_kind.get("DaemonSet", [None])[0]
    if not c.ok(ds is not None, "%s: no DaemonSet" % label):
        return
    spec, pod = ds["spec"], ds["spec"]["template"]["spec"]
    c.ok(ds["apiVersion"] == "apps/v1", "DaemonSet apiVersion must be apps/v1")
    labels = ds["spec"]["template"]["metadata"]["labels"]
    c.ok(all(labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items()),
         "DaemonSet selector does not match the pod labels")
    us = spec.get("updateStrategy", {})
    c.ok(us.get("type") == "RollingUpdate" and "maxUnavailable" in us.get("rollingUpdate", {}),
         "DaemonSet needs a RollingUpdate with maxUnavailable")
    c.ok(pod.get("nodeSelector", {}).get("nvidia.com/gpu.present") == "true",
         "pods must select nvidia.com/gpu.present=\"true\" (a string)")
    c.ok(any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", [])),
         "pods must tolerate nvidia.com/gpu")
    if values.get("runtimeClassName"):
        c.ok(pod.get("runtimeClassName") == values["runtimeClassName"], "runtimeClassName not set")
    else:
        c.ok("runtimeClassName" not in pod, "runtimeClassName set although empty")
    vols = {v["name"] for v in pod.get("volumes", [])}
    for ctr in pod["containers"]:
        ports = {p.get("name"): p for p in ctr.get("ports", [])}
        c.ok(any(p.get("containerPort") == 5555 for p in ports.values()), "container port 5555 missing")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/readyz")):
            g = ctr.get(probe, {}).get("httpGet", {})
            c.ok(g.get("path") == path, "%s path must be %s, got %r" % (probe, path, g.get("path")))
            c.ok(g.get("port") in ports or g.get("port") == 5555, "%s port %r is not a container port" % (probe, g.get("port")))
        req = ctr.get("resources", {}).get("requests", {})
        c.ok("cpu" in req and "memory" in req, "container needs cpu and memory requests")
        env = {e["name"]: e for e in ctr.get("env", [])}
        c.ok(env.get("NODE_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName",
             "NODE_NAME must come from the downward API (spec.nodeName)")
        for m in ctr.get("volumeMounts", []):
            c.ok(m["name"] in vols, "volumeMount '%s' has no volume" % m["name"])
        sc = ctr.get("securityContext", {})
        c.ok(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation must be false")
        c.ok(":" in ctr.get("image", "") and not ctr["image"].endswith(":latest"), "image must be pinned")
    c.ok(pod.get("securityContext", {}).get("runAsNonRoot") is True, "pods must run as non-root")
    for svc in by_kind.get("Service", []):
        for p in svc["spec"]["ports"]:
            c.ok(p.get("targetPort") in ("http", 5555), "Service targetPort %r is not the container port" % p.get("targetPort"))
        c.ok(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), "Service selector matches no pod")
    for sm in by_kind.get("ServiceMonitor", []):
        names = {p["name"] for s in by_kind.get("Service", []) for p in s["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            c.ok(ep.get("port") in names, "ServiceMonitor port %r is not a Service port" % ep.get("port"))
            c.ok(ep.get("path") == "/metrics", "ServiceMonitor path must be /metrics")
    for sec in by_kind.get("Secret", []):
        for k, v in sec.get("data", {}).items():
            try:
                base64.b64decode(v, validate=True)
            except ValueError:
                c.ok(False, "Secret key %s is not base64" % k)
    for cm in by_kind.get("ConfigMap", []):
        cfg = cm["data"]["vigil.yaml"]
        parsed = yaml.safe_load(cfg)
        c.ok(parsed.get("metrics", {}).get("hostname") == "${NODE_NAME}", "metrics.hostname must be ${NODE_NAME}")
        vigild = find_vigild()
        if vigild:
            with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
                f.write(cfg)
                f.flush()
                r = subprocess.run([vigild, "--check-config", f.name], capture_output=True, text=True,
                                   env=dict(os.environ, NODE_NAME="gpu-node-1"))
                c.ok(r.returncode == 0, "vigild --check-config refuses the chart's config: %s" % (r.stdout + r.stderr))


def check():
    c = Checker()
    with open(os.path.join(CHART, "values.schema.json")) as f:
        schema = json.load(f)
    variants = {
        "defaults": {},
        "all-on": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus"}},
                   "secret": {"create": True, "jwtKey": "k" * 32, "tlsCert": "CERT", "tlsKey": "KEY"},
                   "hostDevices": {"enabled": True}, "runtimeClassName": "", "priorityClassName": "system-node-critical",
                   "kubernetes": {"enablePodLabels": True, "podLabelAllowlistRegex": "^app$,^team$"}},
    }
    rendered_defaults = None
    for label, over in variants.items():
        try:
            values, text = render(copy.deepcopy(over))
        except TemplateError as e:
            c.ok(False, "%s: %s" % (label, e))
            continue
        schema_check(c, values, schema)
        try:
            check_docs(c, text, label, values)
        except (yaml.YAMLError, KeyError, TypeError) as e:
            c.ok(False, "%s: rendered manifests are malformed: %r" % (label, e))
        kinds = [d["kind"] for d in yaml.safe_load_all(text) if d]
        print("render-helm: %s: %s" % (label, ", ".join(kinds)))
        pod = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "DaemonSet"][0]["spec"]["template"]["spec"]
        if label == "defaults":
            rendered_defaults = text
            c.ok("ClusterRole" not in kinds and pod.get("automountServiceAccountToken") is False,
                 "defaults: pod labels off, yet RBAC rendered or the token mounted")
        else:
            c.ok("ServiceMonitor" in kinds and "Secret" in kinds, "all-on: ServiceMonitor/Secret not rendered")
            # pod labels (values: kubernetes): get pods, bound to the pod's ServiceAccount, token mounted
            docs = {d["kind"]: d for d in yaml.safe_load_all(text) if d}
            role, bind = docs.get("ClusterRole"), docs.get("ClusterRoleBinding")
            c.ok(role is not None and bind is not None, "all-on: pod labels without ClusterRole/Binding")
            if role and bind:
                c.ok(role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
                     "ClusterRole must grant get on pods only: %r" % role["rules"])
                c.ok(bind["roleRef"]["name"] == role["metadata"]["name"] and
                     bind["subjects"][0]["name"] == pod["serviceAccountName"] and
                     bind["subjects"][0]["namespace"] == RELEASE["Namespace"],
                     "ClusterRoleBinding does not bind the role to the pod's ServiceAccount")
            c.ok(pod.get("automountServiceAccountToken") is True, "pod labels need the token mounted")
            env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
            c.ok(env.get("VIGIL_WORKLOAD_POD_LABELS") == "true" and
                 env.get("VIGIL_WORKLOAD_POD_LABEL_ALLOWLIST") == "^app$,^team$",
                 "pod-label values do not reach the config's environment: %r" % env)
    if rendered_defaults is not None:
        with open(PLAIN) as f:
            plain = f.read()
        c.ok(plain.split("\n---\n", 1)[-1].strip() == rendered_defaults.split("---\n", 1)[-1].strip() or
             plain.endswith(rendered_defaults),
             "deploy/kubernetes/daemonset.yaml is stale: run scripts/render-helm.py --write")
    if shutil.which("helm"):
        for args in (["lint", CHART], ["template", "vigil", CHART]):
            r = subprocess.run(["helm"] + args, capture_output=True, text=True)
            c.ok(r.returncode == 0, "helm %s: %s" % (args[0], r.stdout + r.stderr))
    else:
        print("render-helm: helm is not installed (not in Debian 12): checked with this renderer only")
    for e in c.errors:
        print("render-helm: FAIL:", e)
    if not c.errors:
        print("render-helm: ok")
    return 1 if c.errors else 0


HEADER = """# daemonset.yaml — Vigil as a plain Kubernetes manifest (no Helm): rendered from deploy/helm/vigil
# with its default values, release "vigil" in namespace "monitoring". Do not edit: change the chart
# and run scripts/render-helm.py --write (CI fails when this file is stale).
#   kubectl create namespace monitoring && kubectl apply -f deploy/kubernetes/daemonset.yaml
"""


def main(argv):
    if "--check" in argv:
        return check()
    over = {}
    it = iter(argv)
    for a in it:
        if a == "--values":
            with open(next(it)) as f:
                deep_merge(over, yaml.safe_load(f) or {})
        elif a == "--set":
            set_value(over, next(it))
    _, text = render(over)
    if "--write" in argv:
        os.makedirs(os.path.dirname(PLAIN), exist_ok=True)
        with open(PLAIN, "w") as f:
            f.write(HEADER + text)
        print("wrote", PLAIN)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
