"""harness.py — start a real vigild on the fake NVML and talk to it like a user would.

Each test starts `vigild --simulate=SCENARIO --listen 127.0.0.1:0` with a temporary data dir,
reads the bound URL from DATA_DIR/vigild.addr, and stops it at the end. Only the standard library.

The shared habits (docs/testing.md): wait with wait_for() / Vigild.wait_sweeps() /
wait_evaluations() / wait_metric(), never a fixed sleep; move scenario time with
Vigild.advance(); skip with skip() / skip_part(), which fail under VIGIL_CI=1 unless CI cannot
have the thing; temporary directories from scratch_dir().
"""
import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SRC = os.environ.get("VIGIL_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BUILD = os.environ.get("VIGIL_BUILD_DIR", os.path.join(SRC, "build"))
VIGILD = os.path.join(BUILD, "bin", "vigild")
VIGIL = os.path.join(BUILD, "bin", "vigil")
SCENARIOS = os.path.join(SRC, "tests", "scenarios")


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


# CI (VIGIL_CI=1, set by .ci/run) turns a skip into a failure unless its reason is one CI cannot
# have. Keep this list short; docs/testing.md explains each entry.
CI_CANNOT = {
    "gpu": "no NVIDIA GPU on CI machines",
    "container-engine": "no container engine (docker/podman) in the CI container",
}
SKIP = 77
# Every wait has at least this timeout (seconds), times VIGIL_TIMEOUT_SCALE (make test-tsan sets
# it: everything runs several times slower there). A short timeout would be a latency assert in
# disguise; latencies are measured in bench/, never asserted here.
WAIT_FLOOR = 10.0
TIMEOUT_SCALE = float(os.environ.get("VIGIL_TIMEOUT_SCALE", "1") or 1)


def in_ci():
    return os.environ.get("VIGIL_CI", "") not in ("", "0")


def skip(why, cannot=None):
    """Skip the whole test program (ctest SKIP, exit 77). In CI this fails (exit 1) unless cannot
    names an entry of CI_CANNOT: a tool that scripts/install-deps.sh installs must be there."""
    if in_ci() and cannot not in CI_CANNOT:
        print("FAIL: would skip in CI (VIGIL_CI=1): %s; scripts/install-deps.sh must provide it" % why,
              flush=True)
        sys.exit(1)
    print("SKIP: %s%s" % (why, " (%s)" % CI_CANNOT[cannot] if cannot in CI_CANNOT else ""), flush=True)
    sys.exit(SKIP)


def skip_part(why, cannot=None):
    """Skip one part of a test (it goes on). In CI a part skipped for a reason that is not in
    CI_CANNOT fails the test."""
    check(not in_ci() or cannot in CI_CANNOT,
          "would skip in CI (VIGIL_CI=1): %s; scripts/install-deps.sh must provide it" % why)
    print("# skip: %s" % why, flush=True)


def wait_for(pred, timeout, what, interval=0.05):
    """The one way a test waits for the daemon (or a tool) to do something: poll pred until it
    returns something true (returned), or fail after timeout seconds naming what it waited for.
    The timeout is a safety net for a loaded machine, not a measurement: make it generous."""
    timeout = max(timeout, WAIT_FLOOR) * TIMEOUT_SCALE
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (OSError, urllib.error.URLError, ValueError) as e:
            last = e
        time.sleep(interval)
    raise Failure("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))


def holds_for(pred, seconds, what, interval=0.1):
    """A fact that must stay true for a span of the daemon's own real time (a timer such as
    resolve_after, or a peer's timeout that has to pass): poll pred for seconds and fail at the
    first poll where it is false. Prefer Vigild.wait_sweeps when sweeps are what must pass."""
    deadline = time.monotonic() + seconds
    while True:
        v = pred()
        check(v, "%s stopped holding (%r)" % (what, v))
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def scratch_dir(prefix="vigil-test-"):
    """A temporary directory removed with its contents at the end of a with block."""
    return tempfile.TemporaryDirectory(prefix=prefix)


_started = []  # every vigild this process started: none may outlive the test program


@atexit.register
def _kill_leftovers():
    for p in _started:
        if p.poll() is None:
            p.kill()
            p.wait()


class Vigild:
    def __init__(self, scenario=None, args=(), config=None, env=None, simulate=True):
        self.tmp = scratch_dir("vigil-integ-")
        self.data = self.tmp.name
        self.sock = os.path.join(self.data, "vigild.sock")
        cmd = [VIGILD, "--listen", "127.0.0.1:0", "--data-dir", self.data, "--socket", self.sock]
        if simulate:
            if scenario:
                path = scenario if os.path.isabs(scenario) else os.path.join(SCENARIOS, scenario)
                cmd.append("--simulate=" + path)
            else:
                cmd.append("--simulate")
        if config is not None:
            cpath = os.path.join(self.data, "vigil.yaml")
            with open(cpath, "w") as f:
                f.write(config)
            cmd += ["--config", cpath]
        cmd += list(args)
        self.cmd = cmd
        self.log_path = os.path.join(self.data, "vigild.log")
        self.log = open(self.log_path, "w+")
        e = dict(os.environ)
        e.update(env or {})
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=e)
        _started.append(self.proc)
        self.url = None

    def wait_listening(self, timeout=10):
        addr = os.path.join(self.data, "vigild.addr")

        def ready():
            if self.proc.poll() is not None:
                raise Failure("vigild exited with %s:\n%s" % (self.proc.returncode, self.logs()))
            if os.path.exists(addr):
                with open(addr) as f:
                    u = f.read().strip()
                return u or None
            return None

        self.url = wait_for(ready, timeout, "vigild to listen")
        return self

    def __enter__(self):
        return self.wait_listening()

    def __exit__(self, *exc):
        self.stop()
        if exc[0] is not None:
            sys.stderr.write("---- vigild log ----\n" + self.logs() + "\n")
        return False

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Failure("vigild did not stop within %ds of %s" % (timeout, sig))
        # Under the ASan/UBSan or TSan build a report goes to vigild's stderr: any report fails
        # the test.
        log = self.logs()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "WARNING: ThreadSanitizer:"):
            if marker in log:
                raise Failure("sanitizer report from vigild:\n" + log[log.index(marker) - 200:][:4000])
        return self.proc.returncode

    def logs(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    # HTTP helpers -------------------------------------------------------------------------
    def request(self, method, path, body=None, headers=None):
        data = None
        hdrs = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode() if not isinstance(body, (bytes, str)) else (
                body.encode() if isinstance(body, str) else body)
            hdrs.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()
        except (OSError, urllib.error.URLError):
            self.check_alive()
            raise

    def check_alive(self):
        """A request that cannot connect because vigild died fails at once with its exit status
        and log, instead of a wait that times out on "connection refused"."""
        if self.proc.poll() is not None:
            raise Failure("vigild exited with %s:\n%s" % (self.proc.returncode, self.logs()[-6000:]))

    def get(self, path):
        return self.request("GET", path)

    def get_json(self, path, expect=200):
        st, hdr, body = self.get(path)
        check(st == expect, "GET %s: expected %d, got %d: %s" % (path, expect, st, body[:300]))
        return json.loads(body)

    def post_json(self, path, obj, expect=200):
        st, hdr, body = self.request("POST", path, obj)
        check(st == expect, "POST %s %r: expected %d, got %d: %s" % (path, obj, expect, st, body[:300]))
        return json.loads(body)

    def metrics(self):
        st, hdr, body = self.get("/metrics")
        check(st == 200, "/metrics answered %d" % st)
        return body.decode()

    def inject(self, **kw):
        if "xid" in kw and not getattr(self, "_watching", False):
            self.wait_events_watched()
        return self.post_json("/api/v1/inject", kw)

    def wait_events_watched(self):
        """Like NVML, the fake delivers an XID only to an event set registered before it: wait
        until vigild watches events (status "events.watching") before injecting one."""
        def watching():
            st, _, body = self.get("/api/v1/status")
            return st != 200 or json.loads(body).get("events", {}).get("watching")
        try:
            wait_for(watching, 10, "vigild to watch NVML events")
        except Failure:
            pass  # a scenario without events: the test itself checks what happens
        self._watching = True

    def advance(self, seconds):
        """Move the fake NVML's scenario clock seconds ahead: ramps, steps at t, events at t and
        the trace replay jump there at once (the daemon's own clock is untouched)."""
        return self.inject(advance_s=seconds)

    def metric(self, name, **labels):
        """Sum of the samples of one family whose labels include labels (0 when none)."""
        return sum(v for _, v in series(parse_metrics(self.metrics()), name, **labels))

    def wait_metric(self, name, pred, timeout=15, what=None, **labels):
        """Wait until pred(sum of the family's samples matching labels) holds."""
        return wait_for(lambda: (lambda v: (v,) if pred(v) else None)(self.metric(name, **labels)),
                        timeout, what or "%s%s to satisfy the condition" % (name, labels))[0]

    def wait_sweeps(self, n=1, tier="fast", timeout=30):
        """Wait until n more sweeps of a tier are done (the next /metrics snapshot shows the
        state they saw). Use it where a test used to sleep 'a sweep or two'."""
        name = "vigil_collection_sweeps_total"
        start = self.metric(name, tier=tier)
        self.wait_metric(name, lambda v: v >= start + n, timeout,
                         "%d more %s sweeps (from %d)" % (n, tier, start), tier=tier)

    def wait_evaluations(self, n=1, timeout=30):
        """Wait until the health engine has evaluated n more sweeps (GET /api/v1/health)."""
        start = self.get_json("/api/v1/health")["evaluations"]
        wait_for(lambda: self.get_json("/api/v1/health")["evaluations"] >= start + n, timeout,
                 "%d more health evaluations (from %d)" % (n, start))


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value} for sample lines."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, rest = line.split("{", 1)
            labels_s, value = rest.rsplit("} ", 1)
            labels = {}
            # label values are quoted and may contain escaped quotes and commas
            i = 0
            while i < len(labels_s):
                eq = labels_s.index("=", i)
                key = labels_s[i:eq]
                j = eq + 2
                val = []
                while labels_s[j] != '"':
                    if labels_s[j] == "\\":
                        j += 1
                        val.append({"n": "\n"}.get(labels_s[j], labels_s[j]))
                    else:
                        val.append(labels_s[j])
                    j += 1
                labels[key] = "".join(val)
                i = j + 2 if j + 1 < len(labels_s) and labels_s[j + 1] == "," else j + 1
        else:
            name, value = line.split(" ", 1)
            labels = {}
        out[(name, frozenset(labels.items()))] = float(value.split(" ")[0])
    return out


def series(metrics, name, **match):
    """Samples of one family whose labels include match: [(labels dict, value)]."""
    res = []
    for (n, labels), v in metrics.items():
        if n != name:
            continue
        d = dict(labels)
        if all(d.get(k) == str(val) for k, val in match.items()):
            res.append((d, v))
    return res


def run_cli(*args, timeout=30, check_rc=None):
    p = subprocess.run([VIGIL] + list(args), capture_output=True, text=True, timeout=timeout)
    if check_rc is not None and p.returncode != check_rc:
        raise Failure("vigil %s: exit %d (expected %d)\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(args), p.returncode, check_rc, p.stdout, p.stderr))
    return p


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main(tests):
    """Run test functions; print TAP-ish lines; exit 1 on any failure."""
    failed = 0
    only = sys.argv[1:]
    for t in tests:
        if only and t.__name__ not in only:
            continue
        start = time.monotonic()
        try:
            t()
            print("ok - %s (%.1fs)" % (t.__name__, time.monotonic() - start), flush=True)
        except Exception as e:  # noqa: BLE001 — report every failure kind
            failed += 1
            print("not ok - %s: %s: %s" % (t.__name__, type(e).__name__, e), flush=True)
    sys.exit(1 if failed else 0)
