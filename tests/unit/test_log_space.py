"""min-free-space for container logs (issue 18): L{LogSpaceGuard} stops the logs of the running
containers below the reserve, resumes them above it, and leaves every file writable when a
container stops."""

from __future__ import annotations

import os
import tempfile

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from pyd.core.seams import InlineBlocking
from pyd.engine.containers.logspace import CHECK_EVERY, LogSpaceGuard, enforced, stop_writes
from tests.helpers.sync import run_sync

RESERVE = 1000


class _Disk:
    """A filesystem whose free bytes the test sets, and the files' immutable flags."""

    def __init__(self) -> None:
        self.free = 10 * RESERVE
        self.immutable: set[str] = set()
        self.enforced = True

    def stop(self, path: str) -> bool:
        self.immutable.add(path)
        return True

    def allow(self, path: str) -> None:
        self.immutable.discard(path)


class LogSpaceGuardTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.disk = _Disk()
        self.clock = Clock()
        self.resumed: list[str] = []
        self.guard = LogSpaceGuard(
            RESERVE,
            "/data",
            InlineBlocking(),
            self.clock,
            self.resumed.append,
            free=lambda _: self.disk.free,
            stop=self.disk.stop,
            allow=self.disk.allow,
            probe=lambda _: self.disk.enforced,
        )

    def test_stops_below_and_resumes_above(self) -> None:
        """Below the reserve every running container's log is stopped with one warning each;
        a little above it they resume and the owner is told (to catch up with rotations)."""
        self.guard.track("a", "/data/a/ctr.log")
        self.guard.track("b", "/data/b/ctr.log")
        self.assertEqual(self.disk.immutable, set())
        self.disk.free = RESERVE - 1
        with capturedLogs() as events:
            self.clock.advance(CHECK_EVERY)
            self.clock.advance(CHECK_EVERY)  # a second look warns no more
        self.assertEqual(self.disk.immutable, {"/data/a/ctr.log", "/data/b/ctr.log"})
        self.assertEqual(self.guard.stopped, {"a", "b"})
        warnings = [e["log_format"] for e in events if "log writing stopped" in e["log_format"]]
        self.assertEqual(len(warnings), 2)
        self.assertIn("min-free-space", warnings[0])
        # at the reserve exactly it stays stopped (no flapping at the edge)
        self.disk.free = RESERVE
        self.clock.advance(CHECK_EVERY)
        self.assertEqual(self.guard.stopped, {"a", "b"})
        self.disk.free = 2 * RESERVE
        self.clock.advance(CHECK_EVERY)
        self.assertEqual((self.disk.immutable, self.guard.stopped), (set(), set()))
        self.assertEqual(sorted(self.resumed), ["a", "b"])

    def test_stopping_container_gets_a_writable_log(self) -> None:
        """A stopped container's log is made writable (its next conmon opens it), and with no
        container left the guard stops looking."""
        self.guard.track("a", "/data/a/ctr.log")
        self.disk.free = 0
        self.clock.advance(CHECK_EVERY)
        self.assertIn("/data/a/ctr.log", self.disk.immutable)
        run_sync(self.guard.untrack("a", "/data/a/ctr.log"))
        self.assertEqual((self.disk.immutable, self.guard.stopped), (set(), set()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_left_stopped_by_a_killed_daemon(self) -> None:
        """A daemon killed while a log was stopped left its attribute: the next daemon's first
        look with space to spare takes it away (quietly: it was never stopped by this one)."""
        self.disk.immutable.add("/data/a/ctr.log")
        with capturedLogs() as events:
            self.guard.track("a", "/data/a/ctr.log")
        self.assertEqual(self.disk.immutable, set())
        self.assertEqual(self.resumed, [])
        self.assertEqual([e for e in events if "log writing" in e["log_format"]], [])
        # later looks do not touch a log that was never stopped
        self.disk.immutable.add("/data/a/ctr.log")
        self.clock.advance(CHECK_EVERY)
        self.assertEqual(self.disk.immutable, {"/data/a/ctr.log"})

    def test_new_file_after_rotation_is_stopped(self) -> None:
        """While stopped, each look stops the current file again (conmon may have opened a new
        one for a rotation asked before)."""
        self.guard.track("a", "/data/a/ctr.log")
        self.disk.free = 0
        self.clock.advance(CHECK_EVERY)
        self.disk.immutable.clear()  # conmon renamed a fresh file over ctr.log
        self.clock.advance(CHECK_EVERY)
        self.assertEqual(self.disk.immutable, {"/data/a/ctr.log"})

    def test_filesystem_that_cannot_stop(self) -> None:
        """A filesystem that does not enforce the attribute is reported once; nothing is
        marked stopped."""
        self.disk.enforced = False
        self.disk.free = 0
        with capturedLogs() as events:
            self.guard.track("a", "/data/a/ctr.log")
            self.clock.advance(CHECK_EVERY)
            self.clock.advance(CHECK_EVERY)
        self.assertEqual(self.guard.stopped, set())
        said = [e for e in events if "cannot stop container logs" in e["log_format"]]
        self.assertEqual(len(said), 1)

    def test_no_reserve_no_looks(self) -> None:
        """min-free-space 0: nothing is scheduled."""
        guard = LogSpaceGuard(0, "/data", InlineBlocking(), self.clock)
        guard.track("a", "/data/a/ctr.log")
        self.assertEqual(self.clock.getDelayedCalls(), [])


class EnforcedProbeTests(SynchronousTestCase):
    def test_probe_leaves_nothing(self) -> None:
        """The probe answers a boolean and removes its file, also one a killed daemon left
        behind with the attribute on (where the filesystem has it: /tmp's, as root)."""
        d = tempfile.mkdtemp(prefix="pyd-t-")
        self.addCleanup(os.rmdir, d)
        self.assertIsInstance(enforced(d), bool)
        self.assertEqual(os.listdir(d), [])
        left = os.path.join(d, ".pyd-log-space-probe")
        open(left, "w").close()
        try:
            stop_writes(left)
        except OSError:
            pass  # no such attribute here: the leftover is an ordinary file
        self.assertIsInstance(enforced(d), bool)
        self.assertEqual(os.listdir(d), [])
