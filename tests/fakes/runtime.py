"""A fake L{pyd.drivers.runtime.conmon.RuntimeDriver}: containers are dict entries, exits are
triggered by the test (or by a kill signal the fake is told ends the process)."""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyd.core.seams import Clock
from pyd.drivers.runtime.cgroups import CgroupStats
from pyd.drivers.runtime.conmon import (
    CreateOptions,
    ExitInfo,
    ProcessGone,
    RuntimeDriver,
    RuntimeFailed,
)
from pyd.drivers.runtime.oci import OciRuntime


class FakeRuntime:
    """Honest enough for the engine: create/start/kill/delete/pause/resume/update/exec."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.containers: dict[str, dict[str, Any]] = {}
        self.exits: dict[str, ExitInfo] = {}
        self.callbacks: list[Callable[[str], None]] = []
        self.calls: list[tuple[str, ...]] = []
        self.fail_create: str | None = None
        self.fail_start: str | None = None
        # signals that end the process, and the exit code they produce (SIGTERM: only if told)
        self.fatal_signals: dict[int, int] = {signal.SIGKILL: 137}
        self.exec_results: list[tuple[int, bytes]] = []
        self.alive_monitors: set[str] = set()
        self.monitors_alive_calls = 0
        self.next_pid = 1000
        self.setup_called = False
        self.exit_on_start: int | None = None  # the process ends at once, during crun start
        self.exit_before_kill: int | None = None  # the process ends as a kill is on its way
        # (operation, container id, runtime name; '' = the driver's default) of every call
        self.runtime_calls: list[tuple[str, str, str]] = []
        # what a direct SIGKILL of a pid finds (kill_pid), and the pids it was given
        self.direct_kill = "gone"
        self.killed_pids: list[int] = []

    async def setup(self) -> None:
        self.setup_called = True

    def watch_exits(self, callback: Callable[[str], None]) -> None:
        self.callbacks.append(callback)

    def _note(self, op: str, container_id: str, runtime: OciRuntime | None) -> None:
        self.runtime_calls.append((op, container_id, runtime.name if runtime else ""))

    async def create(self, opts: CreateOptions) -> int:
        self._note("create", opts.container_id, opts.runtime)
        self.calls.append(("create", opts.container_id))
        if self.fail_create is not None:
            raise RuntimeFailed("create", self.fail_create)
        self.next_pid += 1
        self.exits.pop(opts.container_id, None)
        self.containers[opts.container_id] = {
            "status": "created",
            "pid": self.next_pid,
            "spec": opts.spec,
            "opts": opts,
            "signals": [],
        }
        self.alive_monitors.add(opts.container_id)
        return self.next_pid

    async def start(self, container_id: str, runtime: OciRuntime | None = None) -> None:
        self._note("start", container_id, runtime)
        self.calls.append(("start", container_id))
        if self.fail_start is not None:
            raise RuntimeFailed("start", self.fail_start)
        self.containers[container_id]["status"] = "running"
        if self.exit_on_start is not None:
            self.exit(container_id, self.exit_on_start)

    def exit(
        self, container_id: str, code: int, oom: bool = False, *, report_later: bool = False
    ) -> None:
        """Test helper: the container's process ends now; conmon writes the exit file (and the
        watcher reports it at once, or at the clock's next turn with C{report_later})."""
        c = self.containers[container_id]
        c["status"] = "stopped"
        self.alive_monitors.discard(container_id)
        self.exits[container_id] = ExitInfo(code, oom, int(self.clock.seconds() * 1e9))
        if report_later:
            self.clock.callLater(0, self._report, container_id)
        else:
            self._report(container_id)

    def _report(self, container_id: str) -> None:
        for cb in list(self.callbacks):
            cb(container_id)

    async def kill(
        self,
        container_id: str,
        sig: int,
        all_processes: bool = False,
        runtime: OciRuntime | None = None,
    ) -> None:
        self._note("kill", container_id, runtime)
        self.calls.append(("kill", container_id, str(sig)))
        c = self.containers.get(container_id)
        if c is not None and self.exit_before_kill is not None and c["status"] == "running":
            # the process exits just before the signal reaches it (crun: ESRCH)
            self.exit(container_id, self.exit_before_kill, report_later=True)
            raise ProcessGone("kill", "kill container: open pidfd: No such process")
        if c is None or c["status"] not in ("running", "paused", "created"):
            raise ProcessGone("kill", "container is not running")
        c["signals"].append(sig)
        if sig in self.fatal_signals and c["status"] != "paused":
            self.exit(container_id, self.fatal_signals[sig])

    async def delete(
        self, container_id: str, force: bool = False, runtime: OciRuntime | None = None
    ) -> None:
        self._note("delete", container_id, runtime)
        self.calls.append(("delete", container_id))
        self.containers.pop(container_id, None)

    async def state(
        self, container_id: str, runtime: OciRuntime | None = None
    ) -> dict[str, Any] | None:
        self._note("state", container_id, runtime)
        c = self.containers.get(container_id)
        return None if c is None else {"status": c["status"], "pid": c["pid"]}

    async def pause(self, container_id: str, runtime: OciRuntime | None = None) -> None:
        self.calls.append(("pause", container_id))
        self.containers[container_id]["status"] = "paused"

    async def resume(self, container_id: str, runtime: OciRuntime | None = None) -> None:
        self.calls.append(("resume", container_id))
        c = self.containers.get(container_id)
        if c is None or c["status"] != "paused":
            raise RuntimeFailed("resume", "not paused")
        c["status"] = "running"
        if any(s in self.fatal_signals for s in c["signals"]):
            self.exit(container_id, self.fatal_signals[c["signals"][-1]])

    async def update(
        self, container_id: str, resources: dict[str, Any], runtime: OciRuntime | None = None
    ) -> None:
        self.calls.append(("update", container_id))
        self.containers[container_id]["resources"] = resources

    async def exec_sync(
        self,
        container_id: str,
        args: Sequence[str],
        env: Sequence[str] = (),
        user: str = "",
        cwd: str = "",
        timeout: float = 30,
        runtime: OciRuntime | None = None,
    ) -> tuple[int, bytes]:
        self.calls.append(("exec", container_id, *args))
        if self.exec_results:
            return self.exec_results.pop(0)
        return 0, b""

    async def read_exit(self, container_id: str, bundle: str) -> ExitInfo | None:
        return self.exits.get(container_id)

    async def monitor_alive(self, bundle: str) -> bool:
        return any(bundle.endswith(cid) for cid in self.alive_monitors)

    async def kill_pid(self, pid: int) -> str:
        self.killed_pids.append(pid)
        return self.direct_kill

    async def monitors_alive(self, bundles: Mapping[str, str]) -> set[str]:
        self.monitors_alive_calls += 1
        return {
            cid
            for cid, bundle in bundles.items()
            if any(bundle.endswith(alive) for alive in self.alive_monitors)
        }

    async def clear_exit(self, container_id: str, bundle: str) -> None:
        self.exits.pop(container_id, None)

    async def stats(self, container_id: str, cgroups_path: str = "") -> CgroupStats:
        return CgroupStats(0, 0, 0, (), {}, 0, 0, 0, {}, 0, 0, ())

    def attach_socket_path(self, container_id: str, bundle: str) -> str:
        return bundle + "/attach"

    def ctl_path(self, bundle: str) -> str:
        return bundle + "/ctl"


# mypy checks the fake against the seam it stands in for
_IS_RUNTIME_DRIVER: type[RuntimeDriver] = FakeRuntime
