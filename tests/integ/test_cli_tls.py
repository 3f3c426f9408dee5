#!/usr/bin/env python3
"""The CLI against a secured vigild: --cacert / SSL_CERT_FILE, mTLS with --cert/--key, web-config
basic auth with --user and VIGIL_PASSWORD, and errors that name the TLS problem with curl's own
text (exit 4), not "cannot reach". Also: text from the daemon reaches the terminal without
control sequences."""
import fcntl
import os
import select
import shutil
import subprocess
import tempfile
import termios

from harness import VIGIL, Vigild, check, main
from test_tls import make_pki
from test_webconfig import PASSWORD, bcrypt


def cli(*args, env=None):
    e = {k: v for k, v in os.environ.items()
         if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR", "VIGIL_PASSWORD", "VIGIL_USER", "VIGIL_TOKEN",
                      "VIGIL_HOST")}
    e.update(env or {})
    return subprocess.run([VIGIL] + list(args), capture_output=True, text=True, timeout=30, env=e,
                          stdin=subprocess.DEVNULL)


def cli_on_terminal(password, *args):
    """vigil on a pseudo-terminal of its own (its controlling terminal): answer the password
    prompt, return (rc, everything the terminal showed)."""
    master, slave = os.openpty()

    def own_terminal():
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    e = {k: v for k, v in os.environ.items() if k not in ("VIGIL_PASSWORD", "VIGIL_TOKEN")}
    p = subprocess.Popen([VIGIL] + list(args), stdin=slave, stdout=slave, stderr=slave, env=e,
                         preexec_fn=own_terminal, close_fds=True)
    os.close(slave)
    shown, sent = b"", False
    while True:
        r, _, _ = select.select([master], [], [], 10)
        if not r:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
        if not sent and b"password for 'alice'" in shown:
            os.write(master, password.encode() + b"\n")
            sent = True
    rc = p.wait(10)
    os.close(master)
    return rc, shown.decode(errors="replace")


def test_tls_and_mtls():
    pki = tempfile.mkdtemp(prefix="vigil-clitls-")
    try:
        make_pki(pki)
        cfg = f"""
security:
  tls: {{enabled: true, cert_file: {pki}/server.pem, key_file: {pki}/server.key, ca_file: {pki}/ca.pem, client_auth: require}}
"""
        with Vigild(config=cfg) as d:
            url = d.url
            p = cli("--host", url, "status")
            check(p.returncode == 4, "untrusted: rc %d %s" % (p.returncode, p.stderr))
            check("TLS failure" in p.stderr and "certificate not trusted" in p.stderr
                  and "cannot reach" not in p.stderr, p.stderr)
            check("SSL certificate problem" in p.stderr, "curl's text intact: " + p.stderr)

            p = cli("--host", url, "--cacert", f"{pki}/ca.pem", "status")
            check(p.returncode == 4 and "client certificate" in p.stderr,
                  "no client cert: rc %d %s" % (p.returncode, p.stderr))

            p = cli("--host", url, "--cacert", f"{pki}/ca.pem", "--cert", f"{pki}/client.pem",
                    "--key", f"{pki}/client.key", "status")
            check(p.returncode == 0, "mTLS: rc %d %s" % (p.returncode, p.stderr))

            p = cli("--host", url, "--cert", f"{pki}/client.pem", "--key", f"{pki}/client.key",
                    "discovery", env={"SSL_CERT_FILE": f"{pki}/ca.pem"})
            check(p.returncode == 0 and "GPUs found" in p.stdout,
                  "SSL_CERT_FILE: rc %d %s" % (p.returncode, p.stderr))

            p = cli("--host", url, "--cacert", f"{pki}/ca.pem", "--cert", f"{pki}/intruder.pem",
                    "--key", f"{pki}/intruder.key", "status")
            check(p.returncode == 4 and "client certificate" in p.stderr,
                  "foreign client cert: rc %d %s" % (p.returncode, p.stderr))

            port = url.rsplit(":", 1)[1]
            p = cli("--host", f"https://localhost:{port}", "--cacert", f"{pki}/ca.pem", "--cert",
                    f"{pki}/client.pem", "--key", f"{pki}/client.key", "status")
            check(p.returncode == 4 and "hostname mismatch" in p.stderr,
                  "hostname: rc %d %s" % (p.returncode, p.stderr))

            p = cli("--host", url, "--cacert", f"{pki}/nope.pem", "status")
            check(p.returncode == 2 and "nope.pem" in p.stderr, "missing CA file: " + p.stderr)
            p = cli("--host", url, "--key", f"{pki}/client.key", "status")
            check(p.returncode == 2 and "--cert" in p.stderr, "--key alone: " + p.stderr)
            p = cli("--host", "http://127.0.0.1:1", "--cacert", f"{pki}/ca.pem", "status")
            check(p.returncode == 2 and "https://" in p.stderr, "--cacert on http: " + p.stderr)
            p = cli("--host", url, "--token", "t", "--user", "u", "status")
            check(p.returncode == 2 and "not both" in p.stderr, "--token and --user: " + p.stderr)
    finally:
        shutil.rmtree(pki, ignore_errors=True)


