"""DirWatcher without inotify (a reactor that cannot read file descriptors): polling."""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from pyd.drivers.fswatch import DirWatcher


class DirWatcherPollingTests(SynchronousTestCase):
    def test_polls_modified_and_renamed_files(self) -> None:
        """Writes and renames are reported by name; nothing after cancel or close."""
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        with open(os.path.join(d, "ctr.log"), "w") as f:
            f.write("a")
        clock = task.Clock()
        watcher = DirWatcher(clock, poll_interval=0.5)
        self.addCleanup(watcher.close)
        seen: list[str] = []
        cancel = watcher.watch(d, seen.append)
        clock.advance(0.5)
        self.assertEqual(seen, [])
        with open(os.path.join(d, "ctr.log"), "a") as f:
            f.write("b")
        clock.advance(0.5)
        self.assertEqual(seen, ["ctr.log"])
        with open(os.path.join(d, "ctr.log.tmp"), "w") as f:
            f.write("c")
        os.rename(os.path.join(d, "ctr.log.tmp"), os.path.join(d, "ctr.log"))
        clock.advance(0.5)
        self.assertEqual(seen, ["ctr.log", "ctr.log"])
        cancel()
        cancel()
        with open(os.path.join(d, "ctr.log"), "a") as f:
            f.write("d")
        clock.advance(0.5)
        self.assertEqual(seen, ["ctr.log", "ctr.log"])
