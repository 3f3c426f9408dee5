#!/usr/bin/env python3
"""test_state.py — state that survives anything (issue 19), as a user meets it:

- no acknowledged write is lost when another process opens the live database: the sqlite3 shell
  reads it once, a token is revoked, vigild is killed with SIGKILL, and after the restart the
  token is still refused; and a kill -9 loop with a process reading the database in a loop beside
  the writer (--bench: 200 iterations instead of 50);
- the audit trail cannot be trimmed at either end without `vigil audit verify` saying so;
- revocations stay revoked (a past exp, a restart);
- `vigil audit verify --db` and `vigil backup verify` leave the files and directory as they were.

Run alone: python3 tests/integ/test_state.py [--bench] [test_name ...]."""
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

from harness import BUILD, Vigild, check, main, run_cli, wait_for
from test_security import AUTH, SECRET, claims, mint, raw, req, status_of, unix

WRITER = os.path.join(BUILD, "tests", "store_writer")
BENCH = "--bench" in sys.argv
if BENCH:
    sys.argv.remove("--bench")
ITERATIONS = int(os.environ.get("VIGIL_STATE_ITERATIONS", "200" if BENCH else "50"))
ENV = {"VIGIL_JWT_SECRET": SECRET}


def sqlite_shell(db, sql):
    p = subprocess.run(["sqlite3", db, sql], capture_output=True, text=True, timeout=30)
    check(p.returncode == 0, "sqlite3 %s %r: %s" % (db, sql, p.stderr))
    return p.stdout


def start_on(data, config):
    """vigild on an existing data dir; returns a started Vigild whose temp dir is data."""
    d = Vigild.__new__(Vigild)
    cpath = os.path.join(data, "vigil.yaml")
    with open(cpath, "w") as f:
        f.write(config)
    d.tmp = None
    d.data = data
    d.sock = os.path.join(data, "vigild.sock")
    d.cmd = [os.path.join(BUILD, "bin", "vigild"), "--simulate", "--listen", "127.0.0.1:0",
             "--data-dir", data, "--socket", d.sock, "--config", cpath]
    d.log_path = os.path.join(data, "vigild.log.%d" % time.monotonic_ns())
    d.log = open(d.log_path, "w+")
    d.started = time.monotonic()
    try:
        os.unlink(os.path.join(data, "vigild.addr"))
    except FileNotFoundError:
        pass
    d.proc = subprocess.Popen(d.cmd, stdout=d.log, stderr=subprocess.STDOUT,
                              env=dict(os.environ, **ENV))
    d.url = None
    return d.wait_listening()


def test_revocation_survives_reader_and_kill9():
    """The issue's reproduction: sqlite3 reads the live database once; a revocation answered
    "revoked" must survive kill -9."""
    with tempfile.TemporaryDirectory(prefix="vigil-state-") as data:
        db = os.path.join(data, "vigil.db")
        tok = mint(claims(jti="survivor"))
        d = start_on(data, AUTH)
        try:
            check(req(d, "GET", "/api/v1/gpus", tok)[0] == 200, "the token works before")
            # `select 1;` alone never reads the file; a query that does is what an operator types
            check(sqlite_shell(db, "select 1;").strip() == "1", "sqlite3 read")
            sqlite_shell(db, "select count(*) from sqlite_master;")
            code, out = unix(d, "POST", "/api/v1/tokens/revoke", {"jti": "survivor"})
            check(code == 200 and '"revoked"' in out, "revoke: %d %s" % (code, out))
            check(req(d, "GET", "/api/v1/gpus", tok)[0] == 401, "refused after the revocation")
        finally:
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait()
        rows = sqlite_shell(db, "select jti from auth_revoked;")
        d = start_on(data, AUTH)
        try:
            st = req(d, "GET", "/api/v1/gpus", tok)[0]
            check(st == 401, "after kill -9 and restart the revoked token answers %d "
                  "(auth_revoked rows: %r)" % (st, rows))
        finally:
            d.stop()


