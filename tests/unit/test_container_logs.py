"""LogTail: incremental reads of conmon's k8s-file log through one descriptor."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from pyd.engine.containers.logfiles import (
    LogTail,
    request_rotation,
    rotate_log_files,
    rotation_step,
)
from tests.fakes.conmon_log import FakeConmonLog


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


class RotationTests(SynchronousTestCase):
    """max-size/max-file: pyd names every inode before asking conmon to reopen the log."""

    RECORD = len(line("line 100"))

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "ctr.log")
        self.ctl = os.path.join(self.dir, "ctl")
        self.addCleanup(shutil.rmtree, self.dir)
        self.requested = 0
        self.known = 0
        self.max_size = 400
        self.max_files = 3

    def writer(self, max_size: int = 400, max_files: int = 3, backstop: int = 0) -> FakeConmonLog:
        self.max_size, self.max_files = max_size, max_files
        rotate_log_files(self.path, max_files, starting=True)
        w = FakeConmonLog(self.path, backstop, self.ctl)
        self.addCleanup(w.close)
        return w

    def react(self, resend: bool = False) -> None:
        """What the daemon does on an inotify event for ctr.log."""
        self.requested, self.known = rotation_step(
            self.path, self.max_files, self.max_size, self.ctl, self.requested, resend, self.known
        )

    def numbered(self) -> dict[int, int]:
        return {
            int(n.rsplit(".", 1)[1]): os.path.getsize(os.path.join(self.dir, n))
            for n in os.listdir(self.dir)
            if n.rsplit(".", 1)[-1].isdigit()
        }

    def everything(self) -> list[bytes]:
        tail = LogTail(self.path)
        try:
            return [e.data for e in tail.read()]
        finally:
            tail.close()

    def lines(self, a: int, b: int) -> list[bytes]:
        return [f"line {i}\n".encode() for i in range(a, b)]

    def assert_newest(self, last: int) -> list[bytes]:
        got = self.everything()
        self.assertEqual(got, self.lines(int(got[0].split()[1]), last + 1))
        return got

    def test_keeps_max_files_of_about_max_size(self) -> None:
        """pyd reacting to every write: max-file files of max-size (+ one record), newest last,
        contiguous."""
        w = self.writer(max_size=400, max_files=3)
        for i in range(100, 300):
            w.line(f"line {i}")
            self.react()
        files = self.numbered()
        self.assertEqual(len(files), 3)
        for size in files.values():
            self.assertLessEqual(size, 400 + self.RECORD)
        got = self.assert_newest(299)
        self.assertGreater(len(got), 2 * 400 // self.RECORD)
        self.assertEqual(os.path.getsize(self.path + ".next"), 0)  # prepared, not counted
        self.assertEqual(w.requests, w.rotations)

    def test_late_daemon_loses_nothing(self) -> None:
        """pyd reacting after every 7th record only: files grow past max-size, no line is lost
        or repeated."""
        w = self.writer(max_size=300, max_files=100)
        for i in range(100, 400):
            w.line(f"line {i}")
            if i % 7 == 0:
                self.react()
        self.react()
        self.assertEqual(self.everything(), self.lines(100, 400))
        self.assertGreater(w.rotations, 10)
        for size in self.numbered().values():
            self.assertLessEqual(size, 300 + 7 * self.RECORD)

    def test_reaction_in_the_middle_of_a_rotation(self) -> None:
        """pyd running between conmon's open of ctr.log.tmp and its rename changes nothing."""
        w = self.writer(max_size=300, max_files=100)
        w.mid_rotation = self.react
        for i in range(100, 300):
            w.line(f"line {i}")
            self.react()
        self.assertEqual(self.everything(), self.lines(100, 300))

    def test_one_request_at_a_time(self) -> None:
        """While conmon has not carried out a reopen, pyd does not ask again; a lost request is
        sent again when asked to."""
        self.writer(max_size=100, max_files=3)
        with open(self.path, "a") as f:
            f.write(line("x" * 200))
        self.react()
        first = self.requested
        self.assertEqual(first, os.stat(self.path).st_ino)
        self.react()
        self.assertEqual(self.requested, first)
        fd = os.open(self.ctl, os.O_RDONLY | os.O_NONBLOCK)  # (a second reader, for the test)
        self.addCleanup(os.close, fd)
        self.assertEqual(os.read(fd, 100), b"2 0 0\n")
        self.react(resend=True)
        self.assertEqual(os.read(fd, 100), b"2 0 0\n")

    def test_no_request_without_a_reader(self) -> None:
        """No conmon on the FIFO (it exited): nothing pending."""
        rotate_log_files(self.path, 3, starting=True)
        os.mkfifo(self.ctl)
        with open(self.path, "a") as f:
            f.write(line("x" * 200))
        self.assertEqual(request_rotation(self.path, 100, self.ctl), 0)

    def test_daemon_down_bounded_by_conmon_then_resumes(self) -> None:
        """pyd away: conmon's own limit (max-size x max-file) rotates into the prepared file and
        then into unnamed ones; pyd back: names what is there and rotates again."""
        w = self.writer(max_size=300, max_files=3, backstop=900)
        for i in range(100, 200):
            w.line(f"line {i}")
        self.assertGreater(w.rotations, 3)
        self.assertLessEqual(
            sum(os.path.getsize(os.path.join(self.dir, n)) for n in os.listdir(self.dir)), 4 * 900
        )
        self.react()
        got = self.everything()
        self.assertEqual(got[-1], b"line 199\n")
        self.assertEqual(got, sorted(set(got), key=got.index))
        for i in range(200, 400):
            w.line(f"line {i}")
            self.react()
        self.assertEqual(len(self.numbered()), 3)
        self.assert_newest(399)

    def test_unprepared_first_rotation_is_named_later(self) -> None:
        """A file conmon made itself (nothing was prepared) gets its number at the next
        reaction."""
        w = FakeConmonLog(self.path, 300, self.ctl)
        self.addCleanup(w.close)
        for i in range(100, 200):
            w.line(f"line {i}")
            if i > 120:
                self.react()
        got = self.everything()
        self.assertEqual(got[-1], b"line 199\n")
        self.assertEqual(got, self.lines(int(got[0].split()[1]), 200))

    def test_follower_reads_every_line_once_across_rotations(self) -> None:
        """A follower reading every 7th record, with several rotations between reads."""
        w = self.writer(max_size=250, max_files=100)
        tail = LogTail(self.path)
        self.addCleanup(tail.close)
        got: list[bytes] = []
        for i in range(100, 400):
            w.line(f"line {i}")
            self.react()
            if i % 7 == 0:
                got += [e.data for e in tail.read()]
        got += [e.data for e in tail.read()]
        self.assertEqual(got, self.lines(100, 400))

    def test_slow_follower_skips_only_dropped_files(self) -> None:
        """Files max-file dropped before a follower got to them are skipped, in order."""
        w = self.writer(max_size=250, max_files=2)
        tail = LogTail(self.path)
        self.addCleanup(tail.close)
        for i in range(100, 105):
            w.line(f"line {i}")
            self.react()
        got = [e.data for e in tail.read()]
        for i in range(105, 200):
            w.line(f"line {i}")
            self.react()
        got += [e.data for e in tail.read()]
        self.assertEqual(got[-1], b"line 199\n")
        numbers = [int(x.split()[1]) for x in got]
        self.assertEqual(numbers, sorted(set(numbers)))
        self.assertEqual(numbers[:5], [100, 101, 102, 103, 104])

    def test_start_clears_a_stale_tmp(self) -> None:
        """A ctr.log.tmp left by a conmon that died mid-rotation is replaced by a prepared file."""
        with open(self.path + ".tmp", "w") as f:
            f.write(line("lost"))
        rotate_log_files(self.path, 3, starting=True)
        self.assertEqual(os.stat(self.path + ".tmp").st_ino, os.stat(self.path + ".next").st_ino)
        self.assertEqual(os.path.getsize(self.path + ".tmp"), 0)
        self.assertEqual(os.stat(self.path).st_ino, os.stat(self.path + ".1").st_ino)

    def test_removed_paths_are_reported(self) -> None:
        """The files max-file drops are returned, oldest first."""
        w = self.writer(max_size=200, max_files=2)
        removed: list[str] = []
        for i in range(100, 130):
            w.line(f"line {i}")
            removed += rotate_log_files(self.path, 2)
            self.requested = request_rotation(self.path, 200, self.ctl, self.requested)
        self.assertTrue(removed)
        self.assertEqual(removed[0], self.path + ".1")


