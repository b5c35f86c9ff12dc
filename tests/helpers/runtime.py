"""A bare crun + conmon container for driver integration tests (no pyd daemon involved).

Plain synchronous code. Builds a busybox rootfs (RUNTIME.md 1.3), applies the hugetlb fix
idempotently (RUNTIME.md 1.1), starts the container through conmon exactly as pyd does and
removes everything again in L{BareContainer.cleanup}.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

BUSYBOX = "/usr/bin/busybox"
CRUN = "/usr/bin/crun"
RUNC = "/usr/sbin/runc"
CONMON = "/usr/bin/conmon"


def fix_hugetlb() -> None:
    """Give hugetlb its own v1 hierarchy when crun would otherwise refuse (idempotent)."""
    controllers = Path("/sys/fs/cgroup/unified/cgroup.controllers")
    if not controllers.exists() or not controllers.read_text().split():
        return
    target = "/sys/fs/cgroup/hugetlb"
    if subprocess.run(["findmnt", target], capture_output=True).returncode == 0:
        return
    os.makedirs(target, exist_ok=True)
    subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", target], check=False)


def make_rootfs(root: Path) -> None:
    """busybox-static plus one symlink per applet, /etc/passwd and /etc/group."""
    (root / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True).stdout.split()
    for a in applets:
        if a != "busybox":
            (root / "bin" / a).symlink_to("busybox")
    for d in ("etc", "tmp", "proc", "sys", "dev", "root", "home/app"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nstaff:x:50:app\n")


def _spec(bundle: Path, args: list[str], tty: bool, cid: str) -> dict:
    subprocess.run([CRUN, "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["root"] = {"path": str(bundle / "rootfs"), "readonly": False}
    spec["process"]["args"] = args
    spec["process"]["terminal"] = tty
    spec["process"]["env"] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "FROM_IMAGE=1"]
    spec["linux"]["cgroupsPath"] = f"/pyd-test/{cid}"
    spec["hostname"] = "bare"
    return spec


class BareContainer:
    """One container run under conmon; C{exec_root} is what pyd's exec root would be."""

    def __init__(self, args: list[str], tty: bool = False, stdin: bool = False) -> None:
        fix_hugetlb()
        self.id = uuid.uuid4().hex + uuid.uuid4().hex
        self.base = Path(tempfile.mkdtemp(prefix="pyd-rt-", dir="/tmp"))
        self.crun_root = self.base / "crun"
        self.bundle = self.base / "b"
        self.socks = self.base / "s"
        self.exits = self.base / "exits"
        for d in (self.crun_root, self.bundle, self.socks, self.exits):
            d.mkdir()
        make_rootfs(self.bundle / "rootfs")
        spec = _spec(self.bundle, args, tty, self.id)
        (self.bundle / "config.json").write_text(json.dumps(spec))
        self.tty = tty
        self.stdin = stdin

    @property
    def rootfs(self) -> Path:
        """The container's root directory."""
        return self.bundle / "rootfs"

    @property
    def attach_path(self) -> str:
        """conmon's attach socket."""
        return str(self.socks / self.id / "attach")

    def create(self) -> int:
        """conmon + crun create; returns the container pid (not yet started)."""
        sync_r, sync_w = os.pipe()
        start_r, start_w = os.pipe()
        argv = [
            CONMON, "--api-version", "1", "-c", self.id, "-u", self.id, "-n", "bare",
            "-r", CRUN, "--runtime-arg", "--root", "--runtime-arg", str(self.crun_root),
            "-b", str(self.bundle), "-p", str(self.bundle / "pidfile"),
            "-P", str(self.bundle / "conmon.pid"), "-l", f"k8s-file:{self.bundle}/ctr.log",
            "--exit-dir", str(self.exits), "--persist-dir", str(self.bundle),
            "--socket-dir-path", str(self.socks), "--log-level", "error",
        ]  # fmt: skip
        if self.tty:
            argv.append("-t")
        if self.stdin:
            argv += ["-i", "--leave-stdin-open"] if self.tty else ["-i"]
        env = {
            "PATH": os.environ["PATH"],
            "_OCI_SYNCPIPE": str(sync_w),
            "_OCI_STARTPIPE": str(start_r),
        }
        p = subprocess.Popen(
            argv, env=env, cwd=self.bundle, pass_fds=(sync_w, start_r),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(sync_w)
        os.close(start_r)
        os.write(start_w, b"\0")
        os.close(start_w)
        p.wait()
        with os.fdopen(sync_r) as f:
            reply = json.loads(f.readline())
        assert reply["data"] > 0, reply
        return int(reply["data"])

    def crun(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run crun against this container's state root."""
        return subprocess.run(
            [CRUN, "--root", str(self.crun_root), *args],
            capture_output=True,
            text=True,
            check=check,
        )

    def start(self) -> None:
        """crun start."""
        self.crun("start", self.id)

    def exit_code(self, timeout: float = 10) -> int:
        """Wait for conmon's exit file."""
        path = self.exits / self.id
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists() and path.read_text().strip():
                return int(path.read_text())
            time.sleep(0.02)
        raise AssertionError("container did not exit")

    def cleanup(self) -> None:
        """Kill and delete the container, stop conmon, unmount, remove the directory."""
        self.crun("delete", "-f", self.id, check=False)
        try:
            pid = int((self.bundle / "conmon.pid").read_text())
            os.kill(pid, 9)
        except (OSError, ValueError):
            pass
        # The container's cgroup in every hierarchy, then the shared parent once unused. A
        # cgroup whose killed processes are not reaped yet is busy for a moment: retry briefly.
        paths = [
            f"/sys/fs/cgroup/{ctrl}/pyd-test/{leaf}"
            for leaf in (self.id, "")
            for ctrl in sorted(os.listdir("/sys/fs/cgroup"))
        ]
        deadline = time.monotonic() + 3
        for path in paths:
            while True:
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline or path.endswith("pyd-test/"):
                        break
                    time.sleep(0.05)
        shutil.rmtree(self.base, ignore_errors=True)