def reader_loop(db, stop, errors):
    """Another process's reads, as an operator's sqlite3 shell or a monitoring script would."""
    while not stop.is_set():
        if not os.path.exists(db):  # the writer has not created it yet
            time.sleep(0.002)
            continue
        try:
            # read-write, as the sqlite3 shell opens it: only such a connection may checkpoint
            # and delete the WAL when it closes
            con = sqlite3.connect(db, timeout=5)
            con.execute("select count(*) from sqlite_master").fetchall()
            try:
                con.execute("select count(*) from store_events").fetchall()
            except sqlite3.OperationalError:
                pass
            con.close()
        except sqlite3.Error as e:
            if "locked" not in str(e) and "no such table" not in str(e):
                errors.append(str(e))
        time.sleep(0.002)


def writer_ids(db):
    p = subprocess.run([WRITER, "check", db], capture_output=True, text=True, timeout=60)
    ids, integrity = set(), None
    for line in p.stdout.splitlines():
        if line.startswith("id "):
            ids.add(int(line[3:]))
        elif line.startswith("integrity "):
            integrity = line[len("integrity "):]
    check(p.returncode == 0 and integrity == "ok",
          "check of %s failed (rc %d): %s %s" % (db, p.returncode, p.stdout[-500:], p.stderr))
    return ids


