"""containers.py — podman and Debian 12 base images for the container tests (test_container.py,
test_systemd_pid1.py).

There is no registry to pull from: base images are made from the Debian package mirror with
mmdebstrap and imported into podman's storage, where they stay (the next run finds them). podman
runs rootful with runc and cgroupfs, and CONTAINERS_CONF pointing at a file without default
ulimits (runc cannot raise them on these machines); docs/deployment.md, "Container", says the same
for users.
"""
import hashlib
import os
import shutil
import subprocess

from harness import check, scratch_dir

PODMAN = shutil.which("podman")
MMDEBSTRAP = shutil.which("mmdebstrap")
RUNC = shutil.which("runc")
BASE = "localhost/debian:bookworm"


def engine_missing():
    """Why the container tests cannot run here, or None."""
    if not PODMAN or not MMDEBSTRAP or not RUNC:
        return "podman, mmdebstrap or runc not installed (scripts/install-deps.sh installs them)"
    return None


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

    def start(self, name, *args, network="host"):
        self.run("rm", "-f", name, ok=False)
        self.names.append(name)
        return self.run("run", "-d", "--name", name, "--network", network, *args)

    def cleanup(self):
        for n in self.names:
            self.run("rm", "-f", "-t", "2", n, ok=False)
        self.tmp.cleanup()


def debian_image(pm, name, include=("ca-certificates",)):
    """A Debian 12 minbase image with the packages in include, from the package mirror (16-60 s,
    once per machine and package list: the tag carries a digest of the list)."""
    if not pm.has_image(name):
        tar = os.path.join(pm.tmp.name, "deb12.tar")
        p = subprocess.run([MMDEBSTRAP, "--variant=minbase", "--include=" + ",".join(include),
                            "bookworm", tar], capture_output=True, text=True, timeout=900)
        check(p.returncode == 0, "mmdebstrap: %s" % p.stderr[-2000:])
        pm.run("import", tar, name, timeout=300)
        os.unlink(tar)
    return name


def base_image(pm, tags=()):
    """The Debian 12 base of the project's Dockerfile; tags name it locally only (the Dockerfile's
    FROM lines keep what a real user pulls; --pull=never, nothing is fetched from a registry)."""
    debian_image(pm, BASE)
    for t in tags:
        pm.run("tag", BASE, t)
    return BASE


def package_image_name(prefix, include):
    """An image name for a package list: a changed list makes (and caches) a new image."""
    return "%s:%s" % (prefix, hashlib.sha256(",".join(sorted(include)).encode()).hexdigest()[:12])
