"""Trees read through descriptors (pyd.drivers.fdtree) and helpers sealed against the container's
files (pyd.drivers.sealed): names swapped under a walk are never followed, no owner name is
ever looked up, nothing is imported after sealing."""

from __future__ import annotations

import grp
import io
import os
import pwd
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pyd.drivers import fdtree, sealed
from pyd.drivers.storage import diff


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    """A root with a directory, files, a hard link, a FIFO and a link out; a host directory
    beside it holding a secret of the same name."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("HOST SECRET\n")
    (host / "host-only").write_text("HOST SECRET\n")
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d" / "secret").write_text("container\n")
    (root / "f").write_text("file\n")
    os.link(root / "f", root / "hard")
    os.mkfifo(root / "fifo")
    os.symlink(str(host), root / "out")
    os.chown(root / "f", 1000, 1000)
    return root, host


def _tar(root: Path) -> list[tarfile.TarInfo]:
    buf = io.BytesIO()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with tarfile.open(fileobj=buf, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            w = fdtree.TarWriter(tf)
            for e in fdtree.walk(fd):
                w.add(e.parent, e.name, e.st, e.rel)
    finally:
        os.close(fd)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        members = tf.getmembers()
        for m in members:
            if m.isreg():
                f = tf.extractfile(m)
                assert f is not None
                m.pax_headers = {"data": f.read().decode()}
    return members


class TarWriterTests:
    """What a walk archives, and what it never touches."""

    def test_numeric_owners_no_name_lookups(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Entries carry uid/gid and empty names; pwd and grp are never asked (inside a
        container's root that would load its NSS modules)."""
        root, _ = _tree(tmp_path)

        def refuse(*_a: object) -> None:
            raise AssertionError("a user or group name was looked up")

        for mod, names in ((pwd, ("getpwuid", "getpwnam")), (grp, ("getgrgid", "getgrnam"))):
            for name in names:
                monkeypatch.setattr(mod, name, refuse)
        members = {m.name: m for m in _tar(root)}
        assert sorted(members) == ["d", "d/secret", "f", "fifo", "hard", "out"]
        assert all(m.uname == "" and m.gname == "" for m in members.values())
        assert (members["f"].uid, members["f"].gid) == (1000, 1000)
        assert members["hard"].islnk() and members["hard"].linkname == "f"
        assert members["fifo"].isfifo()
        assert members["out"].issym() and members["out"].linkname.endswith("host")
        assert members["d/secret"].pax_headers["data"] == "container\n"

    def test_directory_swapped_for_a_link_is_not_entered(self, tmp_path: Path) -> None:
        """The walk saw C{d} as a directory; it becomes a link to the host directory before the
        walk enters it (RENAME_EXCHANGE): the host directory is neither listed nor read."""
        root, host = _tree(tmp_path)
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        seen = []
        try:
            for e in fdtree.walk(fd):
                seen.append(e.rel)
                if e.rel == "d":
                    os.rename(root / "d", root / "d.moved")
                    os.symlink(str(host), root / "d")
        finally:
            os.close(fd)
        assert "d/secret" not in seen and "d/host-only" not in seen

    def test_file_swapped_for_a_link_fifo_or_device_is_not_read(self, tmp_path: Path) -> None:
        """An entry seen as a regular file that is now a link out, a FIFO (no hang) or a
        device is left out, never followed, waited on or read."""
        root, host = _tree(tmp_path)
        st = os.lstat(root / "f")
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for swap in ("link", "fifo", "device"):
                os.unlink(root / "f")
                if swap == "link":
                    os.symlink(str(host / "secret"), root / "f")
                elif swap == "fifo":
                    os.mkfifo(root / "f")
                else:
                    os.mknod(root / "f", 0o600 | 0o060000, os.makedev(7, 0))  # a loop device
                buf = io.BytesIO()
                with tarfile.open(fileobj=buf, mode="w|") as tf:
                    assert fdtree.TarWriter(tf).add(fd, "f", st, "f") is False
                assert b"HOST SECRET" not in buf.getvalue()
        finally:
            os.close(fd)

    def test_file_that_shrinks_or_grows_keeps_its_header_size(self, tmp_path: Path) -> None:
        """The header promises the size seen at open: a shorter file is padded, a longer one
        cut, and the archive stays readable."""
        root, _ = _tree(tmp_path)
        fd = os.open(root / "f", os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            assert fdtree._Exact(fd, size + 3).read() == b"file\n\0\0\0"
            os.lseek(fd, 0, os.SEEK_SET)
            assert fdtree._Exact(fd, 2).read() == b"fi"
        finally:
            os.close(fd)


class DiffThroughDescriptorsTests:
    """C{docker diff} and commit read the upper directory through descriptors."""

    def test_lower_links_are_not_followed(self, tmp_path: Path) -> None:
        """A lower layer's link out of it does not make a path exist (the host is not asked)."""
        _, host = _tree(tmp_path)
        lower = tmp_path / "lower"
        lower.mkdir()
        os.symlink(str(host), lower / "a")
        upper = tmp_path / "upper"
        (upper / "a").mkdir(parents=True)
        (upper / "a" / "secret").write_text("mine\n")
        assert diff.changes(str(upper), [str(lower)]) == [
            ("/a", diff.MODIFIED),
            ("/a/secret", diff.ADDED),
        ]


class SealedTests:
    """After sealing, nothing is imported from a file."""

    def test_no_import_after_seal(self) -> None:
        """A module not yet loaded cannot be imported once sealed; built-in ones still can; an
        uncaught exception prints no source lines."""
        code = (
            "import sys; from pyd.drivers import sealed; sealed.preload(); sealed.seal()\n"
            "import errno, posix\n"
            "try:\n    import xml.dom\nexcept ImportError:\n    print('refused')\n"
            "raise RuntimeError('boom')\n"
        )
        r = subprocess.run(
            [
                sys.executable,
                "-I",
                "-S",
                "-c",
                f"import sys; sys.path.insert(0, {str(Path(sealed.__file__).parents[2])!r})\n"
                + code,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.stdout == "refused\n"
        assert r.stderr.endswith("RuntimeError: boom\n")
        assert "raise RuntimeError" not in r.stderr

    def test_no_way_back(self, tmp_path: Path) -> None:
        """After close_inherited and drop_capabilities(READ_CAPS) a helper holds only the
        descriptors it was meant to get and cannot chroot, mount or gain privileges again."""
        code = (
            "import os; from pyd.drivers import sealed\n"
            "keep = os.open('/', os.O_RDONLY); other = os.open('/', os.O_RDONLY)\n"
            "os.dup2(keep, 7); os.dup2(other, 9)\n"
            "sealed.close_inherited((0, 1, 2, 7))\n"
            "print(sorted(int(f) for f in os.listdir('/proc/self/fd') if int(f) not in (3,)))\n"
            "sealed.drop_capabilities(sealed.READ_CAPS)\n"
            "status = open('/proc/self/status').read()\n"
            "print([l.split()[1] for l in status.splitlines() if l.startswith(('CapEff', 'CapBnd', 'NoNewPrivs'))])\n"
            "os.mkdir(os.environ['DIR'] + '/x')\n"
            "try:\n    os.chroot(os.environ['DIR'] + '/x')\nexcept PermissionError:\n    print('no chroot')\n"
        )
        tree = str(Path(sealed.__file__).parents[2])
        r = subprocess.run(
            [sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {tree!r})\n" + code],
            capture_output=True,
            text=True,
            timeout=60,
            env={"DIR": str(tmp_path)},
        )
        lines = r.stdout.splitlines()
        assert r.returncode == 0, r.stderr
        # listdir's own descriptor is the one extra (3 was closed, so it got 3)
        assert lines[0] == "[0, 1, 2, 7]"
        assert lines[1] == "['0000000000000006', '0000000000000006', '1']"
        assert lines[2] == "no chroot"
