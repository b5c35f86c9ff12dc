"""The direct SIGKILL of a container's process (dockerd's killProcessDirectly), on real child
processes: a dead one not yet reaped is a zombie, a reaped one is gone."""

from __future__ import annotations

import os
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from pyd.drivers.runtime.conmon import _kill_directly


class DirectKillTests(SynchronousTestCase):
    def test_live_zombie_gone(self) -> None:
        """A process dead but not reaped is a zombie; once reaped it is gone; pid 0 is never
        signalled (it would name the daemon's own process group)."""
        child = subprocess.Popen(["sleep", "600"])
        self.addCleanup(child.wait)
        self.addCleanup(child.kill)
        child.kill()
        # dead, not reaped (WNOWAIT): a zombie, whatever the signal's timing
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        self.assertEqual(_kill_directly(child.pid), "zombie")
        child.wait()
        self.assertEqual(_kill_directly(child.pid), "gone")
        self.assertEqual(_kill_directly(0), "signalled")
