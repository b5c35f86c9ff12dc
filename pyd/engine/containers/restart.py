"""Exits and restart policies (layer: engine): an exit file from conmon handled once per run, and
the policy's decision with moby's back-off.
"""

from __future__ import annotations

import os
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from pyd.core.errors import (
    PydError,
)
from pyd.core.records import (
    Container,
)
from pyd.drivers.runtime.conmon import (
    ExitInfo,
    RuntimeFailed,
)
from pyd.drivers.runtime.shm import unmount_shm
from pyd.engine.containers.base import WaitResult, _clear_settings, _now_nano, _settle
from pyd.engine.containers.edit import ContainerEdit

log = Logger()


RESTART_BASE = 0.1  # moby restartmanager: first delay 100 ms, doubled, capped at 1 min


RESTART_MAX = 60.0


RESTART_RESET_AFTER = 10.0  # a run this long resets the back-off


class RestartPolicy(ContainerEdit):
    """Exit handling, restart policies and auto-remove."""

    # --- exits -----------------------------------------------------------------------------------

    def _on_exit_file(self, cid: str) -> None:
        run = self._runs.get(cid)
        if run is None or run.handling:
            return
        self._spawn_exit(cid)

    def _spawn_exit(self, cid: str) -> None:
        run = self._runs.get(cid)
        if run is None or run.handling:
            return
        run.handling = True

        async def go() -> None:
            info = await self.runtime.read_exit(cid, self.bundle_dir(cid))
            if info is None:
                run.handling = False
                return
            await self._handle_exit(cid, info)

        d = Deferred.fromCoroutine(go())
        d.addErrback(lambda f: log.failure("handling the exit of {cid} failed", f, cid=cid))

    async def _handle_exit(self, cid: str, info: ExitInfo) -> None:
        """Record an exit once: state, events, clean-up, waiters, then restart policy."""
        run = self._runs.get(cid)
        if run is None:
            return
        run.handling = True
        if not run.ready.called:
            gate: Deferred[None] = Deferred()

            def open_gate(r: Any) -> Any:
                gate.callback(None)
                return r

            run.ready.addBoth(open_gate)
            await gate
        c = self._cache.get(cid)
        if c is None:
            self._runs.pop(cid, None)
            return
        if run.health_call is not None and run.health_call.active():
            run.health_call.cancel()

        oci = self.oci_runtime(c)

        async def delete() -> None:
            try:
                await self.runtime.delete(cid, force=True, runtime=oci)
            except RuntimeFailed as e:
                log.warn("runtime delete {cid}: {err}", cid=cid, err=e)

        async def teardown() -> None:
            try:
                await self._networks.teardown(cid)
            except PydError as e:
                log.warn("network teardown {cid}: {err}", cid=cid, err=e)

        # the runtime's state and cgroup, and the namespace and veths, go at the same time.
        for ok, failure in await _settle(delete(), teardown()):
            if not ok:
                failure.raiseException()
        try:
            await self._images.unmount_rw_layer(cid)
        except PydError as e:
            log.warn("unmount {cid}: {err}", cid=cid, err=e)
        await self.runtime.clear_exit(cid, self.bundle_dir(cid))
        await self._blocking.run(unmount_shm, os.path.join(self.bundle_dir(cid), "shm"))
        await self._stop_log_rotation(cid)
        c = self._cache.get(cid, c)
        ran_for = self._clock.seconds() - run.started_at
        state = attrs.evolve(
            c.state,
            status="exited",
            pid=0,
            exit_code=info.code,
            oom_killed=info.oom_killed,
            finished_nano=info.finished_nano or _now_nano(self._clock),
        )
        ns = _clear_settings(c.network_settings)
        # The restart is decided and recorded with the exit, before any waiter hears of it: a
        # client that waited and then removes meets dockerd's "container is restarting" 409
        # (dockerd's SetRestarting fires the waiters), never a container caught between states.
        restarts = not self._stopping and self._policy_restarts(c, info.code)
        count = c.restart_count
        if restarts:
            state = attrs.evolve(state, status="restarting")
            count += 1  # dockerd counts the restart when it decides it (inspect shows it)
        c = await self._save(attrs.evolve(c, state=state, network_settings=ns, restart_count=count))
        self._runs.pop(cid, None)
        if info.oom_killed:
            self._emit(c, "oom")
        exec_duration = str(int(max(ran_for, 0)))
        self._emit(c, "die", exitCode=str(info.code), execDuration=exec_duration)
        if not run.finished.called:
            run.finished.callback(info)
        for d in self._exit_waiters.pop(cid, []):
            if not d.called:
                d.callback(WaitResult(info.code))
        self._wake_log_followers(cid)
        if self._stopping:
            return
        if restarts:
            if ran_for >= RESTART_RESET_AFTER:
                self._backoff[cid] = 0.0
            delay = self._backoff.get(cid, 0.0)
            delay = RESTART_BASE if delay == 0 else min(delay * 2, RESTART_MAX)
            self._backoff[cid] = delay
            self._restart_calls[cid] = self._clock.callLater(delay, self._policy_restart, cid)
        elif self.spec_of(c).restart.auto_remove:
            await self._auto_remove(cid, info.code)

    def _policy_restarts(self, c: Container, code: int) -> bool:
        rp = self.spec_of(c).restart
        name = rp.name
        if c.state.manually_stopped or name == "no":
            return False
        if name in ("always", "unless-stopped"):
            return True
        if name == "on-failure":
            limit = rp.maximum_retry_count
            return code != 0 and (limit == 0 or c.restart_count < limit)
        return False

    def _policy_restart(self, cid: str) -> None:
        self._restart_calls.pop(cid, None)

        async def go() -> None:
            async with self._lock(cid):
                c = self._cache.get(cid)
                if c is None or c.state.status != "restarting" or c.state.manually_stopped:
                    return
                try:
                    await self._start(c)
                except PydError as e:
                    # dockerd (monitor.go): a restart that fails to start leaves the container
                    # stopped (_start_failed recorded it; --rm removes it), with no further try
                    log.warn("restart of {cid} failed: {err}", cid=cid, err=e)
                    c = self._cache.get(cid)
                    if c is not None and c.state.status == "restarting":
                        await self._save(
                            attrs.evolve(c, state=attrs.evolve(c.state, status="exited"))
                        )

        d = Deferred.fromCoroutine(go())
        d.addErrback(lambda f: log.failure("policy restart of {cid} failed", f, cid=cid))
