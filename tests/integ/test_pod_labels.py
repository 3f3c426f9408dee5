#!/usr/bin/env python3
"""test_pod_labels.py — the pods' Kubernetes labels on their GPU metrics (workload.pod_labels, as
dcgm-exporter's --kubernetes-enable-pod-labels), end to end: vigild on the fake NVML with the fake
/proc, container log links and pod-resources server of test_workload.py, and a real HTTPS server
here acting as the API server (a CA and a server certificate made with the openssl CLI; the
bearer token checked on every request). It answers the Pod of train-a (GPU 0), 403 for share-b,
garbage for share-c and 404 for anything else.

Covered: the allowed labels appear with dcgm-exporter's sanitised names on the GPU series and the
process series, in both namings; the others do not; a pod label named like a label the series
already has (`pod`) does not replace it; 403 and garbage give those pods no labels and count as
errors; a token the server refuses gives no labels (not the old ones) and
vigil_workload_kube_api_up 0, the new token written to the file brings them back (read at each
request); an answer for another UID (a reused name) gives no labels; the API server gone: no labels, up 0, the reads go on; a 404 gives no labels; libcurl is
mapped only with pod labels on; a bad regex, pod_labels without kubernetes and no API server URL
are refused by --check-config, naming the problem.
"""
import json
import os
import signal
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import VIGILD, Vigild, check, main, parse_metrics, series, wait_for
from test_workload import (UID_A, PodResourcesServer, World, gpu_uuids, kube_pods, mapped,
                           need_grpc, wait_metric_value)


def sh(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


def make_pki(d):
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
       "-nodes", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem", "-days", "2", "-subj",
       "/CN=kube-ca")
    sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr", "-subj", "/CN=kube-apiserver")
    with open(f"{d}/server.ext", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    sh("openssl", "x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.pem", "-CAkey",
       f"{d}/ca.key", "-CAcreateserial", "-out", f"{d}/server.pem", "-days", "2", "-extfile",
       f"{d}/server.ext")


POD_A = {
    "kind": "Pod", "apiVersion": "v1",
    "metadata": {
        "name": "train-a", "namespace": "ml", "uid": UID_A,
        "labels": {
            "app": "trainer",
            "app.kubernetes.io/name": "llm \"7b\"",  # a value the exposition must escape
            "team.example.com/owner": "ana",
            "build-id": "b-123",                   # not in the allowlist
            "pod": "evil",                         # allowed, but the series has its own pod
        },
    },
    "spec": {"containers": [{"name": "trainer"}]},
}


class FakeApiServer:
    """HTTPS on 127.0.0.1: GET /api/v1/namespaces/NS/pods/NAME with the bearer token."""

    def __init__(self, pki, token):
        self.token = token
        self.pod_a = json.loads(json.dumps(POD_A))
        self.requests = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self, code, body, ctype="application/json"):
                b = body.encode() if isinstance(body, str) else body
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                self.wfile.write(b)

            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("Authorization")))
                if self.headers.get("Authorization") != "Bearer " + outer.token:
                    return self.answer(401, json.dumps({"kind": "Status", "code": 401,
                                                        "reason": "Unauthorized"}))
                if self.path == "/api/v1/namespaces/ml/pods/train-a":
                    return self.answer(200, json.dumps(outer.pod_a))
                if self.path == "/api/v1/namespaces/team-b/pods/share-b":
                    return self.answer(403, json.dumps({"kind": "Status", "code": 403,
                                                        "reason": "Forbidden"}))
                if self.path == "/api/v1/namespaces/team-c/pods/share-c":
                    return self.answer(200, "{\"kind\": \"Pod\", \"metadata\": {garbage")
                return self.answer(404, json.dumps({"kind": "Status", "code": 404}))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(f"{pki}/server.pem", f"{pki}/server.key")
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = "https://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def __exit__(self, *exc):
        self.stop()


def config(w, api, pki, token_file, refresh="10s"):
    return w.config() + """  pod_labels: true
  pod_label_allowlist: ["^app", "owner$", "^pod$"]
  kube_api_url: %s
  kube_token_file: %s
  kube_ca_file: %s/ca.pem
  pod_labels_refresh: %s
""" % (api.url, token_file, pki, refresh)


