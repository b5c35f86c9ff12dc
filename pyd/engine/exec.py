"""Exec sessions: C{docker exec} (layer: engine).

Sessions live in memory, as in dockerd (they do not survive a daemon restart). Create checks the
container is running; start builds the OCI process from the container's own (environment,
capabilities, rlimits...) with the exec's command, environment, working directory, user and TTY,
and runs it through conmon (L{pyd.drivers.streams.execs}). Events: C{exec_create: <cmd>},
C{exec_start: <cmd>}, C{exec_die} with C{exitCode}.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFDSet
from twisted.logger import Logger

from pyd.core.errors import Conflict, InvalidParameter, NotFound, PydError
from pyd.core.ids import new_id
from pyd.core.seams import Blocking, EventSink
from pyd.drivers.streams.execs import ExecFailed, ExecSpec, ExecStarted
from pyd.engine.containers.runconfig import process_error
from pyd.engine.streams import (
    IOSession,
    StreamTarget,
    StreamTargets,
    parse_detach_keys,
    write_ctl,
)

log = Logger()

# (rootfs, "user[:group]") -> (uid, gid, additional gids, home); blocking.
UserResolver = Callable[[str, str], tuple[int, int, tuple[int, ...], str]]


class ExecDriver(Protocol):
    """What exec needs from the runtime's exec driver (L{pyd.drivers.streams.execs.ConmonExecDriver})."""

    async def start(
        self, spec: ExecSpec, on_attach: Callable[[str], Awaitable[None]] | None = None
    ) -> ExecStarted: ...


@attrs.frozen
class ExecConfig:
    """C{POST /containers/{id}/exec} as the engine needs it."""

    cmd: tuple[str, ...]
    env: tuple[str, ...] = ()
    user: str = ""
    working_dir: str = ""
    tty: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    privileged: bool = False
    detach_keys: str | None = None
    console_size: tuple[int, int] | None = None  # (height, width)


@attrs.define
class ExecSession:
    """One exec instance (mutable: running state, pid, exit code)."""

    id: str
    container_id: str
    config: ExecConfig
    target: StreamTarget
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    exec_dir: str = ""
    started: bool = False
    ended: Deferred[int] = attrs.field(factory=Deferred)
    created: float = attrs.field(factory=time.time)


class ExecError(PydError):
    """The process could not be started (written into the stream, exit code 126)."""


def merge_env(base: Sequence[str], extra: Sequence[str]) -> list[str]:
    """The container's environment with the exec's entries replacing same-named ones."""
    out: dict[str, str] = {}
    for entry in [*base, *extra]:
        key = entry.split("=", 1)[0]
        out[key] = entry
    return list(out.values())


