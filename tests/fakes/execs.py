"""A fake of the exec seam (L{pyd.engine.exec.ExecDriver}) over L{tests.fakes.runtime.FakeRuntime}.

It behaves as L{pyd.drivers.streams.execs.ConmonExecDriver} does where the engine can tell
(tests/contract/test_exec.py runs the same suite against both): an exec runs only in a running
container; a program that is not there fails to start with the runtime's text; the attach
socket is handed to C{on_attach} before the process runs; the exit code comes later, from the
process. Programs are Python functions of their argv (C{programs}); C{sh -c "exit N"},
C{true} and C{false} are known.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Awaitable, Callable

from twisted.internet.defer import Deferred, succeed

from pyd.drivers.streams.execs import ExecFailed, ExecSpec, ExecStarted
from pyd.engine.exec import ExecDriver
from tests.fakes.runtime import FakeRuntime

Program = Callable[[list[str]], int]


def _sh(argv: list[str]) -> int:
    """C{sh -c "exit N"} (and C{sh -c true}): what the contract's execs run."""
    if len(argv) == 3 and argv[1] == "-c":
        words = shlex.split(argv[2])
        if words == ["true"]:
            return 0
        if len(words) == 2 and words[0] == "exit" and words[1].isdigit():
            return int(words[1]) % 256
    return 2  # sh's status for what it cannot run


class FakeExecDriver:
    """Execs in the fake runtime's containers; C{started} records each spec."""

    def __init__(self, runtime: FakeRuntime) -> None:
        self.runtime = runtime
        self.programs: dict[str, Program] = {
            "sh": _sh,
            "true": lambda _argv: 0,
            "false": lambda _argv: 1,
        }
        self.started: list[ExecSpec] = []
        self.next_pid = 5000

    async def start(
        self, spec: ExecSpec, on_attach: Callable[[str], Awaitable[None]] | None = None
    ) -> ExecStarted:
        state = await self.runtime.state(spec.container_id)
        if state is None or state["status"] != "running":
            raise ExecFailed(f"container {spec.container_id} is not running")
        argv = [str(a) for a in spec.process.get("args") or []]
        name = argv[0] if argv else ""
        program = self.programs.get(os.path.basename(name))
        if program is None:
            # crun's text, as the real driver passes it on (its "crun: " prefix stripped)
            raise ExecFailed(
                f"executable file `{name}` not found in $PATH: No such file or directory"
            )
        attach_path = os.path.join(spec.exec_dir, "attach")
        if spec.attach and on_attach is not None:
            await on_attach(attach_path)
        self.started.append(spec)
        self.next_pid += 1
        code: Deferred[int] = succeed(program(argv))
        return ExecStarted(pid=self.next_pid, exit_code=code, attach_path=attach_path)


# mypy checks the fake against the seam it stands in for
_IS_EXEC_DRIVER: type[ExecDriver] = FakeExecDriver
