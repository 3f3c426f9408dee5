"""test_upgrade.py — zero-downtime upgrade on one node: a new vigild takes the listening sockets
over (SCM_RIGHTS over DATA_DIR/takeover.sock), the old one drains and exits, and clients that
scrape continuously see ZERO failed requests.

Clients: keep-alive TCP (a reused connection that the server closed before answering is retried
once on a new connection, as Prometheus' Go client does for idempotent requests; those retries are
counted and reported), a new TCP connection per request, and a new unix-socket connection per
request. Three handovers run back to back:
  1. `vigild --takeover PATH` started by hand (an operator or deploy/scripts/upgrade-in-place.sh),
  2. SIGUSR2: the running vigild starts its successor itself (what systemd's unit uses),
  3. a successor killed (-9) after it received the sockets: the running vigild keeps serving;
  4. deploy/scripts/upgrade-in-place.sh (SIGUSR2, then waits for the new pid to be healthy).
"""
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import SRC, VIGILD, Failure, Vigild, check, wait_for  # noqa: E402

STUCK = os.path.join(SRC, "tests", "deploy", "stuck-sampler.yaml")  # first sweep takes 3 s
UPGRADE = os.path.join(SRC, "deploy", "scripts", "upgrade-in-place.sh")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=5):
        super().__init__("localhost", timeout=timeout)
        self.path_ = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path_)


STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
         http.client.BadStatusLine)


class Client(threading.Thread):
    def __init__(self, name, factory, keepalive, stop):
        super().__init__(daemon=True)
        self.name_, self.factory, self.keepalive, self.stop = name, factory, keepalive, stop
        self.ok = self.failed = self.stale_retries = 0
        self.errors = []

    def one(self, conn):
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        body = r.read()
        if r.status != 200 or b"vigil_" not in body:
            raise ValueError("status %d, %d bytes" % (r.status, len(body)))
        return r

    def run(self):
        conn = None
        while not self.stop.is_set():
            reused = conn is not None
            try:
                if conn is None:
                    conn = self.factory()
                r = self.one(conn)
                self.ok += 1
                if not self.keepalive or r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except STALE as e:
                conn.close()
                conn = None
                if not reused:
                    self.failed += 1
                    self.errors.append(repr(e))
                    continue
                self.stale_retries += 1  # the server closed an idle keep-alive connection
                try:
                    conn = self.factory()
                    self.one(conn)
                    self.ok += 1
                except Exception as e2:  # noqa: BLE001
                    self.failed += 1
                    self.errors.append("retry: " + repr(e2))
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001
                self.failed += 1
                self.errors.append(repr(e))
                if conn:
                    conn.close()
                conn = None
            time.sleep(0.002)
        if conn:
            conn.close()


def traffic(clients, n=5):
    """Wait until every client has n more good answers: traffic flows across the step just made."""
    base = [c.ok for c in clients]
    wait_for(lambda: all(c.ok >= b + n for c, b in zip(clients, base)), 20,
             "%d more good answers on every client" % n)


def pid_of(v):
    return v.get_json("/api/v1/status")["pid"]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def wait_exit(pid, timeout):
    """pid is not our child (a successor spawned by vigild): poll /proc. Zombies count as gone."""
    def gone():
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().split(") ")[1][0] in "ZX"
        except FileNotFoundError:
            return True
    wait_for(gone, timeout, "pid %d to exit" % pid)


def check_sanitizers(path):
    with open(path) as f:
        log = f.read()
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        check(marker not in log, "sanitizer report in %s:\n%s" % (path, log[log.find(marker) - 200:][:3000]))
    return log


