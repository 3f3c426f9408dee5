#!/usr/bin/env python3
"""test_container.py — deploy/docker/Dockerfile built and run by a real engine (podman).

There is no registry to pull from: the Debian 12 base is made from the package mirror with
mmdebstrap and imported; the Dockerfile's FROM debian:12.8 / debian:12.8-slim name that local
image through local tags (the Dockerfile keeps the tags a real user pulls). podman runs rootful
with runc and cgroupfs, and CONTAINERS_CONF pointing at a file without default ulimits (runc
cannot raise them on these machines); docs/deployment.md, "Container", says the same for users.

Checks: the image builds (--format docker, so HEALTHCHECK is kept); `--simulate` serves 8 GPUs on
/metrics, run as in production with --cap-drop=ALL --read-only --security-opt=no-new-privileges;
vigild runs as the image's non-root user with no capability; the image's HEALTHCHECK passes on a
daemon listening on another port than 5555 (it follows vigild's unix socket, or the address in
DATA_DIR/vigild.addr when the socket is elsewhere) and fails when nothing answers. The image size
is printed (bench/RESULTS.md records it).
"""
import json
import os
import shutil
import subprocess
import urllib.request

from harness import SRC, check, free_port, main, scratch_dir, skip, wait_for

PODMAN = shutil.which("podman")
MMDEBSTRAP = shutil.which("mmdebstrap")
BASE = "localhost/debian:bookworm"
IMAGE = "localhost/vigil:test"
TAGS = ("docker.io/library/debian:12.8", "docker.io/library/debian:12.8-slim")


class Podman:
    def __init__(self):
        self.tmp = scratch_dir("vigil-podman-")
        conf = os.path.join(self.tmp.name, "containers.conf")
        with open(conf, "w") as f:
            f.write("[containers]\ndefault_ulimits = []\n")
        self.env = dict(os.environ, CONTAINERS_CONF=conf)
        self.names = []

    def run(self, *args, timeout=120, ok=True):
        p = subprocess.run([PODMAN, "--runtime", "runc", "--cgroup-manager", "cgroupfs"] + list(args),
                           capture_output=True, text=True, timeout=timeout, env=self.env)
        if ok:
            check(p.returncode == 0, "podman %s: exit %d\n%s%s" % (" ".join(args), p.returncode,
                                                                  p.stdout[-3000:], p.stderr[-3000:]))
        return p

    def has_image(self, name):
        return self.run("image", "exists", name, ok=False).returncode == 0

    def start(self, name, *args):
        self.run("rm", "-f", name, ok=False)
        self.names.append(name)
        return self.run("run", "-d", "--name", name, "--network", "host", *args)

    def cleanup(self):
        for n in self.names:
            self.run("rm", "-f", "-t", "2", n, ok=False)
        self.tmp.cleanup()


def base_image(pm):
    """The Debian 12 base from the package mirror (about 20 s, once per machine)."""
    if not pm.has_image(BASE):
        tar = os.path.join(pm.tmp.name, "deb12.tar")
        p = subprocess.run([MMDEBSTRAP, "--variant=minbase", "--include=ca-certificates", "bookworm",
                            tar], capture_output=True, text=True, timeout=600)
        check(p.returncode == 0, "mmdebstrap: %s" % p.stderr[-2000:])
        pm.run("import", tar, BASE, timeout=300)
        os.unlink(tar)
    for t in TAGS:  # local names only: --pull=never below, nothing is fetched from a registry
        pm.run("tag", BASE, t)


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        return r.read().decode()


def gpu_series(port):
    try:
        return [l for l in metrics(port).splitlines() if l.startswith("vigil_gpu_temperature_celsius{")]
    except OSError:
        return None


