#!/usr/bin/env python3
"""test_backup_safety.py — a backup archive is input from whoever can write the backup
directory, so restoring one must not let it plant code or fill the disk (issue 19, item 3):

- a plaintext archive whose database carries triggers that delete every new audit and revocation
  row, with a recomputed MANIFEST, is refused by `vigil backup verify` and `vigil backup restore`;
- a member bigger than the MANIFEST says, or a MANIFEST that adds up to a decompression bomb, is
  refused before anything is written (the CLI runs under a file-size limit that a write of the
  member would hit);
- restore_on_corrupt never picks a plaintext archive when encryption is configured, nor one dated
  in the future;
- the temporary directory of a backup killed part-way is gone after the next start.

Run alone: python3 tests/integ/test_backup_safety.py [test_name ...]."""
import hashlib
import io
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import tarfile
import tempfile
import time

from harness import VIGIL, check, main, wait_for
from test_security import unix
from test_state import start_on

KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
PLAIN = "backup: {compression: gzip}\n"
ENCRYPTED = ("backup: {compression: gzip}\n"
             "security:\n  encryption: {data_at_rest: true, encryption_key: \"${VIGIL_ENCRYPTION_KEY}\"}\n")


def cli(*args, key=None, fsize=None):
    env = dict(os.environ)
    env.pop("VIGIL_ENCRYPTION_KEY", None)
    if key:
        env["VIGIL_ENCRYPTION_KEY"] = key

    def limit():
        if fsize:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run([VIGIL] + list(args), capture_output=True, text=True, timeout=120,
                          env=env, preexec_fn=limit)


def start(data, config, key=None):
    """vigild on data (kept between starts), with the encryption key in its environment."""
    os.makedirs(data, exist_ok=True)
    os.environ.pop("VIGIL_ENCRYPTION_KEY", None)
    if key:
        os.environ["VIGIL_ENCRYPTION_KEY"] = key
    try:
        return start_on(data, config)
    finally:
        os.environ.pop("VIGIL_ENCRYPTION_KEY", None)


def make_backup(d):
    code, out = unix(d, "POST", "/api/v1/backup")
    check(code == 201, "backup: %d %s" % (code, out))
    return json.loads(out)["path"]


def sha(b):
    return hashlib.sha256(b).hexdigest()


def write_tar_gz(path, members):
    """members: [(name, bytes-or-(size, fileobj))], written in that order (MANIFEST first)."""
    with tarfile.open(path, "w:gz") as t:
        for name, body in members:
            ti = tarfile.TarInfo(name)
            ti.mode = 0o600
            if isinstance(body, bytes):
                ti.size = len(body)
                t.addfile(ti, io.BytesIO(body))
            else:
                ti.size, f = body
                t.addfile(ti, f)


def manifest(members, head=None):
    lines = head or ["vigil-backup 1", "version 0", "host evil", "created 2026-01-01T00:00:00Z",
                     "schema 40", "encrypted no"]
    for name, digest, size in members:
        lines.append("member %s %d %s" % (digest, size, name))
    return ("\n".join(lines) + "\n").encode()


class Zeros(io.RawIOBase):
    def __init__(self, n):
        self.left = n

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return b"\0" * n


def zeros_sha(n):
    h = hashlib.sha256()
    chunk = b"\0" * (1 << 20)
    while n > 0:
        h.update(chunk[:min(n, len(chunk))])
        n -= min(n, len(chunk))
    return h.hexdigest()


