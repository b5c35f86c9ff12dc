"""The layer store against the real kernel: chroot'ed untar helper, overlay mounts, diffs (root)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyd.core.seams import InlineBlocking
from pyd.drivers.storage import diff as diffmod
from pyd.drivers.storage.layers import InProcessExtractor, LayerStore
from pyd.drivers.storage.overlay import unmount
from pyd.drivers.storage.tarsplit import SPLIT_NAME, SplitTar, SplitWriter

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def untar(
    dest: Path, data: bytes, split_dir: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run the helper exactly as the daemon does (stdin = the layer)."""
    dest.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pyd.drivers.storage.untar", str(dest)]
    if split_dir is not None:
        argv += ["--split", str(split_dir)]
    return subprocess.run(
        argv, input=data, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)}
    )


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in members:
            if data is not None:
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _ti(
    name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, **kw: object
) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


@pytest.fixture
def victim(tmp_path: Path) -> Iterator[Path]:
    """A host file that hostile layers try to reach."""
    v = tmp_path / "victim.txt"
    v.write_text("original")
    yield v
    assert v.read_text() == "original"


class UntarFidelityTests:
    """A legitimate layer comes out exactly as it went in."""

    def test_everything_preserved(self, tmp_path: Path) -> None:
        """setuid, sticky, owners, symlinks, hardlinks, devices, xattrs, whiteouts, opaque dirs."""
        cap = "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
        ping = _ti("bin/ping", mode=0o755)
        ping.pax_headers = {"SCHILY.xattr.security.capability": cap}
        layer = _tar(
            (_ti("bin/", tarfile.DIRTYPE, 0o755), None),
            (_ti("bin/su", mode=0o4755), b"su"),
            (_ti("bin/wall", mode=0o2755, gid=5), b"wall"),
            (ping, b"ping"),
            (_ti("tmp/", tarfile.DIRTYPE, 0o1777), None),
            (_ti("home/app/f", uid=1000, gid=1000, uname="root", gname="root"), b"x"),
            (
                _ti("etc/localtime", tarfile.SYMTYPE, 0o777, linkname="/usr/share/zoneinfo/UTC"),
                None,
            ),
            (_ti("bin/su-link", tarfile.LNKTYPE, 0o4755, linkname="bin/su"), None),
            (_ti("dev/null", tarfile.CHRTYPE, 0o666, devmajor=1, devminor=3), None),
            (_ti("data/.wh.gone"), b""),
            (_ti("opq/", tarfile.DIRTYPE, 0o755), None),
            (_ti("opq/.wh..wh..opq"), b""),
            (_ti("opq/kept"), b"k"),
        )
        dest = tmp_path / "layer"
        compressed = gzip.compress(layer)
        r = untar(dest, compressed, tmp_path)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["diff_id"] == "sha256:" + hashlib.sha256(layer).hexdigest()
        assert out["digest"] == "sha256:" + hashlib.sha256(compressed).hexdigest()
        assert out["compressed_size"] == len(compressed)
        with SplitTar(str(tmp_path), diff="layer") as back:  # the exact tar, given back
            assert back.size == len(layer) and back.read() == layer
        assert stat.S_IMODE(os.stat(dest / "bin/su").st_mode) == 0o4755
        st = os.stat(dest / "bin/wall")
        assert stat.S_IMODE(st.st_mode) == 0o2755 and st.st_gid == 5
        assert stat.S_IMODE(os.stat(dest / "tmp").st_mode) == 0o1777
        assert os.stat(dest / "home/app/f").st_uid == 1000
        assert os.readlink(dest / "etc/localtime") == "/usr/share/zoneinfo/UTC"
        assert os.stat(dest / "bin/su-link").st_ino == os.stat(dest / "bin/su").st_ino
        dev = os.lstat(dest / "dev/null")
        assert (
            stat.S_ISCHR(dev.st_mode) and os.major(dev.st_rdev) == 1 and os.minor(dev.st_rdev) == 3
        )
        assert os.getxattr(dest / "bin/ping", "security.capability") == cap.encode("latin-1")
        wh = os.lstat(dest / "data/gone")
        assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
        assert os.getxattr(dest / "opq", "trusted.overlay.opaque") == b"y"
        assert (dest / "opq/kept").read_bytes() == b"k"
        # dockerd's layer size: file contents plus symlink targets (lstat sizes), hardlinks once
        symlink = len("/usr/share/zoneinfo/UTC")
        assert out["size"] == len(b"su" + b"wall" + b"ping" + b"x" + b"k") + symlink

    def test_not_a_tar(self, tmp_path: Path) -> None:
        """Garbage input fails with a message."""
        r = untar(tmp_path / "l", b"this is not a tar archive at all" * 40)
        assert r.returncode == 1
        assert r.stderr.strip()

    def test_truncated(self, tmp_path: Path) -> None:
        """A truncated gzip layer fails."""
        data = gzip.compress(_tar((_ti("f"), os.urandom(100_000))))
        r = untar(tmp_path / "l", data[: len(data) // 2])
        assert r.returncode == 1


class UntarHostileTests:
    """Hostile layers are contained in the layer or refused; the host is never touched."""

    def test_absolute_path_contained(self, tmp_path: Path, victim: Path) -> None:
        """/abs/path lands inside the layer."""
        r = untar(tmp_path / "l", _tar((_ti(str(victim)), b"pwned")))
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "l" / str(victim).lstrip("/")).read_bytes() == b"pwned"

    def test_dotdot_refused(self, tmp_path: Path, victim: Path) -> None:
        """../ climbing out of the layer is refused."""
        rel = os.path.relpath(victim, tmp_path / "l")
        r = untar(tmp_path / "l", _tar((_ti(rel), b"pwned")))
        assert r.returncode == 1
        assert b"outside of the layer" in r.stderr

    def test_symlink_then_write_through(self, tmp_path: Path, victim: Path) -> None:
        """A symlink to a host dir then a file under it: refused (the link dangles in the
        chroot) or written inside the layer; never on the host."""
        r = untar(
            tmp_path / "l",
            _tar(
                (_ti("esc", tarfile.SYMTYPE, 0o777, linkname=str(victim.parent)), None),
                (_ti("esc/victim.txt"), b"pwned"),
            ),
        )
        inside = tmp_path / "l" / str(victim.parent).lstrip("/") / "victim.txt"
        assert r.returncode == 1 or inside.read_bytes() == b"pwned"

    def test_relative_symlink_escape(self, tmp_path: Path, victim: Path) -> None:
        """A ../../ symlink used as a parent by the same layer is refused (the chroot would
        contain it too)."""
        r = untar(
            tmp_path / "l",
            _tar(
                (_ti("up", tarfile.SYMTYPE, 0o777, linkname="../../../../../../../.."), None),
                (_ti("up" + str(victim)), b"pwned"),
            ),
        )
        assert r.returncode == 1, r.stderr
        assert b"its parent 'up' is a symbolic link to" in r.stderr, r.stderr

    def test_symlink_overwrite(self, tmp_path: Path, victim: Path) -> None:
        """A file over an existing symlink replaces the link, never writes through it."""
        r = untar(
            tmp_path / "l",
            _tar(
                (_ti("f", tarfile.SYMTYPE, 0o777, linkname=str(victim)), None),
                (_ti("f"), b"pwned"),
            ),
        )
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "l" / "f").read_bytes() == b"pwned"
        assert not (tmp_path / "l" / "f").is_symlink()

    def test_absolute_hardlink(self, tmp_path: Path, victim: Path) -> None:
        """A hardlink to a host path links inside the layer or fails; never to the host file."""
        r = untar(
            tmp_path / "l",
            _tar((_ti("h", tarfile.LNKTYPE, 0o644, linkname=str(victim)), None)),
        )
        if r.returncode == 0:
            assert os.stat(tmp_path / "l" / "h").st_ino != os.stat(victim).st_ino
        assert victim.stat().st_nlink == 1

    def test_dotdot_hardlink_refused(self, tmp_path: Path, victim: Path) -> None:
        """A hardlink whose target climbs out is refused."""
        rel = os.path.relpath(victim, tmp_path / "l")
        r = untar(tmp_path / "l", _tar((_ti("h", tarfile.LNKTYPE, 0o644, linkname=rel), None)))
        assert r.returncode == 1
        assert victim.stat().st_nlink == 1


