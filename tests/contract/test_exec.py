"""Contract of the exec seam (L{pyd.engine.exec.ExecDriver}): what the exec service relies on
when it starts a process in a container, run against the fake (L{tests.fakes.execs.FakeExecDriver}
over L{tests.fakes.runtime.FakeRuntime}, always) and, under the integration marker, the real
L{ConmonExecDriver} in a container of the real L{ConmonRuntime} (root: conmon + crun, and again
with conmon + Debian's runc; a busybox bundle, deleted afterwards).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import uuid
from typing import Any

import pytest
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from pyd.core.seams import InlineBlocking
from pyd.drivers.process import ReactorProcessRunner
from pyd.drivers.runtime.conmon import ConmonRuntime, CreateOptions, RuntimeDriver
from pyd.drivers.runtime.oci import OciRuntime
from pyd.drivers.streams.execs import ConmonExecDriver, ExecFailed, ExecSpec
from pyd.engine.exec import ExecDriver
from tests.contract.test_runtime import busybox_bundle
from tests.fakes.execs import FakeExecDriver
from tests.fakes.runtime import FakeRuntime
from tests.helpers.runtime import CRUN, RUNC, fix_hugetlb


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


class ExecContract:
    """The contract; subclasses give the runtime, the exec driver and a bundle maker."""

    runtime: RuntimeDriver
    driver: ExecDriver
    base: str
    oci: OciRuntime | None = None

    def bundle(self, cid: str, args: list[str]) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def wait(self, d: Deferred[int]) -> Deferred[int]:
        return d

    async def _running(self) -> str:
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        path, spec = self.bundle(cid, ["sleep", "300"])
        await self.runtime.create(CreateOptions(cid, "contract", path, spec))
        await self.runtime.start(cid)
        return cid

    def _spec(self, cid: str, args: list[str], attach: bool = False) -> ExecSpec:
        exec_dir = tempfile.mkdtemp(prefix="e-", dir=self.base)
        return ExecSpec(
            container_id=cid,
            exec_id=uuid.uuid4().hex,
            exec_dir=exec_dir,
            process={
                "args": args,
                "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
                "cwd": "/",
                "user": {"uid": 0, "gid": 0},
                "terminal": False,
            },
            attach=attach,
            runtime=self.oci,
        )

    async def test_exit_code(self) -> None:
        """A started exec has a pid; its exit code arrives when the process ends."""
        cid = await self._running()
        started = await self.driver.start(self._spec(cid, ["sh", "-c", "exit 3"]))
        assert started.pid > 0
        assert await self.wait(started.exit_code) == 3
        started = await self.driver.start(self._spec(cid, ["true"]))
        assert await self.wait(started.exit_code) == 0

    async def test_missing_executable(self) -> None:
        """A program that is not in the container fails to start (ExecFailed, the runtime's
        text naming it); nothing runs."""
        cid = await self._running()
        try:
            await self.driver.start(self._spec(cid, ["no-such-program"]))
        except ExecFailed as e:
            assert "no-such-program" in e.message, e.message
            assert "not found" in e.message, e.message
        else:
            raise AssertionError("an exec of a missing program started")

    async def test_not_running(self) -> None:
        """An exec in a container whose process has ended fails to start (ExecFailed)."""
        cid = await self._running()
        reported = self.exit_reported(cid)
        await self.runtime.kill(cid, signal.SIGKILL)
        await reported
        try:
            await self.driver.start(self._spec(cid, ["true"]))
        except ExecFailed:
            pass
        else:
            raise AssertionError("an exec started in a stopped container")

    async def test_attach_before_start(self) -> None:
        """With attach, C{on_attach} gets the exec's attach socket (in its exec dir) before the
        process runs, once; the exit code follows."""
        cid = await self._running()
        seen: list[str] = []

        async def on_attach(path: str) -> None:
            seen.append(path)

        spec = self._spec(cid, ["sh", "-c", "exit 0"], attach=True)
        started = await self.driver.start(spec, on_attach)
        assert seen == [os.path.join(spec.exec_dir, "attach")]
        assert started.attach_path == seen[0]
        assert await self.wait(started.exit_code) == 0

    waiters: dict[str, list[Deferred[None]]]

    def _exited(self, cid: str) -> None:
        for d in self.waiters.pop(cid, []):
            d.callback(None)

    def exit_reported(self, cid: str) -> Deferred[None]:
        """Fires when the runtime reports the container's process ended."""
        d: Deferred[None] = Deferred()
        self.waiters.setdefault(cid, []).append(d)
        return d


class FakeExecContract(ExecContract, TestCase):
    def setUp(self) -> None:
        self.base = tempfile.mkdtemp(prefix="pyd-contract-ex-")
        self.addCleanup(shutil.rmtree, self.base, True)
        runtime = FakeRuntime(Clock())
        self.runtime = runtime
        self.driver = FakeExecDriver(runtime)
        self.waiters = {}
        runtime.watch_exits(self._exited)

    def bundle(self, cid: str, args: list[str]) -> tuple[str, dict[str, Any]]:
        path = os.path.join(self.base, cid)
        os.makedirs(path)
        return path, {"process": {"args": args}}


@pytest.mark.integration
class ConmonExecContract(ExecContract, TestCase):
    timeout = 60

    def setUp(self) -> Deferred[None]:  # type: ignore[override]  # trial waits on the Deferred
        if os.geteuid() != 0:
            raise pytest.skip.Exception("crun and conmon need root")
        fix_hugetlb()
        # short: the attach socket's path must fit in 108 bytes
        self.base = tempfile.mkdtemp(prefix="pyd-ce-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.base, True)
        self.created: list[str] = []
        rt = ConmonRuntime(
            _reactor(),
            ReactorProcessRunner(_reactor()),
            InlineBlocking(),
            os.path.join(self.base, "x"),
            default=self.oci_runtime(os.path.join(self.base, "x")),
        )
        self.runtime = rt
        self.oci = rt.default
        self.driver = ConmonExecDriver(_reactor(), InlineBlocking(), crun=CRUN)
        self.addCleanup(lambda: ensureDeferred(self._cleanup()))
        self.waiters = {}
        rt.watch_exits(self._exited)
        return ensureDeferred(rt.setup())

    def oci_runtime(self, exec_root: str) -> OciRuntime | None:
        """The OCI runtime containers and execs run with (None: the driver's crun)."""
        return None

    async def _cleanup(self) -> None:
        for cid in self.created:
            await self.runtime.delete(cid, force=True)
        assert isinstance(self.runtime, ConmonRuntime)
        self.runtime.stop_watching()

    def bundle(self, cid: str, args: list[str]) -> tuple[str, dict[str, Any]]:
        self.created.append(cid)
        return busybox_bundle(self.base, cid, args)

    def wait(self, d: Deferred[int]) -> Deferred[int]:
        return d.addTimeout(30, _reactor())

    def exit_reported(self, cid: str) -> Deferred[None]:
        return super().exit_reported(cid).addTimeout(20, _reactor())


@pytest.mark.integration
class ConmonRuncExecContract(ConmonExecContract):
    """The same contract with Debian's runc as the containers' and the execs' runtime."""

    def oci_runtime(self, exec_root: str) -> OciRuntime | None:
        return OciRuntime("runc", RUNC, os.path.join(exec_root, "runtime-runc"))
