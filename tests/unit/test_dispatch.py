"""The reactor's lean dispatch (pyd/daemon/dispatch.py) on a real epoll reactor of its own:
ready sockets are read, a read that fails loses its connection, an error that escapes one
socket's handling is logged and the other ready sockets of the same wait are still handled."""

from __future__ import annotations

import socket
import unittest
from typing import Any

from twisted.internet.abstract import FileDescriptor
from twisted.internet.epollreactor import EPollReactor
from twisted.logger import globalLogPublisher

from pyd.daemon.dispatch import lean_dispatch


class _Reader(FileDescriptor):
    def __init__(self, reactor: Any, sock: socket.socket, behaviour: str = "read") -> None:
        super().__init__(reactor)
        self.sock = sock
        self.behaviour = behaviour
        self.got = b""
        self.lost: Any = None

    def fileno(self) -> int:
        return self.sock.fileno()

    def doRead(self) -> Any:
        if self.behaviour in ("fail", "lost-raises"):
            raise ValueError("read failed")
        self.got += self.sock.recv(100)
        return None

    def connectionLost(self, reason: Any) -> None:
        self.lost = reason
        if self.behaviour == "lost-raises":
            raise RuntimeError("escaped")
        super().connectionLost(reason)


class LeanDispatchTests(unittest.TestCase):
    def setUp(self) -> None:
        self.reactor = EPollReactor()
        self.assertTrue(lean_dispatch(self.reactor))
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)

    def tearDown(self) -> None:
        globalLogPublisher.removeObserver(self.events.append)
        for a, b in self.pairs:
            a.close()
            b.close()
        self.reactor._poller.close()  # type: ignore[attr-defined]  # the reactor's epoll object
        if self.reactor.waker is not None:  # its self-pipe
            self.reactor.waker.connectionLost(None)  # type: ignore[arg-type]  # closes both ends

    def reader(self, behaviour: str = "read") -> _Reader:
        a, b = socket.socketpair()
        self.pairs.append((a, b))
        r = _Reader(self.reactor, b, behaviour)
        self.reactor.addReader(r)
        a.send(b"hello")
        return r

    def test_ready_sockets_are_read(self) -> None:
        first, second = self.reader(), self.reader()
        self.reactor.doIteration(0)
        self.assertEqual((first.got, second.got), (b"hello", b"hello"))

    def test_failing_read_loses_the_connection(self) -> None:
        """_doReadOrWrite's own handling: the failure becomes the connection's loss."""
        bad = self.reader("fail")
        self.reactor.doIteration(0)
        self.assertIsNotNone(bad.lost)
        self.assertTrue(bad.lost.check(ValueError))
        self.assertNotIn(bad, self.reactor.getReaders())

    def test_escaped_error_is_logged_and_others_handled(self) -> None:
        """An error raised while a failed socket is disconnected escapes _doReadOrWrite: it is
        logged, and the other ready sockets are still handled in the same iteration."""
        self.reader("lost-raises")
        good = self.reader()
        self.reader("lost-raises")
        self.reactor.doIteration(0)
        self.assertEqual(good.got, b"hello")
        failures = [e for e in self.events if "log_failure" in e]
        # both, whichever order the wait reported them in: one did not end the iteration
        self.assertEqual(len(failures), 2)
        self.assertTrue(all(f["log_failure"].check(RuntimeError) for f in failures))

    def test_other_reactors_left_alone(self) -> None:
        from twisted.internet.selectreactor import SelectReactor

        other = SelectReactor()
        try:
            self.assertFalse(lean_dispatch(other))
            self.assertNotIn("doIteration", vars(other))
        finally:
            if other.waker is not None:
                other.waker.connectionLost(None)  # type: ignore[arg-type]  # closes its pipe
