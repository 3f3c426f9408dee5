"""test_bluegreen.py — deploy/scripts/blue-green.sh end to end on a "node" (a network namespace,
10.200.2.10) with HAProxy in front (:5555 -> blue 127.0.0.1:5556 / green :5557), while a client in
the root namespace scrapes the frontend continuously (keep-alive and new connections).

1. first run: blue and HAProxy start; scrapes succeed through the frontend;
2. blue -> green: green gates on health, HAProxy switches (graceful reload, sockets handed over
   with -x), blue stops; the scrapes continue;
3. a broken green (never becomes ready): the gate fails, green is stopped, traffic never leaves
   the live color, exit 1 (automatic rollback); ZERO failed scrapes during the attempt;
4. a release that exits at once: same;
5. --teardown stops both colors and HAProxy and removes the state; --purge the data too.
Zero failed scrapes are required throughout (a keep-alive connection that HAProxy's old process
closes while idle is retried once on a new connection, as Prometheus' Go client does).
Skips (exit 77) without `ip netns` or haproxy.
"""
import http.client
import os
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "deploy"))
from harness import BUILD, Failure, SRC, VIGILD, check, scratch_dir, skip, wait_for  # noqa: E402
import netns  # noqa: E402

SCRIPT = os.path.join(SRC, "deploy", "scripts", "blue-green.sh")
SCEN = os.path.join(SRC, "tests", "scenarios", "constant-2gpu.yaml")


class Scraper(threading.Thread):
    def __init__(self, host, keepalive):
        super().__init__(daemon=True)
        self.host, self.keepalive = host, keepalive
        self.ok = self.failed = 0
        self.errors = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def snapshot(self):
        with self.lock:
            return self.ok, self.failed

    def run(self):
        conn = None
        while not self.stop.is_set():
            reused = conn is not None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, 5555, timeout=5)
                conn.request("GET", "/metrics")
                r = conn.getresponse()
                body = r.read()
                good = r.status == 200 and b"vigil_" in body
                if not self.keepalive or r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                conn.close()
                conn = None
                if reused:  # an idle keep-alive connection closed by the server: retry, as Go does
                    continue
                good = False
                self.errors.append(repr(e))
            except Exception as e:  # noqa: BLE001
                if conn:
                    conn.close()
                conn = None
                good = False
                self.errors.append(repr(e))
            with self.lock:
                if good:
                    self.ok += 1
                else:
                    self.failed += 1
            time.sleep(0.005)


def progress(scrapers, n=5):
    """Wait until every scraper has n more good scrapes through HAProxy (no stall)."""
    base = [s.snapshot()[0] for s in scrapers]
    wait_for(lambda: all(s.snapshot()[0] >= b + n for s, b in zip(scrapers, base)), 20,
             "%d more good scrapes on every scraper" % n)


def run_bg(ns, state, vigild, timeout=5):
    env = dict(os.environ, VIGIL_CLI=os.path.join(BUILD, "bin", "vigil"))
    t0 = time.monotonic()
    r = subprocess.run(["ip", "netns", "exec", ns, SCRIPT, "--state-dir", state,
                        "--frontend", "0.0.0.0:5555", "--vigild", vigild,
                        "--args", "--simulate=" + SCEN, "--health-timeout", str(timeout)],
                       capture_output=True, text=True, env=env, timeout=120)
    print(r.stderr.rstrip())
    return r.returncode, time.monotonic() - t0


def active_pid(state, color):
    with open(os.path.join(state, color, "vigild.pid")) as f:
        return int(f.read())


def main():
    netns.skip_without_netns()
    if not shutil.which("haproxy"):
        skip("haproxy is not installed (apt-get install haproxy)")
    net = netns.Net(2, 1)
    ns, ip = net.hosts[0]
    tmp = scratch_dir("vigil-bg-")
    state = tmp.name
    scrapers = []
    try:
        rc, _ = run_bg(ns, state, VIGILD)
        check(rc == 0, "first blue-green run exited %d" % rc)
        check(open(os.path.join(state, "active")).read().strip() == "blue", "blue is not active")
        scrapers = [Scraper(ip, True), Scraper(ip, False)]
        for s in scrapers:
            s.start()
        wait_for(lambda: all(s.snapshot()[0] > 10 for s in scrapers), 10, "scrapes through HAProxy")
        blue = active_pid(state, "blue")

        rc, took = run_bg(ns, state, VIGILD)
        check(rc == 0, "blue -> green exited %d" % rc)
        print("# blue -> green switch: %.2f s" % took)
        check(open(os.path.join(state, "active")).read().strip() == "green", "green is not active")
        check(not netns.pid_alive(blue), "blue still runs after the switch")
        progress(scrapers)
        switch_failed = sum(s.snapshot()[1] for s in scrapers)
        print("# failed scrapes during the blue -> green switch: %d" % switch_failed)
        check(switch_failed == 0, "%d scrapes failed during the switch" % switch_failed)

        for broken in ("vigild-hangs", "vigild-exits"):
            green = active_pid(state, "green")
            base = [s.snapshot() for s in scrapers]
            rc, took = run_bg(ns, state, os.path.join(SRC, "tests", "deploy", broken), timeout=3)
            check(rc == 1, "%s: expected exit 1 (rolled back), got %d" % (broken, rc))
            print("# %s: gate failed and rolled back in %.2f s" % (broken, took))
            check(open(os.path.join(state, "active")).read().strip() == "green", "active color changed")
            check(netns.pid_alive(green), "the live color was stopped by a failed deployment")
            check(not os.path.exists(os.path.join(state, "blue", "vigild.pid")), "broken blue left running")
            progress(scrapers)
            after = [s.snapshot() for s in scrapers]
            failed = sum(a[1] - b[1] for a, b in zip(after, base))
            check(failed == 0, "%s: %d scrapes failed while rolling back" % (broken, failed))

        # 5. teardown: nothing of the deployment keeps running
        for sc in scrapers:
            sc.stop.set()
        green = active_pid(state, "green")
        with open(os.path.join(state, "haproxy.pid")) as f:
            haproxy = [int(x) for x in f.read().split()]
        r = subprocess.run(["ip", "netns", "exec", ns, SCRIPT, "--state-dir", state, "--teardown"],
                           capture_output=True, text=True, timeout=60)
        print(r.stderr.rstrip())
        check(r.returncode == 0, "teardown exited %d" % r.returncode)
        wait_for(lambda: not netns.pid_alive(green) and not any(netns.pid_alive(p) for p in haproxy),
                 10, "green and HAProxy stopped")
        check(not os.path.exists(os.path.join(state, "active")), "DIR/active left behind")
        check(os.path.isdir(os.path.join(state, "green")), "teardown without --purge removed data")
        r = subprocess.run([SCRIPT, "--state-dir", state, "--teardown", "--purge"],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0 and not os.path.exists(os.path.join(state, "green")),
              "teardown --purge: %d %s" % (r.returncode, r.stderr))
    finally:
        for s in scrapers:
            s.stop.set()
            s.join(10)
        for s in scrapers:
            print("# scraper keepalive=%s ok=%d failed=%d %s" % (s.keepalive, s.ok, s.failed, s.errors[:3]))
        net.close()  # stops HAProxy and vigild in the namespace
        bad = netns.sanitizer_reports([os.path.join(state, c) for c in ("blue", "green")
                                       if os.path.isdir(os.path.join(state, c))])
        tmp.cleanup()
    check(not bad, "sanitizer reports:\n" + "\n".join(bad))
    print("ok - blue-green switch and automatic rollback")


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print("FAIL:", e)
        sys.exit(1)
