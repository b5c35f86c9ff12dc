"""The lifecycle of a container (layer: engine): start, stop, kill, restart, pause, unpause, wait,
remove, prune, each serialised by the container's lock (rename and update:
L{pyd.engine.containers.edit}).
"""

from __future__ import annotations

import os
import posixpath
import signal as _signal
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from pyd.core.errors import (
    Conflict,
    InvalidParameter,
    NotFound,
    NotModified,
    PydError,
    SystemError_,
    no_such_container,
)
from pyd.core.records import (
    Container,
    MountSpec,
    NetworkSetup,
)
from pyd.drivers import syslog
from pyd.drivers.runtime import spec as oci
from pyd.drivers.runtime.conmon import (
    CreateOptions,
    ProcessGone,
    RuntimeFailed,
)
from pyd.drivers.runtime.oci import OciRuntime
from pyd.drivers.runtime.shm import mount_shm, unmount_shm
from pyd.drivers.trees import remove_tree
from pyd.engine.containers import runconfig
from pyd.engine.containers.base import (
    CREATING,
    PruneResult,
    WaitResult,
    _now_nano,
    _Run,
    _settings_of,
    _settle,
)
from pyd.engine.containers.create import ContainerCreate
from pyd.engine.containers.logfiles import (
    rotate_log_files,
)
from pyd.engine.containers.logs import LOG_BACKSTOP
from pyd.engine.filters import labels_match
from pyd.engine.spec import rules

log = Logger()

# seconds dockerd waits for the exit after a SIGKILL before killing the process itself
KILL_WAIT = 10.0


