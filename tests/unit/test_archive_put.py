"""PUT archive's option helpers: go-archive's NoOverwriteDirNonDir and copyUIDGID re-owning."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import threading
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from pyd.core.errors import InvalidParameter, SystemError_
from pyd.drivers.storage import untar
from pyd.drivers.streams import rootpaths
from pyd.engine.archive import _file_of, _reown, _spool


def _check_dir_non_dir(src: str, host: str, dest: str) -> None:
    """What the cp helper does with the answer (C{dir-non-dir}: dockerd's 500 with the text).

    The tar is checked as a path, as a stream and read in place (the helper's regular-file
    case): the three answers must be the same."""
    conflict = rootpaths.dir_non_dir_conflict(src, host, dest)
    for seekable in (False, True):
        with open(src, "rb", buffering=0) as f:
            assert rootpaths.dir_non_dir_conflict(f, host, dest, seekable=seekable) == conflict
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

    def test_a_body_on_a_pipe_is_checked_entry_by_entry(self) -> None:
        """A body still arriving (read once, from a pipe) is checked as go-archive checks it:
        each entry as it comes, with dockerd's messages; the entries before the conflict stay
        and nothing after it is written. Both directions, and an entry made a file earlier in
        the same archive counts (the whole-body check would not see it)."""
        for entries, message, left in (
            (
                [("new", b"1"), ("./d", b"2"), ("after", b"3")],
                'cannot overwrite directory "/tmp/d" with non-directory "/tmp"',
                ["d", "f", "new"],
            ),
            (
                [("f/", None)],
                'cannot overwrite non-directory "/tmp/f" with directory "/tmp"',
                ["d", "f"],
            ),
            (
                [("g", b"1"), ("g/", None)],
                'cannot overwrite non-directory "/tmp/g" with directory "/tmp"',
                ["d", "f", "g"],
            ),
        ):
            _tar(self.tar, *entries)
            with open(self.tar, "rb") as f:
                data = f.read()
            r, w = os.pipe()  # the body on a pipe, as the helper reads it (a tar under 64 KiB)
            os.write(w, data)
            os.close(w)
            self.addCleanup(os.close, r)
            with self.assertRaises(untar.DirNonDir) as ctx:
                untar.extract(
                    untar.PipeReader(r),
                    self.host,
                    devices=True,
                    into="the destination directory",
                    no_dir_non_dir="/tmp",
                )
            self.assertEqual(str(ctx.exception), message)
            self.assertEqual(sorted(os.listdir(self.host)), left)
            for name in set(left) - {"d", "f"}:
                os.unlink(os.path.join(self.host, name))

    def test_reown(self) -> None:
        """Every entry gets the given owner; contents and names stay."""
        _tar(self.tar, ("d/", None), ("d/f", b"data"))
        with open(self.tar, "rb") as src, _reown(src, self.dir, 1, 2) as out:
            out.seek(0)
            tf = tarfile.open(fileobj=out)  # noqa: SIM115 - out is closed by the with
            self.assertEqual(sorted(os.listdir(self.dir)), ["in.tar", "root"])  # unlinked
            self.assertEqual([(m.name, m.uid, m.gid) for m in tf], [("d", 1, 2), ("d/f", 1, 2)])
            f = tf.extractfile("d/f")
            assert f is not None
            self.assertEqual(f.read(), b"data")

    def test_reown_refuses_a_non_tar(self) -> None:
        """Not a tar: the 400's text; no file left behind."""
        with open(self.tar, "wb") as f:
            f.write(b"not a tar at all" * 100)
        with open(self.tar, "rb") as src, self.assertRaises(InvalidParameter) as ctx:
            _reown(src, self.dir, 1, 2)
        self.assertTrue(str(ctx.exception).startswith("Error processing tar file("))
        self.assertEqual(sorted(os.listdir(self.dir)), ["in.tar", "root"])

    def test_body_file_is_used_in_place(self) -> None:
        """A request body spooled to a regular file is handed on as it is; one in memory is
        copied to an unlinked file under the scratch directory, from its start."""
        with tempfile.TemporaryFile() as body:
            self.assertIs(_file_of(body), body)
        mem = io.BytesIO(b"tar bytes")
        mem.seek(4)
        self.assertIsNone(_file_of(mem))
        with _spool(mem, self.dir) as copy:
            copy.seek(0)
            self.assertEqual(copy.read(), b"tar bytes")
            self.assertEqual(os.listdir(self.dir), ["root"])


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


class CopyInExtractionTests(SynchronousTestCase):
    """docker cp's extraction of a plain tar in a regular file (read in place, contents
    copied by the kernel, untar._FileTar) and on a pipe (read once, contents spliced by the
    kernel, untar.PipeReader), with the same results and refusals as the stream."""

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)

    def _file(self, data: bytes) -> io.FileIO:
        f = tempfile.TemporaryFile(buffering=0)  # noqa: SIM115 - closed by the cleanup
        self.addCleanup(f.close)
        f.write(data)
        f.seek(0)
        return f  # type: ignore[return-value]  # TemporaryFile(buffering=0) is a FileIO

    def _dest(self) -> str:
        d = tempfile.mkdtemp(dir=self.dir)
        return d

    def _source(self, how: str, data: bytes) -> tuple[Any, bool]:
        """C{data} as C{extract} is given it: a file read as a stream, a file read in place,
        or a pipe a thread writes it to (as the daemon writes a body still arriving)."""
        from pyd.drivers.storage import untar

        if how != "pipe":
            return self._file(data), how == "file"
        r, w = os.pipe()
        self.addCleanup(os.close, r)

        def write() -> None:
            with open(w, "wb") as f:
                try:
                    f.write(data)
                except BrokenPipeError:
                    pass  # the reader stopped early (a refusal)

        writer = threading.Thread(target=write)
        writer.start()
        self.addCleanup(writer.join)
        reader = untar.PipeReader(r)
        self.assertTrue(reader.plain())
        return reader, False

    def test_plain_file_is_only_an_uncompressed_tar_in_a_regular_file_at_its_start(self) -> None:
        from pyd.drivers.storage import untar

        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            tf.addfile(tarfile.TarInfo("empty"))
        plain = buf.getvalue()
        self.assertTrue(untar.plain_file(self._file(plain)))
        gz = io.BytesIO()
        with tarfile.open(fileobj=gz, mode="w:gz") as tf:
            tf.addfile(tarfile.TarInfo("empty"))
        self.assertFalse(untar.plain_file(self._file(gz.getvalue())))
        self.assertFalse(untar.plain_file(io.BytesIO(plain)))
        moved = self._file(plain)
        moved.seek(512)
        self.assertFalse(untar.plain_file(moved))
        r, w = os.pipe()
        self.addCleanup(os.close, w)
        with open(r, "rb", buffering=0) as pipe:
            self.assertFalse(untar.plain_file(pipe))

    def test_in_place_and_stream_extract_the_same_tree(self) -> None:
        """Files (large and empty), directories, symlinks, hard links, modes and mtimes."""
        from pyd.drivers.storage import untar

        big = os.urandom(3 << 20)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for name, data, kind, mode in (
                ("d", None, tarfile.DIRTYPE, 0o750),
                ("d/big", big, tarfile.REGTYPE, 0o640),
                ("d/empty", b"", tarfile.REGTYPE, 0o600),
                ("d/link", None, tarfile.SYMTYPE, 0o777),
                ("d/hard", None, tarfile.LNKTYPE, 0o640),
            ):
                info = tarfile.TarInfo(name)
                info.type, info.mode, info.mtime = kind, mode, 1_000_000
                if kind == tarfile.SYMTYPE:
                    info.linkname = "big"
                if kind == tarfile.LNKTYPE:
                    info.linkname = "d/big"
                if data is not None:
                    info.size = len(data)
                tf.addfile(info, io.BytesIO(data) if data is not None else None)
        trees = []
        for how in ("stream", "file", "pipe"):
            dest = self._dest()
            src, seekable = self._source(how, buf.getvalue())
            untar.extract(src, dest, devices=True, seekable=seekable)
            tree = {}
            for base, dirs, files in os.walk(dest):
                for name in dirs + files:
                    p = os.path.join(base, name)
                    st = os.lstat(p)
                    data = b""
                    if os.path.isfile(p) and not os.path.islink(p):
                        with open(p, "rb") as f:
                            data = hashlib.sha256(f.read()).digest()
                    # a symlink's own mtime is not restored (lutimes), by either reader
                    mtime = None if os.path.islink(p) else st.st_mtime
                    tree[os.path.relpath(p, dest)] = (st.st_mode, mtime, st.st_nlink, data)
            trees.append(tree)
        self.assertEqual(trees[0], trees[1])
        self.assertEqual(trees[0], trees[2])
        self.assertEqual(trees[1]["d/big"][3], hashlib.sha256(big).digest())
        self.assertEqual(trees[1]["d/big"][2], 2)  # the hard link

    def test_truncated_content_is_refused(self) -> None:
        """A member whose content the file does not hold: a tar error, as the stream gives."""
        from pyd.drivers.storage import untar

        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            info = tarfile.TarInfo("f")
            info.size = 100_000
            tf.addfile(info, io.BytesIO(b"x" * 100_000))
        cut = buf.getvalue()[:50_000]
        for how in ("stream", "file", "pipe"):
            src, seekable = self._source(how, cut)
            with self.assertRaises((untar.UntarError, tarfile.TarError, OSError)):
                untar.extract(src, self._dest(), devices=True, seekable=seekable)

    def test_escapes_are_refused_in_place_too(self) -> None:
        """The refusals of the stream (a name climbing out, writing through an archive's own
        link) hold when the tar is read in place."""
        from pyd.drivers.storage import untar

        for entries in (
            [("../out", tarfile.REGTYPE, "")],
            [("l", tarfile.SYMTYPE, "/etc"), ("l/x", tarfile.REGTYPE, "")],
        ):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tf:
                for name, kind, target in entries:
                    info = tarfile.TarInfo(name)
                    info.type, info.linkname = kind, target
                    tf.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
            for how in ("file", "pipe"):
                dest = self._dest()
                src, seekable = self._source(how, buf.getvalue())
                with self.assertRaises(untar.UntarError):
                    untar.extract(src, dest, devices=True, seekable=seekable)
                self.assertFalse(os.path.exists(os.path.join(os.path.dirname(dest), "out")))