def gpu0(d, name="vigil_gpu_temperature_celsius"):
    t = series(parse_metrics(d.metrics()), name, gpu=0)
    return t[0][0] if t else None


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_pod_labels():
    need_grpc()
    w = World()
    pki = os.path.join(w.tmp.name, "pki")
    os.makedirs(pki)
    make_pki(pki)
    token_file = os.path.join(w.tmp.name, "token")
    write(token_file, "tok-1\n")
    with FakeApiServer(pki, "tok-1") as api, PodResourcesServer(w.sock) as kube, \
            Vigild("workload.yaml", config=config(w, api, pki, token_file)) as d:
        kube.set(pods=kube_pods(gpu_uuids(d)))
        l = wait_for(lambda: (lambda x: x if x and x.get("app") else None)(gpu0(d)), 30,
                     "GPU 0 carries the pod's labels")
        check(l.get("pod") == "train-a" and l.get("namespace") == "ml" and
              l.get("container") == "trainer", "GPU 0 pod: %s" % l)
        check(l.get("app") == "trainer" and l.get("app_kubernetes_io_name") == 'llm "7b"' and
              l.get("team_example_com_owner") == "ana", "allowed labels, sanitised: %s" % l)
        check("build_id" not in l and "build-id" not in l, "a label not allowed: %s" % l)
        text = d.metrics()
        check('pod="evil"' not in text, "a pod label replaced the series' own pod label")
        check('app_kubernetes_io_name="llm \\"7b\\""' in text, "the value is escaped")
        check(all(r[1] == "Bearer tok-1" for r in api.requests), "bearer token on every request")
        check(any(x.startswith("libcurl") for x in mapped(d.proc.pid)), "libcurl loaded")

        m = parse_metrics(text)
        pa = series(m, "vigil_gpu_process_memory_bytes", pod="train-a")
        check(pa and pa[0][0].get("app") == "trainer", "process series of train-a: %s" % pa)
        # 403 (share-b) and garbage (share-c): no labels, counted
        for pod in ("share-b", "share-c"):
            p = series(m, "vigil_gpu_process_memory_bytes", pod=pod)
            check(p and "app" not in p[0][0] and "team_example_com_owner" not in p[0][0],
                  "%s has no pod labels: %s" % (pod, p))
        # 404 (old-d, also on GPU 0): no labels, not an outage
        p = series(m, "vigil_gpu_process_memory_bytes", pod="old-d")
        check(p and "app" not in p[0][0], "old-d (404) has no pod labels: %s" % p)
        wait_for(lambda: d.metric("vigil_workload_kube_api_errors_total") >= 3, 20,
                 "the 403, the 404 and the garbage counted")
        check(d.metric("vigil_workload_kube_api_requests_total") >= 3, "requests counted")
        check("share-b" in d.logs() and "HTTP 403" in d.logs(), "the 403 logged with the pod")

        # dcgm naming (a reloadable key): the same labels on DCGM_FI_* series
        cpath = os.path.join(d.data, "vigil.yaml")
        write(cpath, config(w, api, pki, token_file) + "metrics:\n  naming: dcgm\n")
        d.proc.send_signal(signal.SIGHUP)
        l = wait_for(lambda: gpu0(d, "DCGM_FI_DEV_GPU_TEMP"), 20, "dcgm naming")
        check(l.get("app") == "trainer" and l.get("team_example_com_owner") == "ana" and
              l.get("pod") == "train-a" and "build_id" not in l, "dcgm naming labels: %s" % l)
        write(cpath, config(w, api, pki, token_file))
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: gpu0(d), 20, "back to vigil naming")

        # the token rotates on the server; the file still holds the old one: at the refresh the
        # request is refused and the pod loses its labels (never the old ones), up 0
        api.token = "tok-2"
        wait_for(lambda: (lambda x: x if x and "app" not in x and x.get("pod") == "train-a"
                          else None)(gpu0(d)), 40, "labels gone after 401")
        wait_metric_value(d, "vigil_workload_kube_api_up", 0)
        check("HTTP 401" in d.logs(), "the 401 logged")
        # the new token in the file: read at the next request
        write(token_file, "tok-2\n")
        wait_for(lambda: (lambda x: x if x and x.get("app") == "trainer" else None)(gpu0(d)),
                 40, "labels back with the new token")
        wait_metric_value(d, "vigil_workload_kube_api_up", 1)

        # the API server describes another pod under that name (another UID: the name was
        # reused): its labels are not the labels of the pod whose processes run on GPU 0
        api.pod_a["metadata"]["uid"] = "ffffffff-0000-4000-8000-00000000000f"
        wait_for(lambda: (lambda x: x if x and "app" not in x and x.get("pod") == "train-a"
                          else None)(gpu0(d)), 40, "no labels of a pod with another UID")
        p = series(parse_metrics(d.metrics()), "vigil_gpu_process_memory_bytes", pod="train-a")
        check(p and "app" not in p[0][0], "process series: no labels of another UID: %s" % p)
        api.pod_a["metadata"]["uid"] = UID_A
        wait_for(lambda: (lambda x: x if x and x.get("app") == "trainer" else None)(gpu0(d)),
                 40, "labels back with the right UID")

        # the API server goes away: at the next refresh the labels go (never kept as if
        # current), up 0, the error logged; the processes keep being read
        api.stop()
        wait_for(lambda: (lambda x: x if x and "app" not in x and x.get("pod") == "train-a"
                          else None)(gpu0(d)), 40, "labels gone with the API server")
        wait_metric_value(d, "vigil_workload_kube_api_up", 0)
        check("Connection refused" in d.logs() or "Could not connect" in d.logs() or
              "Failed to connect" in d.logs(), "the transport error logged")
        reads = d.metric("vigil_workload_reads_total")
        wait_for(lambda: d.metric("vigil_workload_reads_total") >= reads + 2, 20,
                 "reads go on without the API server")


