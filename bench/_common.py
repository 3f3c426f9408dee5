"""Shared helpers for the Vigil CPU-machine benchmarks (stdlib only)."""
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
BUILD = os.environ.get("VIGIL_BUILD_DIR", os.path.join(SRC, "build"))
VIGILD = os.path.join(BUILD, "bin", "vigild")
SCEN = os.path.join(HERE, "scenarios")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def get_json(url, timeout=10):
    return json.loads(get(url, timeout))


class Vigild:
    """A vigild on the fake NVML with its own data dir and a config file."""

    def __init__(self, scenario=None, config="", extra_args=(), binary=None):
        self.tmp = tempfile.mkdtemp(prefix="vigil-bench-")
        cfg = os.path.join(self.tmp, "vigil.yaml")
        with open(cfg, "w") as f:
            f.write(config)
        sim = "--simulate" + ("=" + scenario if scenario else "")
        self.cmd = [binary or VIGILD, sim, "--listen", "127.0.0.1:0", "--data-dir", self.tmp,
                    "--socket", "", "--config", cfg] + list(extra_args)
        self.log = open(os.path.join(self.tmp, "vigild.log"), "w")
        self.t_spawn = time.time()
        self.t_spawn_mono = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.url = None

    def wait_addr(self, timeout=15, poll=0.002):
        addr = os.path.join(self.tmp, "vigild.addr")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("vigild exited: " + open(self.log.name).read())
            try:
                s = open(addr).read().strip()
                if s:
                    self.url = s if s.startswith("http") else "http://" + s
                    return self.url
            except OSError:
                pass
            time.sleep(poll)
        raise RuntimeError("vigild did not write vigild.addr")

    def status(self):
        return get_json(self.url + "/api/v1/status")

    def wait_ready(self, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if self.status().get("ready"):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("vigild not ready")

    def cpu_seconds(self):
        """CPU of all threads, ns resolution (schedstat), falling back to /proc stat ticks."""
        tot = 0
        try:
            for t in os.listdir("/proc/%d/task" % self.pid):
                with open("/proc/%d/task/%s/schedstat" % (self.pid, t)) as f:
                    tot += int(f.read().split()[0])
            return tot / 1e9
        except (OSError, ValueError, IndexError):
            f = open("/proc/%d/stat" % self.pid).read().rsplit(")", 1)[1].split()
            return (int(f[11]) + int(f[12])) / CLK_TCK

    def rss_kib(self):
        for line in open("/proc/%d/status" % self.pid):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return self.proc.returncode


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def pct(xs, p):
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def write_json(path, obj):
    if path:
        with open(path, "w") as f:
            json.dump(obj, f, indent=1)