def test_trigger_archive_refused():
    """The issue's reproduction: a trigger that deletes every new audit and revocation row,
    planted in a plaintext archive with a recomputed MANIFEST."""
    with tempfile.TemporaryDirectory(prefix="vigil-plant-") as tmp:
        data = os.path.join(tmp, "data")
        d = start(data, PLAIN)
        try:
            code, out = unix(d, "POST", "/api/v1/tokens/revoke", {"jti": "before-backup"})
            check(code == 200, "revoke: %d %s" % (code, out))
            archive = make_backup(d)
        finally:
            d.stop()
        work = os.path.join(tmp, "work")
        os.makedirs(work)
        with tarfile.open(archive, "r:gz") as t:
            names = t.getnames()
            t.extractall(work)
        db = os.path.join(work, "vigil.db")
        con = sqlite3.connect(db)
        con.executescript(
            "CREATE TRIGGER vanish_audit AFTER INSERT ON audit_log BEGIN "
            "DELETE FROM audit_log WHERE seq = new.seq; END;"
            "CREATE TRIGGER vanish_revoked AFTER INSERT ON auth_revoked BEGIN "
            "DELETE FROM auth_revoked WHERE jti = new.jti; END;")
        con.close()
        with open(os.path.join(work, "MANIFEST")) as f:
            head = [l for l in f.read().splitlines() if l and not l.startswith("member ")]
        members = []
        for n in names:
            if n == "MANIFEST":
                continue
            body = open(os.path.join(work, n), "rb").read()
            members.append((n, sha(body), len(body)))
        evil = os.path.join(tmp, os.path.basename(archive).replace(".tar.gz", "-1.tar.gz"))
        write_tar_gz(evil, [("MANIFEST", manifest(members, head))] +
                     [(n, open(os.path.join(work, n), "rb").read()) for n, _, _ in members])
        p = cli("backup", "verify", evil)
        check(p.returncode != 0, "verify accepted an archive with triggers:\n" + p.stdout + p.stderr)
        check("schema" in p.stderr and "vanish_" in p.stderr,
              "verify does not say why: %s" % p.stderr)
        before = open(os.path.join(data, "vigil.db"), "rb").read()
        p = cli("backup", "restore", evil, "--data-dir", data)
        check(p.returncode != 0, "restore accepted an archive with triggers:\n" + p.stdout + p.stderr)
        con = sqlite3.connect(os.path.join(data, "vigil.db"))
        triggers = con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
        con.close()
        check(not triggers, "a trigger reached the live database: %s" % triggers)
        check(open(os.path.join(data, "vigil.db"), "rb").read() == before, "the live database changed")
        # the untouched archive still verifies and restores
        p = cli("backup", "verify", archive)
        check(p.returncode == 0, "the genuine archive no longer verifies: %s" % p.stderr)


def test_oversize_members_refused_before_writing():
    """A member longer than the MANIFEST says, and a MANIFEST whose sizes add up to a bomb, are
    refused before the member is written: under a 64 MiB file-size limit the old unpacker died of
    SIGXFSZ writing them."""
    limit = 64 << 20
    with tempfile.TemporaryDirectory(prefix="vigil-bomb-") as tmp:
        env_tmp = os.path.join(tmp, "t")
        os.makedirs(env_tmp)
        os.environ["TMPDIR"] = env_tmp
        try:
            # 1. the tar header says 100 MiB, the MANIFEST 1000 bytes
            big = 100 << 20
            liar = os.path.join(tmp, "vigil-backup-liar-20260101T000000Z.tar.gz")
            write_tar_gz(liar, [("MANIFEST", manifest([("vigil.db", zeros_sha(1000), 1000)])),
                                ("vigil.db", (big, Zeros(big)))])
            p = cli("backup", "verify", liar, fsize=limit)
            check(p.returncode > 0, "verify of a member bigger than its manifest entry: rc %d "
                  "(killed writing it?)\n%s" % (p.returncode, p.stderr))
            check("refused before unpacking" in p.stderr, "no clear reason: %s" % p.stderr)
            # 2. an honest MANIFEST that adds up to 280 MiB from a few hundred KiB
            huge = 280 << 20
            bomb = os.path.join(tmp, "vigil-backup-bomb-20260101T000000Z.tar.gz")
            write_tar_gz(bomb, [("MANIFEST", manifest([("vigil.db", zeros_sha(huge), huge)])),
                                ("vigil.db", (huge, Zeros(huge)))])
            check(os.path.getsize(bomb) < (1 << 20), "the bomb is %d bytes" % os.path.getsize(bomb))
            p = cli("backup", "verify", bomb, fsize=limit)
            check(p.returncode > 0, "verify of a decompression bomb: rc %d (killed writing "
                  "it?)\n%s" % (p.returncode, p.stderr))
            check("refused before unpacking" in p.stderr, "no clear reason: %s" % p.stderr)
            check(not os.listdir(env_tmp), "verify left files behind: %s" % os.listdir(env_tmp))
            # 3. a member ahead of the MANIFEST is not checked against anything: refused
            first = os.path.join(tmp, "vigil-backup-first-20260101T000000Z.tar.gz")
            write_tar_gz(first, [("vigil.db", b"x" * 1000),
                                 ("MANIFEST", manifest([("vigil.db", sha(b"x" * 1000), 1000)]))])
            p = cli("backup", "verify", first)
            check(p.returncode > 0 and "before the MANIFEST" in p.stderr,
                  "a member before the MANIFEST: rc %d %s" % (p.returncode, p.stderr))
        finally:
            del os.environ["TMPDIR"]