def test_basic_auth():
    tmp = tempfile.mkdtemp(prefix="vigil-cliweb-")
    try:
        web = os.path.join(tmp, "web.yml")
        with open(web, "w") as f:
            f.write(f"basic_auth_users:\n  alice: {bcrypt(PASSWORD)}\n")
        cfg = f"security:\n  web_config_file: {web}\n  web_config_role: admin\n"
        with Vigild(config=cfg) as d:
            p = cli("--host", d.url, "status")
            check(p.returncode == 4, "no user: rc %d %s" % (p.returncode, p.stderr))
            p = cli("--host", d.url, "--user", "alice", "status", env={"VIGIL_PASSWORD": PASSWORD})
            check(p.returncode == 0, "basic auth: rc %d %s" % (p.returncode, p.stderr))
            p = cli("--host", d.url, "--user", "alice", "status", env={"VIGIL_PASSWORD": "wrong"})
            check(p.returncode == 4, "wrong password: rc %d %s" % (p.returncode, p.stderr))
            check("wrong" not in p.stderr, "password never printed: " + p.stderr)
            p = cli("--host", d.url, "--user", "alice", "status")
            check(p.returncode == 2 and "VIGIL_PASSWORD" in p.stderr,
                  "no password, no terminal: rc %d %s" % (p.returncode, p.stderr))
            p = cli("--host", d.url, "status", env={"VIGIL_USER": "alice",
                                                    "VIGIL_PASSWORD": PASSWORD})
            check(p.returncode == 0, "VIGIL_USER: rc %d %s" % (p.returncode, p.stderr))
            rc, shown = cli_on_terminal(PASSWORD, "--host", d.url, "--user", "alice", "status")
            check(rc == 0 and "password for 'alice'" in shown, "prompt: rc %d %r" % (rc, shown))
            check(PASSWORD not in shown, "the password was echoed: %r" % shown)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_daemon_text_without_escapes():
    """Text printed from what the daemon accepted (a revoked id) must not carry an ESC or BEL to
    the terminal: they become '?'."""
    with Vigild() as d:
        p = cli("--socket", d.sock, "token", "revoke", "\x1b]0;owned\x07X")
        check(p.returncode == 0, "revoke: rc %d %s" % (p.returncode, p.stderr))
        check("\x1b" not in p.stdout and "\x07" not in p.stdout and "?]0;owned?X" in p.stdout,
              "control sequences reached the terminal: %r" % p.stdout)
        p = cli("--socket", d.sock, "--json", "status")
        check(p.returncode == 0 and p.stdout.startswith("{"), "json still raw: %r" % p.stdout[:40])


if __name__ == "__main__":
    main([test_tls_and_mtls, test_basic_auth, test_daemon_text_without_escapes])
