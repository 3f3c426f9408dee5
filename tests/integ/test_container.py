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
import urllib.request

from containers import Podman, base_image, engine_missing
from harness import SRC, check, free_port, main, skip, wait_for

IMAGE = "localhost/vigil:test"
TAGS = ("docker.io/library/debian:12.8", "docker.io/library/debian:12.8-slim")


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
        base_image(pm, TAGS)
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
    if engine_missing():
        skip(engine_missing())
    main([test_image_builds_runs_and_checks_health])
