"""Exec sessions through conmon's exec mode (layer: drivers).

RUNTIME.md 2.2, as podman drives it: write the OCI C{process} object to C{<dir>/process.json},
then spawn C{conmon --api-version 1 -e --exec-process-spec ... -c <container> -u <exec id>
-b <dir>} with a sync pipe (fd 3), a start pipe (fd 4) and, when attaching, an attach pipe (fd 5)
and C{--exec-attach}. conmon writes C{{"data": 0}} on the attach pipe once C{<dir>/attach}
listens; the caller connects, then a second byte on the start pipe lets C{crun exec} run. The sync
pipe then carries C{{"data": <pid>}} and, when the process ends, C{{"data": <exit code>}}. A
failed exec sends a single C{{"data": -1, "message": ...}}.

The conmon monitor double-forks and outlives pyd, like a container's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorProcess
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from pyd.core.seams import Blocking
from pyd.drivers.runtime.conmon import scrub_host_paths, strip_runtime_message
from pyd.drivers.runtime.oci import OciRuntime

log = Logger()
# What the sync pipe is taken to say when conmon exits without writing to it.
LOST = "conmon exited without a reply"
# crun's log in an exec's directory (L{_runtime_log_args}).
RUNTIME_LOG = "runtime.log"


class ExecFailed(Exception):
    """The runtime could not start the process; C{message} is its explanation."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@attrs.frozen
class ExecSpec:
    """One exec, fully resolved by the engine.

    C{process} is the OCI process object (args, env, cwd, user, capabilities...).
    C{exec_dir} holds process.json, the pid file and the attach socket; keep it short (the attach
    socket path must fit in 108 bytes, or the caller connects through C{/proc/self/fd}).
    """

    container_id: str
    exec_id: str
    exec_dir: str
    process: dict[str, Any]
    terminal: bool = False
    stdin: bool = False
    attach: bool = True
    runtime: OciRuntime | None = None  # the container's runtime (None: the driver's crun)


@attrs.frozen
class ExecStarted:
    """A running exec: its host pid and a Deferred firing with its exit code."""

    pid: int
    exit_code: Deferred[int]
    attach_path: str


class _ExecProtocol(ProcessProtocol):
    """Reads conmon's sync (3) and attach (5) pipes; writes the start pipe (4)."""

    def __init__(self) -> None:
        self._sync_buf = b""
        self._attach_buf = b""
        self.attach_ready: Deferred[dict[str, Any]] = Deferred()
        self.pid: Deferred[dict[str, Any]] = Deferred()
        self.exit: Deferred[dict[str, Any]] = Deferred()

    def start(self) -> None:
        """One byte on the start pipe."""
        assert self.transport is not None
        self.transport.writeToChild(4, b"\0")

    def close_start(self) -> None:
        """No more start messages."""
        assert self.transport is not None
        self.transport.closeChildFD(4)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == 3:
            self._sync_buf += data
            while b"\n" in self._sync_buf:
                line, _, self._sync_buf = self._sync_buf.partition(b"\n")
                self._sync_line(line)
        elif childFD == 5:
            self._attach_buf += data
            if b"\n" in self._attach_buf and not self.attach_ready.called:
                line = self._attach_buf.partition(b"\n")[0]
                self.attach_ready.callback(_parse(line))

    def _sync_line(self, line: bytes) -> None:
        if not line.strip():
            return
        msg = _parse(line)
        if not self.pid.called:
            self.pid.callback(msg)
            if int(msg.get("data", -1)) < 0 and not self.exit.called:
                self.exit.callback(msg)
        elif not self.exit.called:
            self.exit.callback(msg)

    def childConnectionLost(self, childFD: int) -> None:
        lost = {"data": -1, "message": LOST}
        if childFD == 3:
            if self._sync_buf.strip():
                self._sync_line(self._sync_buf)
                self._sync_buf = b""
            for d in (self.pid, self.exit):
                if not d.called:
                    d.callback(lost)
        elif childFD == 5 and not self.attach_ready.called:
            self.attach_ready.callback(lost)

    def processEnded(self, reason: Failure) -> None:
        lost = {"data": -1, "message": LOST}
        for d in (self.attach_ready, self.pid, self.exit):
            if not d.called:
                d.callback(lost)


def _runtime_log_args(rt: OciRuntime, exec_dir: str) -> list[str]:
    """conmon's C{--runtime-arg}s that make crun log its errors to the exec's directory (with a
    terminal they reach neither the sync pipe nor conmon's stderr); none for other runtimes."""
    if os.path.basename(rt.path) != "crun":
        return []
    return ["--runtime-arg", f"--log=file:{os.path.join(exec_dir, RUNTIME_LOG)}"]


def _parse(line: bytes) -> dict[str, Any]:
    try:
        value = json.loads(line.decode("utf-8", "replace"))
    except ValueError:
        return {"data": -1, "message": f"conmon sent {line!r}"}
    return value if isinstance(value, dict) else {"data": -1, "message": f"conmon sent {line!r}"}