def test_image_builds_runs_and_checks_health():
    pm = Podman()
    try:
        base_image(pm)
        pm.run("build", "--format", "docker", "--network", "host", "--pull=never",
               "--ignorefile", os.path.join(SRC, "deploy", "docker", "Dockerfile.dockerignore"),
               "-f", os.path.join(SRC, "deploy", "docker", "Dockerfile"), "-t", IMAGE, SRC,
               timeout=1500)
        info = json.loads(pm.run("image", "inspect", IMAGE).stdout)[0]
        check(info["Config"].get("User") == "vigil:vigil", "image user %r" % info["Config"].get("User"))
        hc = info.get("Healthcheck") or info["Config"].get("Healthcheck") or {}
        check("health --check" in " ".join(hc.get("Test", [])), "HEALTHCHECK dropped: %r" % hc)
        print("# image %s: %.1f MB" % (IMAGE, info["Size"] / 1e6))

        # 1. as in production: no capability, read-only root, the socket on a tmpfs; a port other
        #    than 5555
        port = free_port()
        # (podman mounts a tmpfs root-owned, 0750 as the image's directory: ":U" gives it to the
        # image's user, as docs/deployment.md says)
        pm.start("vigil-test-a", "--cap-drop=ALL", "--read-only", "--tmpfs", "/run/vigil:U",
                 "--security-opt=no-new-privileges", IMAGE, "--simulate",
                 "--listen", "127.0.0.1:%d" % port, "--data-dir", "/var/lib/vigil",
                 "--socket", "/run/vigil/vigild.sock")
        temps = wait_for(lambda: (lambda s: s if s and len(s) == 8 else None)(gpu_series(port)), 60,
                         "8 simulated GPUs on /metrics of the container")
        check(all('gpu="' in t for t in temps), "series %s" % temps[:2])
        status = pm.run("exec", "vigil-test-a", "cat", "/proc/1/status").stdout
        fields = dict(l.split(":", 1) for l in status.splitlines() if ":" in l)
        check(fields["Uid"].split()[0] == "10001" and fields["Gid"].split()[0] == "10001",
              "vigild runs as uid/gid %s / %s" % (fields["Uid"], fields["Gid"]))
        check(int(fields["CapEff"], 16) == 0 and int(fields["CapPrm"], 16) == 0,
              "vigild has capabilities: CapEff %s" % fields["CapEff"])
        check(fields["NoNewPrivs"].strip() == "1", "no_new_privs not set")
        w = pm.run("exec", "vigil-test-a", "touch", "/usr/bin/x", ok=False)
        check(w.returncode != 0, "the root filesystem is writable")
        h = pm.run("healthcheck", "run", "vigil-test-a", ok=False)
        check(h.returncode == 0, "HEALTHCHECK failed on a healthy daemon on port %d: %s%s"
              % (port, h.stdout, h.stderr))

        # 2. the socket elsewhere: the check follows the address vigild wrote to vigild.addr
        port2 = free_port()
        pm.start("vigil-test-b", "--cap-drop=ALL", "--read-only", IMAGE, "--simulate",
                 "--listen", "127.0.0.1:%d" % port2, "--data-dir", "/var/lib/vigil",
                 "--socket", "/var/lib/vigil/elsewhere.sock")
        wait_for(lambda: gpu_series(port2), 60, "the second container's /metrics")
        h = pm.run("healthcheck", "run", "vigil-test-b", ok=False)
        check(h.returncode == 0, "HEALTHCHECK without /run/vigil/vigild.sock: %s%s"
              % (h.stdout, h.stderr))

        # 3. nothing answers: a container whose vigild has not written its address yet (it is
        #    not vigild: the same image's shell, kept alive) is unhealthy
        pm.start("vigil-test-c", "--entrypoint", "/bin/sleep", IMAGE, "600")
        h = pm.run("healthcheck", "run", "vigil-test-c", ok=False)
        check(h.returncode != 0, "HEALTHCHECK passed with no vigild: %s" % h.stdout)
    finally:
        pm.cleanup()


if __name__ == "__main__":
    if not PODMAN or not MMDEBSTRAP or not shutil.which("runc"):
        skip("podman, mmdebstrap or runc not installed (scripts/install-deps.sh installs them)")
    main([test_image_builds_runs_and_checks_health])
