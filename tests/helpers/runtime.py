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


def _spec(bundle: Path, args: list[str], tty: bool, cgroup: str) -> dict:
    subprocess.run([CRUN, "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["root"] = {"path": str(bundle / "rootfs"), "readonly": False}
    spec["process"]["args"] = args
    spec["process"]["terminal"] = tty
    spec["process"]["env"] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "FROM_IMAGE=1"]
    spec["linux"]["cgroupsPath"] = cgroup
    spec["hostname"] = "bare"
    return spec


class BareContainer:
    """One container run under conmon; C{exec_root} is what pyd's exec root would be."""

    def __init__(self, args: list[str], tty: bool = False, stdin: bool = False) -> None:
        fix_hugetlb()
        self.id = uuid.uuid4().hex + uuid.uuid4().hex
        # Two levels, as pyd's own (cgroup-parent/id), both this container's: a parent shared
        # with other tests (other xdist workers) could be removed by one while another's crun
        # is creating its leaf in it, and is not this container's to remove.
        self.cgroup = f"/pyd-test-{self.id[:12]}/{self.id}"
        self.base = Path(tempfile.mkdtemp(prefix="pyd-rt-", dir="/tmp"))
        try:
            self.crun_root = self.base / "crun"
            self.bundle = self.base / "b"
            self.socks = self.base / "s"
            self.exits = self.base / "exits"
            for d in (self.crun_root, self.bundle, self.socks, self.exits):
                d.mkdir()
            make_rootfs(self.bundle / "rootfs")
            spec = _spec(self.bundle, args, tty, self.cgroup)
            (self.bundle / "config.json").write_text(json.dumps(spec))
        except BaseException:
            shutil.rmtree(self.base, ignore_errors=True)
            raise
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
        # The container's cgroup in every hierarchy, then its parent (both levels were made for
        # this container alone), whatever state the test left the container in.
        try:
            for path in self.cgroup_dirs():
                _remove_cgroup(path)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def cgroup_dirs(self) -> list[str]:
        """The cgroup directories this container may have made: the leaf in every hierarchy,
        then the parent in every hierarchy (the order they can be removed in)."""
        leaf = self.cgroup.strip("/")
        hierarchies = sorted(os.listdir("/sys/fs/cgroup"))
        return [
            f"/sys/fs/cgroup/{ctrl}/{rel}"
            for rel in (leaf, leaf.rsplit("/", 1)[0])
            for ctrl in hierarchies
        ]


def _remove_cgroup(path: str) -> None:
    """Remove the cgroup directory C{path} (absent: done). One that is busy still holds processes
    (killed but not yet reaped, or missed): kill what it lists and try again; one that stays busy
    is an error (a leak reported, not left behind silently)."""
    for _ in range(200):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            try:
                pids = Path(path, "cgroup.procs").read_text().split()
            except OSError:
                pids = []
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (OSError, ValueError):
                    pass
            time.sleep(0.05)
    raise AssertionError(f"cgroup {path} stays busy")
