#!/usr/bin/env python3
"""test_workload.py — processes per GPU and who owns them, end to end: vigild on the fake NVML
(tests/scenarios/workload.yaml: four GPUs with scripted processes), a fake host /proc (each PID's
cgroup file in a temp dir used as workload.proc_root), the kubelet's container log links in a temp
dir, and a real gRPC pod-resources server (podresources_server.py) on a unix socket.

Covered: one pod per GPU (GPU metrics carry dcgm-exporter's pod/namespace/container/pod_uid), two
pods time-sharing one GPU (each process gets its own pod; the GPU's metrics carry no single pod;
per-process memory splits it), a Slurm job across two GPUs (hpc_job on both), a process that
exits between NVML's list and the /proc read ("gone"), a process that ends and a PID reused by
another container (the fake clock moves; the new owner is shown), a kubelet that is slow or
missing (vigil_workload_kubelet_up 0, the API says why, processes keep being listed and metrics
keep flowing), `vigil ps`.
"""
import json
import os

from harness import (Vigild, check, in_ci, main, parse_metrics, run_cli, scratch_dir, series,
                     skip, wait_for)

try:
    from podresources_server import PodResourcesServer
except ImportError:  # python3-grpcio (scripts/install-deps.sh TEST) is Debian's: a python3 from
    import sys      # elsewhere (pyenv) of the same version is pointed at Debian's packages
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        from podresources_server import PodResourcesServer
    except ImportError:
        PodResourcesServer = None

UID_A = "aaaaaaaa-0000-4000-8000-000000000001"
UID_B = "bbbbbbbb-0000-4000-8000-000000000002"
UID_C = "cccccccc-0000-4000-8000-000000000003"
UID_D = "dddddddd-0000-4000-8000-000000000004"
UID_E = "eeeeeeee-0000-4000-8000-000000000005"
CID = {k: (k * 64)[:64] for k in "abcde"}  # container ids: "aaaa…", "bbbb…"


def pod_cgroup(uid, cid, qos="burstable"):
    u = uid.replace("-", "_")
    return ("0::/kubepods.slice/kubepods-%s.slice/kubepods-%s-pod%s.slice/"
            "cri-containerd-%s.scope\n" % (qos, qos, u, cid))


def write_proc(root, pid, cgroup, comm):
    d = os.path.join(root, str(pid))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "cgroup"), "w") as f:
        f.write(cgroup)
    with open(os.path.join(d, "comm"), "w") as f:
        f.write(comm + "\n")


def link(logs, pod, ns, container, cid):
    open(os.path.join(logs, "%s_%s_%s-%s.log" % (pod, ns, container, cid)), "w").close()


class World:
    def __init__(self):
        self.tmp = scratch_dir("vigil-wl-")
        self.proc = os.path.join(self.tmp.name, "proc")
        self.logs = os.path.join(self.tmp.name, "containers")
        self.sock = os.path.join(self.tmp.name, "kubelet.sock")
        os.makedirs(self.proc)
        os.makedirs(self.logs)
        write_proc(self.proc, 1001, pod_cgroup(UID_A, CID["a"]), "python3")
        write_proc(self.proc, 1002, pod_cgroup(UID_B, CID["b"]), "train-b")
        write_proc(self.proc, 1003, pod_cgroup(UID_C, CID["c"], "besteffort"), "train-c")
        write_proc(self.proc, 2001, "11:memory:/slurm/uid_1000/job_4242/step_0/task_0\n"
                   "1:name=systemd:/system.slice/slurmd.service\n", "rank0")
        write_proc(self.proc, 2002, "0::/system.slice/slurmstepd.scope/job_4242/step_0/user/"
                   "task_1\n", "rank1")
        write_proc(self.proc, 6006, pod_cgroup(UID_D, CID["d"]), "old")
        # 7007: listed by NVML, no /proc entry: it ended between the list and the cgroup read
        link(self.logs, "train-a", "ml", "trainer", CID["a"])
        link(self.logs, "share-b", "team-b", "worker", CID["b"])
        link(self.logs, "share-c", "team-c", "worker", CID["c"])
        link(self.logs, "old-d", "ml", "main", CID["d"])

    def config(self, sock=None, timeout="500ms"):
        return """
workload:
  proc_root: %s
  interval: 1s
  kubernetes: true
  pod_uid_label: true
  slurm: true
  kubelet_socket: unix://%s
  kubelet_timeout: %s
  container_logs_dir: %s
""" % (self.proc, sock or self.sock, timeout, self.logs)