class ConmonExecDriver:
    """Starts exec sessions with conmon and the container's runtime (its state root)."""

    def __init__(
        self,
        reactor: IReactorProcess,
        blocking: Blocking,
        conmon: str = "/usr/bin/conmon",
        crun: str = "/usr/bin/crun",
        crun_root: str = "/run/pyd/crun",
        host_roots: Mapping[str, str] | None = None,
    ) -> None:
        self._reactor = reactor
        # the daemon's roots (-> labels) never shown in a runtime error (scrub_host_paths)
        self._host_roots = dict(host_roots or {})
        self._blocking = blocking
        self.conmon = conmon
        self.crun = crun
        self.crun_root = crun_root
        self.default = OciRuntime("crun", crun, crun_root)

    def argv(self, spec: ExecSpec) -> list[str]:
        """conmon's command line for C{spec}."""
        d = spec.exec_dir
        argv = [
            self.conmon,
            "--api-version", "1",
            "-c", spec.container_id,
            "-u", spec.exec_id,
            "-n", spec.exec_id,
            *(spec.runtime or self.default).conmon_args(),
            *_runtime_log_args(spec.runtime or self.default, d),
            "-b", d,
            "-p", os.path.join(d, "pid"),
            "-P", os.path.join(d, "conmon.pid"),
            "-l", "none",
            "--exit-dir", os.path.join(d, "exits"),
            "--full-attach",
            "-e",
            "--exec-process-spec", os.path.join(d, "process.json"),
            "--log-level", "error",
        ]  # fmt: skip
        if spec.attach:
            argv.append("--exec-attach")
        if spec.terminal:
            argv.append("-t")
        if spec.stdin:
            argv.append("-i")
        return argv

    async def start(
        self,
        spec: ExecSpec,
        on_attach: Callable[[str], Awaitable[None]] | None = None,
    ) -> ExecStarted:
        """Run the exec; with C{spec.attach}, call C{on_attach(socket path)} before it starts.

        C{on_attach} must connect to the socket (no output is produced before it returns).

        @raise ExecFailed: conmon or the runtime refused (e.g. executable not found).
        """
        d = spec.exec_dir

        def prepare() -> int:
            os.makedirs(os.path.join(d, "exits"), mode=0o700, exist_ok=True)
            tmp = os.path.join(d, "process.json.tmp")
            with open(tmp, "w") as f:
                json.dump(spec.process, f)
            os.replace(tmp, os.path.join(d, "process.json"))
            return os.open(
                os.path.join(d, "conmon.stderr"),
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                0o600,
            )

        err_fd = await self._blocking.run(prepare)
        null_fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        env = {
            "PATH": os.environ.get(
                "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            ),
            "_OCI_SYNCPIPE": "3",
            "_OCI_STARTPIPE": "4",
        }
        fds: dict[int, Any] = {0: null_fd, 1: null_fd, 2: err_fd, 3: "r", 4: "w"}
        if spec.attach:
            env["_OCI_ATTACHPIPE"] = "5"
            fds[5] = "r"
        proto = _ExecProtocol()
        try:
            self._reactor.spawnProcess(
                proto, self.conmon, self.argv(spec), env=env, path=d, childFDs=fds
            )
        finally:
            os.close(null_fd)
            os.close(err_fd)
        attach_path = os.path.join(d, "attach")
        proto.start()
        if spec.attach:
            ready = await proto.attach_ready
            if int(ready.get("data", -1)) < 0:
                proto.close_start()
                raise ExecFailed(await self._error(ready, d))
            if on_attach is not None:
                try:
                    await on_attach(attach_path)
                except BaseException:
                    proto.close_start()  # conmon's child sees EOF and gives up
                    raise
            proto.start()
        proto.close_start()
        first = await proto.pid
        pid = int(first.get("data", -1))
        if pid <= 0:
            raise ExecFailed(await self._error(first, d))

        exit_code: Deferred[int] = Deferred()

        def on_exit(msg: dict[str, Any]) -> None:
            code = int(msg.get("data", -1))
            if code < 0 and msg.get("message"):
                log.info(
                    "exec {exec_id} ended: {message}", exec_id=spec.exec_id, message=msg["message"]
                )
            exit_code.callback(code if code >= 0 else 126)

        proto.exit.addCallback(on_exit)
        return ExecStarted(pid=pid, exit_code=exit_code, attach_path=attach_path)

    async def _error(self, msg: dict[str, Any], d: str) -> str:
        text = str(msg.get("message") or "")
        if not text or text == LOST:

            def read(name: str) -> str:
                try:
                    with open(os.path.join(d, name), errors="replace") as f:
                        return f.read()[-2000:]
                except OSError:
                    return ""

            # With a terminal conmon reports no runtime error (it exits without a reply): the
            # runtime's own log has it (its last line: the error that ended the exec).
            logged = [
                ln
                for ln in (await self._blocking.run(read, RUNTIME_LOG)).splitlines()
                if ln.strip()
            ]
            text = (
                (logged[-1] if logged else "")
                or await self._blocking.run(read, "conmon.stderr")
                or text
                or "exec failed"
            )
        return scrub_host_paths(strip_runtime_message(text), self._host_roots)

    async def cleanup(self, exec_dir: str) -> None:
        """Remove an exec's directory (after it ended)."""
        import shutil

        await self._blocking.run(shutil.rmtree, exec_dir, True)


def start_exec(driver: ConmonExecDriver, spec: ExecSpec) -> Deferred[ExecStarted]:
    """L{ConmonExecDriver.start} as a Deferred (no attach callback)."""
    return ensureDeferred(driver.start(spec))
