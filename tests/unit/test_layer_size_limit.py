"""max-layer-size (issue 18): a small compressed layer that expands beyond the limit is refused
with a plain message and leaves nothing behind."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pyd.core.seams import InlineBlocking
from pyd.drivers.storage.layers import ExtractFailed, InProcessExtractor, LayerStore
from tests.helpers.fsusage import tree_bytes
from tests.helpers.sync import run_sync


class _Zeros(io.RawIOBase):
    """C{size} zero bytes, read in pieces (never held whole)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]  # narrower than RawIOBase's buffer: the reader is only given bytearrays
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def _bomb(path: str, expanded: int) -> int:
    """A gzip'd layer holding one file of C{expanded} zero bytes; returns its size."""
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb") as gz,
        tarfile.open(fileobj=gz, mode="w|") as tar,
    ):
        ti = tarfile.TarInfo("zeros")
        ti.size = expanded
        tar.addfile(ti, io.BufferedReader(_Zeros(expanded), 1 << 20))
    return os.path.getsize(path)


class LayerSizeLimitTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-t-bomb-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_bomb_refused_and_nothing_left(self) -> None:
        """A ~250 KiB layer expanding to 256 MiB, with a 64 MiB limit: refused naming the
        limit, and the storage holds under 16 MiB afterwards (nothing of the layer)."""
        src = os.path.join(self.tmp, "bomb.tar.gz")
        self.assertLess(_bomb(src, 256 << 20), 1 << 20)
        root = os.path.join(self.tmp, "storage")
        store = LayerStore(root, InProcessExtractor(InlineBlocking(), max_size=64 << 20))
        e = self.assertRaises(ExtractFailed, run_sync, store.extract(src))
        self.assertIn("maximum layer size of 67108864 bytes (max-layer-size)", str(e))
        self.assertNotIn("Errno", str(e))
        self.assertLess(tree_bytes(root), 16 << 20)
        self.assertEqual(os.listdir(os.path.join(root, "tmp")), [])

    def test_under_the_limit_extracts(self) -> None:
        """A layer under the limit extracts as before."""
        src = os.path.join(self.tmp, "small.tar.gz")
        _bomb(src, 1 << 20)
        store = LayerStore(
            os.path.join(self.tmp, "storage"),
            InProcessExtractor(InlineBlocking(), max_size=2 << 20),
        )
        ex = run_sync(store.extract(src))
        self.assertEqual(ex.size, 1 << 20)


class FreeSpaceReserveTests(SynchronousTestCase):
    """min-free-space (issue 18): extraction stops when the filesystem would fall below it."""

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-t-reserve-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_below_reserve_refused(self) -> None:
        """A reserve above what the filesystem has free: the layer is refused naming the rule,
        and nothing of it is left."""
        src = os.path.join(self.tmp, "small.tar.gz")
        _bomb(src, 1 << 20)
        root = os.path.join(self.tmp, "storage")
        st = os.statvfs(self.tmp)
        reserve = st.f_bavail * st.f_frsize + (1 << 30)
        store = LayerStore(root, InProcessExtractor(InlineBlocking(), keep_free=reserve))
        e = self.assertRaises(ExtractFailed, run_sync, store.extract(src))
        self.assertIn(f"keeps {reserve} bytes free (min-free-space)", str(e))
        self.assertNotIn(self.tmp, str(e))
        self.assertEqual(os.listdir(os.path.join(root, "tmp")), [])

    def test_checked_while_extracting(self) -> None:
        """The check runs again as the plain tar passes (every 16 MiB), not only at the start."""
        from pyd.drivers.storage import untar

        calls: list[int] = []
        reader = untar._HashingReader(io.BytesIO(bytes(40 << 20)))
        reader.space_check = lambda: calls.append(reader.count)
        while reader.read(1 << 20):
            pass
        self.assertEqual(len(calls), 3)  # at 1, 17 and 33 MiB