class ContainerLifecycle(ContainerCreate):
    """Start, stop, kill, restart, pause, wait, remove, prune."""

    def _spawn_exit(self, cid: str) -> None:
        """Handle the exit of C{cid}'s current run (L{pyd.engine.containers.restart})."""
        raise NotImplementedError

    # --- start -----------------------------------------------------------------------------------

    async def start(self, ref: str) -> None:
        """Start a created or stopped container.

        @raise NotModified: it already runs.
        @raise Conflict: it is paused, or being removed.
        @raise InvalidParameter: the runtime refused the process (dockerd's text; exit code
            127/126 recorded in its state).
        """
        c = self.resolve(ref)
        async with self._lock(c.id):
            c = self.resolve(c.id)
            if c.state.status == "paused":
                raise Conflict("cannot start a paused container, try unpause instead")
            if c.state.status in ("running",):
                raise NotModified()
            if c.state.status == "removing":
                raise Conflict("container is marked for removal and cannot be started")
            if c.state.status == "dead":
                raise Conflict("cannot start a dead container")
            self._cancel_restart(c.id)
            c = attrs.evolve(c, state=attrs.evolve(c.state, manually_stopped=False))
            self._cache[c.id] = c
            await self._start(c)

    async def _start_locked(self, cid: str) -> None:
        async with self._lock(cid):
            c = self._cache.get(cid)
            if c is None or c.state.status in ("running", "paused", "removing", "dead"):
                return
            await self._start(c)

    async def _connect_syslog(self, opts: Mapping[str, str]) -> syslog.SyslogSender:
        """dockerd's syslog driver dials its server when the container starts: a server that
        cannot be reached, or TLS files that cannot be read, fail the start (in the io pool).
        The connection is the one the container's lines then go through."""
        try:
            sender = syslog.SyslogSender(
                opts.get("syslog-address", ""),
                opts.get("syslog-facility", ""),
                opts.get("syslog-format", ""),
                syslog.TlsFiles.of(opts),
            )
            await self._blocking.run(sender.connect)
        except syslog.SyslogError as e:
            raise SystemError_(f"failed to initialize logging driver: {e}") from e
        return sender

    async def _start(self, c: Container) -> None:
        cid = c.id
        bundle = self.bundle_dir(cid)
        hc = c.host_config
        run = _Run(self._clock.seconds())
        net: NetworkSetup | None = None
        spec_input: oci.RuntimeSpecInput | None = None
        log_path = c.extra.get("log_path") or os.path.join(bundle, "ctr.log")
        s = self.spec_of(c)
        rt: OciRuntime | None = None
        try:
            # the run keeps the runtime it starts under (kill, exec, delete after a restart)
            rt = self.runtime_for_start(c)
            c = attrs.evolve(c, extra={**c.extra, "oci_runtime": _runtime_record(rt)})
            self._cache[cid] = c
            plan = runconfig.log_plan(s.logging)
            if plan.driver == "syslog" and plan.forward is not None:
                run.syslog = await self._connect_syslog(plan.forward)

            async def mount() -> str:
                run.rootfs = await self._images.mount_rw_layer(cid)
                return run.rootfs

            # The root filesystem and the network namespace do not depend on each other: set
            # them up at the same time (whichever succeeded is undone by _start_failed).
            (mounted, rootfs), (netted, net_or_failure) = await _settle(
                mount(),
                self._networks.setup(
                    cid,
                    c.name.lstrip("/"),
                    s.process.hostname or cid[:12],
                    s.namespaces.network or "bridge",
                    s.network,
                    list(s.process.exposed_ports),
                ),
            )
            if netted:
                net = net_or_failure
            if not mounted:
                rootfs.raiseException()
            if not netted:
                net_or_failure.raiseException()
            # Volumes after the network, as dockerd does (its "mount" events follow "connect").
            # the runtime binds what prepare opened (subpaths on staging points), not c.mounts
            mounts = await self._volumes.prepare(cid, c.mounts, rootfs)
            linked = self.link_setup(c, s.namespaces.network or "bridge")
            if linked.children:
                await self._networks.allow_links(cid, linked.children)
            if linked.hosts and net is not None and net.hosts_entries:
                # dockerd adds link lines after ExtraHosts, before the container's own line.
                entries = net.hosts_entries
                net = attrs.evolve(net, hosts_entries=(*entries[:-1], *linked.hosts, entries[-1]))
            spec_input = await self._blocking.run(
                self._prepare_spec,
                attrs.evolve(c, mounts=tuple(mounts)),
                s,
                rootfs,
                net,
                linked.env,
            )
            pid_path, ipc_path, shm_source = self._namespace_joins(s)
            if s.namespaces.ipc == "shareable":
                shm_source = os.path.join(self.bundle_dir(cid), "shm")
                await self._blocking.run(
                    mount_shm, shm_source, s.runtime.shm_size or rules.DEFAULT_SHM
                )
            spec_input = attrs.evolve(
                spec_input, pid_path=pid_path, ipc_path=ipc_path, shm_source=shm_source
            )
            spec = oci.build_spec(spec_input)
            self._runs[cid] = run
            if plan.rotates:
                await self._blocking.run(rotate_log_files, log_path, plan.max_files, True)
                # conmon's own limit only bounds the log while pyd is not there to rotate it:
                # it counts bytes since its own last rotation (not pyd's), so while pyd runs
                # it cuts a file short once every LOG_BACKSTOP x max-file files
                log_limit = plan.max_size * plan.max_files * LOG_BACKSTOP
            else:
                log_limit = plan.max_size
            pid = await self.runtime.create(
                CreateOptions(
                    container_id=cid,
                    name=c.name.lstrip("/"),
                    bundle=bundle,
                    spec=spec,
                    terminal=s.process.tty,
                    stdin=s.process.open_stdin,
                    # streams: a TTY's stdin must survive a detach (dockerd closes it at the
                    # client's EOF only for StdinOnce without a TTY; see pyd.engine.streams).
                    leave_stdin_open=not s.process.stdin_once or s.process.tty,
                    log_path="" if plan.driver == "none" else log_path,
                    log_size_max=log_limit,
                    log_driver="none" if plan.driver == "none" else "k8s-file",
                    path_names=_staged_names(c.mounts, mounts),
                    runtime=rt,
                )
            )
            run.pid = pid
            # the runtime made the container's own copies of its mounts: the staging points
            # of volume subpaths are not needed any more (dockerd drops its safe paths here too)
            await self._volumes.unstage(cid)
            if plan.driver != "none":
                self.log_space.track(cid, log_path)
            if plan.rotates or plan.forward is not None:
                forwarding = self._watch_log(cid, log_path, plan)
                if forwarding is not None:
                    await forwarding
            # the interfaces were plugged while the runtime created the container
            await self._networks.plugged(cid)
            for hook in self.before_start:
                await hook(cid, self.runtime.attach_socket_path(cid, bundle))
            await self.runtime.start(cid, runtime=rt)
        except RuntimeFailed as e:
            args = (
                list(spec_input.args) if spec_input is not None else runconfig.command_of(c.config)
            )
            if args[:2] == [oci.INIT_DEST, "--"]:
                args = args[2:]
            message, code = runconfig.start_error(args, e.message, rt.label if rt else "crun")
            await self._start_failed(c, run, net, message, code)
            raise InvalidParameter(message) from e
        except PydError as e:
            await self._start_failed(c, run, net, str(e), 128)
            raise
        except BaseException as e:
            await self._start_failed(c, run, net, f"{type(e).__name__}: {e}", 128)
            raise
        state = attrs.evolve(
            c.state,
            status="running",
            pid=run.pid,
            exit_code=0,
            error="",
            oom_killed=False,
            started_nano=_now_nano(self._clock),
            has_been_started=True,
            health_status="starting" if self._health_config(c) else "",
            health_failing_streak=0,
        )
        # Networking updated the record while it set up (networks_materialized, say): save
        # over the current record, not the copy taken before, or the update is lost (and a
        # disconnect then connect of a create-time network found its endpoint made again).
        c = self._cache.get(cid, c)
        try:
            c = await self._save(
                attrs.evolve(c, state=state, network_settings=_settings_of(net, hc))
            )
            self._emit(c, "start")
        finally:
            run.ready.callback(None)
        await self.update_link_parents(c)
        self._schedule_health(cid, first=True)
        if run.finished.called:
            return
        # The process may have exited before we listened; the exit file tells.
        info = await self.runtime.read_exit(cid, bundle)
        if info is not None and not run.handling:
            self._spawn_exit(cid)

    async def _start_failed(
        self, c: Container, run: _Run, net: NetworkSetup | None, message: str, code: int
    ) -> None:
        cid = c.id
        self._runs.pop(cid, None)
        if not run.ready.called:
            run.ready.callback(None)
        if run.syslog is not None:
            sender, run.syslog = run.syslog, None
            await self._blocking.run(sender.close)
        try:
            await self.runtime.delete(cid, force=True, runtime=self.oci_runtime(c))
        except RuntimeFailed:  # cleanup after a failed start: the runtime may never have created it
            pass
        await self._volumes.unstage(cid)
        await self._stop_log_rotation(cid)
        if net is not None:
            try:
                await self._networks.teardown(cid)
            except PydError as e:
                log.warn("container {cid}: network teardown failed: {e}", cid=cid, e=e)
        if run.rootfs:
            try:
                await self._images.unmount_rw_layer(cid)
            except PydError as e:
                log.warn(
                    "container {cid}: unmounting its root filesystem failed: {e}", cid=cid, e=e
                )
        c = self._cache.get(cid, c)
        state = attrs.evolve(
            c.state,
            status="exited" if c.state.has_been_started else "created",
            pid=0,
            exit_code=code,
            error=message,
        )
        if c.state.has_been_started:
            state = attrs.evolve(state, finished_nano=_now_nano(self._clock))
        await self._save(attrs.evolve(c, state=state))
        for gone in self.on_gone:
            gone(cid)
        if self.spec_of(c).restart.auto_remove:
            self._clock.callLater(0, self._spawn_auto_remove, cid, code)

    def _spawn_auto_remove(self, cid: str, code: int) -> None:
        d = Deferred.fromCoroutine(self._auto_remove(cid, code))
        d.addErrback(lambda f: log.failure("auto-remove of {cid} failed", f, cid=cid))

    async def _auto_remove(self, cid: str, code: int) -> None:
        try:
            await self.remove(cid, force=True, volumes=True, _code=code)
        except NotFound:  # already removed by another request
            pass
        except PydError as e:
            log.warn("auto-remove of {cid} failed: {err}", cid=cid, err=e)

    # --- stop / kill / restart / pause -----------------------------------------------------------

    async def _wait_exit(self, cid: str, timeout: float | None) -> bool:
        run = self._runs.get(cid)
        if run is None:
            return True
        if run.finished.called:
            return True
        d: Deferred[Any] = Deferred()

        def fire(r: Any) -> Any:
            if not d.called:
                d.callback(True)
            return r

        run.finished.addBoth(fire)
        if timeout is not None:

            def expire() -> None:
                if not d.called:
                    d.callback(False)

            call = self._clock.callLater(max(timeout, 0), expire)
            result = bool(await d)
            if call.active():
                call.cancel()
            return result
        return bool(await d)

    async def _kill(self, c: Container, sig: int) -> None:
        try:
            await self.runtime.kill(c.id, sig, runtime=self.oci_runtime(c))
        except ProcessGone:
            # the container exited while the signal was on its way (dockerd's kill treats
            # "no such process" as done too): its exit is being handled, callers wait for it
            return
        except RuntimeFailed as e:
            if self._runs.get(c.id) is None:
                return
            raise SystemError_(f"Cannot kill container: {c.id}: {e.message}") from e

    async def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        """StopSignal, then SIGKILL after the timeout (C{Config.StopTimeout} or 10 s).

        @raise NotModified: it is not running.
        """
        c = self.resolve(ref)
        async with self._lock(c.id):
            c = self.resolve(c.id)
            if c.state.status == "restarting" or (
                c.state.status in ("exited", "created") and c.id in self._restart_calls
            ):
                self._cancel_restart(c.id)
                c = await self._save_state(
                    attrs.evolve(
                        c, state=attrs.evolve(c.state, status="exited", manually_stopped=True)
                    )
                )
                self._emit(c, "stop")
                return
            if not c.state.running:
                raise NotModified()
            await self._stop(c, timeout, signal)
            self._emit(self.resolve(c.id), "stop")

    async def _stop(self, c: Container, timeout: int | None, signal: str | None) -> None:
        c = await self._save_state(
            attrs.evolve(c, state=attrs.evolve(c.state, manually_stopped=True))
        )
        process = self.spec_of(c).process
        sig = rules.parse_signal(signal or process.stop_signal or None)
        if timeout is None:
            timeout = process.stop_timeout
            if timeout is None:
                timeout = 10
        paused = c.state.status == "paused"
        if sig != _signal.SIGKILL:
            self._emit(c, "kill", signal=str(sig))
            await self._kill(c, sig)
            if paused:
                await self._resume_quiet(c.id)
            if await self._wait_exit(c.id, None if timeout < 0 else float(timeout)):
                return
        self._emit(c, "kill", signal=str(int(_signal.SIGKILL)))
        await self._kill(c, _signal.SIGKILL)
        if paused:
            await self._resume_quiet(c.id)
        try:
            await self._killed(c)
        except SystemError_:
            # dockerd's containerStop: a failed kill gets 2 more seconds to see the exit
            if not await self._wait_exit(c.id, 2.0):
                raise

    async def _killed(self, c: Container) -> None:
        """Wait for the exit of C{c} after its SIGKILL, as dockerd's C{kill} (daemon/kill.go):
        10 s, then a SIGKILL of its process itself, past the runtime. A process that is gone has
        exited and its exit is being recorded: wait for that record without a limit (under load
        it can take longer than any bound; dockerd 20.10 waits without one, 28 returns). A
        zombie, or a process still there 2 s later, is dockerd 28's error.

        @raise SystemError_: dockerd's texts (a 500 there too).
        """
        if await self._wait_exit(c.id, KILL_WAIT):
            return
        pid = self._cache.get(c.id, c).state.pid
        log.warn(
            "container {cid} failed to exit within {wait} s of kill - trying direct SIGKILL",
            cid=c.id,
            wait=KILL_WAIT,
        )
        found = await self.runtime.kill_pid(pid)
        if found == "gone":
            await self._wait_exit(c.id, None)
            return
        if found == "zombie":
            raise SystemError_(
                f"container {c.id[:12]} PID {pid} is zombie and can not be killed. Use the "
                "--init option when creating containers to run an init inside the container "
                "that forwards signals and reaps processes"
            )
        if not await self._wait_exit(c.id, 2.0):
            raise SystemError_("tried to kill container, but did not receive an exit event")

    async def _resume_quiet(self, cid: str) -> None:
        c = self._cache.get(cid)
        try:
            await self.runtime.resume(cid, runtime=self.oci_runtime(c) if c else None)
        except RuntimeFailed:  # best effort: a container that is not paused needs no resume
            pass

    async def kill(self, ref: str, signal: str | None = None) -> None:
        """Send a signal (default SIGKILL).

        @raise Conflict: it is not running (dockerd's text).
        @raise InvalidParameter: unknown signal.
        """
        try:
            sig = rules.parse_signal(signal, default=_signal.SIGKILL)
        except InvalidParameter:
            # moby >= 23: the route wraps every error, moby/sys/signal lower-cases the text.
            raise InvalidParameter(
                f"cannot kill container: {ref}: invalid signal: {signal}"
            ) from None
        try:
            c = self.resolve(ref)
        except NotFound as e:
            raise NotFound(f"cannot kill container: {ref}: {e.message}") from None
        if c.state.status == "restarting" and self._cancel_restart(c.id):
            c = await self._save_state(
                attrs.evolve(c, state=attrs.evolve(c.state, status="exited", manually_stopped=True))
            )
            self._emit(c, "kill", signal=str(sig))
            return
        if not c.state.running:
            raise Conflict(f"cannot kill container: {ref}: container {c.id} is not running")
        stop_sig = rules.parse_signal(self.spec_of(c).process.stop_signal or None)
        if sig in (_signal.SIGKILL, stop_sig):
            c = await self._save_state(
                attrs.evolve(c, state=attrs.evolve(c.state, manually_stopped=True))
            )
        self._emit(c, "kill", signal=str(sig))
        await self._kill(c, sig)
        if sig == _signal.SIGKILL:
            if c.state.status == "paused":
                await self._resume_quiet(c.id)
            # dockerd's Kill returns once the container is dead (daemon/kill.go Kill): a client
            # may inspect or remove it right away.
            await self._killed(c)

    async def restart(
        self, ref: str, timeout: int | None = None, signal: str | None = None
    ) -> None:
        """Stop if running, then start; emits C{restart}."""
        c = self.resolve(ref)
        async with self._lock(c.id):
            c = self.resolve(c.id)
            self._cancel_restart(c.id)
            if c.state.running:
                await self._stop(c, timeout, signal)
                self._emit(self.resolve(c.id), "stop")
            c = self.resolve(c.id)
            c = attrs.evolve(c, state=attrs.evolve(c.state, manually_stopped=False))
            self._cache[c.id] = c
            await self._start(c)
            self._emit(self.resolve(c.id), "restart")

    async def pause(self, ref: str, for_commit: bool = False) -> None:
        """Freeze the container (C{for_commit}: for the time of a commit, so that a crash before
        the unpause does not leave it paused). @raise Conflict: not running or already paused."""
        c = self.resolve(ref)
        async with self._lock(c.id):
            c = self.resolve(c.id)
            if c.state.status == "paused":
                raise Conflict(f"Container {c.id} is already paused")
            if c.state.status != "running":
                raise Conflict(f"container {c.id} is not running")
            if for_commit:
                # marked before the runtime pauses it: a crash between the two must still
                # find the pause to be the commit's
                mark = attrs.evolve(c.state, paused_for_commit=True)
                c = await self._save_state(attrs.evolve(c, state=mark))
            try:
                await self.runtime.pause(c.id, runtime=self.oci_runtime(c))
            except RuntimeFailed as e:
                if for_commit:
                    unmark = attrs.evolve(c.state, paused_for_commit=False)
                    await self._save_state(attrs.evolve(c, state=unmark))
                raise SystemError_(f"Cannot pause container {c.id}: {e.message}") from e
            state = attrs.evolve(c.state, status="paused", paused_for_commit=for_commit)
            c = await self._save_state(attrs.evolve(c, state=state))
            self._emit(c, "pause")

    async def unpause(self, ref: str) -> None:
        """Thaw the container. @raise Conflict: not paused."""
        c = self.resolve(ref)
        async with self._lock(c.id):
            c = self.resolve(c.id)
            if c.state.status != "paused":
                raise Conflict(f"Container {c.id} is not paused")
            try:
                await self.runtime.resume(c.id, runtime=self.oci_runtime(c))
            except RuntimeFailed as e:
                raise SystemError_(f"Cannot unpause container {c.id}: {e.message}") from e
            state = attrs.evolve(c.state, status="running", paused_for_commit=False)
            c = await self._save_state(attrs.evolve(c, state=state))
            self._emit(c, "unpause")

    # --- wait ------------------------------------------------------------------------------------

    def wait(self, ref: str, condition: str = "not-running") -> Deferred[WaitResult]:
        """Resolve now (may raise NotFound), return a Deferred firing when the condition holds.

        C{not-running}: at once if not running, else at the next exit. C{next-exit}: the next
        exit. C{removed}: once the container is gone (with its last exit code).
        @raise InvalidParameter: unknown condition.
        """
        if condition not in ("", "not-running", "next-exit", "removed"):
            raise InvalidParameter(f'invalid condition: "{condition}"')
        c = self.resolve(ref)
        d: Deferred[WaitResult] = Deferred()
        if condition == "removed":
            self._removed_waiters.setdefault(c.id, []).append(d)
            return d
        if (
            condition in ("", "not-running")
            and not c.state.running
            and c.state.status != "restarting"
        ):
            err = c.state.error or None
            return succeed(WaitResult(c.state.exit_code, err))
        self._exit_waiters.setdefault(c.id, []).append(d)
        return d

    # --- remove / rename / update / prune --------------------------------------------------------

    async def remove(
        self, ref: str, force: bool = False, volumes: bool = False, _code: int | None = None
    ) -> None:
        """C{docker rm}: refuse a running container unless forced; release everything.

        @raise Conflict: running (or paused) without force, or already being removed.
        """
        c = self.resolve(ref)
        cid_ = c.id
        async with self._lock(cid_):
            cur = self._cache.get(cid_)
            if cur is None:
                raise no_such_container(ref)
            c = cur
            if c.state.status == "removing":
                raise Conflict(f"removal of container {c.id[:12]} is already in progress")
            if c.state.status == "restarting" and not force:
                raise Conflict(
                    f'cannot remove container "{c.name}": container is restarting: stop the container before removing or force remove'
                )
            if c.state.running and not force:
                if c.state.status == "paused":
                    raise Conflict(
                        f'cannot remove container "{c.name}": container is paused and must be unpaused first'
                    )
                raise Conflict(
                    f'cannot remove container "{c.name}": container is running: stop the container before removing or force remove'
                )
            self._cancel_restart(c.id)
            if c.state.running:
                c = await self._save_state(
                    attrs.evolve(c, state=attrs.evolve(c.state, manually_stopped=True))
                )
                self._emit(c, "kill", signal=str(int(_signal.SIGKILL)))
                await self._kill(c, _signal.SIGKILL)
                if c.state.status == "paused":
                    await self._resume_quiet(c.id)
                await self._wait_exit(c.id, 30.0)
                c = self._cache.get(c.id, c)
            prev = c.state.status
            c = await self._save_state(
                attrs.evolve(c, state=attrs.evolve(c.state, status="removing"))
            )
            try:
                try:
                    await self.runtime.delete(c.id, force=True, runtime=self.oci_runtime(c))
                except RuntimeFailed:  # the runtime no longer knows it: nothing to delete there
                    pass
                for ok, failure in await _settle(
                    self._networks.release(c.id), self._images.remove_rw_layer(c.id)
                ):
                    if not ok:
                        failure.raiseException()
                # The saved mounts tell the volume area whether there are uses to forget; a
                # create still under way has not saved them yet.
                final = None if c.extra.get(CREATING) else c.mounts
                await self._volumes.release(c.id, volumes, final)
                await self._repo.remove(c.id)
            except BaseException:
                await self._save_state(attrs.evolve(c, state=attrs.evolve(c.state, status=prev)))
                raise
            self._cache.pop(c.id, None)
            self._specs.forget(c.id)
            self._backoff.pop(c.id, None)
            self._unwatch_log(c.id)
            # a log stopped by the free-space reserve (maybe by a daemon killed since) would
            # survive the removal of its directory
            await self.log_space.untrack(c.id, self._log_path(c))
            await self._blocking.run(_delete_bundle, self.bundle_dir(c.id))
            self._emit(c, "destroy")
            for gone in self.on_gone:
                gone(c.id)
            self._wake_log_followers(c.id)
            code = c.state.exit_code if _code is None else _code
            for d in self._removed_waiters.pop(c.id, []) + self._exit_waiters.pop(c.id, []):
                if not d.called:
                    d.callback(WaitResult(code))
            if cid_ not in self._cache:
                self._locks.pop(cid_, None)

    async def prune(self, until_nano: int | None, labels: Sequence[str]) -> PruneResult:
        """Remove every stopped container (optionally older than C{until}, matching labels)."""
        deleted: list[str] = []
        reclaimed = 0
        for c in list(self._cache.values()):
            if c.state.running or c.state.status in ("restarting", "removing"):
                continue
            if until_nano is not None and c.created_nano >= until_nano:
                continue
            if not labels_match(c.config.get("Labels") or {}, labels):
                continue
            # dockerd counts the writable layer, measured before the removal
            rw, _ = await self.sizes(c)
            try:
                await self.remove(c.id)
            except PydError as e:
                log.warn("prune: {cid}: {err}", cid=c.id, err=e)
                continue
            deleted.append(c.id)
            reclaimed += max(rw, 0)
        return PruneResult(tuple(deleted), reclaimed)


def _runtime_record(rt: OciRuntime | None) -> dict[str, Any] | None:
    """What a run keeps of its runtime (L{ContainerBase.oci_runtime} reads it back)."""
    if rt is None:
        return None
    return {"name": rt.name, "path": rt.path, "root": rt.root, "args": list(rt.args)}


def _staged_names(requested: Sequence[MountSpec], prepared: Sequence[MountSpec]) -> dict[str, str]:
    """A staging point (a mount opened by descriptor) -> the source the client named, for the
    runtime's error messages (the staging area is the daemon's, not the client's)."""
    names: dict[str, str] = {}
    for want, got in zip(requested, prepared, strict=False):
        if got.source != want.source:
            names[got.source] = (
                want.source if want.type == "bind" else posixpath.join(want.source, want.subpath)
            )
    return names


def _delete_bundle(bundle: str) -> None:
    """Unmount the container's /dev/shm and delete its bundle, in one io round trip."""
    unmount_shm(os.path.join(bundle, "shm"))
    remove_tree(bundle)
