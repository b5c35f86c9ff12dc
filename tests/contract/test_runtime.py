"""Contract of the runtime seam (L{pyd.drivers.runtime.conmon.RuntimeDriver}): what the container
engine relies on from create/start/kill/delete/state and the exit report, run against the fake
(L{tests.fakes.runtime.FakeRuntime}, always) and, under the integration marker, the real
L{ConmonRuntime} (root: crun + conmon with a busybox bundle made as in tests/helpers/runtime.py,
deleted afterwards), once with crun and once with Debian's runc. A behaviour the fake shows
and the real runtime does not (or the reverse) fails here, not in a test that trusted the fake.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from pyd.core.seams import InlineBlocking
from pyd.drivers.process import ReactorProcessRunner
from pyd.drivers.runtime.conmon import ConmonRuntime, CreateOptions, ProcessGone, RuntimeDriver
from pyd.drivers.runtime.oci import OciRuntime
from tests.fakes.runtime import FakeRuntime
from tests.helpers.runtime import CRUN, RUNC, fix_hugetlb, make_rootfs


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def busybox_bundle(base: str, cid: str, args: list[str]) -> tuple[str, dict[str, Any]]:
    """An OCI bundle under C{base} running C{args} in a busybox root (crun's default spec, no
    terminal, a cgroup of one level so that delete leaves nothing)."""
    path = Path(base) / cid
    path.mkdir()
    make_rootfs(path / "rootfs")
    subprocess.run([CRUN, "spec"], cwd=path, check=True)
    spec = json.loads((path / "config.json").read_text())
    spec["root"] = {"path": str(path / "rootfs"), "readonly": False}
    spec["process"]["args"] = args
    spec["process"]["terminal"] = False
    spec["linux"]["cgroupsPath"] = f"/pyd-contract-{cid}"
    return str(path), spec


class RuntimeContract:
    """The contract; subclasses say which runtime and how a bundle is made."""

    runtime: RuntimeDriver
    base: str
    exited: list[str]

    def bundle(self, cid: str, args: list[str]) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def exit_reported(self, cid: str) -> Deferred[None]:
        raise NotImplementedError

    async def _create(self, args: list[str]) -> tuple[str, str, int]:
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        path, spec = self.bundle(cid, args)
        pid = await self.runtime.create(CreateOptions(cid, "contract", path, spec))
        return cid, path, pid

    async def test_lifecycle(self) -> None:
        """created (with its pid) -> running -> SIGKILL: the exit is reported, code 137,
        status stopped -> deleted: unknown, and a second delete is quiet."""
        cid, path, pid = await self._create(["sleep", "300"])
        assert pid > 0
        st = await self.runtime.state(cid)
        assert st is not None
        assert (st["status"], st["pid"]) == ("created", pid)
        await self.runtime.start(cid)
        st = await self.runtime.state(cid)
        assert st is not None
        assert st["status"] == "running"
        reported = self.exit_reported(cid)
        await self.runtime.kill(cid, signal.SIGKILL)
        await reported
        info = await self.runtime.read_exit(cid, path)
        assert info is not None
        assert info.code == 137
        st = await self.runtime.state(cid)
        assert st is not None
        assert st["status"] == "stopped"
        await self.runtime.delete(cid, force=True)
        assert await self.runtime.state(cid) is None
        await self.runtime.delete(cid, force=True)

    async def test_kill_after_exit_is_process_gone(self) -> None:
        """A signal to a container whose process has exited raises ProcessGone."""
        cid, _path, _pid = await self._create(["sleep", "300"])
        await self.runtime.start(cid)
        reported = self.exit_reported(cid)
        await self.runtime.kill(cid, signal.SIGKILL)
        await reported
        try:
            await self.runtime.kill(cid, signal.SIGTERM)
        except ProcessGone:
            pass  # the contract: this is what the engine expects
        else:
            raise AssertionError("kill of an exited container did not raise ProcessGone")
        await self.runtime.delete(cid, force=True)

    async def test_unknown_container(self) -> None:
        """state() of an unknown id is None; delete() of it is quiet."""
        assert await self.runtime.state("f" * 64) is None
        await self.runtime.delete("f" * 64, force=True)


class FakeRuntimeContract(RuntimeContract, TestCase):
    def setUp(self) -> None:
        self.base = tempfile.mkdtemp(prefix="pyd-contract-rt-")
        self.addCleanup(shutil.rmtree, self.base, True)
        self.runtime = FakeRuntime(Clock())
        self.waiters: dict[str, list[Deferred[None]]] = {}
        self.runtime.watch_exits(self._exited)

    def _exited(self, cid: str) -> None:
        for d in self.waiters.pop(cid, []):
            d.callback(None)

    def exit_reported(self, cid: str) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.waiters.setdefault(cid, []).append(d)
        return d

    def bundle(self, cid: str, args: list[str]) -> tuple[str, dict[str, Any]]:
        path = os.path.join(self.base, cid)
        os.makedirs(path)
        return path, {"process": {"args": args}}


@pytest.mark.integration
class ConmonRuntimeContract(FakeRuntimeContract):
    timeout = 30

    def setUp(self) -> Deferred[None]:  # type: ignore[override]  # trial waits on the Deferred
        if os.geteuid() != 0:
            raise pytest.skip.Exception("crun and conmon need root")
        fix_hugetlb()
        self.base = tempfile.mkdtemp(prefix="pyd-contract-rt-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.base, True)
        self.waiters = {}
        self.created: list[str] = []
        rt = ConmonRuntime(
            _reactor(),
            ReactorProcessRunner(_reactor()),
            InlineBlocking(),
            os.path.join(self.base, "exec"),
            default=self.oci_runtime(os.path.join(self.base, "exec")),
        )
        self.runtime = rt
        self.addCleanup(lambda: ensureDeferred(self._cleanup()))
        rt.watch_exits(self._exited)
        return ensureDeferred(rt.setup())

    def oci_runtime(self, exec_root: str) -> OciRuntime | None:
        """The OCI runtime the driver runs containers with (None: its crun)."""
        return None

    async def _cleanup(self) -> None:
        for cid in self.created:
            await self.runtime.delete(cid, force=True)
        assert isinstance(self.runtime, ConmonRuntime)
        self.runtime.stop_watching()

    def exit_reported(self, cid: str) -> Deferred[None]:
        d = super().exit_reported(cid)
        d.addTimeout(20, _reactor())
        return d

    def bundle(self, cid: str, args: list[str]) -> tuple[str, dict[str, Any]]:
        self.created.append(cid)
        return busybox_bundle(self.base, cid, args)


@pytest.mark.integration
class ConmonRuncContract(ConmonRuntimeContract):
    """The same contract with Debian's runc as the driver's runtime (its own state root)."""

    def oci_runtime(self, exec_root: str) -> OciRuntime | None:
        return OciRuntime("runc", RUNC, os.path.join(exec_root, "runtime-runc"))
