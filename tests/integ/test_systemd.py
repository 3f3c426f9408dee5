"""test_systemd.py — the systemd contract of vigild and of deploy/systemd/vigild.service.

1. The unit: `systemd-analyze security --offline=yes` exposure <= 2.0, `systemd-analyze verify`
   clean, and the directives the design relies on are present (Type=notify, WatchdogSec,
   DevicePolicy=closed with the NVIDIA devices allowed, never PrivateDevices=yes).
2. The notify protocol against a fake NOTIFY_SOCKET (a unix datagram socket owned here):
   READY=1 after the first sweep, WATCHDOG=1 while sampling, RELOADING=1 then READY=1 on SIGHUP,
   STOPPING=1 and exit 0 on SIGTERM.
3. A stuck sampler (every NVML field read sleeps 3 s) withholds the watchdog pings.
4. A call hanging on every GPU, given up one GPU after another (health.nvml_call_timeout), does
   not: that is progress, and systemd must not kill a daemon that handles the hang itself.
The unit under a real systemd (PID 1 in a container): test_systemd_pid1.py.
Timings are printed (and recorded in bench/RESULTS-deploy.md by hand), never asserted. The one
time bound checked is the protocol itself: a healthy daemon never leaves a gap between pings that
systemd would kill it for (WATCHDOG_USEC), and a stuck one leaves such a gap.
"""
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Failure, SRC, Vigild, check, scratch_dir, skip_part, wait_for  # noqa: E402

UNIT = os.path.join(SRC, "deploy", "systemd", "vigild.service")


def test_unit_security():
    if not shutil.which("systemd-analyze"):
        skip_part("unit checks: systemd-analyze is not installed (static checks only)")
    else:
        out = subprocess.run(["systemd-analyze", "security", "--offline=yes", UNIT],
                             capture_output=True, text=True)
        m = re.search(r"Overall exposure level for vigild.service: ([0-9.]+)", out.stdout + out.stderr)
        check(m, "no exposure level in systemd-analyze output:\n" + out.stdout[-2000:] + out.stderr)
        score = float(m.group(1))
        print("systemd-analyze security exposure: %.1f" % score)
        check(score <= 2.0, "exposure %.1f > 2.0" % score)
        with scratch_dir() as d:
            # verify resolves ExecStart: point it at an existing binary
            with open(UNIT) as f:
                text = f.read().replace("/usr/bin/vigild", "/bin/true")
            p = os.path.join(d, "vigild.service")
            with open(p, "w") as f:
                f.write(text)
            v = subprocess.run(["systemd-analyze", "verify", p], capture_output=True, text=True)
            check(v.returncode == 0 and "vigild.service" not in v.stderr,
                  "systemd-analyze verify: %s" % v.stderr)
    with open(UNIT) as f:
        lines = [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]
    keys = {}
    for l in lines:
        if "=" in l:
            k, v = l.split("=", 1)
            keys.setdefault(k, []).append(v)
    want = {"Type": "notify", "WatchdogSec": "10s", "Restart": "always", "User": "vigil",
            "SupplementaryGroups": "video", "RuntimeDirectory": "vigil", "StateDirectory": "vigil",
            "ConfigurationDirectory": "vigil", "DevicePolicy": "closed", "ProtectSystem": "strict",
            "ProtectHome": "yes", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
            "MemoryDenyWriteExecute": "yes", "CapabilityBoundingSet": "",
            "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6"}
    for k, v in want.items():
        check(v in keys.get(k, []), "unit: expected %s=%s, have %r" % (k, v, keys.get(k)))
    check("char-nvidia* rw" in keys.get("DeviceAllow", []), "unit: DeviceAllow=char-nvidia* rw missing")
    check("/dev/nvidiactl rw" in keys.get("DeviceAllow", []), "unit: DeviceAllow=/dev/nvidiactl missing")
    check("yes" not in keys.get("PrivateDevices", []), "PrivateDevices=yes hides /dev/nvidia*")
    check("@system-service" in keys.get("SystemCallFilter", []), "SystemCallFilter=@system-service missing")
    check(any("/run/vigil/vigild.sock" in v for v in keys.get("ExecStart", [])), "socket not in /run/vigil")
    print("ok - unit checks")


