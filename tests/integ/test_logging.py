#!/usr/bin/env python3
"""test_logging.py — log management through the real daemon: a JSON log file with fields that
rotates by size (every line whole and valid), SIGHUP reopens it after logrotate moved it, a flood
of one message is suppressed with a "suppressed N messages" line and counted in
vigil_log_dropped_total, secrets (a config value, an Authorization header) never reach a log, and
the syslog/journald sinks where the machine has them.
"""
import glob
import json
import os
import signal
import socket

from harness import Vigild, check, main, parse_metrics, scratch_dir, series, skip_part, wait_for

SECRET = "s3cr3t-jwt-key-0123456789abcdefghijklmnop"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2VjcmV0LXNpZ25hdHVyZQ"


def file_config(path, extra=""):
    return """
logging:
  level: debug
  format: json
  file: {path: %s, max_size: 4KiB, max_files: 3}
  rate_limit: {burst: 1000, interval: 10s}
%s""" % (path, extra)


def json_lines(paths):
    out = []
    for p in paths:
        with open(p) as f:
            data = f.read()
        check(data == "" or data.endswith("\n"), "%s ends mid-line" % p)
        for line in data.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                raise AssertionError("split or invalid line in %s: %r" % (p, line))
    return out


def test_json_file_rotates_whole_lines():
    tmp = scratch_dir("vigil-log-")
    log = os.path.join(tmp.name, "v.log")
    with Vigild("constant-2gpu.yaml", config=file_config(log)) as v:
        for i in range(60):
            v.inject(gpu=i % 2, field="GPU_TEMP", value=40 + i)
        wait_for(lambda: os.path.exists(log + ".2"), 10, "two rotations")
    files = [log] + sorted(glob.glob(log + ".*"))
    check(not os.path.exists(log + ".4"), "more than max_files kept: %r" % files)
    for p in files:
        check(os.path.getsize(p) <= 4096, "%s is %d bytes, over max_size" % (p, os.path.getsize(p)))
    lines = json_lines(files)
    for l in lines:
        check({"time", "level", "component", "msg"} <= set(l), "fields missing: %r" % l)
    injected = [l for l in lines if l["component"] == "inject"]
    check(len(injected) >= 20, "only %d inject lines kept" % len(injected))


def test_sighup_reopens_moved_file():
    tmp = scratch_dir("vigil-log-")
    log = os.path.join(tmp.name, "h.log")
    with Vigild("constant-2gpu.yaml", config=file_config(log).replace("4KiB", "10MiB")) as v:
        wait_for(lambda: os.path.getsize(log) > 0, 5, "first lines")
        os.rename(log, log + ".moved")
        v.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: os.path.exists(log) and "reloaded the configuration" in open(log).read(),
                 10, "the reopened file")
    check("starting vigild" in open(log + ".moved").read(), "old lines not in the moved file")


def test_flood_is_suppressed():
    cfg = """
logging:
  rate_limit: {burst: 5, interval: 1s}
"""
    with Vigild("constant-2gpu.yaml", config=cfg) as d:
        for i in range(40):
            d.inject(gpu=0, field="GPU_TEMP", value=50 + i)
        wait_for(lambda: "suppressed 35 messages like 'injected into GPU" in d.logs(), 5,
                 "the suppression summary")
        check(d.logs().count("injected into GPU") == 5 + 1, "flood not limited:\n" + d.logs())
        m = parse_metrics(d.metrics())
        dropped = series(m, "vigil_log_dropped_total")[0][1]
        check(dropped >= 35, "vigil_log_dropped_total %r" % dropped)
        check(series(m, "vigil_log_messages_total", level="info")[0][1] > 0, "no info count")


def test_secrets_never_logged():
    tmp = scratch_dir("vigil-log-")
    log = os.path.join(tmp.name, "s.log")
    cfg = file_config(log, """security:
  authentication:
    jwt_secret: ${VIGIL_TEST_SECRET}
""")
    with Vigild("constant-2gpu.yaml", config=cfg, env={"VIGIL_TEST_SECRET": SECRET}) as v:
        for path in ("/api/v1/status", "/api/v1/nope", "/metrics"):
            v.request("GET", path, headers={"Authorization": "Bearer " + TOKEN})
        v.request("POST", "/api/v1/inject", body={"gpu": 0, "password": SECRET},
                  headers={"Authorization": "Bearer " + TOKEN})
        st = v.get_json("/api/v1/status")
        check(SECRET not in json.dumps(st), "status shows the secret")
        v.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded the configuration" in open(log).read(), 10, "reload")
        text = open(log).read() + v.logs()
    check(len(text) > 500, "nothing was logged")
    check(SECRET not in text, "the jwt_secret reached the log")
    check(TOKEN not in text and TOKEN.split(".")[2] not in text, "the bearer token reached the log")


def test_syslog_and_journald():
    """The syslog sink: where no syslog daemon owns /dev/log (a CI container) and we may create
    it (root), the test listens there itself and checks the message that arrives. Both sinks
    under a real systemd, journald and rsyslog: test_systemd_pid1.py."""
    have_syslog = os.path.exists("/dev/log")
    have_journal = os.path.exists("/run/systemd/journal/socket")
    own = None
    if not have_syslog and os.geteuid() == 0 and os.access("/dev", os.W_OK):
        own = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        own.bind("/dev/log")
        own.settimeout(0.2)
        have_syslog = True
    try:
        if not have_syslog and not have_journal:
            skip_part("neither /dev/log nor journald on this machine, and /dev is not writable")
            return
        if have_syslog:
            with Vigild("constant-2gpu.yaml", config="logging: {syslog: {enabled: true, facility: local0}}\n") as d:
                d.inject(gpu=0, lost=True)  # logs an error: goes to syslog
                d.wait_metric("vigil_log_messages_total", lambda n: n >= 1, level="error",
                              what="the error to be logged")
                if own:
                    got = []

                    def received():
                        try:
                            got.append(own.recv(65536).decode(errors="replace"))
                        except socket.timeout:
                            pass
                        return [m for m in got if "vigild[" in m and "GPU" in m]
                    msgs = wait_for(received, 10, "a vigild message on /dev/log")
                    # local0 (16) * 8 + err (3) = <131>; any severity of local0 is 128..135
                    check(any(m.startswith("<13") for m in msgs), "facility local0: %r" % msgs[:3])
        if have_journal:
            with Vigild("constant-2gpu.yaml", env={"JOURNAL_STREAM": "0:0"}) as d:
                check(d.get("/healthz")[0] == 200, "daemon with JOURNAL_STREAM set")
    finally:
        if own:
            own.close()
            os.unlink("/dev/log")

if __name__ == "__main__":
    main([test_json_file_rotates_whole_lines, test_sighup_reopens_moved_file, test_flood_is_suppressed,
          test_secrets_never_logged, test_syslog_and_journald])