class UntarDeviceTests:
    """Device nodes: an image layer may hold only the inert character devices (and 0:0)."""

    @pytest.mark.parametrize(
        ("kind", "major", "minor"),
        [
            (tarfile.BLKTYPE, 8, 0),  # a host disk
            (tarfile.BLKTYPE, 7, 0),  # a loop device
            (tarfile.CHRTYPE, 1, 1),  # /dev/mem
            (tarfile.CHRTYPE, 1, 2),  # /dev/kmem
            (tarfile.CHRTYPE, 4, 0),  # a virtual console
            (tarfile.CHRTYPE, 10, 200),  # /dev/net/tun
        ],
    )
    def test_other_devices_refuse_the_layer(
        self, tmp_path: Path, kind: bytes, major: int, minor: int
    ) -> None:
        """The whole layer is refused, naming the entry; no node is created."""
        r = untar(
            tmp_path / "l",
            _tar(
                (_ti("etc/", tarfile.DIRTYPE, 0o755), None),
                (_ti("etc/passwd", kind, 0o644, devmajor=major, devminor=minor), None),
            ),
        )
        assert r.returncode == 1
        what = "block" if kind == tarfile.BLKTYPE else "character"
        assert r.stderr.decode().strip().splitlines()[-1] == (
            f"{what} device {major}:{minor} at 'etc/passwd' is refused: image layers may only hold "
            "the character devices null, zero, full, random, urandom, tty, console and ptmx"
        )
        assert not os.path.lexists(tmp_path / "l" / "etc" / "passwd")

    def test_inert_devices_are_kept(self, tmp_path: Path) -> None:
        """null, zero, full, random, urandom, tty, console, ptmx and 0:0 stay as they are (old
        images carry them in /dev)."""
        devs = [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (0, 0)]
        layer = _tar(
            (_ti("dev/", tarfile.DIRTYPE, 0o755), None),
            *(
                (_ti(f"dev/d{a}_{b}", tarfile.CHRTYPE, 0o666, devmajor=a, devminor=b), None)
                for a, b in devs
            ),
        )
        r = untar(tmp_path / "l", layer)
        assert r.returncode == 0, r.stderr
        for a, b in devs:
            st = os.lstat(tmp_path / "l" / "dev" / f"d{a}_{b}")
            assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(a, b)

    def test_cp_into_a_container_keeps_dockerds_behaviour(self, tmp_path: Path) -> None:
        """C{docker cp} into a container (devices=True) creates the node, as dockerd does; the
        daemon never opens it (pyd.drivers.inroot)."""
        from pyd.drivers.storage import untar as u

        layer = _tar((_ti("disk", tarfile.BLKTYPE, 0o600, devmajor=7, devminor=0), None))
        (tmp_path / "c").mkdir()
        u.run(str(tmp_path / "c"), io.BytesIO(layer), None, chroot=False, devices=True)
        assert stat.S_ISBLK(os.lstat(tmp_path / "c" / "disk").st_mode)