def main():
    old = Vigild("constant-2gpu.yaml")
    old.wait_listening()
    host, port = re.match(r"http://([^:]+):(\d+)", old.url).groups()
    port = int(port)
    ctl = os.path.join(old.data, "takeover.sock")
    stop = threading.Event()
    clients = []
    for i in range(2):
        clients.append(Client("keepalive-%d" % i, lambda: http.client.HTTPConnection(host, port, timeout=5), True, stop))
    clients.append(Client("new-conn", lambda: http.client.HTTPConnection(host, port, timeout=5), False, stop))
    clients.append(Client("unix-keepalive", lambda: UnixHTTPConnection(old.sock), True, stop))
    clients.append(Client("unix-new-conn", lambda: UnixHTTPConnection(old.sock), False, stop))
    for c in clients:
        c.start()
    new_log = os.path.join(old.data, "new.log")
    new = None
    spawned = None
    try:
        traffic(clients)
        pid1 = old.proc.pid
        # 1. an operator starts the new binary with --takeover
        t0 = time.monotonic()
        with open(new_log, "w") as lf:
            cmd = [a for a in old.cmd] + ["--takeover", ctl]
            new = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT)
        rc = old.proc.wait(20)
        t1 = time.monotonic()
        check(rc == 0, "old vigild exited %s after the handover" % rc)
        old.stop()  # sanitizer check of its log
        check(pid_of(old) == new.pid, "the new vigild does not answer")
        print("# handover 1 (--takeover): old exited %.3f s after the new one started" % (t1 - t0))
        traffic(clients)

        # 2. SIGUSR2: the running vigild starts its successor
        t0 = time.monotonic()
        new.send_signal(signal.SIGUSR2)
        rc = new.wait(20)
        t1 = time.monotonic()
        check(rc == 0, "vigild exited %s after handing over on SIGUSR2" % rc)
        spawned = pid_of(old)
        check(spawned != new.pid and pid_alive(spawned), "no successor serves after SIGUSR2")
        print("# handover 2 (SIGUSR2): old exited %.3f s after the signal" % (t1 - t0))
        traffic(clients)

        # 3. a successor that dies after taking the sockets: nothing changes
        bad = subprocess.Popen([VIGILD] + [a for a in old.cmd[1:] if not a.startswith("--simulate")] + ["--simulate=" + STUCK, "--takeover", ctl],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: ("handed the listeners to pid %d" % bad.pid) in open(new_log).read(), 20,
                 "the bad successor to receive the sockets")
        bad.kill()
        bad.wait()
        wait_for(lambda: "exited or gave up before it was ready" in open(new_log).read(), 10,
                 "the running vigild to notice the failed successor")
        traffic(clients)
        check(pid_of(old) == spawned, "the running vigild stopped serving after a failed successor")
        check(os.path.exists(ctl), "control socket gone after a failed successor")

        # 4. the helper an operator (or rolling-deploy.sh's install hook) runs on the node
        prev = spawned
        r = subprocess.run([UPGRADE, "--url", old.url, "--unit", "vigild-test-not-a-unit",
                            "--timeout", "30"], capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "upgrade-in-place.sh exited %d: %s" % (r.returncode, r.stderr))
        spawned = pid_of(old)
        check(spawned != prev, "upgrade-in-place.sh: the same pid still serves")
        wait_exit(prev, 10)
        print("# upgrade-in-place.sh: pid %d -> %d" % (prev, spawned))
        traffic(clients)
    finally:
        stop.set()
        for c in clients:
            c.join(10)
        if spawned and pid_alive(spawned):
            t0 = time.monotonic()
            os.kill(spawned, signal.SIGTERM)
            wait_exit(spawned, 10)
            print("# SIGTERM -> exit of the last successor: %.3f s" % (time.monotonic() - t0))
        if new and new.poll() is None:
            new.kill()
            new.wait()
        check_sanitizers(new_log)
        old.stop()
    total = sum(c.ok for c in clients)
    failed = sum(c.failed for c in clients)
    for c in clients:
        print("# %-15s ok=%d failed=%d stale-keepalive-retries=%d %s" %
              (c.name_, c.ok, c.failed, c.stale_retries, c.errors[:3]))
    check(all(c.ok > 20 for c in clients), "a client made too few requests")
    check(failed == 0, "%d of %d scrapes failed during the upgrades" % (failed, total + failed))
    print("ok - 3 handovers + 1 refused successor, %d scrapes, 0 failed" % total)


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print("FAIL:", e)
        sys.exit(1)