class ExecService:
    """Creates, starts, inspects and resizes exec sessions."""

    def __init__(
        self,
        targets: StreamTargets,
        driver: ExecDriver,
        events: EventSink,
        blocking: Blocking,
        reactor: IReactorFDSet,
        exec_root: str,
        resolve_user: UserResolver | None = None,
    ) -> None:
        self._targets = targets
        self._driver = driver
        self._events = events
        self._blocking = blocking
        self._reactor = reactor
        self._root = exec_root
        self._resolve_user = resolve_user
        self._sessions: dict[str, ExecSession] = {}

    # -- create / inspect ----------------------------------------------------------------------
    async def create(self, ref: str, config: ExecConfig) -> ExecSession:
        """Register an exec in a running container.

        @raise NotFound: no such container.
        @raise Conflict: not running, paused or restarting (dockerd's texts).
        @raise InvalidParameter: no command, bad detach keys.
        """
        target = await self._targets.stream_target(ref)
        _check_active(target, ref)
        if not config.cmd:
            raise InvalidParameter("No exec command specified")
        # dockerd 28 answers this with a 500 (daemon/exec.go, a plain error); the keys are the
        # client's, so pyd says the same text with a 400.
        parse_detach_keys(config.detach_keys or "", "escape")
        session = ExecSession(id=new_id(), container_id=target.id, config=config, target=target)
        self._sessions[session.id] = session
        await self._events.emit(
            "container",
            "exec_create: " + " ".join(config.cmd),
            target.id,
            target.event_attributes(execID=session.id),
        )
        return session

    def get(self, exec_id: str) -> ExecSession:
        """The session. @raise NotFound: C{No such exec instance: <id>}."""
        session = self._sessions.get(exec_id)
        if session is None:
            # dockerd also accepts unique prefixes here? It does not: exact ids only.
            raise NotFound(f"No such exec instance: {exec_id}")
        return session

    def container_execs(self, container_id: str) -> list[str]:
        """Ids of the container's exec sessions (C{ExecIDs} in container inspect)."""
        return [s.id for s in self._sessions.values() if s.container_id == container_id]

    def container_gone(self, container_id: str) -> None:
        """The container stopped or was removed: forget its exec sessions, as dockerd's
        C{Cleanup} unregisters a container's execs when it exits (an inspect of one then says
        C{No such exec instance}). Without this every exec ever run stayed in memory."""
        for exec_id in self.container_execs(container_id):
            del self._sessions[exec_id]

    # -- start -------------------------------------------------------------------------------
    def check_startable(self, exec_id: str) -> ExecSession:
        """Refuse a second start (dockerd's texts) before the API hijacks the connection."""
        session = self.get(exec_id)
        if session.running:
            raise Conflict(f"Error: Exec command {exec_id} is already running")
        if session.exit_code is not None or session.started:
            raise Conflict(f"Error: Exec command {exec_id} has already run")
        return session

    def new_io(self, session: ExecSession, tty: bool | None = None) -> IOSession:
        """The I/O session for an attached start (stdin closes at the client's EOF); only a
        TTY's input is scanned for the detach keys (moby's CopyStreams). Typing them ends the
        stream (the process keeps running) and logs C{exec_detach}."""
        c = session.config
        use_tty = c.tty if tty is None else tty
        io = IOSession(
            want_stdin=c.attach_stdin,
            want_stdout=c.attach_stdout,
            want_stderr=c.attach_stderr,
            detach_keys=parse_detach_keys(c.detach_keys or "", "escape") if use_tty else b"",
            close_stdin_on_eof=True,
        )
        io.done.addCallback(self._detach_event, io, session)
        return io

    def _detach_event(self, _: None, io: IOSession, session: ExecSession) -> None:
        if io.detached:
            self._events.emit(
                "container",
                "exec_detach",
                session.container_id,
                session.target.event_attributes(execID=session.id),
            )

    async def start(
        self,
        exec_id: str,
        io: IOSession | None,
        tty: bool | None = None,
        console_size: tuple[int, int] | None = None,
    ) -> ExecSession:
        """Start the process; with C{io}, join it to the session before the process runs.

        Returns once the process runs (or failed). C{session.ended} fires with the exit code.
        With C{io}, the end of its output is held until the exit code is known, so a client that
        inspects the exec after the stream closed sees it.

        @raise ExecError: the runtime refused (message as dockerd words it).
        """
        session = self.check_startable(exec_id)
        session.started = True
        try:
            target = await self._targets.stream_target(session.container_id)
            _check_active(target, session.container_id)
        except PydError:
            session.exit_code = 126
            session.ended.callback(126)
            raise
        c = session.config
        use_tty = c.tty if tty is None else tty
        exec_dir = os.path.join(self._root, session.id)
        session.exec_dir = exec_dir
        try:
            process = await self._blocking.run(
                self._process, target, c, use_tty, console_size or c.console_size
            )
        except PydError as e:
            await self._failed(session, str(e))
            raise ExecError(str(e)) from e
        except Exception as e:
            # never a hung client nor Python's text: the reason goes to the log
            log.failure("exec {exec_id}: preparing the process", exec_id=session.id)
            message = "cannot prepare the exec process"
            await self._failed(session, message)
            raise ExecError(message) from e

        async def on_attach(path: str) -> None:
            assert io is not None
            io.connect(self._reactor, path)

        spec = ExecSpec(
            container_id=target.id,
            exec_id=session.id,
            exec_dir=exec_dir,
            process=process,
            terminal=use_tty,
            stdin=c.attach_stdin and io is not None,
            attach=io is not None,
            runtime=target.runtime,
        )
        if io is not None:
            io.hold_end = Deferred()
        try:
            started = await self._driver.start(spec, on_attach if io is not None else None)
        except ExecFailed as e:
            # dockerd shows runc's words for a command that cannot run (crun words them its way)
            known = process_error(c.cmd[0] if c.cmd else "", e.message)
            reason = known[0] if known is not None else e.message
            message = f"OCI runtime exec failed: exec failed: {reason}"
            await self._failed(session, message)
            if io is not None and io.hold_end is not None:
                io.hold_end.callback(None)
            raise ExecError(message) from e
        session.pid = started.pid
        session.running = True
        await self._events.emit(
            "container",
            "exec_start: " + " ".join(c.cmd),
            target.id,
            target.event_attributes(execID=session.id),
        )
        started.exit_code.addCallback(self._exited, session, io)
        return session

    def _exited(self, code: int, session: ExecSession, io: IOSession | None) -> None:
        session.exit_code = code
        session.running = False
        session.pid = 0
        if io is not None and io.hold_end is not None and not io.hold_end.called:
            io.hold_end.callback(None)
        self._events.emit(
            "container",
            "exec_die",
            session.container_id,
            session.target.event_attributes(execID=session.id, exitCode=str(code)),
        )
        session.ended.callback(code)
        self._blocking.run(_rmtree, session.exec_dir).addErrback(
            lambda f: log.failure("removing exec dir", f)
        )

    async def _failed(self, session: ExecSession, message: str) -> None:
        session.exit_code = 126
        session.running = False
        session.ended.callback(126)
        log.info("exec {exec_id} failed: {message}", exec_id=session.id, message=message)
        await self._blocking.run(_rmtree, session.exec_dir)

    def _process(
        self,
        target: StreamTarget,
        c: ExecConfig,
        tty: bool,
        console_size: tuple[int, int] | None,
    ) -> dict[str, Any]:
        """The OCI process: the container's, with the exec's settings (blocking: reads files)."""
        try:
            with open(os.path.join(target.bundle, "config.json")) as f:
                base = dict(json.load(f).get("process") or {})
        except (OSError, ValueError) as e:
            raise ExecError(f"cannot read the container's runtime spec: {e}") from e
        os.makedirs(os.path.join(self._root), mode=0o700, exist_ok=True)
        process = dict(base)
        process["args"] = list(c.cmd)
        process["terminal"] = tty
        process["env"] = merge_env(base.get("env") or [], c.env)
        if c.working_dir:
            process["cwd"] = c.working_dir
        if c.user:
            uid, gid, extra, home = self._user(target, c.user)
            process["user"] = {"uid": uid, "gid": gid}
            if extra:
                process["user"]["additionalGids"] = list(extra)
            if not any(e.startswith("HOME=") for e in c.env):
                process["env"] = merge_env(process["env"], [f"HOME={home}"])
        if tty and console_size:
            process["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
        else:
            process.pop("consoleSize", None)
        if c.privileged:
            caps = base.get("capabilities") or {}
            full = sorted(
                {*caps.get("bounding", []), *caps.get("permitted", []), *_bounding_caps()}
            )
            process["capabilities"] = {k: full for k in ("bounding", "effective", "permitted")}
        return process

    def _user(self, target: StreamTarget, user: str) -> tuple[int, int, Sequence[int], str]:
        """C{exec -u}'s user, resolved against the container's own files (blocking).

        @raise InvalidParameter: unknown user, or the container's files cannot be read: its root
            filesystem was not mounted again after a daemon restart. Running the process as
            the container's default user instead (root, as a rule) would ignore C{-u} silently.
        """
        if self._resolve_user is None or not target.rootfs:
            name = user.partition(":")[0] or "0"
            raise InvalidParameter(
                f"unable to find user {name}: no matching entries in passwd file "
                "(the container's root filesystem is not mounted)"
            )
        return self._resolve_user(target.rootfs, user)

    # -- resize -------------------------------------------------------------------------------
    async def resize(self, exec_id: str, height: int, width: int) -> None:
        """Resize the exec's TTY through its conmon's ctl FIFO (a no-op once it ended: the CLI
        resizes right after start, and a quick process may already be gone).

        @raise NotFound: unknown exec.
        """
        session = self.get(exec_id)
        if session.running and session.exec_dir:
            await self._blocking.run(
                write_ctl, os.path.join(session.exec_dir, "ctl"), height, width
            )


def _check_active(target: StreamTarget, ref: str) -> None:
    if target.status not in ("running", "paused", "restarting"):
        raise Conflict(f"container {target.id} is not running")
    if target.status == "paused":
        raise Conflict(f"Container {ref} is paused, unpause the container before exec")
    if target.status == "restarting":
        raise Conflict(f"Container {target.id} is restarting, wait until the container is running")


def _rmtree(path: str) -> None:
    import shutil

    if path:
        shutil.rmtree(path, ignore_errors=True)


_CAP_NAMES = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
]


def _bounding_caps() -> list[str]:
    """The capabilities in this daemon's bounding set (C{--privileged} may not exceed it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    mask = int(line.split()[1], 16)
                    return ["CAP_" + name for i, name in enumerate(_CAP_NAMES) if mask & (1 << i)]
    except OSError:  # no /proc status: no capabilities to report
        pass
    return []
