#!/usr/bin/env python3
"""test_systemd_pid1.py — deploy/systemd/vigild.service run by a real systemd (PID 1 in a podman
container, --systemd=always), with the vigild and vigil of this build tree.

The image is Debian 12 minbase plus systemd, rsyslog and vigild's runtime libraries, made from the
package mirror with mmdebstrap and kept in podman's storage (tests/integ/containers.py). The
container has no network but its own loopback. The binaries and the fake NVML are copied from the
build tree (read-only bind mount) to /usr/bin and /usr/lib; the unit is installed unchanged, plus
a drop-in whose ExecStart= is the unit's own with --simulate=SCENARIO appended.

Checks, live:
1. Type=notify: `systemctl start vigild` returns once READY=1 is sent: the API answers at once.
2. Reload: `systemctl reload vigild` applies a changed reloadable key (the journal says
   "reloaded"); a broken file makes `systemctl reload` fail (ExecReload's vigild --check-config),
   the running vigild and its settings stay, and the journal names the problem.
3. journald: vigild's entries come through sd_journal_send (_TRANSPORT=journal) with PRIORITY,
   SYSLOG_IDENTIFIER=vigild, VIGIL_COMPONENT and the message's fields (GPU) (docs/logging.md).
4. The syslog sink (logging.syslog.enabled, facility local0) reaches rsyslog through journald's
   syslog socket: rsyslog files it by facility local0, and journald records SYSLOG_FACILITY=16.
5. kill -9: systemd restarts vigild (NRestarts + 1, a new MainPID) and an incident opened
   before the crash is still there.
6. The watchdog: a sampler that hangs (the fake NVML's nvmlDeviceGetTemperature made to take
   60 s, with health.nvml_call_timeout raised so that vigild does not give the call up itself)
   stops the WATCHDOG=1 pings; systemd (WatchdogSec= of the unit) kills and restarts vigild, and
   the journal says "Watchdog timeout".
7. `systemd-analyze security vigild` (live, not --offline) scores at or under 2.0.
Times are printed, never asserted.
"""
import json
import os
import re
import subprocess
import sys
import time

from containers import PODMAN, Podman, debian_image, engine_missing, package_image_name
from harness import BUILD, SRC, check, main, skip, wait_for

UNIT = os.path.join(SRC, "deploy", "systemd", "vigild.service")
SCENARIO = os.path.join(SRC, "tests", "scenarios", "health-watchdog.yaml")
# systemd and what the unit's ExecReload needs (procps: /bin/kill), rsyslog for the syslog sink,
# curl to ask the API from inside, and the runtime libraries of vigild and vigil (the same list as
# deploy/docker/Dockerfile's runtime stage, less the lazily loaded libgrpc29).
PACKAGES = ("systemd", "systemd-sysv", "dbus", "procps", "ca-certificates", "curl", "rsyslog",
            "libmicrohttpd12", "libjansson4", "libyaml-0-2", "libssl3", "libcurl4", "libsqlite3-0",
            "libsystemd0", "libjwt0", "libarchive13", "libcrypt1", "libgnutls30", "libprotobuf-c1")
IMAGE = package_image_name("localhost/vigil-systemd", PACKAGES)
NAME = "vigil-test-systemd-%d" % os.getpid()  # two runs on one machine do not meet
SOCK = "/run/vigil/vigild.sock"

CONFIG = """\
listen: 127.0.0.1:5555
logging:
  level: info
  syslog: {enabled: true, facility: local0}
"""