class TailFromEndTests(SynchronousTestCase):
    """C{tail=N} scans the log backwards (issue 18): same lines as filtering the whole log, and
    bounded reads return a large log in pieces."""

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)
        self.path = os.path.join(self.dir, "ctr.log")

    def _write_random(self, rng: Any, files: int) -> None:
        """Random lines (both streams, partial chunks, long lines crossing 64 KiB blocks) in
        C{files} numbered files, the last also linked as ctr.log, plus a line being written."""
        for n in range(1, files + 1):
            parts = []
            for i in range(rng.randrange(0, 60)):
                stream = rng.choice(["stdout", "stderr"])
                size = rng.choice([1, 5, 40, 3000, 70000])
                text = f"{n}-{i}-" + "x" * size
                ts = f"2026-11-28T12:30:{rng.randrange(0, 60):02d}.100000000+00:00"
                tag = rng.choice(["F", "F", "F", "P"])
                parts.append(f"{ts} {stream} {tag} {text}\n")
            with open(f"{self.path}.{n}", "w") as f:
                f.write("".join(parts))
        os.link(f"{self.path}.{files}", self.path)
        with open(self.path, "a") as f:
            f.write("2026-11-28T12:31:00.1000")  # still being written: never counted

    def test_matches_whole_log_filtering(self) -> None:
        """For random logs and every filter combination, seek_tail(N) then reading gives what
        select_entries(tail=N) gives on the whole log."""
        import random

        from pyd.engine.containers.logfiles import entry_filter, select_entries

        rng = random.Random(18)
        for round_ in range(6):
            for name in os.listdir(self.dir):
                os.unlink(os.path.join(self.dir, name))
            self._write_random(rng, 1 + round_ % 3)
            whole = LogTail(self.path)
            everything = whole.read()
            whole.close()
            since = 0 if round_ % 2 else 1764333030 * 10**9
            for stdout, stderr in ((True, True), (True, False), (False, True)):
                for n in (0, 1, 3, 10, 50, 1000):
                    want = select_entries(everything, stdout, stderr, since, None, n)
                    t = LogTail(self.path)
                    t.seek_tail(n, entry_filter(stdout, stderr, since, None))
                    got: list[Any] = []
                    while True:
                        got.extend(t.read(4096))
                        if not t.more:
                            break
                    t.close()
                    got = select_entries(got, stdout, stderr, since, None, None)
                    if n == 0:
                        want = []
                        got = [e for e in got if e.data.endswith(b"\n")]
                    self.assertEqual(
                        [e.data for e in got], [e.data for e in want], (round_, stdout, n)
                    )

    def test_bounded_reads(self) -> None:
        """read(limit) returns a 4 MiB log in pieces of about the limit, whole lines only."""
        with open(self.path, "w") as f:
            for i in range(4096):
                f.write(line(f"{i:04d}" + "y" * 1000))
        t = LogTail(self.path)
        self.addCleanup(t.close)
        seen = 0
        reads = 0
        while True:
            batch = t.read(64 << 10)
            reads += 1
            self.assertLessEqual(sum(len(e.data) for e in batch), 66 << 10)
            seen += len(batch)
            if not t.more:
                break
        self.assertEqual(seen, 4096)
        self.assertGreater(reads, 50)
