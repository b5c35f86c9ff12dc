"""Layer files reach the disk before the layer is recorded (issue 18): the extraction syncs the
staging filesystem once and fails, with a plain reason, when the kernel reports a write error."""

from __future__ import annotations

import errno
import io
import os
import shutil
import struct
import tarfile
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pyd.drivers.storage import untar
from pyd.drivers.storage.tarsplit import SplitWriter
from tests.helpers.leaks import leaks


def _layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"hello\n"
        info = tarfile.TarInfo("etc/greeting")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class LayerSyncTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dest = tempfile.mkdtemp(prefix="pyd-t-")
        self.addCleanup(shutil.rmtree, self.dest, True)
        self.synced: list[str] = []

    def test_synced_after_the_last_file(self) -> None:
        """The filesystem is synced once, after every file and the tar's record were written."""
        real = untar._syncfs

        def syncfs(path: str) -> None:
            # everything is in place when the sync runs
            self.assertTrue(os.path.exists(os.path.join(path, "etc", "greeting")))
            # the tar's record is complete: it ends with the tar's size
            self.assertEqual(os.pread(out.fileno(), 8, out.tell() - 8),
                             struct.pack(">Q", len(_layer())))  # fmt: skip
            self.synced.append(path)
            real(path)

        self.patch(untar, "_syncfs", syncfs)
        with tempfile.TemporaryFile(dir=self.dest) as out:
            untar.run(self.dest, io.BytesIO(_layer()), SplitWriter(out), chroot=False)
        self.assertEqual(self.synced, [self.dest])

    def test_write_error_fails_the_extraction(self) -> None:
        """An I/O error reported by the sync fails the layer with a plain reason (no errno
        text, no path), so the engine records nothing."""

        def syncfs(path: str) -> None:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        self.patch(untar, "_syncfs", syncfs)
        e = self.assertRaises(
            untar.UntarError, untar.run, self.dest, io.BytesIO(_layer()), None, chroot=False
        )
        self.assertEqual(str(e), "writing the layer to disk: input/output error")
        self.assertEqual(leaks(str(e), [self.dest]), [])
