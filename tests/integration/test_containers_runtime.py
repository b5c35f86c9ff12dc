"""ContainerService on the real crun + conmon with a busybox rootfs (no pyd daemon)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Any

import pytest
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from pyd.core.seams import InlineBlocking
from pyd.drivers.process import ReactorProcessRunner
from pyd.drivers.runtime.conmon import ConmonRuntime
from pyd.engine.containers import ContainerService, ContainerSettings, LogsRequest
from pyd.state.containers import ContainerRepository
from tests.fakes.basic_providers import BasicNetworkProvider, BasicVolumeProvider
from tests.fakes.container_providers import FakeContainerImages
from tests.fakes.events import FakeEvents
from tests.helpers.memdb import memory_db
from tests.helpers.mounts import remove_tree

pytestmark = pytest.mark.integration


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


BUSYBOX = "/usr/bin/busybox"


def make_rootfs(root: str) -> None:
    """busybox-static, one symlink per applet, passwd and group."""
    os.makedirs(os.path.join(root, "bin"), exist_ok=True)
    os.makedirs(os.path.join(root, "etc"), exist_ok=True)
    shutil.copy(BUSYBOX, os.path.join(root, "bin", "busybox"))
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", os.path.join(root, "bin", a))
    for d in ("tmp", "proc", "sys", "dev", "root", "home/app"):
        os.makedirs(os.path.join(root, d), exist_ok=True)


class RootfsImages(FakeContainerImages):
    """Each container's rw layer is a private copy of a busybox rootfs."""

    async def create_rw_layer(self, container_id: str, image_id: str | None) -> None:
        await super().create_rw_layer(container_id, image_id)
        make_rootfs(os.path.join(self.root, container_id, "merged"))


class RuntimeTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.base = tempfile.mkdtemp(prefix="pyd-t-")
        self.addCleanup(remove_tree, self.base)  # also what the engine mounted (shm)
        self.db = memory_db()
        self.images = RootfsImages(os.path.join(self.base, "layers"))
        self.events = FakeEvents()
        self.exec_root = os.path.join(self.base, "exec")
        self.svc = self.make_service()
        self.addCleanup(self._cleanup)
        return ensureDeferred(self.svc.startup())  # type: ignore[return-value]  # trial waits on the Deferred setUp returns

    def make_service(self) -> ContainerService:
        self.runtime = ConmonRuntime(
            _reactor(), ReactorProcessRunner(_reactor()), InlineBlocking(), self.exec_root
        )
        return ContainerService(
            ContainerRepository(self.db),
            self.runtime,
            self.images,
            BasicNetworkProvider(),
            BasicVolumeProvider(),
            self.events,
            InlineBlocking(),
            _reactor(),
            ContainerSettings(
                containers_dir=os.path.join(self.base, "containers"),
                ncpu=os.cpu_count() or 1,
                init_path="/usr/bin/tini-static",
            ),
        )

    async def _cleanup_async(self) -> None:
        for c in list(self.svc.list_all()):
            try:
                await self.svc.remove(c.id, force=True)
            except Exception:
                await self.runtime.delete(c.id, force=True)
        self.svc.shutdown()

    def _cleanup(self) -> Deferred[None]:
        return ensureDeferred(self._cleanup_async())

    async def run_container(self, cmd: list[str], **host_config: Any) -> str:
        cid, _ = await self.svc.create(None, {"Image": "busybox", "Cmd": cmd}, host_config)
        await self.svc.start(cid)
        return cid

    async def exited(self, cid: str, timeout: float = 20) -> int:
        d = self.svc.wait(cid, "not-running")
        d.addTimeout(timeout, _reactor())
        return (await d).status_code

    async def test_exit_code_and_logs(self) -> None:
        """A process's exit code and its stdout/stderr lines are recorded."""
        cid = await self.run_container(["sh", "-c", "echo out; echo err >&2; exit 3"])
        self.assertEqual(await self.exited(cid), 3)
        c = self.svc.resolve(cid)
        self.assertEqual((c.state.status, c.state.exit_code), ("exited", 3))
        _, entries, _ = await self.svc.read_logs(cid, LogsRequest())
        self.assertEqual(
            [(e.stream, e.data) for e in entries], [("stdout", b"out\n"), ("stderr", b"err\n")]
        )
        self.assertEqual([a for a in self.events.actions(cid)], ["create", "start", "die"])

    async def test_stop_kills_after_timeout(self) -> None:
        """sleep as pid 1 ignores SIGTERM: stop escalates to SIGKILL and the exit is 137."""
        cid = await self.run_container(["sleep", "100"])
        await self.svc.stop(cid, timeout=1)
        c = self.svc.resolve(cid)
        self.assertEqual((c.state.status, c.state.exit_code), ("exited", 137))

    async def test_stop_term_143(self) -> None:
        """A process that dies of SIGTERM exits 143 (with --init, tini forwards it)."""
        cid = await self.run_container(["sleep", "100"], Init=True)
        # tini ignores SIGTERM (pid 1) until it has installed its handlers: let it start.
        await deferLater(_reactor(), 1.0, lambda: None)
        await self.svc.stop(cid, timeout=10)
        self.assertEqual(self.svc.resolve(cid).state.exit_code, 143)

    async def test_pause_unpause(self) -> None:
        """pause freezes (the runtime says paused), unpause thaws."""
        cid = await self.run_container(["sleep", "100"])
        await self.svc.pause(cid)
        state = await self.runtime.state(cid)
        assert state is not None
        self.assertEqual(state["status"], "paused")
        await self.svc.unpause(cid)
        state = await self.runtime.state(cid)
        assert state is not None
        self.assertEqual(state["status"], "running")

    async def test_oom(self) -> None:
        """-m 32m with an allocating process ends OOMKilled with 137."""
        cid = await self.run_container(
            ["sh", "-c", "x=a; while true; do x=$x$x$x$x; done"], Memory=32 * 1024 * 1024
        )
        self.assertEqual(await self.exited(cid), 137)
        self.assertTrue(self.svc.resolve(cid).state.oom_killed)
        self.assertIn("oom", self.events.actions(cid))

    async def test_not_found_127(self) -> None:
        """A missing executable fails start with dockerd's text and exit code 127."""
        cid, _ = await self.svc.create(None, {"Image": "busybox", "Cmd": ["nope"]}, {})
        with self.assertRaises(Exception) as cm:
            await self.svc.start(cid)
        self.assertIn('exec: "nope": executable file not found in $PATH', str(cm.exception))
        self.assertEqual(self.svc.resolve(cid).state.exit_code, 127)

    async def test_user_and_hostname(self) -> None:
        """User, hostname and /etc/hosts reach the process."""
        cid, _ = await self.svc.create(
            "pyd-t-uh",
            {
                "Image": "busybox",
                "Cmd": ["sh", "-c", "id -u; hostname; cat /etc/hostname"],
                "User": "1000:1000",
                "Hostname": "hal",
            },
            {"NetworkMode": "none"},
        )
        await self.svc.start(cid)
        self.assertEqual(await self.exited(cid), 0)
        _, entries, _ = await self.svc.read_logs(cid, LogsRequest())
        self.assertEqual(b"".join(e.data for e in entries), b"1000\nhal\nhal\n")

    async def test_exit_while_daemon_down(self) -> None:
        """An exit that happens while the daemon is away is recorded at the next start."""
        cid = await self.run_container(["sh", "-c", "sleep 1; exit 5"])
        alive = await self.run_container(["sleep", "100"])
        self.svc.shutdown()
        await deferLater(_reactor(), 2.0, lambda: None)
        self.svc = self.make_service()
        await self.svc.startup()
        c = self.svc.resolve(cid)
        self.assertEqual((c.state.status, c.state.exit_code), ("exited", 5))
        self.assertEqual(self.svc.resolve(alive).state.status, "running")
        await self.svc.kill(alive)
        self.assertEqual(await self.exited(alive), 137)
