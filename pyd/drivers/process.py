"""The only subprocess seam (layer: drivers).

C{ProcessRunner.run(argv, ...)} spawns a program with C{reactor.spawnProcess} and fires with a
L{ProcessResult} once it exits. Tests substitute L{pyd.drivers.process.ScriptedRunner}-like fakes
(see tests/fakes) that check the expected argv and return canned results.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IReactorProcess
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure


@attrs.frozen
class ProcessResult:
    """What a finished program left: exit code (or -signal), stdout, stderr."""

    argv: tuple[str, ...]
    rc: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        """Whether it exited 0."""
        return self.rc == 0


class ProcessFailed(Exception):
    """A program exited non-zero where success was required."""

    def __init__(self, result: ProcessResult) -> None:
        self.result = result
        err = result.stderr.decode("utf-8", "replace").strip()
        super().__init__(f"{result.argv[0]} exited {result.rc}: {err}")


class ProcessRunner(Protocol):
    """Runs programs; the seam drivers depend on."""

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
        """Spawn C{argv}; fire with its L{ProcessResult} (or fail with L{ProcessFailed} if C{check})."""
        ...


class _Collect(ProcessProtocol):
    def __init__(self, argv: tuple[str, ...], stdin: bytes | None, check: bool) -> None:
        self.argv = argv
        self.stdin = stdin
        self.check = check
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.done: Deferred[ProcessResult] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        if self.stdin is not None:
            self.transport.write(self.stdin)
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:
        self.err.append(data)

    def processEnded(self, reason: Failure) -> None:
        rc = 0
        if reason.check(ProcessTerminated):
            value: Any = reason.value
            rc = value.exitCode if value.exitCode is not None else -(value.signal or 0)
        elif not reason.check(ProcessDone):
            rc = -1
        result = ProcessResult(self.argv, rc, b"".join(self.out), b"".join(self.err))
        if self.check and rc != 0:
            self.done.errback(ProcessFailed(result))
        else:
            self.done.callback(result)


class ReactorProcessRunner:
    """L{ProcessRunner} over C{reactor.spawnProcess}."""

    def __init__(self, reactor: IReactorProcess, base_env: Mapping[str, str] | None = None) -> None:
        self._reactor = reactor
        self._env = dict(base_env if base_env is not None else os.environ)

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
        """Spawn C{argv} (C{argv[0]} looked up on PATH when not absolute)."""
        args = tuple(argv)
        exe = args[0]
        if not os.path.isabs(exe):
            exe = _which(exe, (env or self._env).get("PATH", os.defpath))
        proto = _Collect(args, stdin, check)
        fds: dict[int, Any] = {0: "w", 1: "r", 2: "r"}
        if child_fds:
            fds.update(child_fds)
        full_env = dict(self._env)
        if env:
            full_env.update(env)
        self._reactor.spawnProcess(proto, exe, args, env=full_env, path=cwd, childFDs=fds)
        return proto.done


def _which(name: str, path: str) -> str:
    for d in path.split(os.pathsep):
        candidate = os.path.join(d, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return name
