"""Volume subpaths mounted by descriptor (pyd.drivers.volumes.stage) on the real kernel (root).

The subpath is opened once inside the volume and the staging point holds exactly that
directory: a link out is refused, a link flipped during the attach can never put a host
directory there, the cp helper's view does the same, and release/sweep leave no mount behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyd.drivers.streams import rootview
from pyd.drivers.volumes.stage import StagingArea, SubpathError
from tests.helpers.daemon import REPO

pytestmark = pytest.mark.integration


def _points(under: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split(" ")[4] for line in f if under in line.split(" ")[4]]


@pytest.fixture
def tree() -> Iterator[Path]:
    """A volume (_data) and a host canary directory beside it; every mount under it goes."""
    d = Path(tempfile.mkdtemp(prefix="pyd-t-stage-"))
    (d / "vol" / "_data").mkdir(parents=True)
    host = d / "host"
    host.mkdir()
    (host / "secret").write_text("host secret\n")
    os.chmod(host, 0o700)
    try:
        yield d
    finally:
        for p in sorted(_points(str(d)), reverse=True):
            subprocess.run(["umount", "-l", p], check=False)
        shutil.rmtree(d, ignore_errors=True)


def _host_unchanged(host: Path) -> None:
    assert sorted(os.listdir(host)) == ["secret"]
    assert (host / "secret").read_text() == "host secret\n"
    assert os.stat(host).st_mode & 0o7777 == 0o700


class StagingAreaTests:
    """attach / release / sweep."""

    def test_attach_mounts_the_subpath_and_release_removes_it(self, tree: Path) -> None:
        """The staging point is a mount of the subpath itself (same inode), private (0700),
        writes land in the volume; release detaches and removes it, idempotently."""
        data = tree / "vol" / "_data"
        (data / "a" / "b").mkdir(parents=True)
        (data / "a" / "b" / "f").write_text("in volume")
        (data / "file").write_text("a file")
        area = StagingArea(str(tree / "mounts"))
        point = area.attach("c1", 0, str(data), "a/b")
        fpoint = area.attach("c1", 1, str(data), "file")
        assert point == str(tree / "mounts" / "c1" / "0")
        assert os.stat(tree / "mounts").st_mode & 0o777 == 0o700
        assert sorted(_points(str(tree / "mounts"))) == [point, fpoint]
        assert os.stat(point).st_ino == os.stat(data / "a" / "b").st_ino
        assert Path(point, "f").read_text() == "in volume"
        assert Path(fpoint).read_text() == "a file"
        Path(point, "new").write_text("x")
        assert (data / "a" / "b" / "new").read_text() == "x"
        area.release("c1")
        assert _points(str(tree / "mounts")) == []
        assert not (tree / "mounts" / "c1").exists()
        area.release("c1")
        assert (data / "a" / "b" / "new").exists()

    def test_links_out_refused(self, tree: Path) -> None:
        """A subpath that is, or passes through, a link leaving the volume is refused before
        anything is created or mounted; one that stays inside is followed."""
        data, host = tree / "vol" / "_data", tree / "host"
        os.symlink(str(host), data / "abs")
        os.symlink("/", data / "root")
        os.symlink("../../host", data / "climb")
        (data / "d").mkdir()
        os.symlink("..", data / "d" / "up")
        area = StagingArea(str(tree / "mounts"))
        for sub in ("abs", "root", "root/etc", "climb", "d/up/../host", "d/up/up"):
            with pytest.raises(SubpathError) as e:
                area.attach("c1", 0, str(data), sub)
            assert e.value.kind in ("escape", "notfound"), sub
        for sub in ("abs", "root", "climb"):
            with pytest.raises(SubpathError) as e:
                area.attach("c1", 0, str(data), sub)
            assert e.value.kind == "escape"
            assert "escapes the base directory" in e.value.message
            assert str(host) not in e.value.message
        with pytest.raises(SubpathError) as e:
            area.attach("c1", 0, str(data), "missing")
        assert e.value.kind == "notfound"
        assert _points(str(tree)) == []
        point = area.attach("c1", 0, str(data), "d/up/d")
        assert os.stat(point).st_ino == os.stat(data / "d").st_ino
        area.release("c1")
        _host_unchanged(host)

    def test_flipping_link_never_stages_the_host(self, tree: Path) -> None:
        """A thread flips `sub` between a directory and a link to the host while the subpath is
        attached 200 times: every staging point is the volume's directory or the attach is
        refused; never the host directory."""
        data, host = tree / "vol" / "_data", tree / "host"
        (data / "real").mkdir()
        (data / "real" / "mark").write_text("volume")
        stop = threading.Event()

        def flip() -> None:
            sub = data / "sub"
            while not stop.is_set():
                try:
                    os.symlink("real", data / "tmp-dir")
                    os.replace(data / "tmp-dir", sub)  # sub -> real (inside)
                    os.symlink(str(host), data / "tmp-out")
                    os.replace(data / "tmp-out", sub)  # sub -> host (out)
                    os.symlink("/", data / "tmp-root")
                    os.replace(data / "tmp-root", sub)
                except OSError:
                    pass

        t = threading.Thread(target=flip, daemon=True)
        t.start()
        area = StagingArea(str(tree / "mounts"))
        host_ino = os.stat(host).st_ino
        staged = refused = 0
        try:
            for i in range(200):
                try:
                    point = area.attach("c1", i, str(data), "sub")
                except SubpathError as e:
                    assert e.kind in ("escape", "notfound")
                    refused += 1
                    continue
                info = os.stat(point)
                assert info.st_ino != host_ino
                assert info.st_ino == os.stat(data / "real").st_ino
                assert sorted(os.listdir(point)) == ["mark"]
                staged += 1
        finally:
            stop.set()
            t.join()
            area.release("c1")
        assert staged + refused == 200
        assert _points(str(tree)) == []
        _host_unchanged(host)

    def test_sweep_removes_leftovers(self, tree: Path) -> None:
        """What a crashed daemon left (any container's points) goes at start."""
        data = tree / "vol" / "_data"
        (data / "s").mkdir()
        area = StagingArea(str(tree / "mounts"))
        area.attach("c1", 0, str(data), "s")
        area.attach("c2", 3, str(data), "s")
        assert len(_points(str(tree / "mounts"))) == 2
        assert StagingArea(str(tree / "mounts")).sweep() == 2
        assert _points(str(tree / "mounts")) == []
        assert os.listdir(tree / "mounts") == []
        assert StagingArea(str(tree / "nothing")).sweep() == 0


def _helper(spec: dict, *args: str) -> dict:
    r = subprocess.run(
        rootview.helper_argv(spec, *args), capture_output=True, timeout=60, cwd=str(REPO)
    )
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


class CpViewSubpathTests:
    """The cp helper's view of a stopped container attaches subpaths the same way."""

    def test_subpath_link_out_refused_and_inside_seen(self, tree: Path) -> None:
        """`sub -> /` is refused (subpath-escape), never mounted over the host; a real subpath
        shows the volume's directory at the destination."""
        data, host = tree / "vol" / "_data", tree / "host"
        root = tree / "rootfs"
        (root / "x").mkdir(parents=True)
        os.symlink("/", data / "sub")
        spec = {
            "mode": "mounts",
            "root": str(root),
            "mounts": [{"type": "bind", "source": str(data), "destination": "/x",
                        "subpath": "sub", "rw": True}],
        }  # fmt: skip
        out = _helper(spec, "stat", f"/x/{host.relative_to('/')}/secret")
        assert out["error"] == "subpath-escape", out
        os.unlink(data / "sub")
        os.symlink(str(host), data / "sub")
        assert _helper(spec, "stat", "/x/secret")["error"] == "subpath-escape"
        os.unlink(data / "sub")
        (data / "sub").mkdir()
        (data / "sub" / "inside").write_text("v")
        out = _helper(spec, "stat", "/x/inside")
        assert out["stat"]["size"] == 1, out
        assert _points(str(tree)) == []
        _host_unchanged(host)


class ConfineTests:
    """stage.confine / makedirs_beneath: the allowed root of a bind source, and mkdir -p beneath it."""

    def test_confine_picks_the_outermost_root_with_links_resolved(self, tree: Path) -> None:
        from pyd.drivers.volumes.stage import confine

        allowed = tree / "vol"
        (allowed / "_data" / "x").mkdir()
        os.symlink(str(allowed), tree / "alias")
        assert confine(str(allowed / "_data" / "x"), [str(allowed / "_data"), str(allowed)]) == (
            str(allowed), "_data/x")  # fmt: skip
        assert confine(str(tree / "alias" / "_data"), [str(allowed)]) == (str(allowed), "_data")
        assert confine(str(allowed), [str(tree / "alias")]) == (str(allowed), ".")
        assert confine(str(tree / "host"), [str(allowed)]) is None
        assert confine(str(allowed) + "x", [str(allowed)]) is None

    def test_makedirs_beneath_never_through_a_link_out(self, tree: Path) -> None:
        from pyd.drivers.volumes.stage import makedirs_beneath

        root = tree / "vol" / "_data"
        makedirs_beneath(str(root), "a/b")
        assert (root / "a" / "b").is_dir()
        os.symlink(str(tree / "host"), root / "out")
        with pytest.raises(SubpathError) as e:
            makedirs_beneath(str(root), "out/new")
        assert e.value.kind == "escape"
        (root / "f").write_text("")
        makedirs_beneath(str(root), "f")  # an existing file is bound as a file
        _host_unchanged(tree / "host")