def test_kill9_with_concurrent_reader():
    """kill -9 at random points while another process reads the database in a loop: every
    acknowledged row is there after each crash."""
    with tempfile.TemporaryDirectory(prefix="vigil-crash-reader-") as d:
        db = os.path.join(d, "vigil.db")
        rnd = random.Random(int(os.environ.get("VIGIL_CRASH_SEED", "4321")))
        acked_all = set()
        for i in range(ITERATIONS):
            stop, errors = threading.Event(), []
            p = subprocess.Popen([WRITER, "write", db, "2"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            t = threading.Thread(target=reader_loop, args=(db, stop, errors))
            t.start()
            time.sleep(rnd.uniform(0.05, 0.2))
            p.send_signal(signal.SIGKILL)
            out, _ = p.communicate(timeout=10)
            stop.set()
            t.join()
            acked_all |= {int(l[4:]) for l in out.splitlines() if l.startswith("ack ")}
            lost = acked_all - writer_ids(db)
            check(not lost, "iteration %d: %d acknowledged rows lost after kill -9 with a "
                  "concurrent reader, e.g. %s" % (i, len(lost), sorted(lost)[:10]))
            check(not errors, "reader errors: %s" % errors[:3])
        check(len(acked_all) > ITERATIONS, "the writer acknowledged almost nothing")
        print("# %d kill -9 iterations with a concurrent reader, %d acknowledged rows, none lost"
              % (ITERATIONS, len(acked_all)))


def snapshot(directory):
    """{name: sha256 of the bytes} for every file in directory."""
    out = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def test_verify_is_read_only():
    """`vigil audit verify --db` and `vigil backup verify` change neither the directory listing
    nor a byte of the files: on a cleanly stopped store, and on one left by kill -9 (WAL)."""
    with tempfile.TemporaryDirectory(prefix="vigil-ro-") as data:
        db = os.path.join(data, "vigil.db")
        d = start_on(data, AUTH)
        for _ in range(3):
            unix(d, "POST", "/api/v1/tokens/revoke", {"jti": "ro-%d" % time.monotonic_ns()})
        d.stop()
        for f in os.listdir(data):
            if not f.startswith("vigil.db"):
                os.unlink(os.path.join(data, f))
        before = snapshot(data)
        check("vigil.db-wal" not in before, "a clean stop leaves no WAL: %s" % sorted(before))
        r = run_cli("audit", "verify", "--db", db)
        check(r.returncode == 0 and "intact" in r.stdout, r.stdout + r.stderr)
        after = snapshot(data)
        check(after == before, "audit verify --db changed %s: %s -> %s" % (
            data, sorted(before), sorted(after)))
        # a store left by kill -9: its WAL holds committed records that verify must read
        d = start_on(data, AUTH)
        unix(d, "POST", "/api/v1/tokens/revoke", {"jti": "ro-wal"})
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        for f in os.listdir(data):
            if not f.startswith("vigil.db"):
                os.unlink(os.path.join(data, f))
        before = snapshot(data)
        check("vigil.db-wal" in before, "kill -9 leaves a WAL: %s" % sorted(before))
        r = run_cli("audit", "verify", "--db", db)
        check(r.returncode == 0 and "intact" in r.stdout, r.stdout + r.stderr)
        after = snapshot(data)
        check(after == before, "audit verify --db after kill -9 changed %s: %s -> %s" % (
            data, sorted(before), sorted(after)))
        # the records in the WAL were read: the same count as after SQLite replays it
        n = int(r.stdout.split("intact: ")[1].split()[0])
        with tempfile.TemporaryDirectory(prefix="vigil-ro-copy-") as c:
            for f in os.listdir(data):
                with open(os.path.join(data, f), "rb") as src, open(os.path.join(c, f), "wb") as dst:
                    dst.write(src.read())
            con = sqlite3.connect(os.path.join(c, "vigil.db"))
            rows = con.execute("select count(*) from audit_log").fetchone()[0]
            con.close()
        check(n == rows, "verify read %d records, the database holds %d" % (n, rows))
        # a -wal without its -shm (a copied set): verify works on a private copy
        os.unlink(os.path.join(data, "vigil.db-shm"))
        before = snapshot(data)
        r = run_cli("audit", "verify", "--db", db)
        check(r.returncode == 0 and "intact: %d " % rows in r.stdout, r.stdout + r.stderr)
        check(snapshot(data) == before, "audit verify --db (no -shm) changed %s" % data)
    with tempfile.TemporaryDirectory(prefix="vigil-ro-bk-") as d:
        db = os.path.join(d, "src", "vigil.db")
        os.makedirs(os.path.dirname(db))
        p = subprocess.run([WRITER, "backup", db, os.path.join(d, "backups")], capture_output=True,
                           text=True, timeout=120)
        check(p.returncode == 0, "backup: %s %s" % (p.stdout, p.stderr))
        archive = dict(l.split(" ", 1) for l in p.stdout.splitlines() if " " in l)["archive"]
        bdir = os.path.dirname(archive)
        before = snapshot(bdir)
        r = run_cli("backup", "verify", archive)
        check(r.returncode == 0, "backup verify: %s %s" % (r.stdout, r.stderr))
        check(snapshot(bdir) == before, "backup verify changed %s" % bdir)


def audit_records(d):
    code, out = unix(d, "GET", "/api/v1/audit?limit=100000")
    check(code == 200, "audit: %d %s" % (code, out))
    return json.loads(out)["records"]


def verify_db(db, *extra):
    return run_cli("audit", "verify", "--db", db, *extra)


def copy_dir(src, dst):
    for f in os.listdir(src):
        p = os.path.join(src, f)
        if os.path.isfile(p):
            shutil.copy2(p, os.path.join(dst, f))


def test_audit_trim_detected():
    """Deleting the oldest records and forging a checkpoint with the right last_hash, or deleting
    the newest records, is reported by `vigil audit verify` (the exported head, the key)."""
    with tempfile.TemporaryDirectory(prefix="vigil-trim-") as data:
        db = os.path.join(data, "vigil.db")
        d = start_on(data, AUTH)
        tok = mint(claims())
        for i in range(12):
            req(d, "POST", "/api/v1/inject", tok, {"gpu": 0, "xid": 79})
        d.stop()
        r = verify_db(db)
        check(r.returncode == 0 and "intact" in r.stdout, r.stdout + r.stderr)
        full = r.stdout
        con = sqlite3.connect(db)
        last_seq, last_hash = con.execute(
            "select seq, hash from audit_log order by seq desc limit 1").fetchone()
        con.close()
        # the head is exported beside the database (and to syslog/webhook when configured)
        check(os.path.exists(os.path.join(data, "audit.head")), "no audit.head sidecar: %s"
              % sorted(os.listdir(data)))
        with open(os.path.join(data, "audit.head")) as f:
            check(f.read().startswith("%d:%s" % (last_seq, last_hash)), "sidecar is not the head")

        # 1. the oldest records deleted, a checkpoint forged with the right last_hash
        with tempfile.TemporaryDirectory(prefix="vigil-trim-front-") as c:
            copy_dir(data, c)
            cdb = os.path.join(c, "vigil.db")
            con = sqlite3.connect(cdb)
            h5 = con.execute("select hash from audit_log where seq = 5").fetchone()[0]
            con.execute("delete from audit_log where seq <= 5")
            cols = [r[1] for r in con.execute("pragma table_info(audit_checkpoint)")]
            con.execute("insert or replace into audit_checkpoint (id, last_seq, last_hash, pruned, ts) "
                        "values (1, 5, ?, 5, 0)", (h5,))
            con.commit()
            con.close()
            r = verify_db(cdb)
            check(r.returncode == 1 and "BROKEN" in r.stdout and "checkpoint" in r.stdout,
                  "a forged checkpoint passed verify (columns %s): %s%s" % (cols, r.stdout, r.stderr))

        # 2. the newest records deleted: the sidecar head, or --head SEQ:HASH, says so
        with tempfile.TemporaryDirectory(prefix="vigil-trim-tail-") as c:
            copy_dir(data, c)
            cdb = os.path.join(c, "vigil.db")
            con = sqlite3.connect(cdb)
            con.execute("delete from audit_log where seq > ?", (last_seq - 3,))
            con.commit()
            con.close()
            r = verify_db(cdb)
            check(r.returncode == 1 and "truncated" in r.stdout,
                  "deleting the newest records passed verify: %s%s" % (r.stdout, r.stderr))
            os.unlink(os.path.join(c, "audit.head"))
            r = verify_db(cdb, "--head", "%d:%s" % (last_seq, last_hash))
            check(r.returncode == 1 and "truncated" in r.stdout,
                  "--head did not catch the truncation: %s%s" % (r.stdout, r.stderr))
            r = verify_db(cdb, "--head", "%d:%s" % (last_seq - 3, "0" * 64))
            check(r.returncode == 1, "a wrong --head hash passed: " + r.stdout)
        r = verify_db(db, "--head", "%d:%s" % (last_seq, last_hash))
        check(r.returncode == 0 and "intact" in r.stdout, "the untouched chain with --head: "
              + r.stdout + r.stderr)
        check("no audit key" not in r.stdout, "the key beside the database was not used: "
              + r.stdout)

        # 3. an older head put back into the sidecar without the key: its mac does not match
        with tempfile.TemporaryDirectory(prefix="vigil-trim-side-") as c:
            copy_dir(data, c)
            cdb = os.path.join(c, "vigil.db")
            con = sqlite3.connect(cdb)
            h9 = con.execute("select hash from audit_log where seq = ?", (last_seq - 3,)).fetchone()[0]
            con.execute("delete from audit_log where seq > ?", (last_seq - 3,))
            con.commit()
            con.close()
            with open(os.path.join(c, "audit.head"), "w") as f:
                f.write("%d:%s:%s\n" % (last_seq - 3, h9, "0" * 64))
            r = verify_db(cdb)
            check(r.returncode == 1 and "not authenticated" in r.stdout,
                  "a forged sidecar head passed: %s%s" % (r.stdout, r.stderr))


def test_every_refusal_audited():
    """A refusal whose path is not valid UTF-8 leaves a record (escaped bytes), and a password
    nested 70 levels deep is never stored in clear."""
    cfg = AUTH + "  audit: {enabled: true, include_sensitive_data: true}\n"
    cfg = cfg.replace("  audit: {enabled: true, retention_days: 365}\n", "")
    with tempfile.TemporaryDirectory(prefix="vigil-refusals-") as data:
        d = start_on(data, cfg)
        try:
            before = len(audit_records(d))
            resp = raw(d, b"GET /api/v1/gpus/\xff\xfe-probe HTTP/1.1\r\nHost: x\r\n"
                          b"Authorization: Bearer not.a.token\r\nConnection: close\r\n\r\n")
            check(status_of(resp) in (400, 401, 404), "probe answered %r" % resp[:80])
            rows = audit_records(d)
            probes = [r for r in rows[before:] if "probe" in r["route"]]
            check(probes, "no audit record for a refused request with a non-UTF-8 path "
                  "(records: %s)" % [(r["route"], r["event"]) for r in rows[before:]])
            check("\\xff\\xfe" in probes[0]["route"], "bytes not escaped: %r" % probes[0]["route"])
            deep = "SECRET-DEEP-70"
            body = {"password": deep}
            for _ in range(70):
                body = {"a": body}
            body["gpu"] = 0
            tok = mint(claims())
            req(d, "POST", "/api/v1/inject", tok, body)
            rows = audit_records(d)
            check(rows and rows[-1]["route"] == "/api/v1/inject", "no record for the inject")
            check(deep not in json.dumps(rows), "a password 70 levels deep was recorded in clear")
        finally:
            d.stop()
        blobs = b""
        for f in os.listdir(data):
            if f.startswith("vigil.db"):
                with open(os.path.join(data, f), "rb") as fh:
                    blobs += fh.read()
        check(b"SECRET-DEEP-70" not in blobs, "the deep password is in the database files")
        r = verify_db(os.path.join(data, "vigil.db"))
        check(r.returncode == 0, "verify after escaped records: " + r.stdout + r.stderr)


def test_unreadable_revocations_refuse_start():
    """A revocation list that cannot be loaded refuses start with a clear message, instead of a
    daemon that accepts revoked tokens."""
    with tempfile.TemporaryDirectory(prefix="vigil-rev-") as data:
        db = os.path.join(data, "vigil.db")
        d = start_on(data, AUTH)
        unix(d, "POST", "/api/v1/tokens/revoke", {"jti": "gone"})
        d.stop()
        sqlite_shell(db, "DROP TABLE auth_revoked;")
        p = subprocess.Popen([os.path.join(BUILD, "bin", "vigild"), "--simulate", "--listen",
                              "127.0.0.1:0", "--data-dir", data, "--socket",
                              os.path.join(data, "vigild.sock"), "--config",
                              os.path.join(data, "vigil.yaml")],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=dict(os.environ, **ENV))
        try:
            out, _ = p.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        check(p.returncode not in (0, -9), "vigild started without its revocation list:\n"
              + out[-1500:])
        check("revocation list" in out, "no clear message:\n" + out[-1500:])


def test_revocation_past_exp_survives_restart():
    """A revocation given an exp already in the past still refuses the token (valid for an hour)
    after a restart (the unit tests cover the count limit and the leeway)."""
    with tempfile.TemporaryDirectory(prefix="vigil-rev-past-") as data:
        now = int(time.time())
        tok = mint(claims(jti="past-exp", exp=now + 3600))
        d = start_on(data, AUTH)
        try:
            code, out = unix(d, "POST", "/api/v1/tokens/revoke", {"jti": "past-exp", "exp": now - 10})
            check(code == 200, "revoke: %d %s" % (code, out))
            # not presented before the restart: a presented token extends its revocation itself
        finally:
            d.stop()
        d = start_on(data, AUTH)
        try:
            st = req(d, "GET", "/api/v1/gpus", tok)[0]
            check(st == 401, "a revocation with a past exp was dropped at restart: the token "
                  "answers %d" % st)
        finally:
            d.stop()


HEAD_EXPORT = AUTH.replace("audit: {enabled: true, retention_days: 365}",
                           "audit: {enabled: true, retention_days: 365, "
                           "head_export: {interval: %s, sidecar: true}}")


def test_head_export_interval_reloads():
    """security.audit.head_export.* are configuration keys, and a changed interval applies on
    reload: with 1h nothing is exported while vigild runs; after SIGHUP with 1s the sidecar
    appears within seconds, and it names the newest audit record."""
    with tempfile.TemporaryDirectory(prefix="vigil-head-export-") as data:
        head = os.path.join(data, "audit.head")
        d = start_on(data, HEAD_EXPORT % "1h")
        try:
            code, out = unix(d, "POST", "/api/v1/tokens/revoke", {"jti": "head-export"})
            check(code == 200, "revoke: %d %s" % (code, out))
            time.sleep(1.5)
            check(not os.path.exists(head), "exported although the interval is 1h")
            with open(os.path.join(data, "vigil.yaml"), "w") as f:
                f.write(HEAD_EXPORT % "1s")
            d.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: os.path.exists(head), 10, "the head exported after the reload to 1s")
            with open(head) as f:
                seq = int(f.read().split(":")[0])
            check(seq >= 1, "sidecar seq %d" % seq)
        finally:
            d.stop()


IDLE_HEAD_EXPORT = "security:\n  audit: {enabled: true, head_export: {interval: 1s, sidecar: true}}\n"


def libcrypto_mapped(d):
    with open("/proc/%d/maps" % d.proc.pid) as f:
        return "libcrypto.so" in f.read()


def test_head_export_idle():
    """No authentication, a 1 s head export interval: an empty chain's head is not exported at
    the interval (nothing to protect; written at stop), so an idle vigild never loads libcrypto
    for its MAC; the first record is exported within the interval. Restarted on the same data,
    a sidecar that already holds the head is not rewritten (libcrypto stays unloaded); a sidecar
    behind the chain (as after a crash) is brought up to date at the first interval."""
    with tempfile.TemporaryDirectory(prefix="vigil-head-idle-") as data:
        head = os.path.join(data, "audit.head")
        d = start_on(data, IDLE_HEAD_EXPORT)
        try:
            time.sleep(2.5)
            check(not os.path.exists(head), "an empty chain's head exported at the interval")
            check(not libcrypto_mapped(d), "libcrypto loaded by an idle vigild")
            run_cli("--socket", d.sock, "backup", "create", check_rc=0)
            wait_for(lambda: os.path.exists(head), 10, "the head exported after the first record")
            check(libcrypto_mapped(d), "a head with a MAC written without libcrypto?")
        finally:
            d.stop()
        with open(head) as f:
            at_stop = f.read()
        check(int(at_stop.split(":")[0]) >= 1, "the head at stop: %r" % at_stop)
        d = start_on(data, IDLE_HEAD_EXPORT)
        try:
            time.sleep(2.5)
            check(not libcrypto_mapped(d), "the restart re-exported the head the sidecar holds")
            with open(head) as f:
                check(f.read() == at_stop, "the sidecar was rewritten")
        finally:
            d.stop()
        with open(head, "w") as f:  # behind the chain
            f.write("0:" + "0" * 64 + ":\n")
        d = start_on(data, IDLE_HEAD_EXPORT)
        try:
            wait_for(lambda: open(head).read().split(":")[0] == at_stop.split(":")[0], 10,
                     "a sidecar behind the chain brought up to date")
        finally:
            d.stop()


ENC_KEY = "8f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
SEALED_CONFIG = AUTH.replace("audit: {enabled: true, retention_days: 365}",
                             "audit: {enabled: true, retention_days: 365, "
                             "include_sensitive_data: true}") + """  encryption:
    data_at_rest: true
    encryption_key: "${VIGIL_ENCRYPTION_KEY}"
"""
SEALED_COLUMNS = [("audit_log", "detail"), ("auth_revoked", "jti"), ("auth_revoked", "revoked_by"),
                  ("health_incidents", "detail"), ("health_incidents", "acked_by")]


def raw_bytes(directory):
    out = b""
    for n in ("vigil.db", "vigil.db-wal"):
        p = os.path.join(directory, n)
        if os.path.exists(p):
            with open(p, "rb") as f:
                out += f.read()
    return out


def test_data_at_rest_sealed():
    """With data_at_rest, an audit detail, a token revocation and an incident's detail written
    through the API appear in no byte of the database, its WAL or a restored backup, while the
    API still shows them; `vigil keys rotate` re-encrypts every sealed value."""
    marker_jti = "MARKER-REVOKED-JTI-5c81d2"
    marker_audit = "MARKER-AUDIT-DETAIL-0be7a4"
    with tempfile.TemporaryDirectory(prefix="vigil-sealed-") as data:
        os.environ["VIGIL_ENCRYPTION_KEY"] = ENC_KEY
        try:
            d = start_on(data, SEALED_CONFIG)
        finally:
            os.environ.pop("VIGIL_ENCRYPTION_KEY", None)
        try:
            code, out = unix(d, "POST", "/api/v1/tokens/revoke",
                             {"jti": marker_jti, "comment": marker_audit})
            check(code in (200, 400), "revoke: %d %s" % (code, out))
            if code == 400:  # a body with an unknown field is refused but audited
                code, out = unix(d, "POST", "/api/v1/tokens/revoke", {"jti": marker_jti})
                check(code == 200, "revoke: %d %s" % (code, out))
            code, out = unix(d, "POST", "/api/v1/inject", {"gpu": 0, "xid": 79})
            check(code == 200, "inject: %d %s" % (code, out))
            incidents = wait_for(lambda: [i for i in json.loads(unix(d, "GET", "/api/v1/incidents")[1])
                                          .get("incidents", []) if i.get("detail")], 10,
                                 "an incident with a detail")
            detail = incidents[0]["detail"]
            iid = incidents[0]["id"]
            code, out = unix(d, "POST", "/api/v1/incidents/%s/ack" % iid, {})
            check(code == 200, "ack: %d %s" % (code, out))
            records = json.loads(unix(d, "GET", "/api/v1/audit?limit=1000")[1])["records"]
            check(any(marker_audit in json.dumps(r) for r in records),
                  "the audit detail is not readable through the API")
            markers = [marker_jti.encode(), marker_audit.encode(), detail.encode()]
            # the store committed them (audit and revocation synchronously, incidents soon)
            wait_for(lambda: sqlite_shell(os.path.join(data, "vigil.db"),
                                          "select count(*) from health_incidents;").strip() != "0",
                     10, "the incident stored")
            raw = raw_bytes(data)
            for m in markers:
                check(m not in raw, "%r in the database or its WAL" % m)
            code, out = unix(d, "POST", "/api/v1/backup")
            check(code == 201, "backup: %d %s" % (code, out))
            archive = json.loads(out)["path"]
            # rotation: every sealed value is re-encrypted with the new key
            code, out = unix(d, "POST", "/api/v1/keys/rotate")
            check(code in (200, 201), "rotate: %d %s" % (code, out))
            new_key = json.loads(out)["active_key"]
            keys = wait_for(lambda: (lambda k: k if not k.get("reencrypting") else None)(
                json.loads(unix(d, "GET", "/api/v1/keys")[1])), 20, "the re-encryption to finish")
            check(keys.get("reencrypted", 0) > 0, "re-encrypted %s values" % keys.get("reencrypted"))
        finally:
            d.stop()
        db = os.path.join(data, "vigil.db")
        kid = "%08x" % new_key
        for table, col in SEALED_COLUMNS:
            old = sqlite_shell(db, "select count(*) from %s where typeof(%s) = 'blob' and "
                               "hex(substr(%s, 10, 4)) != upper('%s');" % (table, col, col, kid))
            check(old.strip() == "0", "%s.%s: %s values still sealed with an old key" % (
                table, col, old.strip()))
            plain = sqlite_shell(db, "select count(*) from %s where typeof(%s) = 'text' and "
                                 "%s != '';" % (table, col, col))
            check(plain.strip() == "0", "%s.%s: %s values in clear" % (table, col, plain.strip()))
        # a restored backup holds no marker either, and vigild reads it back with the key
        target = os.path.join(data, "restored")
        os.makedirs(target)
        p = subprocess.run([os.path.join(BUILD, "bin", "vigil"), "backup", "restore", archive,
                            "--data-dir", target], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, VIGIL_ENCRYPTION_KEY=ENC_KEY))
        check(p.returncode == 0, "restore: %s %s" % (p.stdout, p.stderr))
        raw = raw_bytes(target)
        for m in markers:
            check(m not in raw, "%r in the restored backup" % m)
        # offline verification opens the sealed details with the key
        p = subprocess.run([os.path.join(BUILD, "bin", "vigil"), "audit", "verify", "--db", db],
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, VIGIL_ENCRYPTION_KEY=ENC_KEY))
        check(p.returncode == 0, "audit verify --db of a sealed trail: %s %s" % (p.stdout, p.stderr))


if __name__ == "__main__":
    main([test_revocation_survives_reader_and_kill9, test_kill9_with_concurrent_reader,
          test_verify_is_read_only, test_audit_trim_detected, test_every_refusal_audited,
          test_unreadable_revocations_refuse_start, test_revocation_past_exp_survives_restart,
          test_head_export_interval_reloads, test_head_export_idle, test_data_at_rest_sealed])