def gpu_uuids(d):
    return [g["uuid"] for g in d.get_json("/api/v1/gpus")["gpus"]]


def procs(d, gpu):
    r = d.get_json("/api/v1/gpus/%d/processes" % gpu)
    check(r["status"] == "ok", "GPU %d processes: status %s" % (gpu, r["status"]))
    return {p["pid"]: p for p in r["processes"]}


def wait_procs(d, gpu, pred, what):
    return wait_for(lambda: (lambda p: p if pred(p) else None)(procs(d, gpu)), 20, what)


def need_grpc():
    if PodResourcesServer is None:
        skip("python3-grpcio is not installed")


def kube_pods(u):
    return [
        {"name": "train-a", "namespace": "ml", "containers": [
            {"name": "trainer", "devices": [("nvidia.com/gpu", [u[0]])]}]},
        {"name": "share-b", "namespace": "team-b", "containers": [
            {"name": "worker", "devices": [("nvidia.com/gpu", [u[1] + "::0"])]}]},
        {"name": "share-c", "namespace": "team-c", "containers": [
            {"name": "worker", "devices": [("nvidia.com/gpu", [u[1] + "::1"])]}]},
        {"name": "cpu-only", "namespace": "ml", "containers": [
            {"name": "web", "devices": [("example.com/fpga", ["fpga0"])]}]},
    ]


