"""Daemon start and stop for containers (layer: engine): load the state, re-adopt what still runs
under conmon, handle exits that happened while the daemon was down, resume restart policies.
"""

from __future__ import annotations

import contextlib
import os
import shutil

import attrs
from twisted.internet.defer import DeferredSemaphore
from twisted.logger import Logger

from pyd.core.errors import (
    PydError,
)
from pyd.core.ids import is_full_id
from pyd.core.records import (
    Container,
)
from pyd.drivers.runtime.conmon import (
    ExitInfo,
    RuntimeFailed,
)
from pyd.drivers.runtime.shm import unmount_shm
from pyd.engine.containers.base import CREATING, _now_nano, _Run, _settle
from pyd.engine.containers.logspace import allow_writes
from pyd.engine.containers.restart import RESTART_RESET_AFTER, RestartPolicy

log = Logger()

# Containers that ran, reconciled at once at daemon start (each spawns the runtime once).
RESTORE_AT_ONCE = 8


class ContainerRestore(RestartPolicy):
    """Start-up and shutdown: load, restore, adopt."""

    async def startup(self) -> None:
        """Daemon start: prepare the runtime, load state, reconcile with what still runs."""
        await self.runtime.setup()
        self.runtime.watch_exits(self._on_exit_file)
        await self.load()
        await self.restore()

    def shutdown(self) -> None:
        """Daemon stop: cancel timers; containers keep running (live restore)."""
        self._stopping = True
        for call in list(self._restart_calls.values()):
            if call.active():
                call.cancel()
        self._restart_calls.clear()
        for run in self._runs.values():
            if run.health_call is not None and run.health_call.active():
                run.health_call.cancel()
        for cid in list(self._log_watches):
            self._unwatch_log(cid)
        stop = getattr(self.runtime, "stop_watching", None)
        if stop is not None:
            stop()

    async def restore(self) -> None:
        """Reconcile the database with the runtime after a daemon (or host) restart.

        A container whose conmon still runs is running; one whose exit file exists exited while
        pyd was down (its exit is recorded now, with events and restart policy); one with
        neither (the host rebooted: runtime state gone) is marked exited (255) and restartable.
        """
        to_start: list[str] = []
        to_remove: list[str] = []
        live: list[Container] = []
        # Containers that do not run are most of them (a thousand created ones, say): whether
        # a conmon still runs for any of them, and which root filesystems are still mounted,
        # is looked up once for all rather than with two thread hops each.
        stopped = {
            c.id: self.bundle_dir(c.id)
            for c in self._cache.values()
            if c.state.status in ("exited", "created") and not c.extra.get(CREATING)
        }
        alive = await self.runtime.monitors_alive(stopped) if stopped else set()
        mounted = await self._images.rw_layers_mounted(set(stopped) - alive) if stopped else set()
        for c in list(self._cache.values()):
            if c.extra.get(CREATING):
                await self._discard_unfinished(c)
                continue
            if c.state.status == "removing":
                # a removal the daemon died in: its client was told nothing, and part of the
                # container may be gone already (its writable layer, its addresses); finish it
                # below, once it is marked stopped (anonymous volumes are kept: -v is unknown)
                await self._save(attrs.evolve(c, state=attrs.evolve(c.state, status="dead")))
                to_remove.append(c.id)
                continue
            st = c.state
            if st.status in ("running", "paused", "restarting", "removing"):
                live.append(c)
            elif st.status in ("exited", "created") and c.id in alive:
                # pyd died between conmon's create and recording the start: adopt or discard.
                await self._adopt(c)
            elif st.status in ("exited", "created"):
                await self._undo_interrupted_start(c, c.id in mounted)
                if st.has_been_started and self._policy_restarts(c, st.exit_code):
                    to_start.append(c.id)
        # The containers that ran are reconciled a few at a time: each asks the runtime
        # (a crun spawn) and mounts its root filesystem, one after another took seconds for
        # a hundred of them.
        gate = DeferredSemaphore(RESTORE_AT_ONCE)

        async def restore_live(c: Container) -> None:
            await gate.acquire()
            try:
                if await self._restore_live(c):
                    to_start.append(c.id)
            finally:
                gate.release()

        for ok, failure in await _settle(*(restore_live(c) for c in live)):
            if not ok:
                failure.raiseException()
        for cid in to_start:
            try:
                await self._start_locked(cid)
            except PydError as e:
                log.warn("restart of {cid} at daemon start failed: {err}", cid=cid, err=e)
        for cid in to_remove:
            try:
                await self.remove(cid, force=True)
            except PydError as e:
                log.warn("removal of {cid} at daemon start failed: {err}", cid=cid, err=e)
        running = [cid for cid, c in self._cache.items() if c.state.running]
        await self._networks.release_stale(running)
        await self._blocking.run(self._sweep_bundles, set(self._cache))

    async def _restore_live(self, c: Container) -> bool:
        """Reconcile a container that ran when the daemon stopped: exited meanwhile (its
        exit recorded now), still running (adopted: root filesystem, log rotation, health), or
        lost (the runtime's state gone: exited 255). Whether its restart policy starts it."""
        st = c.state
        bundle = self.bundle_dir(c.id)
        info = await self.runtime.read_exit(c.id, bundle)
        if info is not None or st.status == "restarting":
            run = _Run(self._clock.seconds() - RESTART_RESET_AFTER)
            run.ready.callback(None)
            run.pid = st.pid
            self._runs[c.id] = run
            if info is None:
                info = ExitInfo(st.exit_code, False, _now_nano(self._clock))
            await self._handle_exit(c.id, info)
            return False
        if await self.runtime.monitor_alive(bundle):
            run = _Run(self._clock.seconds())
            run.ready.callback(None)
            run.pid = st.pid
            self._runs[c.id] = run
            try:
                run.rootfs = await self._images.mount_rw_layer(c.id)
            except PydError as e:
                log.warn("rootfs of {cid}: {err}", cid=c.id, err=e)
            rt = await self.runtime.state(c.id, runtime=self.oci_runtime(c))
            status = "running"
            if rt is not None and rt.get("status") == "paused":
                status = "paused"
            if status == "paused" and st.paused_for_commit:
                # pyd died in the middle of a commit: the pause was its own, undo it
                try:
                    await self.runtime.resume(c.id, runtime=self.oci_runtime(c))
                    status = "running"
                except RuntimeFailed as e:
                    log.warn("unpause of {cid}: {err}", cid=c.id, err=e.message)
            if status != st.status or st.paused_for_commit:
                state = attrs.evolve(st, status=status, paused_for_commit=False)
                await self._save(attrs.evolve(c, state=state))
            await self._resume_log_rotation(c)
            self._schedule_health(c.id, first=True)
            return False
        # Runtime state gone (host reboot) or conmon killed: the exit is unknowable.
        try:
            await self.runtime.delete(c.id, force=True, runtime=self.oci_runtime(c))
        except RuntimeFailed:  # the runtime state is gone with the reboot: nothing to delete
            pass
        try:
            await self._networks.teardown(c.id)
        except PydError as e:
            log.warn("container {cid}: network teardown failed: {e}", cid=c.id, e=e)
        # a log the reserve stopped before the reboot: the next run's conmon opens it
        await self.log_space.untrack(c.id, self._log_path(c))
        new = attrs.evolve(
            c,
            state=attrs.evolve(
                st,
                status="exited",
                pid=0,
                exit_code=255,
                finished_nano=_now_nano(self._clock),
                health_status="unhealthy" if st.health_status else "",
            ),
        )
        await self._save(new)
        return self._policy_restarts(new, 255)

    def _sweep_bundles(self, known: set[str]) -> None:
        """Bundle directories without a container (a removal that ended between deleting the
        row and the directory), and in the others the temporary file of a write the daemon
        died in (each bundle file is written to C{NAME.tmp} and renamed: the runtime's
        C{config.json}, C{hosts}, C{hostname}, C{resolv.conf}). The log's own C{ctr.log.tmp}
        belongs to the rotation, which recovers it (L{pyd.engine.containers.logfiles}).
        Blocking; run once the containers are restored, before anything listens."""
        root = self.settings.containers_dir
        try:
            names = os.listdir(root)
        except FileNotFoundError:
            return
        for name in names:
            bundle = os.path.join(root, name)
            if name in known:
                for f in _listdir_or_empty(bundle):
                    if f.endswith(".tmp") and not f.startswith("ctr.log"):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(os.path.join(bundle, f))
            elif is_full_id(name):
                unmount_shm(os.path.join(bundle, "shm"))
                allow_writes(os.path.join(bundle, "ctr.log"))  # stopped by the reserve
                shutil.rmtree(bundle, True)

    async def _undo_interrupted_start(self, c: Container, mounted: bool) -> None:
        """A container that does not run may hold what a start the daemon died in made before
        its conmon took over: the runtime's half-created container (its init process waits in
        the network namespace) and the root filesystem mount (C{mounted}). Both go, as after
        a failed start; cheap when there is nothing (no runtime state directory)."""
        try:
            await self.runtime.delete(c.id, force=True, runtime=self.oci_runtime(c))
        except RuntimeFailed as e:
            log.warn("container {cid}: runtime state left: {err}", cid=c.id, err=e.message)
        if not mounted:
            return
        try:
            await self._images.unmount_rw_layer(c.id)
        except PydError as e:
            log.warn("container {cid}: root filesystem left mounted: {err}", cid=c.id, err=e)

    async def _discard_unfinished(self, c: Container) -> None:
        """A create the daemon died in: its client got no answer, so it is undone as a failed
        create is (without this, the row stayed with no writable layer or without its mounts)."""
        log.info("removing container {cid}: its create was interrupted", cid=c.id)
        await self._volumes.release(c.id, True)
        await self._images.remove_rw_layer(c.id)
        await self._repo.remove(c.id)
        self._cache.pop(c.id, None)
        await self._blocking.run(shutil.rmtree, self.bundle_dir(c.id), True)

    async def _adopt(self, c: Container) -> None:
        oci = self.oci_runtime(c)
        rt = await self.runtime.state(c.id, runtime=oci)
        if rt is None or rt.get("status") not in ("running", "paused"):
            try:
                await self.runtime.delete(c.id, force=True, runtime=oci)
            except RuntimeFailed:  # the runtime state is gone: nothing to delete
                pass
            return
        run = _Run(self._clock.seconds())
        run.ready.callback(None)
        run.pid = int(rt.get("pid") or 0)
        self._runs[c.id] = run
        try:
            run.rootfs = await self._images.mount_rw_layer(c.id)
        except PydError as e:
            log.warn("rootfs of {cid}: {err}", cid=c.id, err=e)
        state = attrs.evolve(
            c.state,
            status=str(rt["status"]),
            pid=run.pid,
            exit_code=0,
            error="",
            started_nano=_now_nano(self._clock),
            has_been_started=True,
        )
        await self._save(attrs.evolve(c, state=state))
        await self._resume_log_rotation(c)
        log.info("adopted running container {cid}", cid=c.id)


def _listdir_or_empty(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