def _store(tmp_path: Path, fsconfig: bool = True) -> LayerStore:
    store = LayerStore(
        str(tmp_path / "storage"), InProcessExtractor(InlineBlocking()), use_fsconfig=fsconfig
    )
    store.ensure_dirs()
    return store


def _add(store: LayerStore, name: str, layer: bytes) -> str:
    staging, dest = store.prepare_extract()
    src = Path(staging) / "src.tar"
    src.write_bytes(layer)
    from pyd.drivers.storage import untar as u

    with open(src, "rb") as f, open(Path(staging) / SPLIT_NAME, "wb") as out:
        u.run(dest, f, SplitWriter(out), chroot=False)
    src.unlink()
    store.commit_layer(staging, name)
    return name


class OverlayTests:
    """Writable layers over extracted layers, mounted by the kernel."""

    def _layers(self, store: LayerStore) -> list[str]:
        base = _add(
            store,
            "a" * 64,
            _tar(
                (_ti("data/", tarfile.DIRTYPE, 0o755), None),
                (_ti("data/a"), b"a"),
                (_ti("data/b"), b"b"),
                (_ti("keep/", tarfile.DIRTYPE, 0o755), None),
                (_ti("keep/old"), b"o"),
                (_ti("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n"),
            ),
        )
        top = _add(
            store,
            "b" * 64,
            _tar(
                (_ti("data/.wh.a"), b""),
                (_ti("keep/", tarfile.DIRTYPE, 0o755), None),
                (_ti("keep/.wh..wh..opq"), b""),
                (_ti("keep/new"), b"n"),
            ),
        )
        return [top, base]  # top-most first

    @pytest.mark.parametrize("fsconfig", [True, False])
    def test_mount_view_changes_and_export(self, tmp_path: Path, fsconfig: bool) -> None:
        """Whiteouts and opaque dirs hide lower content; writes land in the upper dir; the
        exported diff re-applied as a layer gives the same view."""
        store = _store(tmp_path, fsconfig)
        lowers = self._layers(store)
        cid = "c" * 64
        store.create_rw(cid)
        try:
            if fsconfig:
                merged = Path(store.mount_rw(cid, lowers))
            else:
                argv = store.legacy_mount_argv(cid, lowers)
                assert "lowerdir=l/" in argv[5]
                subprocess.run(argv, cwd=store.root, check=True)
                merged = Path(store.merged_dir(cid))
            assert sorted(os.listdir(merged / "data")) == ["b"]
            assert sorted(os.listdir(merged / "keep")) == ["new"]
            (merged / "newfile").write_text("x")
            (merged / "data" / "b").unlink()
            with open(merged / "etc" / "passwd", "a") as f:
                f.write("app:x:1000:1000::/:/bin/sh\n")
            changes = dict(store.rw_changes(cid, lowers))
            assert changes["/newfile"] == diffmod.ADDED
            assert changes["/data/b"] == diffmod.DELETED
            assert changes["/etc/passwd"] == diffmod.MODIFIED
            assert changes["/etc"] == diffmod.MODIFIED
            path, count = store.export_rw(cid, lowers)
            assert count > 0
            with tarfile.open(path) as tf:
                names = tf.getnames()
            assert "data/.wh.b" in names and "newfile" in names
            third = _add(store, "d" * 64, Path(path).read_bytes())
            cid2 = "e" * 64
            store.create_rw(cid2)
            merged2 = Path(store.mount_rw(cid2, [third, *lowers]))
            try:
                assert sorted(os.listdir(merged2)) == sorted(os.listdir(merged))
                assert sorted(os.listdir(merged2 / "data")) == []
                assert (merged2 / "etc/passwd").read_text().endswith("app:x:1000:1000::/:/bin/sh\n")
            finally:
                store.remove_rw(cid2)
        finally:
            store.remove_rw(cid)
        assert not os.path.exists(store.rw_dir(cid))

    def test_empty_diff_is_the_empty_layer(self, tmp_path: Path) -> None:
        """An unchanged container exports Go's 1024-byte empty tar."""
        store = _store(tmp_path)
        lowers = self._layers(store)
        cid = "f" * 64
        store.create_rw(cid)
        try:
            store.mount_rw(cid, lowers)
            path, count = store.export_rw(cid, lowers)
            assert count == 0
            data = Path(path).read_bytes()
            assert hashlib.sha256(data).hexdigest() == (
                "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
            )
        finally:
            store.remove_rw(cid)

    def test_many_layers_with_fsconfig(self, tmp_path: Path) -> None:
        """200 lower layers mount with lowerdir+ (more than the legacy option page allows)."""
        store = _store(tmp_path)
        names = []
        for i in range(200):
            names.append(_add(store, f"{i:064x}", _tar((_ti(f"f{i}"), b"x"))))
        cid = "9" * 64
        store.create_rw(cid)
        try:
            merged = Path(store.mount_rw(cid, list(reversed(names))))
            assert len(os.listdir(merged)) == 200
            unmount(str(merged))
            assert not os.path.ismount(merged)
        finally:
            store.remove_rw(cid)