def corrupt(db):
    with open(db, "r+b") as f:
        f.write(b"this is not a database, it was damaged" * 4)
    for ext in ("-wal", "-shm"):
        try:
            os.unlink(db + ext)
        except FileNotFoundError:
            pass


def test_restore_on_corrupt_only_trusted_archives():
    """With encryption configured, a corrupt database at start is restored from the newest
    encrypted archive dated no later than now: a newer plaintext archive and one named in the
    future are passed over, and the log says why."""
    with tempfile.TemporaryDirectory(prefix="vigil-pick-") as tmp:
        data = os.path.join(tmp, "data")
        other = os.path.join(tmp, "other")
        bdir = os.path.join(data, "backups")
        d = start(data, ENCRYPTED, key=KEY)
        try:
            code, out = unix(d, "POST", "/api/v1/tokens/revoke", {"jti": "in-the-good-one"})
            check(code == 200, "revoke: %d %s" % (code, out))
            good = make_backup(d)
        finally:
            d.stop()
        check(good.endswith(".enc"), "not encrypted: %s" % good)
        # a plaintext archive from another instance, newer than the good one
        o = start(other, PLAIN)
        try:
            stamp = os.path.basename(good).split("-")[-1][:16]
            wait_for(lambda: stamp < time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), 5,
                     "the next second")
            plain = make_backup(o)
        finally:
            o.stop()
        planted = os.path.join(bdir, os.path.basename(plain))
        shutil.copy(plain, planted)
        future = os.path.join(bdir, "vigil-backup-evil-20991231T235959Z.tar.gz.enc")
        shutil.copy(good, future)
        corrupt(os.path.join(data, "vigil.db"))
        d = start(data, ENCRYPTED, key=KEY)
        try:
            log = d.logs()
            con = sqlite3.connect(os.path.join(data, "vigil.db"))
            events = [r[0] for r in con.execute("SELECT detail FROM store_events WHERE kind = 'restore'")]
            revoked = con.execute("SELECT count(*) FROM auth_revoked").fetchone()[0]
            con.close()
            check(len(events) == 1 and os.path.basename(good) in events[0],
                  "restored %s, expected '%s'\n%s" % (events, good, log[-3000:]))
            check(revoked == 1, "the good archive's revocation is missing (sealed: counted)")
            check("not encrypted" in log and "future" in log, "the log does not say why the "
                  "plaintext and the future archives were passed over:\n" + log[-3000:])
        finally:
            d.stop()


def test_interrupted_backup_tmp_removed_at_start():
    """What a backup killed by SIGKILL leaves (its .tmp-backup-* directory) is removed at the
    next start; a directory of a process that still runs is left alone."""
    with tempfile.TemporaryDirectory(prefix="vigil-tmpbk-") as tmp:
        data = os.path.join(tmp, "data")
        bdir = os.path.join(data, "backups")
        os.makedirs(bdir)
        # a real kill -9 in the middle of a backup of a store with some bulk
        d = start(data, PLAIN)
        try:
            for i in range(20):
                unix(d, "POST", "/api/v1/tokens/revoke", {"jti": "bulk-%d-%s" % (i, "x" * 200)})
            subprocess.Popen(["curl", "-s", "-X", "POST", "--unix-socket", d.sock,
                              "http://localhost/api/v1/backup"], stdout=subprocess.DEVNULL)
            wait_for(lambda: any(n.startswith(".tmp-backup-") for n in os.listdir(bdir)) or
                     any(n.endswith(".tar.gz") for n in os.listdir(bdir)), 10, "a backup started")
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait()
        finally:
            if d.proc.poll() is None:
                d.stop()
        # and the leftovers of an older layout and of a process long gone
        for n in (".tmp-backup-abc123", ".tmp-backup-999999999-abc123"):
            os.makedirs(os.path.join(bdir, n))
            with open(os.path.join(bdir, n, "vigil.db"), "wb") as f:
                f.write(b"partial")
        alive = ".tmp-backup-%d-keepme" % os.getpid()
        os.makedirs(os.path.join(bdir, alive))
        d = start(data, PLAIN)
        try:
            left = sorted(n for n in os.listdir(bdir) if n.startswith(".tmp-backup-"))
            check(left == [alive], "left behind after the start: %s" % left)
        finally:
            d.stop()


if __name__ == "__main__":
    main([test_trigger_archive_refused, test_oversize_members_refused_before_writing,
          test_restore_on_corrupt_only_trusted_archives, test_interrupted_backup_tmp_removed_at_start])