class NotifySocket:
    """Stands in for systemd: records every datagram with its arrival time."""

    def __init__(self):
        self.dir = scratch_dir("vigil-notify-")
        self.path = os.path.join(self.dir.name, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.msgs = []  # (monotonic time, line)
        self.lock = threading.Lock()
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            now = time.monotonic()
            with self.lock:
                for line in data.decode().splitlines():
                    self.msgs.append((now, line))

    def times(self, line):
        with self.lock:
            return [t for t, l in self.msgs if l == line]

    def first(self, line, after=0.0):
        ts = [t for t in self.times(line) if t >= after]
        return ts[0] if ts else None

    def close(self):
        self.stop = True
        self.t.join()
        self.sock.close()
        self.dir.cleanup()


def max_gap(ts, start, end):
    pts = [start] + [t for t in ts if start <= t <= end] + [end]
    return max(b - a for a, b in zip(pts, pts[1:]))


def test_notify_protocol():
    ns = NotifySocket()
    try:
        env = {"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "2000000"}  # vigild pings every 1 s
        v = Vigild("constant-2gpu.yaml", env=env)
        try:
            v.wait_listening()
            t_ready = wait_for(lambda: ns.first("READY=1"), 15, "READY=1")
            print("# start -> READY=1: %.3f s" % (t_ready - v.started))
            pings = wait_for(lambda: (lambda p: p if len(p) >= 3 else None)(ns.times("WATCHDOG=1")), 15,
                             "3 WATCHDOG=1 pings")
            gap = max_gap(pings, pings[0], pings[-1])
            print("# healthy sampler: %d pings, largest gap %.2f s (WATCHDOG_USEC=2s)" % (len(pings), gap))
            check(gap < 2.0, "healthy sampler: a watchdog gap of %.2f s (systemd kills at 2 s)" % gap)
            t_hup = time.monotonic()
            v.proc.send_signal(signal.SIGHUP)
            t_rel = wait_for(lambda: ns.first("RELOADING=1", t_hup), 10, "RELOADING=1")
            wait_for(lambda: ns.first("READY=1", t_rel), 10, "READY=1 after RELOADING=1")
            # requests in flight when SIGTERM arrives are answered whole: a client may find the
            # door closed, but never gets half a response
            st, _, _ = v.get("/metrics")
            check(st == 200, "/metrics before stop: %d" % st)
            host, port = v.url[len("http://"):].rsplit(":", 1)
            stop = threading.Event()
            results = {"ok": 0, "truncated": 0, "refused": 0}
            lock = threading.Lock()

            def scrape():
                conn = None
                while not stop.is_set():
                    try:
                        if conn is None:
                            conn = http.client.HTTPConnection(host, int(port), timeout=5)
                        conn.request("GET", "/metrics")
                        r = conn.getresponse()
                        body = r.read()
                        n = int(r.getheader("Content-Length", len(body)))
                        key = "ok" if r.status == 200 and len(body) == n else "truncated"
                        if r.getheader("Connection", "").lower() == "close":
                            conn.close()
                            conn = None
                    except http.client.IncompleteRead:
                        key, conn = "truncated", None
                    except (OSError, http.client.HTTPException):
                        key, conn = "refused", None
                    with lock:
                        results[key] += 1
            threads = [threading.Thread(target=scrape, daemon=True) for _ in range(4)]
            for t in threads:
                t.start()
            wait_for(lambda: results["ok"] > 10, 10, "scrapes before the stop")
            t_term = time.monotonic()
            rc = v.stop()
            t_exit = time.monotonic()
            wait_for(lambda: results["refused"] > 0, 10, "scrapes to find the door closed")
            stop.set()
            for t in threads:
                t.join(5)
            print("# scrapes around SIGTERM: %s" % results)
            check(results["truncated"] == 0, "truncated responses at shutdown: %s" % results)
            check(results["ok"] > 10, "too few scrapes before the stop: %s" % results)
            check(rc == 0, "vigild exited %s on SIGTERM" % rc)
            check(ns.first("STOPPING=1", t_term) is not None, "no STOPPING=1")
            print("# SIGTERM -> exit: %.3f s" % (t_exit - t_term))
        finally:
            v.stop()
    finally:
        ns.close()
    print("ok - notify protocol")


def test_stuck_sampler():
    scen = os.path.join(SRC, "tests", "deploy", "stuck-sampler.yaml")
    ns = NotifySocket()
    try:
        env = {"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "1000000"}
        v = Vigild(scen, env=env, config="collection:\n  tiers: {fast: 200ms, slow: 5s}\n")
        try:
            v.wait_listening(20)
            t_ready = wait_for(lambda: ns.first("READY=1"), 30, "READY=1")

            def silent_for():  # seconds since the last ping (or READY=1)
                return time.monotonic() - max([t_ready] + ns.times("WATCHDOG=1"))
            # the pings stop: a gap of twice WATCHDOG_USEC (systemd would have killed it at 1 s)
            wait_for(lambda: silent_for() >= 2.0, 30, "the watchdog pings to stop")
            pings = ns.times("WATCHDOG=1")
            print("# stuck sampler: %d pings, silent for %.2f s" % (len(pings), silent_for()))
            # what vigild tells the operator: the fast tier's last sweep is stale
            fast = v.get_json("/api/v1/status")["tiers"]["fast"]
            age = time.time() - fast["last_sweep_us"] / 1e6
            check(age > 3 * fast["interval_seconds"], "fast tier not stale: %.1f s %r" % (age, fast))
        finally:
            v.stop()
    finally:
        ns.close()
    print("ok - stuck sampler withholds the watchdog")


def test_hang_on_every_gpu():
    """An NVML call that hangs on every GPU (a wedged driver): vigild gives the calls up one GPU
    after another (health.nvml_call_timeout), which is progress: the pings go on, so systemd does
    not kill a daemon that is handling the hang itself. 8 GPUs x 1 s to give them all up is twice
    WATCHDOG_USEC; each call returns after 3 s, so the stop does not wait long."""
    scen = os.path.join(SRC, "tests", "scenarios", "default.yaml")
    ns = NotifySocket()
    try:
        env = {"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "4000000"}  # pings every 2 s
        v = Vigild(scen, env=env, config="health: {nvml_call_timeout: 1s}\n")
        try:
            v.wait_listening(20)
            wait_for(lambda: len(ns.times("WATCHDOG=1")) >= 2, 20, "2 WATCHDOG=1 pings")
            t0 = time.monotonic()
            v.inject(call="nvmlDeviceGetTemperature", cost_us=3000000)
            wait_for(lambda: v.logs().count("marked unresponsive") >= 8 or None, 30,
                     "every GPU's hung call given up")
            wait_for(lambda: time.monotonic() - t0 > 12, 20, "12 s of hung calls")
            gap = max_gap(ns.times("WATCHDOG=1"), t0, time.monotonic())
            print("# hang on every GPU: largest gap between pings %.2f s (WATCHDOG_USEC=4s)" % gap)
            check(gap < 4.0, "a watchdog gap of %.2f s while vigild gave hung calls up (systemd "
                  "kills at 4 s)" % gap)
            v.inject(call="nvmlDeviceGetTemperature", cost_us=0)
        finally:
            v.stop(timeout=30)
    finally:
        ns.close()
    print("ok - a hang on every GPU, given up one by one, keeps the watchdog fed")


if __name__ == "__main__":
    try:
        test_unit_security()
        test_notify_protocol()
        test_stuck_sampler()
        test_hang_on_every_gpu()
    except Failure as e:
        print("FAIL:", e)
        sys.exit(1)
