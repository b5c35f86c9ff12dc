"""ConmonRuntime.kill's reading of crun's failures (layer: drivers, with a fake process runner):
a kill that finds the container's process gone is ProcessGone, whatever stage of crun's own
state removal it lands in; any other failure stays a RuntimeFailed."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from twisted.trial.unittest import TestCase

from pyd.drivers.process import ProcessResult
from pyd.drivers.runtime.conmon import ConmonRuntime, ProcessGone, RuntimeFailed

CID = "86c859c075ef2c7de7b9f4153e4f795ce677bc9978be9a8c2952d013b1e2580c"


class _Runner:
    """Answers every program with exit code 1 and the given stderr."""

    def __init__(self, stderr: str) -> None:
        self.stderr = stderr.encode()

    async def run(self, argv: Any, stdin: bytes | None = None, **_: Any) -> ProcessResult:
        return ProcessResult(tuple(argv), 1, b"", self.stderr)


class KillTests(TestCase):
    """What a failed C{crun kill} becomes."""

    def _runtime(self, stderr: str) -> ConmonRuntime:
        root = tempfile.mkdtemp(prefix="pyd-unit-conmon-")
        self.addCleanup(shutil.rmtree, root, True)
        rt = ConmonRuntime(None, _Runner(stderr.replace("ROOT", root)), None, root)  # type: ignore[arg-type]
        # crun's state directory is still there: its delete has removed the status file only
        os.makedirs(os.path.join(rt.default.root, CID))
        return rt

    async def test_status_file_removed_by_delete(self) -> None:
        """The kill lands while crun's delete removes the state: gone, not a 500."""
        rt = self._runtime(
            f"error opening file `ROOT/crun/{CID}/status`: No such file or directory"
        )
        with self.assertRaises(ProcessGone):
            await rt.kill(CID, 9)

    async def test_pidfd_gone(self) -> None:
        """crun's ESRCH: the process has exited."""
        rt = self._runtime("open pidfd: No such process")
        with self.assertRaises(ProcessGone):
            await rt.kill(CID, 9)

    async def test_other_failure(self) -> None:
        """A missing file that is not the container's state is a real failure."""
        rt = self._runtime("error opening file `/etc/nope`: No such file or directory")
        with self.assertRaises(RuntimeFailed) as err:
            await rt.kill(CID, 9)
        self.assertNotIsInstance(err.exception, ProcessGone)