class Box:
    """The booted container and shell helpers into it."""

    def __init__(self):
        self.pm = Podman()

    def sh(self, script, ok=True, timeout=120):
        p = self.pm.run("exec", NAME, "sh", "-c", script, timeout=timeout, ok=False)
        if ok:
            check(p.returncode == 0, "in the container: %s: exit %d\n%s%s"
                  % (script, p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
        return p

    def show(self, *props):
        out = self.sh("systemctl show vigild -p " + ",".join(props)).stdout
        return dict(l.split("=", 1) for l in out.splitlines() if "=" in l)

    def api(self, method, path, body=None):
        """(status, parsed JSON or text) over the unix socket, from inside the container."""
        data = "" if body is None else " -H 'Content-Type: application/json' -d '%s'" % json.dumps(body)
        p = self.sh("rm -f /tmp/body; curl -s -m 5 -o /tmp/body -w '%%{http_code}' --unix-socket %s -X %s%s "
                    "http://localhost%s; echo; cat /tmp/body" % (SOCK, method, data, path), ok=False)
        first, _, rest = p.stdout.partition("\n")
        st = int(first) if first.strip().isdigit() else 0
        try:
            return st, json.loads(rest)
        except ValueError:
            return st, rest

    def journal(self, since_cursor=None, unit=True, extra=""):
        """journalctl -o json entries (dicts) of vigild, or of every unit with unit=False."""
        cmd = "journalctl --no-pager -o json" + (" -u vigild" if unit else "") + extra
        if since_cursor:
            cmd += " --after-cursor='%s'" % since_cursor
        out = self.sh(cmd).stdout
        return [json.loads(l) for l in out.splitlines() if l.startswith("{")]

    def cursor(self):
        es = self.journal(unit=False, extra=" -n 1")
        return es[-1]["__CURSOR"] if es else None

    def write(self, path, text, mode="0644", group="root"):
        p = subprocess.run(self.pm_cmd("exec", "-i", NAME, "sh", "-c", "cat > %s && chmod %s %s && chgrp %s %s"
                                       % (path, mode, path, group, path)),
                           input=text, capture_output=True, text=True, timeout=30, env=self.pm.env)
        check(p.returncode == 0, "write %s: %s" % (path, p.stderr))

    def write_config(self, text):
        """/etc/vigil/vigil.yaml as docs/deployment.md installs it: root's, readable by vigild."""
        self.write("/etc/vigil/vigil.yaml", text, "0640", "vigil")

    def pm_cmd(self, *args):
        return [PODMAN, "--runtime", "runc", "--cgroup-manager", "cgroupfs"] + list(args)


BOX = None


def messages(entries):
    return [str(e.get("MESSAGE", "")) for e in entries]


def boot():
    global BOX
    box = Box()
    BOX = box
    t0 = time.monotonic()
    debian_image(box.pm, IMAGE, PACKAGES)
    t1 = time.monotonic()
    box.pm.start(NAME, "--systemd=always", "-v", "%s:/vigil/build:ro" % BUILD,
                 "-v", "%s:/vigil/src:ro" % SRC, IMAGE, "/sbin/init", network="none")
    # (an exec right after the start may come before systemd listens on its bus: ask again)
    st = wait_for(lambda: box.sh("systemctl is-system-running --wait", ok=False, timeout=120).stdout.strip()
                  or None, 120, "systemd to finish booting")
    check(st in ("running", "degraded"), "systemd in the container: %r; failed units: %s"
          % (st, box.sh("systemctl --failed --no-legend", ok=False).stdout))
    print("# image %.1f s, boot %.1f s (%s)" % (t1 - t0, time.monotonic() - t1, st))
    # installed as a package would: the binaries, the fake NVML beside them (vigild finds
    # /usr/lib/libvigil-fakenvml.so from /usr/bin), a system user in the video group, the unit
    box.sh("install -m 0755 /vigil/build/bin/vigild /vigil/build/bin/vigil /usr/bin/ && "
           "install -m 0644 /vigil/build/lib/libvigil-fakenvml.so /usr/lib/ && "
           "useradd --system --home-dir /var/lib/vigil --shell /usr/sbin/nologin --groups video vigil && "
           "install -m 0644 /vigil/src/deploy/systemd/vigild.service /etc/systemd/system/ && "
           "install -d -m 0750 -g vigil /etc/vigil && mkdir -p /etc/systemd/system/vigild.service.d /usr/share/vigil && "
           "install -m 0644 /vigil/src/tests/scenarios/health-watchdog.yaml /usr/share/vigil/")
    with open(UNIT) as f:
        execstart = [l.strip() for l in f if l.startswith("ExecStart=")]
    check(len(execstart) == 1, "the unit's ExecStart: %r" % execstart)
    box.write("/etc/systemd/system/vigild.service.d/simulate.conf",
              "[Service]\nExecStart=\n%s --simulate=/usr/share/vigil/health-watchdog.yaml\n" % execstart[0])
    box.write_config(CONFIG)
    # rsyslog files local0 apart, with the facility and severity it received
    box.write("/etc/rsyslog.d/10-vigil-test.conf",
              '$template VigilTest,"%syslogfacility-text%.%syslogseverity-text% %syslogtag%%msg%\\n"\n'
              "local0.* /var/log/vigil-local0.log;VigilTest\n")
    box.sh("systemctl restart rsyslog && systemctl daemon-reload")


def test_start_notify():
    box = BOX
    t = time.monotonic()
    p = box.sh("systemctl start vigild", ok=False, timeout=90)
    dt = time.monotonic() - t
    if p.returncode != 0:
        check(False, "systemctl start vigild: exit %d %s\n%s" % (
            p.returncode, p.stderr, box.sh("journalctl -u vigild --no-pager -n 40", ok=False).stdout))
    # no wait: Type=notify returned after READY=1, which vigild sends once it serves
    st, body = box.api("GET", "/readyz")
    check(st == 200, "/readyz right after systemctl start: %d %r" % (st, body))
    st, status = box.api("GET", "/api/v1/status")
    check(st == 200, "/api/v1/status: %d %r" % (st, status))
    s = box.show("Type", "ActiveState", "SubState", "MainPID", "WatchdogUSec", "User")
    check(s["Type"] == "notify" and s["ActiveState"] == "active" and s["SubState"] == "running",
          "unit state %r" % s)
    print("# systemctl start vigild -> returned after READY=1 in %.2f s; %r" % (dt, s))
    st, gpus = box.api("GET", "/api/v1/gpus")
    check(st == 200 and len(gpus if isinstance(gpus, list) else gpus.get("gpus", [])) == 2,
          "/api/v1/gpus: %d %r" % (st, str(gpus)[:300]))
    ps = box.sh("ps -o user=,comm= -p %s" % s["MainPID"]).stdout.split()
    check(ps == ["vigil", "vigild"], "vigild runs as %r" % ps)


def syslog_facility_of_xid(box, gpu, xid, cursor):
    """The SYSLOG_FACILITY journald recorded for vigild's syslog(3) line of an injected XID."""
    st, body = box.api("POST", "/api/v1/inject", {"gpu": gpu, "xid": xid})
    check(st == 200, "inject xid: %d %r" % (st, body))

    def entry():
        es = [e for e in box.journal(cursor, unit=False, extra=" SYSLOG_IDENTIFIER=vigild")
              if e.get("_TRANSPORT") == "syslog" and "XID %d" % xid in str(e.get("MESSAGE"))]
        return es[0] if es else None
    return wait_for(entry, 30, "the syslog line of XID %d" % xid).get("SYSLOG_FACILITY")


def test_reload():
    """A reloadable key (logging.syslog.facility, docs/configuration.md) applied by systemctl
    reload; a broken file refused by systemctl reload, the running settings kept."""
    box = BOX
    pid = box.show("MainPID")["MainPID"]
    try:
        cur = box.cursor()
        box.write_config(CONFIG.replace("facility: local0", "facility: local1"))
        p = box.sh("systemctl reload vigild", ok=False, timeout=60)
        check(p.returncode == 0, "systemctl reload with a good file: exit %d %s" % (p.returncode, p.stderr))
        wait_for(lambda: [m for m in messages(box.journal(cur))
                          if "reloaded the configuration" in m and "logging.syslog.facility" in m], 30,
                 "'reloaded the configuration ... applied: logging.syslog.facility' in the journal")
        f = syslog_facility_of_xid(box, 0, 31, cur)
        check(f == "17", "after the reload to local1 (17): SYSLOG_FACILITY %r" % f)
        # a broken file: systemctl reload fails and says why; the running vigild keeps its settings
        cur = box.cursor()
        box.write_config(CONFIG.replace("facility: local0", "facility: local2") +
                         "collection: {tiers: {fast: notaduration}}\n")
        p = box.sh("systemctl reload vigild", ok=False, timeout=60)
        print("# systemctl reload with a broken file: exit %d: %s" % (p.returncode, p.stderr.strip()[:200]))
        check(p.returncode != 0, "systemctl reload of a broken file exited 0")
        s = box.show("ActiveState", "SubState", "MainPID")
        check(s["ActiveState"] == "active" and s["SubState"] == "running" and s["MainPID"] == pid,
              "after a refused reload: %r (MainPID was %s)" % (s, pid))
        msgs = messages(box.journal(cur))
        check(any("notaduration" in m and "collection.tiers.fast" in m for m in msgs),
              "the journal does not name the refused key: %r" % msgs[-10:])
        check(not any("reloaded the configuration" in m for m in msgs), "reloaded anyway: %r" % msgs[-10:])
        st, _ = box.api("GET", "/readyz")
        check(st == 200, "/readyz after a refused reload: %d" % st)
        f = syslog_facility_of_xid(box, 0, 43, cur)
        check(f == "17", "after the refused reload: SYSLOG_FACILITY %r, not local1's 17" % f)
    finally:
        box.write_config(CONFIG)
        box.sh("systemctl reload vigild", ok=False)


def test_journald_fields():
    box = BOX
    cur = box.cursor()
    st, body = box.api("POST", "/api/v1/inject", {"gpu": 1, "xid": 79})
    check(st == 200, "inject xid: %d %r" % (st, body))

    def gpu_entries():
        es = [e for e in box.journal(cur) if e.get("GPU") == "1" and e.get("VIGIL_COMPONENT")]
        return es or None
    es = wait_for(lambda: (lambda v: v if v and any(x.get("INCIDENT") for x in v) else None)(gpu_entries()),
                  30, "vigild's journal entries with GPU=1: the XID and the incident it opened")
    xid = [x for x in es if x.get("VIGIL_COMPONENT") == "events" and x.get("XID") == "79"]
    check(xid, "no entry of component events with XID=79: %r" % messages(es))
    check(all(x.get("UUID", "").startswith("GPU-") for x in es), "UUID field: %r" % [x.get("UUID") for x in es])
    e = xid[0]
    print("# journal entry: %s" % {k: v for k, v in e.items() if not k.startswith("__")})
    check(e.get("_TRANSPORT") == "journal", "_TRANSPORT %r (not sd_journal_send)" % e.get("_TRANSPORT"))
    check(e.get("SYSLOG_IDENTIFIER") == "vigild", "SYSLOG_IDENTIFIER %r" % e.get("SYSLOG_IDENTIFIER"))
    check(e.get("PRIORITY") in [str(i) for i in range(8)], "PRIORITY %r" % e.get("PRIORITY"))
    check(e.get("_SYSTEMD_UNIT") == "vigild.service", "_SYSTEMD_UNIT %r" % e.get("_SYSTEMD_UNIT"))
    # no CODE_FILE/CODE_LINE of the logger itself (the same log.c line on every entry, and the
    # build machine's path)
    check("log.c" not in e.get("CODE_FILE", ""), "CODE_FILE %r CODE_LINE %r" % (e.get("CODE_FILE"), e.get("CODE_LINE")))
    # journalctl's own match on a field of vigild
    out = box.sh("journalctl --no-pager -u vigild -o cat VIGIL_COMPONENT=%s GPU=1" % e["VIGIL_COMPONENT"]).stdout
    check(e["MESSAGE"] in out, "journalctl VIGIL_COMPONENT=... GPU=1 does not find %r" % e["MESSAGE"])
    # nothing of vigild's own lines went through stdout/stderr as plain text
    # (ExecReload's vigild --check-config prints to stdout: only the daemon's own lines count)
    plain = [x for x in box.journal() if x.get("_TRANSPORT") == "stdout" and "--socket" in x.get("_CMDLINE", "")]
    check(not plain, "vigild lines through the stderr stream, not sd_journal_send: %r" % messages(plain)[:3])


def test_syslog_sink():
    """logging.syslog (facility local0): syslog(3) -> journald's /dev/log -> rsyslog (Debian's
    journald forwards to the syslog socket)."""
    box = BOX
    cur = box.cursor()
    st, body = box.api("POST", "/api/v1/inject", {"gpu": 0, "xid": 48})
    check(st == 200, "inject xid: %d %r" % (st, body))

    def syslog_entries():
        es = [e for e in box.journal(cur, unit=False, extra=" SYSLOG_IDENTIFIER=vigild")
              if e.get("_TRANSPORT") == "syslog"]
        return es or None
    es = wait_for(syslog_entries, 30, "vigild's syslog(3) message in the journal")
    check(all(e.get("SYSLOG_FACILITY") == "16" for e in es),
          "SYSLOG_FACILITY (local0 = 16): %r" % [e.get("SYSLOG_FACILITY") for e in es])
    check(all(int(e.get("PRIORITY", 7)) <= 4 for e in es), "syslog gets warnings and errors only: %r"
          % [(e.get("PRIORITY"), e.get("MESSAGE")) for e in es][:5])

    def rsyslog_lines():
        out = box.sh("cat /var/log/vigil-local0.log 2>/dev/null", ok=False).stdout
        return [l for l in out.splitlines() if "vigild[" in l and "48" in l] or None
    lines = wait_for(rsyslog_lines, 30, "rsyslog to file vigild's message under local0")
    print("# rsyslog: %s" % lines[0])
    check(lines[0].startswith("local0."), "rsyslog facility: %r" % lines[0])


def wait_restart(box, before, what, timeout):
    def restarted():
        s = box.show("NRestarts", "MainPID", "ActiveState", "SubState")
        if int(s["NRestarts"]) > before and s["ActiveState"] == "active" and s["SubState"] == "running":
            return s
        return None
    return wait_for(restarted, timeout, what, interval=0.2)


def test_crash_restart_keeps_state():
    box = BOX
    st, body = box.api("POST", "/api/v1/inject", {"gpu": 0, "xid": 79})
    check(st == 200, "inject: %d %r" % (st, body))

    def incident():
        st, inc = box.api("GET", "/api/v1/incidents")
        items = inc.get("incidents", []) if isinstance(inc, dict) else inc if isinstance(inc, list) else []
        return [i for i in items if str(i.get("gpu")) == "0"] or None
    before_inc = wait_for(incident, 30, "an incident on GPU 0")
    ids = sorted(i["id"] for i in before_inc)
    s = box.show("NRestarts", "MainPID")
    t = time.monotonic()
    box.sh("kill -9 %s" % s["MainPID"])
    s2 = wait_restart(box, int(s["NRestarts"]), "systemd to restart vigild after kill -9", 30)
    print("# kill -9 -> restarted (NRestarts %s -> %s) in %.2f s" % (s["NRestarts"], s2["NRestarts"],
                                                                   time.monotonic() - t))
    check(s2["MainPID"] != s["MainPID"], "same MainPID after kill -9")
    st, _ = box.api("GET", "/readyz")
    check(st == 200, "/readyz after the restart: %d" % st)
    after = incident() or []
    check(ids == sorted(i["id"] for i in after if i["id"] in ids),
          "incidents %r before kill -9, %r after" % (ids, [i["id"] for i in after]))


def test_watchdog():
    """vigild gives up a hung NVML call itself after health.nvml_call_timeout (5 s: the GPU is
    marked unresponsive, sampling goes on). With that timeout raised past WatchdogSec, a hung call
    stalls the fast tier: vigild withholds its pings and systemd kills and restarts it."""
    box = BOX
    try:
        box.write_config(CONFIG + "health: {nvml_call_timeout: 10m}\n")
        box.sh("systemctl reload vigild")
        s = box.show("NRestarts", "MainPID", "WatchdogUSec")
        print("# WatchdogUSec=%s" % s["WatchdogUSec"])
        cur = box.cursor()
        t = time.monotonic()
        st, body = box.api("POST", "/api/v1/inject", {"call": "nvmlDeviceGetTemperature", "cost_us": 60000000})
        check(st == 200, "inject the hang: %d %r" % (st, body))
        s2 = wait_restart(box, int(s["NRestarts"]), "systemd's watchdog to restart the hung vigild", 60)
        print("# sampler hung -> restarted by the watchdog in %.1f s" % (time.monotonic() - t))
        check(s2["MainPID"] != s["MainPID"], "same MainPID")
        msgs = messages(box.journal(cur, unit=False))
        check(any("Watchdog timeout" in m for m in msgs), "no 'Watchdog timeout' in the journal: %r" % msgs[-15:])
        check(any("Failed with result 'watchdog'" in m for m in msgs),
              "systemd did not end it for the watchdog: %r" % msgs[-15:])
        check(any("sampler stalled" in m for m in msgs), "vigild did not log 'sampler stalled': %r" % msgs[-15:])
        st, _ = box.api("GET", "/readyz")
        check(st == 200, "/readyz after the watchdog restart: %d" % st)
    finally:
        box.write_config(CONFIG)
        box.sh("systemctl reload vigild", ok=False)


def test_security_live():
    box = BOX
    p = box.sh("systemd-analyze security vigild --no-pager", ok=False)
    m = re.search(r"Overall exposure level for vigild.service: ([0-9.]+)", p.stdout + p.stderr)
    check(m, "no exposure level:\n%s%s" % (p.stdout[-2000:], p.stderr))
    print("# systemd-analyze security vigild (live): %s" % m.group(1))
    check(float(m.group(1)) <= 2.0, "exposure %s > 2.0 (docs/deployment.md)" % m.group(1))


if __name__ == "__main__":
    if engine_missing():
        skip(engine_missing())
    try:
        boot()
    except Exception as e:  # noqa: BLE001
        print("not ok - boot: %s: %s" % (type(e).__name__, e), flush=True)
        BOX and BOX.pm.cleanup()
        sys.exit(1)
    try:
        main([test_start_notify, test_reload, test_journald_fields, test_syslog_sink,
              test_crash_restart_keeps_state, test_watchdog, test_security_live])
    finally:
        if os.environ.get("VIGIL_KEEP_CONTAINER"):
            print("# kept: podman exec -it %s bash" % NAME)
        else:
            BOX.pm.cleanup()
