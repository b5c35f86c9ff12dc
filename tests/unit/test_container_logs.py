"""LogTail: incremental reads of conmon's k8s-file log through one descriptor."""

from __future__ import annotations

import os
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pyd.engine.container_logs import LogTail


def line(text: str, stream: str = "stdout", tag: str = "F") -> str:
    return f"2026-11-28T12:30:03.100000000+00:00 {stream} {tag} {text}\n"


class LogTailTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "ctr.log")
        self.tail = LogTail(self.path)
        self.addCleanup(self.tail.close)

    def tearDown(self) -> None:
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)

    def append(self, text: str) -> None:
        with open(self.path, "a") as f:
            f.write(text)

    def data(self) -> list[bytes]:
        return [e.data for e in self.tail.read()]

    def test_missing_file_then_created(self) -> None:
        """Nothing before conmon creates the file; everything once it does."""
        self.assertEqual(self.data(), [])
        self.append(line("a"))
        self.assertEqual(self.data(), [b"a\n"])

    def test_incremental_and_partial_line(self) -> None:
        """Each read returns only new complete lines; a half-written line waits for its end."""
        self.append(line("a") + "2026-11-28T12:30:03.1")
        self.assertEqual(self.data(), [b"a\n"])
        self.append("00000000+00:00 stderr P b\n")
        entries = self.tail.read()
        self.assertEqual([(e.stream, e.data) for e in entries], [("stderr", b"b")])
        self.assertEqual(self.data(), [])

    def test_unlinked_file_still_read_to_the_end(self) -> None:
        """What was written before the container's bundle was removed is still read."""
        self.append(line("a"))
        self.assertEqual(self.data(), [b"a\n"])
        with open(self.path, "a") as f:
            f.write(line("b"))
            os.unlink(self.path)
        self.assertEqual(self.data(), [b"b\n"])
        self.assertEqual(self.data(), [])

    def test_rotation_drains_old_file_first(self) -> None:
        """A new file renamed over the log: the old one's tail, then the new one's lines."""
        self.append(line("a"))
        self.assertEqual(self.data(), [b"a\n"])
        self.append(line("b"))
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(line("c"))
        os.rename(tmp, self.path)
        self.assertEqual(self.data(), [b"b\n", b"c\n"])

    def test_truncated_in_place_reads_from_start(self) -> None:
        self.append(line("a") + line("b"))
        self.assertEqual(self.data(), [b"a\n", b"b\n"])
        with open(self.path, "w") as f:
            f.write(line("c"))
        self.assertEqual(self.data(), [b"c\n"])

    def test_close_is_idempotent(self) -> None:
        self.append(line("a"))
        self.data()
        self.tail.close()
        self.tail.close()
