"""min-free-space stops container log writing (issue 18), on real conmon and a small loop-mounted
ext4 data root: below the reserve the log stops growing while the container runs on, with the
daemon's warning; with the space back it grows again, and the log stays readable throughout."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.trial.unittest import TestCase
from zope.interface import provider

from pyd.core.seams import InlineBlocking
from pyd.drivers.process import ReactorProcessRunner
from pyd.drivers.runtime.conmon import ConmonRuntime
from pyd.engine.containers import ContainerService, ContainerSettings, LogsRequest
from pyd.state.containers import ContainerRepository
from tests.fakes.basic_providers import BasicNetworkProvider, BasicVolumeProvider
from tests.fakes.events import FakeEvents
from tests.helpers.memdb import memory_db
from tests.helpers.mounts import remove_tree
from tests.integration.test_containers_runtime import RootfsImages, _reactor

pytestmark = pytest.mark.integration

RESERVE = 24 << 20  # of a 64 MiB filesystem


class LogSpaceTests(TestCase):
    timeout = 90

    def setUp(self) -> Deferred[None]:
        self.base = tempfile.mkdtemp(prefix="pyd-t-")
        self.addCleanup(remove_tree, self.base)  # the loop mount too (its device goes with it)
        self.data = os.path.join(self.base, "data")
        image = os.path.join(self.base, "data.img")
        with open(image, "wb") as f:
            f.truncate(64 << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True)
        os.makedirs(self.data)
        subprocess.run(["mount", "-o", "loop", image, self.data], check=True)
        self.images = RootfsImages(os.path.join(self.base, "layers"))
        self.runtime = ConmonRuntime(
            _reactor(),
            ReactorProcessRunner(_reactor()),
            InlineBlocking(),
            os.path.join(self.base, "exec"),
        )
        self.svc = ContainerService(
            ContainerRepository(memory_db()),
            self.runtime,
            self.images,
            BasicNetworkProvider(),
            BasicVolumeProvider(),
            FakeEvents(),
            InlineBlocking(),
            _reactor(),
            ContainerSettings(
                containers_dir=os.path.join(self.data, "containers"),
                ncpu=os.cpu_count() or 1,
                log_keep_free=RESERVE,
            ),
        )
        self.addCleanup(lambda: ensureDeferred(self._cleanup()))
        return ensureDeferred(self.svc.startup())

    async def _cleanup(self) -> None:
        for c in list(self.svc.list_all()):
            try:
                await self.svc.remove(c.id, force=True)
            except Exception:
                await self.runtime.delete(c.id, force=True)
        self.svc.shutdown()

    async def run_container(self, cmd: list[str]) -> str:
        cid, _ = await self.svc.create(None, {"Image": "busybox", "Cmd": cmd}, {})
        await self.svc.start(cid)
        return cid

    async def until(self, what: Callable[[], bool]) -> None:
        """Poll C{what} every 50 ms (the test's timeout bounds the wait)."""
        while not what():
            await deferLater(_reactor(), 0.05, lambda: None)

    def counter(self, cid: str) -> int:
        try:
            with open(os.path.join(self.images.root, cid, "merged", "tmp", "n")) as f:
                return int(f.read().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    async def test_log_stops_below_reserve_and_resumes(self) -> None:
        """The log stops growing below the reserve (the container keeps counting), the daemon
        says why, and it grows again once the space is back."""
        said: list[str] = []

        @provider(ILogObserver)
        def observe(event: dict[str, Any]) -> None:
            said.append(str(event.get("log_format", "")))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        cid = await self.run_container(
            [
                "sh",
                "-c",
                "i=0; while true; do i=$((i+1)); echo line $i; echo $i > /tmp/n; "
                "usleep 20000; done",
            ]
        )
        log = os.path.join(self.data, "containers", cid, "ctr.log")
        await self.until(lambda: self.counter(cid) > 5)
        filler = os.path.join(self.data, "filler")
        self.addCleanup(lambda: os.path.exists(filler) and os.unlink(filler))
        st = os.statvfs(self.data)
        # leave half the reserve free
        size = st.f_bavail * st.f_frsize - RESERVE // 2
        subprocess.run(["fallocate", "-l", str(size), filler], check=True)
        await self.until(lambda: cid in self.svc.log_space.stopped)
        stopped_at = os.stat(log).st_size
        count = self.counter(cid)
        # the container writes on; its lines go nowhere
        await self.until(lambda: self.counter(cid) > count + 20)
        self.assertEqual(os.stat(log).st_size, stopped_at)
        self.assertTrue(any("log writing stopped" in s for s in said), said)
        _, entries, _ = await self.svc.read_logs(cid, LogsRequest())
        self.assertTrue(entries)
        os.unlink(filler)
        await self.until(lambda: cid not in self.svc.log_space.stopped)
        await self.until(lambda: os.stat(log).st_size > stopped_at)
        self.assertTrue(any("log writing resumed" in s for s in said), said)
        await self.svc.stop(cid, timeout=1)
        # the next run's conmon opens the same file
        await self.svc.start(cid)
        await self.until(lambda: os.stat(log).st_size > stopped_at + 200)
