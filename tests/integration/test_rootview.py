"""The docker cp view helper (pyd.drivers.streams.rootview) on the real kernel.

Its mounts live in a private mount namespace: the host's mount table (and a running container's)
is the same before and after; destinations and paths resolve inside the container's root.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyd.drivers.streams import rootview
from tests.helpers.daemon import REPO
from tests.helpers.runtime import BareContainer

pytestmark = pytest.mark.integration


def _mountinfo(pid: str = "self", under: str = "") -> list[str]:
    """The mount table (only mounts on or from paths containing C{under}: other tests on
    this machine mount and unmount their own things meanwhile)."""
    return sorted(x for x in Path(f"/proc/{pid}/mountinfo").read_text().splitlines() if under in x)


def _helper(
    spec: dict, *args: str, stdin: bytes | None = None, fd3: bool = False
) -> tuple[dict, bytes]:
    with tempfile.TemporaryFile() as out3, tempfile.TemporaryFile() as src:
        src.write(stdin or b"")
        src.seek(0)
        op, *rest = args
        argv = rootview.helper_argv(spec, op, *rest)
        if fd3:  # the tar goes to fd 3, as the daemon passes it
            argv = ["bash", "-c", f'exec "$0" "$@" 3>&{out3.fileno()}', *argv]
        r = subprocess.run(
            argv,
            stdin=src,
            capture_output=True,
            timeout=60,
            cwd=str(REPO),
            pass_fds=(out3.fileno(),),
        )
        assert r.returncode == 0, r.stderr.decode()
        out3.seek(0)
        return json.loads(r.stdout), out3.read()


def _tar(**files: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def tree() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="pyd-t-rootview-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


class MountsModeTests:
    """A stopped container: host sources mounted over the root, in the helper only."""

    def test_mounts_reads_writes_and_leaves_no_trace(self, tree: Path) -> None:
        """A bind source is read and written through its destination; a read-only one is
        refused; a tmpfs is empty; a destination or path symlinked to a host directory stays
        inside the root; the host's mount table is unchanged."""
        root, vol, rovol, host = tree / "root", tree / "vol", tree / "ro", tree / "hostside"
        for d in (root / "tmp", vol, rovol, host):
            d.mkdir(parents=True)
        (vol / "f").write_text("in-volume\n")
        (root / "esc").symlink_to(host)  # a path through it must not reach the host
        (root / "evil").symlink_to(host)  # a mount destination through it likewise
        spec = {
            "mode": "mounts",
            "root": str(root),
            "mounts": [
                {"type": "bind", "source": str(vol), "destination": "/data", "rw": True},
                {"type": "bind", "source": str(rovol), "destination": "/ro", "rw": False},
                {"type": "bind", "source": str(vol), "destination": "/evil/m", "rw": True},
                {"type": "tmpfs", "destination": "/t", "options": ["size=1m"], "rw": True},
                {
                    "type": "bind",
                    "source": str(tree / "nope"),
                    "destination": "/x",
                    "optional": True,
                },
            ],
            "checks": {"mounts": [{"destination": "/ro", "rw": False}]},
        }
        before = _mountinfo(under=str(tree))
        out, _ = _helper(spec, "stat", "/data/f")
        assert "stat" in out, out
        assert out["stat"]["size"] == len("in-volume\n")
        out, data = _helper(spec, "get", "/data", fd3=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            f = tf.extractfile("data/f")
            assert f is not None and f.read() == b"in-volume\n"
        out, _ = _helper(spec, "put", "/data", stdin=_tar(new=b"uploaded\n"))
        assert out == {"ok": True}
        assert (vol / "new").read_text() == "uploaded\n"
        assert not (root / "data" / "new").exists()
        out, _ = _helper(spec, "put", "/ro", stdin=_tar(new=b"x"))
        assert out == {"error": "ro-volume", "message": "mounted volume is marked read-only"}
        assert list(rovol.iterdir()) == []
        out, _ = _helper(spec, "stat", "/t")
        assert out["stat"] is not None
        # /evil/m was mounted at <root>/<host path>/m, created inside the root
        inside = root / str(host).lstrip("/")
        assert (inside / "m").is_dir()
        out, _ = _helper(spec, "stat", "/esc/m/f")
        assert out["stat"] is not None
        out, _ = _helper(spec, "put", "/esc", stdin=_tar(evil=b"x"))
        assert out == {"ok": True}
        assert (inside / "evil").read_bytes() == b"x"
        assert list(host.iterdir()) == []
        assert _mountinfo(under=str(tree)) == before


@pytest.fixture
def scratch_container() -> Iterator[BareContainer]:
    c = BareContainer(["sh", "-c", "echo live > /scratch/f; exec sleep 60"])
    try:
        cfg = json.loads((c.bundle / "config.json").read_text())
        cfg["mounts"].append(
            {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["rw"]}
        )
        (c.bundle / "config.json").write_text(json.dumps(cfg))
        c.create()
        c.start()
        yield c
    finally:
        c.cleanup()


class LiveModeTests:
    """A running container: a copy of its own mount namespace, runtime mounts left out."""

    def test_live_tmpfs_and_no_runtime_mounts(self, scratch_container: BareContainer) -> None:
        """The container's tmpfs content is read and written live; /proc is not in the view;
        neither the host's nor the container's mount table changes; a root that is not the
        container's is refused as stale."""
        c = scratch_container
        pid = int((c.bundle / "pidfile").read_text())
        deadline = time.monotonic() + 30
        while not Path(f"/proc/{pid}/root/scratch/f").exists():
            assert time.monotonic() < deadline, "container did not write /scratch/f"
            time.sleep(0.05)
        info = os.stat(c.rootfs)
        spec = {
            "mode": "live",
            "pid": pid,
            "expect": [info.st_dev, info.st_ino],
            "keep": ["/scratch"],
            "checks": {},
        }
        before, before_c = _mountinfo(under=str(c.base)), _mountinfo(str(pid))
        out, data = _helper(spec, "get", "/scratch/f", fd3=True)
        assert out["stat"]["name"] == "f"
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            f = tf.extractfile("f")
            assert f is not None and f.read() == b"live\n"
        out, _ = _helper(spec, "put", "/scratch", stdin=_tar(up=b"uploaded\n"))
        assert out == {"ok": True}
        assert Path(f"/proc/{pid}/root/scratch/up").read_text() == "uploaded\n"
        assert not (c.rootfs / "scratch" / "up").exists()
        for p in ("/proc/1", "/proc/self", "/sys/kernel", "/dev/null"):
            out, _ = _helper(spec, "stat", p)
            assert out == {"stat": None}, p
        assert _mountinfo(under=str(c.base)) == before
        assert _mountinfo(str(pid)) == before_c
        stale = {**spec, "expect": [info.st_dev, info.st_ino + 1]}
        out, _ = _helper(stale, "stat", "/scratch/f")
        assert out["error"] == "stale"