def test_attribution():
    need_grpc()
    w = World()
    with PodResourcesServer(w.sock) as kube, Vigild("workload.yaml", config=w.config()) as d:
        u = gpu_uuids(d)
        kube.set(pods=kube_pods(u))
        wait_metric_value(d, "vigil_workload_kubelet_up", 1)

        # one pod per GPU: names from the container log links, the GPU from the kubelet
        p = wait_procs(d, 0, lambda p: 1001 in p and p[1001]["owner"].get("pod"), "pod names")
        o = p[1001]["owner"]
        check(o["kind"] == "pod" and o["pod_uid"] == UID_A, "1001 owner: %s" % o)
        check((o["namespace"], o["pod"], o["container"]) == ("ml", "train-a", "trainer"),
              "1001 names: %s" % o)
        check(o["container_id"] == CID["a"] and o["qos"] == "burstable", "1001 ids: %s" % o)
        check(p[1001]["memory_used_bytes"] == 20480 << 20, "1001 memory")
        check(abs(p[1001]["utilization"]["sm"] - 0.8) < 1e-9, "1001 SM utilisation")
        # the kubelet's assignment is read at the next read after kube.set()
        wait_for(lambda: any(l.get("pod") for l, _ in series(parse_metrics(d.metrics()),
                                                              "vigil_gpu_temperature_celsius",
                                                              gpu=0)), 20, "GPU 0 pod label")
        m = parse_metrics(d.metrics())
        t = series(m, "vigil_gpu_temperature_celsius", gpu=0)
        check(t and t[0][0].get("pod") == "train-a" and t[0][0].get("namespace") == "ml" and
              t[0][0].get("container") == "trainer" and t[0][0].get("pod_uid") == UID_A,
              "GPU 0 metrics carry the pod's labels: %s" % t)

        # two pods time-sharing GPU 1: each process its own pod; the GPU no single pod
        p = procs(d, 1)
        check(p[1002]["owner"]["pod"] == "share-b" and p[1002]["owner"]["namespace"] == "team-b",
              "1002: %s" % p[1002]["owner"])
        check(p[1003]["owner"]["pod"] == "share-c" and p[1003]["owner"]["qos"] == "besteffort",
              "1003: %s" % p[1003]["owner"])
        check(p[1003]["type"] == "compute+graphics", "1003 in both lists")
        t = series(m, "vigil_gpu_temperature_celsius", gpu=1)
        check(t and "pod" not in t[0][0] and "pod_uid" not in t[0][0],
              "a shared GPU carries no single pod: %s" % t)
        mb = series(m, "vigil_gpu_process_memory_bytes", gpu=1, pod="share-b")
        mc = series(m, "vigil_gpu_process_memory_bytes", gpu=1, pod="share-c")
        check(mb and mb[0][1] == 8192 << 20 and mc and mc[0][1] == 4096 << 20,
              "each pod's share of GPU 1's memory: %s %s" % (mb, mc))

        # a Slurm job across GPUs 2 and 3; 7007 on GPU 2 ended before its cgroup was read
        for g, pid in ((2, 2001), (3, 2002)):
            t = series(m, "vigil_gpu_power_usage_watts", gpu=g) or \
                series(m, "vigil_gpu_temperature_celsius", gpu=g)
            check(t and t[0][0].get("hpc_job") == "4242", "GPU %d hpc_job: %s" % (g, t))
            o = procs(d, g)[pid]["owner"]
            check(o["kind"] == "slurm" and o["job_id"] == "4242", "%d owner: %s" % (pid, o))
        p = procs(d, 2)
        check(p[7007]["owner_status"] == "gone" and p[7007]["owner"]["kind"] == "none",
              "7007 gone: %s" % p[7007])

        # automatic jobs from the attribution: the Slurm job on both its GPUs with its processes,
        # the pod on GPU 0; 7007 (no owner) is in neither
        def job(jid, gpus):
            st, _, body = d.get("/api/v1/jobs/" + jid)
            if st != 200:
                return None
            j = json.loads(body)
            got = {g["gpu"]: g for g in j["gpus"]}
            return j if set(got) >= set(gpus) else None
        j = wait_for(lambda: job("slurm:4242", (2, 3)), 20, "the automatic Slurm job")
        check(j["kind"] == "slurm" and j["state"] == "running", "Slurm job: %s" % j)
        g = {x["gpu"]: x for x in j["gpus"]}
        check(2001 in g[2]["processes"] and 2002 in g[3]["processes"]
              and 7007 not in g[2]["processes"], "Slurm job processes: %s" % j["gpus"])
        j = wait_for(lambda: job("pod:" + UID_A, (0,)), 20, "the automatic pod job")
        check(1001 in {x["gpu"]: x for x in j["gpus"]}[0]["processes"], "pod job: %s" % j)
        check(p[2001]["accounting"] and p[2001]["accounting"]["max_memory_bytes"] == 30720 << 20,
              "accounting stats where the mode is on: %s" % p[2001]["accounting"])
        check(procs(d, 0)[1001]["accounting"] is None, "no accounting where the mode is off")

        # vigil ps: the table and --json -i
        r = run_cli("--host", d.url, "ps", check_rc=0)
        check("train-a" in r.stdout and "4242" in r.stdout and "gone" in r.stdout,
              "vigil ps:\n" + r.stdout)
        r = run_cli("--host", d.url, "ps", "-i", "1," + u[3], "--json", check_rc=0)
        got = json.loads(r.stdout)
        check([g["gpu"] for g in got["gpus"]] == [1, 3], "ps -i 1,UUID: %s" % got["gpus"])
        run_cli("--host", d.url, "ps", "-i", "9", check_rc=5)

        # pid 6006 ends (scenario 100 s); later a process of another container gets the PID
        check(6006 in procs(d, 0), "6006 runs at first")
        d.advance(150)
        wait_procs(d, 0, lambda p: 6006 not in p, "6006 to end")
        write_proc(w.proc, 6006, pod_cgroup(UID_E, CID["e"]), "new")
        link(w.logs, "new-e", "ml", "main", CID["e"])
        d.advance(100)
        p = wait_procs(d, 0, lambda p: 6006 in p, "the reused PID 6006")
        o = p[6006]["owner"]
        check(o["pod_uid"] == UID_E and o["pod"] == "new-e" and p[6006]["name"] == "new",
              "the reused PID is the new container's: %s" % o)
        check(p[6006]["memory_used_bytes"] == 2048 << 20, "the new process's memory")


def wait_metric_value(d, name, value, timeout=20):
    return wait_for(lambda: d.metric(name) == value or None, timeout, "%s == %s" % (name, value))


