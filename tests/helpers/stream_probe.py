"""Drive pyd.drivers.streams against a bare conmon container under a real reactor.

Run as C{python -m tests.helpers.stream_probe SCENARIO CONTAINER_JSON}; prints one JSON object
with what happened. tests/integration/test_stream_drivers.py starts the container (synchronous
helper) and asserts on this output, so the test process never runs a reactor.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorFDSet
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater, react
from twisted.python.failure import Failure

from pyd.core.seams import InlineBlocking, IProcessReactor
from pyd.drivers.streams.attach import connect_attach
from pyd.drivers.streams.execs import ConmonExecDriver, ExecFailed, ExecSpec


class Collect(Protocol):
    def __init__(self) -> None:
        self.packets: list[tuple[int, bytes]] = []
        self.done: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.packets.append((data[0], data[1:]))

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]  # Twisted defaults reason to connectionDone; None stands for it here
        if not self.done.called:
            self.done.callback(None)

    def text(self, pipe: int | None = None) -> str:
        return b"".join(d for p, d in self.packets if pipe is None or p == pipe).decode()


async def attach_stdin(reactor: IProcessReactor, c: dict[str, Any]) -> dict[str, Any]:
    proto = Collect()
    conn = connect_attach(reactor, c["attach"], proto)
    conn.write(b"line-one\n")
    await deferLater(reactor, 0.2, lambda: None)
    conn.write(b"x" * 70000 + b"\n")
    conn.loseWriteConnection()
    await proto.done
    return {"stdout": proto.text(2), "stderr": proto.text(3)}


def process(c: dict[str, Any], args: list[str], **kw: Any) -> dict[str, Any]:
    with open(os.path.join(c["bundle"], "config.json")) as f:
        base = json.load(f)["process"]
    p = dict(base)
    p["args"] = args
    p.update(kw)
    return p


async def exec_cases(reactor: IProcessReactor, c: dict[str, Any]) -> dict[str, Any]:
    drv = ConmonExecDriver(reactor, InlineBlocking(), crun_root=c["crun_root"])
    out: dict[str, Any] = {}
    # 1. attached, stdin, stdout + stderr, exit code
    proto = Collect()
    conns: list[Any] = []

    async def on_attach(path: str) -> None:
        conns.append(connect_attach(reactor, path, proto))

    d = os.path.join(c["base"], "e1")
    os.makedirs(d)
    started = await drv.start(
        ExecSpec(c["id"], "e1" * 32, d,
                 process(c, ["sh", "-c", "read x; echo got $x; echo oops >&2; exit 6"]),
                 stdin=True),
        on_attach,
    )  # fmt: skip
    conns[0].write(b"hello-exec\n")
    conns[0].loseWriteConnection()
    await proto.done
    out["e1"] = {"stdout": proto.text(2), "stderr": proto.text(3),
                 "code": await started.exit_code, "pid": started.pid}  # fmt: skip
    # 2. a command that does not exist
    d = os.path.join(c["base"], "e2")
    os.makedirs(d)
    try:
        await drv.start(ExecSpec(c["id"], "e2" * 32, d, process(c, ["/bin/nonexistent"])),
                        lambda p: ensureDeferred(_connect(reactor, p)))  # fmt: skip
        out["e2"] = "started?"
    except ExecFailed as e:
        out["e2"] = e.message
    # 3. tty exec with env/cwd/user
    proto3 = Collect()
    conns3: list[Any] = []

    async def on_attach3(path: str) -> None:
        conns3.append(connect_attach(reactor, path, proto3))

    d = os.path.join(c["base"], "e3")
    os.makedirs(d)
    started3 = await drv.start(
        ExecSpec(c["id"], "e3" * 32, d,
                 process(c, ["sh", "-c", "test -t 0 && echo tty; echo $FOO; pwd; id -u; exit 3"],
                         terminal=True, cwd="/tmp", env=["FOO=bar", "PATH=/bin"],
                         user={"uid": 1000, "gid": 1000}),
                 terminal=True, stdin=True),
        on_attach3,
    )  # fmt: skip
    await proto3.done
    out["e3"] = {"out": proto3.text(), "code": await started3.exit_code}
    # 4. detached: no attach socket, exit code still reported
    d = os.path.join(c["base"], "e4")
    os.makedirs(d)
    started4 = await drv.start(ExecSpec(c["id"], "e4" * 32, d, process(c, ["sh", "-c", "exit 4"]),
                                        attach=False))  # fmt: skip
    out["e4"] = {"code": await started4.exit_code}
    return out


async def _connect(reactor: IReactorFDSet, path: str) -> None:
    connect_attach(reactor, path, Collect())


SCENARIOS = {"attach_stdin": attach_stdin, "exec": exec_cases}


def main() -> None:
    scenario, cfg = sys.argv[1], json.loads(sys.argv[2])

    async def run(reactor: IProcessReactor) -> None:
        result = await SCENARIOS[scenario](reactor, cfg)
        print(json.dumps(result), flush=True)

    react(lambda r: ensureDeferred(run(r)))


if __name__ == "__main__":
    main()
