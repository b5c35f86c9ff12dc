"""pyd's sealed helpers run by a fork server (layer: drivers).

L{ForkServerRunner} is a L{ProcessRunner} for the command lines of L{sealed.helper_argv}: a
helper of one of its modules (the C{docker cp} view, the layer untar) is forked from one
long-lived server process that has imported them (L{pyd.drivers.forkserver}) instead of
starting an interpreter per call; what the helper does, and the result the caller sees (exit
status, stdout, stderr), are the same. Anything else (another program, input on stdin, an
environment or working directory of its own, a child fd that is not a descriptor), and any
call the server cannot take (not started, gone, its socket full), goes to the wrapped runner.

The server is started on first use and again after it died; it ends when the daemon closes
its socket: after L{IDLE_SECONDS} without a helper running (so an idle daemon does not keep
its ~15 MB), on L{stop}, or at the daemon's exit. Closing is race-free: the server serves every
request queued before the end of its socket.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet import abstract, fdesc
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorFDSet, IReactorProcess, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from pyd.drivers import sealed
from pyd.drivers.process import ProcessFailed, ProcessResult, ProcessRunner

log = Logger()

# the helpers the daemon runs through the server
MODULES = ("pyd.drivers.streams.rootview", "pyd.drivers.storage.untar")
# how long the server outlives its last helper
IDLE_SECONDS = 2.0


class _Reader(abstract.FileDescriptor):
    """Reads a pipe to its end; C{done} fires with everything read."""

    def __init__(self, reactor: IReactorFDSet, fd: int) -> None:
        super().__init__(reactor)  # type: ignore[arg-type]  # the reactor's FD slice
        self._fd = fd
        self._chunks: list[bytes] = []
        self.done: Deferred[bytes] = Deferred()
        fdesc.setNonBlocking(fd)
        self.startReading()

    def fileno(self) -> int:
        return self._fd

    def doRead(self) -> Any:
        return fdesc.readFromFD(self._fd, self._chunks.append)

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)
        os.close(self._fd)
        self._fd = -1
        self.done.callback(b"".join(self._chunks))


class _Server(ProcessProtocol):
    """The server process: its output is logged, its end noted."""

    def __init__(self, owner: ForkServerRunner) -> None:
        self._owner = owner
        self.ended: Deferred[None] = Deferred()

    def errReceived(self, data: bytes) -> None:
        log.warn("helper fork server: {text}", text=data.decode("utf-8", "replace").rstrip())

    def processEnded(self, reason: Failure) -> None:
        self._owner._ended(self)
        self.ended.callback(None)


class ForkServerRunner:
    """A L{ProcessRunner}: sealed helpers of L{MODULES} forked from a server, anything else
    through C{fallback}."""

    def __init__(
        self,
        reactor: Any,
        fallback: ProcessRunner,
        python: str = sys.executable,
        modules: Sequence[str] = MODULES,
        idle: float = IDLE_SECONDS,
    ) -> None:
        self._reactor: IReactorProcess = reactor
        self._fds: IReactorFDSet = reactor
        self._clock: IReactorTime = reactor
        self._idle = idle
        self._idle_call: IDelayedCall | None = None
        self._running = 0
        self._fallback = fallback
        self._python = python
        self._modules = tuple(modules)
        self._prefixes = {m: sealed.helper_argv(m) for m in self._modules}
        self._control: socket.socket | None = None
        self._server: _Server | None = None

    def _module_of(self, argv: Sequence[str]) -> str | None:
        for module, prefix in self._prefixes.items():
            if len(argv) >= len(prefix) and list(argv[1 : len(prefix)]) == prefix[1:]:
                return module
        return None

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        check: bool = False,
        child_fds: Mapping[int, Any] | None = None,
    ) -> Deferred[ProcessResult]:
        """Run C{argv}: forked from the server when it is one of its helpers."""
        module = self._module_of(argv)
        fds = dict(child_fds or {})
        if (
            module is None
            or stdin is not None
            or env
            or cwd is not None
            or not all(isinstance(v, int) for v in fds.values())
            or {1, 2} & set(fds)
        ):
            return self._fallback.run(
                argv, stdin=stdin, env=env, cwd=cwd, check=check, child_fds=child_fds
            )
        d = self._submit(tuple(argv), module, list(argv[len(self._prefixes[module]) :]), fds)
        if d is None:
            return self._fallback.run(argv, check=check, child_fds=child_fds)
        if check:

            def checked(result: ProcessResult) -> ProcessResult:
                if result.rc != 0:
                    raise ProcessFailed(result)
                return result

            d.addCallback(checked)
        return d

    def _submit(
        self, argv: tuple[str, ...], module: str, args: list[str], fds: dict[int, int]
    ) -> Deferred[ProcessResult] | None:
        """Send one request; None when the server cannot take it now."""
        control = self._ensure_server()
        if control is None:
            return None
        pipes = [os.pipe2(os.O_CLOEXEC) for _ in range(3)]  # status, stdout, stderr
        header = json.dumps({"module": module, "args": args, "fds": list(fds)}).encode()
        try:
            socket.send_fds(control, [header], [w for _, w in pipes] + list(fds.values()))
        except OSError as e:
            for r, w in pipes:
                os.close(r)
                os.close(w)
            log.info("helper fork server unavailable ({err}): spawning", err=e)
            if not isinstance(e, BlockingIOError):
                self.stop()
            return None
        for _, w in pipes:
            os.close(w)
        readers = [_Reader(self._fds, r) for r, _ in pipes]
        self._running += 1
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        self._idle_call = None

        def result(parts: list[bytes]) -> ProcessResult:
            self._running -= 1
            if not self._running and self._control is not None:
                self._idle_call = self._clock.callLater(self._idle, self.stop)
            status, out, err = parts
            try:
                rc = int(status)
            except ValueError:  # the server died before the child was reaped
                rc = -1
            return ProcessResult(argv, rc, out, err)

        return gatherResults([r.done for r in readers]).addCallback(result)

    def _ensure_server(self) -> socket.socket | None:
        if self._control is not None:
            return self._control
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            argv = sealed.helper_argv("pyd.drivers.forkserver", *self._modules)
            argv[0] = self._python
            self._server = _Server(self)
            self._reactor.spawnProcess(
                self._server,
                argv[0],
                argv,
                env=dict(os.environ),
                childFDs={0: "w", 1: "r", 2: "r", 3: theirs.fileno()},
            )
        except OSError as e:
            ours.close()
            log.warn("cannot start the helper fork server: {err}", err=e)
            return None
        finally:
            theirs.close()
        ours.setblocking(False)
        self._control = ours
        return ours

    def _ended(self, server: _Server) -> None:
        if server is self._server:
            self.stop()

    def stop(self) -> Deferred[None]:
        """Close the server's socket: it exits (the next helper starts a new one). Fires
        once it has."""
        server, self._server = self._server, None
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        self._idle_call = None
        if self._control is not None:
            self._control.close()
            self._control = None
        if server is None or server.ended.called:
            return succeed(None)
        done: Deferred[None] = Deferred()
        server.ended.addBoth(lambda _: done.callback(None))
        return done


_IS_RUNNER: type[ProcessRunner] = ForkServerRunner
