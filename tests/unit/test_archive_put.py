"""PUT archive's option helpers: go-archive's NoOverwriteDirNonDir and copyUIDGID re-owning."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pyd.core.errors import SystemError_
from pyd.drivers.streams import rootpaths
from pyd.engine.archive import _reown


def _check_dir_non_dir(src: str, host: str, dest: str) -> None:
    """What the cp helper does with the answer (C{dir-non-dir}: dockerd's 500 with the text)."""
    conflict = rootpaths.dir_non_dir_conflict(src, host, dest)
    if conflict:
        raise SystemError_(conflict)


def _tar(path: str, *entries: tuple[str, bytes | None]) -> None:
    with tarfile.open(path, "w") as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.uid = info.gid = 1234
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))


class ArchivePutHelpersTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)
        self.host = os.path.join(self.dir, "root", "tmp")
        os.makedirs(os.path.join(self.host, "d"))
        with open(os.path.join(self.host, "f"), "w") as f:
            f.write("x")
        self.tar = os.path.join(self.dir, "in.tar")

    def test_refuses_both_directions(self) -> None:
        """A file over a directory, a directory over a file: dockerd's messages."""
        _tar(self.tar, ("new", b"1"), ("./d", b"2"))
        with self.assertRaises(SystemError_) as ctx:
            _check_dir_non_dir(self.tar, self.host, "/tmp")
        self.assertEqual(
            str(ctx.exception), 'cannot overwrite directory "/tmp/d" with non-directory "/tmp"'
        )
        _tar(self.tar, ("f/", None))
        with self.assertRaises(SystemError_) as ctx:
            _check_dir_non_dir(self.tar, self.host, "/tmp")
        self.assertEqual(
            str(ctx.exception), 'cannot overwrite non-directory "/tmp/f" with directory "/tmp"'
        )

    def test_same_kinds_and_new_paths_pass(self) -> None:
        """Directory over directory, file over file, anything new: accepted."""
        _tar(self.tar, ("d/", None), ("f", b"y"), ("d/n", b"z"), ("new/", None))
        _check_dir_non_dir(self.tar, self.host, "/tmp")

    def test_symlinks_resolve_inside_the_destination(self) -> None:
        """A symlink to an outside directory is followed inside the destination (like the
        chroot'ed helper), never on the host."""
        outside = os.path.join(self.dir, "outside")
        os.makedirs(os.path.join(outside, "victim"))
        os.symlink(outside, os.path.join(self.host, "link"))
        _tar(self.tar, ("link/victim", b"1"))
        _check_dir_non_dir(self.tar, self.host, "/tmp")  # /tmp/<outside>/victim does not exist

    def test_reown(self) -> None:
        """Every entry gets the given owner; contents and names stay."""
        _tar(self.tar, ("d/", None), ("d/f", b"data"))
        out = os.path.join(self.dir, "out.tar")
        _reown(self.tar, out, 1, 2)
        with tarfile.open(out) as tf:
            self.assertEqual([(m.name, m.uid, m.gid) for m in tf], [("d", 1, 2), ("d/f", 1, 2)])
            f = tf.extractfile("d/f")
            assert f is not None
            self.assertEqual(f.read(), b"data")


class HardLinkToMissingTests(SynchronousTestCase):
    def test_hard_link_to_a_missing_name_is_a_plain_tar_error(self) -> None:
        """A hard link whose target is neither on disk nor earlier in the archive is refused
        with a plain message (a 400 through PUT archive), not a KeyError."""
        from pyd.drivers.storage import untar

        dest = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, dest)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            info = tarfile.TarInfo("a")
            info.type = tarfile.LNKTYPE
            info.linkname = "missing"
            tf.addfile(info)
        buf.seek(0)
        with self.assertRaises(untar.UntarError) as ctx:
            untar.run(dest, buf, None, chroot=False)
        self.assertEqual(
            str(ctx.exception), "hard link 'a' points to 'missing', which does not exist"
        )
        self.assertEqual(os.listdir(dest), [])

    def test_os_errors_read_as_go_prints_them(self) -> None:
        """An extraction failure from the kernel reads `PATH: reason`, without Python's
        `[Errno N]`."""
        from pyd.drivers.storage import untar

        dest = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, dest)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            info = tarfile.TarInfo("f")
            info.size = 1
            tf.addfile(info, io.BytesIO(b"x"))
            info = tarfile.TarInfo("f/sub")
            info.size = 1
            tf.addfile(info, io.BytesIO(b"y"))
        buf.seek(0)
        with self.assertRaises(untar.UntarError) as ctx:
            untar.run(dest, buf, None, chroot=False)
        self.assertNotIn("Errno", str(ctx.exception))
        self.assertTrue(str(ctx.exception).endswith(": not a directory"), str(ctx.exception))
