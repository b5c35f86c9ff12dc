"""C{PUT /containers/{id}/archive} through the real root, guard and router (pyd.api.root,
pyd.api.authz, pyd.api.container_streams): the request is processed once its headers are in,
and the route, the role check and the handler's own checks decide on the parsed request before
any byte of the body is handed on; a refused request never reaches the engine."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from pyd.api.authz import Authorizer, Policy
from pyd.api.bodystream import BATCH, StreamedBody
from pyd.api.container_streams import ContainerStreamsRouter
from pyd.api.root import ApiRoot, ApiSite
from pyd.engine.archive import BodyFeed


class _FakeArchive:
    """The engine's C{put}: records its call and feeds the body to a pipe of its own."""

    def __init__(self) -> None:
        self.puts: list[tuple[str, str, Any]] = []
        self.read_end = -1

    async def put(
        self,
        ref: str,
        path: str,
        content: Any,
        no_overwrite_dir_non_dir: bool = False,
        copy_uid_gid: bool = False,
    ) -> None:
        self.puts.append((ref, path, content))
        assert isinstance(content, BodyFeed)
        self.read_end, w = os.pipe()
        await content.feed(w)


class _TlsTransport(StringTransport):
    """A connection whose caller is the policy's default role (TLS without a client
    certificate, L{pyd.api.identity.identify})."""

    def getPeerCertificate(self) -> None:
        return None


class StreamedPutTests(SynchronousTestCase):
    def _channel(self, role: str) -> tuple[Any, _TlsTransport, _FakeArchive]:
        archive = _FakeArchive()
        router = ContainerStreamsRouter(None, archive)  # type: ignore[arg-type]  # fakes
        root = ApiRoot([router], guard=Authorizer(Policy(default_role=role)))
        self.reactor = MemoryReactorClock()
        site = ApiSite(root, reactor=self.reactor)
        ch: Any = site.buildProtocol(None)
        transport = _TlsTransport()
        ch.makeConnection(transport)
        self.addCleanup(self._close, archive)
        return ch, transport, archive

    def _close(self, archive: _FakeArchive) -> None:
        if archive.read_end >= 0:
            os.close(archive.read_end)

    def _put(self, ch: Any, query: str = "path=/tmp") -> None:
        ch.dataReceived(
            f"PUT /v1.41/containers/c1/archive?{query} HTTP/1.1\r\nHost: d\r\n"
            "Content-Length: 300000\r\n\r\n".encode()
        )

    def test_a_viewer_is_refused_before_the_body_and_nothing_reaches_the_engine(self) -> None:
        """The role check refuses on the headers; the body is read and discarded (the
        connection never paused), the engine is never called, and the connection serves its
        next request once the refused one's body is in."""
        ch, transport, archive = self._channel("viewer")
        self._put(ch)
        self.assertIn(b" 403 ", transport.value().split(b"\r\n", 1)[0])
        for _ in range(3):
            ch.dataReceived(b"x" * 100000)
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(archive.puts, [])
        self.assertEqual(ch.requests, [])  # finished once the body was in
        ch.dataReceived(b"GET /v1.41/nothing HTTP/1.1\r\nHost: d\r\n\r\n")
        self.assertEqual(transport.value().count(b"HTTP/1.1 "), 2)

    def test_a_bad_parameter_is_refused_before_the_body(self) -> None:
        """The handler's own check (an empty C{path}) answers dockerd's 400 before any of the
        body is handed on."""
        ch, transport, archive = self._channel("admin")
        self._put(ch, "path=")
        self.assertIn(b" 400 ", transport.value().split(b"\r\n", 1)[0])
        self.assertIn(b"bad parameter: pathcannot be empty", transport.value())
        ch.dataReceived(b"x" * 300000)
        self.assertEqual(archive.puts, [])
        self.assertEqual(ch.requests, [])

    def test_an_allowed_request_hands_the_body_on_as_it_arrives(self) -> None:
        """The engine gets the body before any of it has arrived, and each piece reaches its
        pipe as it comes; the answer follows the body's end."""
        ch, transport, archive = self._channel("admin")
        self._put(ch)
        self.assertEqual(len(archive.puts), 1)
        ref, path, content = archive.puts[0]
        self.assertEqual((ref, path), ("c1", "/tmp"))
        self.assertIsInstance(content, StreamedBody)
        ch.dataReceived(b"a" * 1000)
        ch.dataReceived(b"b" * BATCH)
        self.assertEqual(os.read(archive.read_end, 4096), b"a" * 1000 + b"b" * 3096)
        self.assertEqual(transport.value(), b"")  # no answer before the body's end
        ch.dataReceived(b"c" * (300000 - 1000 - BATCH))
        got = b"a" * 1000 + b"b" * 3096
        os.set_blocking(archive.read_end, False)
        while True:
            try:
                data = os.read(archive.read_end, 1 << 20)
            except BlockingIOError:
                # the rest waits for room in the pipe (a 64 KiB pipe here): the reactor
                # watches it and writes when it is read
                self.assertEqual(list(self.reactor.writers), [content])
                content.doWrite()
                continue
            if not data:
                break  # the pipe was closed at the body's end
            got += data
        self.assertEqual(list(self.reactor.writers), [])
        self.assertEqual(got, b"a" * 1000 + b"b" * BATCH + b"c" * (300000 - 1000 - BATCH))
        self.assertIn(b" 200 ", transport.value().split(b"\r\n", 1)[0])
        self.assertEqual(ch.requests, [])