def test_kubelet_slow_then_missing():
    need_grpc()
    w = World()
    with PodResourcesServer(w.sock) as kube, Vigild("workload.yaml", config=w.config()) as d:
        kube.set(pods=kube_pods(gpu_uuids(d)))
        wait_metric_value(d, "vigil_workload_kubelet_up", 1)
        reads = d.metric("vigil_workload_reads_total")
        kube.set(delay=3.0)  # slower than workload.kubelet_timeout (500ms)
        wait_metric_value(d, "vigil_workload_kubelet_up", 0)
        k = d.get_json("/api/v1/processes")["kubelet"]
        check(not k["up"] and "did not answer" in (k["error"] or ""), "slow kubelet: %s" % k)
        wait_for(lambda: d.metric("vigil_workload_reads_total") > reads + 1, 20,
                 "reads to go on while the kubelet is slow")
        p = procs(d, 0)
        check(p[1001]["owner"]["pod_uid"] == UID_A, "attribution without the kubelet")
        m = parse_metrics(d.metrics())
        check(series(m, "vigil_gpu_temperature_celsius", gpu=0), "GPU metrics keep flowing")
        kube.set(delay=0)
        wait_metric_value(d, "vigil_workload_kubelet_up", 1)

    w = World()
    missing = os.path.join(w.tmp.name, "no-such-kubelet.sock")
    with Vigild("workload.yaml", config=w.config(sock=missing)) as d:
        wait_metric_value(d, "vigil_workload_kubelet_up", 0)
        k = d.get_json("/api/v1/processes")["kubelet"]
        check(not k["up"] and missing in (k["error"] or ""), "missing socket: %s" % k)
        p = wait_procs(d, 0, lambda p: 1001 in p, "processes without a kubelet")
        check(p[1001]["owner"]["pod"] == "train-a", "names from the log links still: %s" %
              p[1001]["owner"])
        m = parse_metrics(d.metrics())
        check(series(m, "vigil_gpu_process_memory_bytes", pid=1001), "process metrics flow")
        wait_for(lambda: d.metric("vigil_workload_reads_total") >= 3, 20, "three reads")
        logs = d.logs()
        check(logs.count("cannot reach the kubelet") == 1,
              "the missing kubelet is logged once, not every read:\n" + logs)


def test_cardinality_cap():
    w = World()
    cfg = """
workload: {proc_root: %s, interval: 1s, max_process_series: 2}
""" % w.proc
    with Vigild("workload.yaml", config=cfg) as d:
        wait_for(lambda: d.metric("vigil_workload_reads_total") >= 1, 20, "a read")
        wait_for(lambda: procs(d, 3), 20, "GPU 3 read")
        m = parse_metrics(d.metrics())
        n = len(series(m, "vigil_gpu_process_memory_bytes"))
        dropped = d.metric("vigil_workload_process_series_dropped")
        check(n == 2, "at most max_process_series series per family: %d" % n)
        check(dropped > 0, "what the cap leaves out is counted: %s" % dropped)
        r = d.get_json("/api/v1/processes")
        check(sum(len(g["processes"]) for g in r["gpus"]) >= 6, "the API lists them all")


def mapped(pid):
    with open("/proc/%d/maps" % pid) as f:
        return {os.path.basename(l.split()[5]) for l in f if len(l.split()) >= 6}


def test_grpc_loaded_only_for_kubernetes():
    """libgrpc (several MiB with what it pulls in) is mapped only once the kubelet is asked."""
    w = World()
    with Vigild("workload.yaml", config="workload: {proc_root: %s, interval: 1s}\n" % w.proc) as d:
        wait_for(lambda: d.metric("vigil_workload_reads_total") >= 2, 20, "two reads")
        libs = mapped(d.proc.pid)
        check(not any(l.startswith("libgrpc") for l in libs), "libgrpc mapped: %s" % sorted(libs))
    need_grpc()
    with PodResourcesServer(w.sock), Vigild("workload.yaml", config=w.config()) as d:
        wait_metric_value(d, "vigil_workload_kubelet_up", 1)
        check(any(l.startswith("libgrpc.so") for l in mapped(d.proc.pid)), "libgrpc loaded")


def test_disabled():
    with Vigild("workload.yaml", config="workload: {enabled: false}\n") as d:
        st, _, body = d.get("/api/v1/processes")
        check(st == 503, "processes with workload.enabled off: %d" % st)
        check(not series(parse_metrics(d.metrics()), "vigil_gpu_processes"), "no families")


if __name__ == "__main__":
    main([test_attribution, test_kubelet_slow_then_missing, test_cardinality_cap,
          test_grpc_loaded_only_for_kubernetes, test_disabled])