def test_curl_not_loaded_without_pod_labels():
    """kubernetes on, pod labels off: libcurl (and all it pulls in) is never mapped."""
    need_grpc()
    w = World()
    with PodResourcesServer(w.sock) as kube, Vigild("workload.yaml", config=w.config()) as d:
        kube.set(pods=kube_pods(gpu_uuids(d)))
        wait_metric_value(d, "vigil_workload_kubelet_up", 1)
        wait_for(lambda: d.metric("vigil_workload_reads_total") >= 2, 20, "two reads")
        libs = mapped(d.proc.pid)
        check(not any(x.startswith("libcurl") for x in libs), "libcurl mapped: %s" % sorted(libs))
        check(not series(parse_metrics(d.metrics()), "vigil_workload_kube_api_up"),
              "no API-server gauge when off")


def test_check_config():
    import tempfile
    with tempfile.TemporaryDirectory() as t:
        cases = [
            ("workload:\n  kubernetes: true\n  pod_labels: true\n"
             "  kube_api_url: https://127.0.0.1:6443\n"
             "  pod_label_allowlist: ['^app$', '[invalid']\n",
             ["workload.pod_label_allowlist", "bad regex '[invalid'"]),
            ("workload:\n  pod_labels: true\n  kube_api_url: https://127.0.0.1:6443\n",
             ["workload.pod_labels needs workload.kubernetes: true"]),
            ("workload:\n  kubernetes: true\n  pod_labels: true\n",
             ["workload.pod_labels needs workload.kube_api_url", "KUBERNETES_SERVICE_HOST"]),
            ("workload:\n  kubernetes: true\n  pod_labels: true\n"
             "  kube_api_url: http://10.0.0.1:6443\n",
             ["workload.kube_api_url", "is not an https:// URL"]),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
        for i, (text, want) in enumerate(cases):
            p = os.path.join(t, "c%d.yaml" % i)
            write(p, text)
            r = subprocess.run([VIGILD, "--check-config", p], capture_output=True, text=True,
                               env=env)
            check(r.returncode != 0, "accepted: %s" % text)
            for s in want:
                check(s in r.stderr, "message lacks %r: %s" % (s, r.stderr))
        good = os.path.join(t, "good.yaml")
        write(good, "workload:\n  kubernetes: true\n  pod_labels: true\n"
              "  pod_label_allowlist: ['^app\\\\.kubernetes\\\\.io/.*', '^(tier|env)$']\n")
        r = subprocess.run([VIGILD, "--check-config", good], capture_output=True, text=True,
                           env=dict(env, KUBERNETES_SERVICE_HOST="10.0.0.1",
                                    KUBERNETES_SERVICE_PORT="443"))
        check(r.returncode == 0, "a good configuration refused: %s" % r.stderr)


if __name__ == "__main__":
    main([test_pod_labels, test_curl_not_loaded_without_pod_labels, test_check_config])
