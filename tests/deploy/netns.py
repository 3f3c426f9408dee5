"""netns.py — several "hosts" on one test machine: a network namespace each, joined by veth pairs
to a bridge in the root namespace (10.200.K.1/24; host i is 10.200.K.(10+i)). Each host runs
`vigild --simulate` on ADDR:5555. Needs root and `ip netns`; tests exit 77 (ctest SKIP) without.

Also a command-line tool used as the install/rollback hook of the deployment scripts:
    nodectl.py STATE.json install|rollback     (HOST in the environment: which host)
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77


def sh(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def netns_available():
    name = "vigil-probe-%d" % os.getpid()
    r = sh("ip", "netns", "add", name, check=False)
    if r.returncode != 0:
        return False, r.stderr.strip()
    sh("ip", "netns", "del", name, check=False)
    return True, ""


def skip_without_netns():
    """Exit 77 (SKIP) where network namespaces cannot be made; under VIGIL_CI=1 that fails
    instead (harness.skip): CI runs as root on a machine that allows them."""
    from harness import skip  # the integration tests put tests/integ on sys.path
    if os.geteuid() != 0:
        skip("needs root for ip netns (CI runs as root)")
    ok, why = netns_available()
    if not ok:
        skip("ip netns is not permitted here: %s" % why)


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] not in "ZX"
    except (FileNotFoundError, IndexError):
        return False


def stop_pid(pid, timeout=10):
    """SIGTERM, wait, SIGKILL. Returns seconds taken."""
    t0 = time.monotonic()
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return 0.0
    while pid_alive(pid) and time.monotonic() - t0 < timeout:
        time.sleep(0.02)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return time.monotonic() - t0


class Net:
    def __init__(self, k, n_hosts):
        self.k = k
        self.tag = "%d%03d" % (k, os.getpid() % 1000)
        self.bridge = "vb" + self.tag
        self.hosts = []  # (ns, ip)
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        try:
            sh("ip", "addr", "add", "10.200.%d.1/24" % k, "dev", self.bridge)
            sh("ip", "link", "set", self.bridge, "up")
            for i in range(n_hosts):
                ns = "vigil-%s-%d" % (self.tag, i)
                ip = "10.200.%d.%d" % (k, 10 + i)
                veth = "ve%sh%d" % (self.tag, i)
                sh("ip", "netns", "add", ns)
                self.hosts.append((ns, ip))
                sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
                sh("ip", "link", "set", veth, "master", self.bridge, "up")
                sh("ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0")
                sh("ip", "-n", ns, "link", "set", "eth0", "up")
                sh("ip", "-n", ns, "link", "set", "lo", "up")
        except Exception:
            self.close()
            raise

    def close(self):
        for ns, _ in self.hosts:
            r = sh("ip", "netns", "pids", ns, check=False)
            for p in r.stdout.split():
                stop_pid(int(p), 5)
            sh("ip", "netns", "del", ns, check=False)
        sh("ip", "link", "del", self.bridge, check=False)


def start_vigild(ns, binary, args, data, log_name):
    """Start BINARY ARGS inside ns as its own session; returns the pid (vigild's: ip execs it)."""
    os.makedirs(data, exist_ok=True)
    log = open(os.path.join(data, log_name), "w")
    p = subprocess.Popen(["ip", "netns", "exec", ns, binary] + list(args), stdout=log,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    with open(os.path.join(data, "vigild.pid"), "w") as f:
        f.write("%d\n" % p.pid)
    return p.pid


def sanitizer_reports(dirs):
    bad = []
    for d in dirs:
        for name in os.listdir(d):
            if not name.endswith(".log"):
                continue
            with open(os.path.join(d, name), errors="replace") as f:
                text = f.read()
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                if marker in text:
                    bad.append("%s/%s:\n%s" % (d, name, text[text.index(marker) - 200:][:3000]))
    return bad


def nodectl(state_path, action):
    """Install hook: stop the vigild of $HOST and start the new (install) or old (rollback) one."""
    with open(state_path) as f:
        st = json.load(f)
    host = os.environ["HOST"]
    node = st["hosts"][host]
    data = node["data"]
    if st.get("targets") and os.path.exists(st["targets"]):
        with open(st["targets"]) as f:
            drained = "%s:5555" % host not in f.read()
        with open(os.path.join(data, "drain-check"), "a") as f:
            f.write("%s drained=%s\n" % (action, drained))
    try:
        with open(os.path.join(data, "vigild.pid")) as f:
            stop_pid(int(f.read()))
    except FileNotFoundError:
        pass
    binary = st["new_bin"] if action == "install" else st["old_bin"]
    n = len([x for x in os.listdir(data) if x.startswith("vigild-")])
    start_vigild(node["ns"], binary, node["args"], data, "vigild-%d-%s.log" % (n, action))
    return 0


if __name__ == "__main__":
    sys.exit(nodectl(sys.argv[1], sys.argv[2]))
