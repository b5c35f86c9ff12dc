"""pyd.drivers.registry.tlsprobe: a ClientHello tells a TLS server (True) from a plain HTTP one
(False); no answer decides nothing (None). Real loopback sockets: a stdlib TLS server, a
server answering HTTP, a server closing at once, a closed port."""

from __future__ import annotations

import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from twisted.trial.unittest import TestCase

from pyd.drivers.registry.tlsprobe import client_hello, speaks_tls


def _server(handle: Callable[[socket.socket], None]) -> tuple[int, Callable[[], None]]:
    """A loopback server handling one connection at a time on a thread; (port, stop)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    lsock.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(5)
                try:
                    handle(conn)
                except OSError:
                    pass

    t = threading.Thread(target=loop, daemon=True)
    t.start()

    def close() -> None:
        stop.set()
        t.join(5)
        lsock.close()

    return lsock.getsockname()[1], close


def _tls_context(tmp: str) -> ssl.SSLContext:
    key, crt = Path(tmp, "k.pem"), Path(tmp, "c.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True,
    )  # fmt: skip
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(crt), str(key))
    return ctx


class ClientHelloTests(TestCase):
    def test_record_and_handshake_lengths(self) -> None:
        for host in ("registry.example", "127.0.0.1"):
            hello = client_hello(host)
            self.assertEqual(hello[:3], b"\x16\x03\x01")
            (length,) = struct.unpack("!H", hello[3:5])
            self.assertEqual(length, len(hello) - 5)
            self.assertEqual(hello[5], 1)  # ClientHello
            self.assertEqual(int.from_bytes(hello[6:9], "big"), len(hello) - 9)
            self.assertEqual(b"registry.example" in hello, host == "registry.example")


class SpeaksTLSTests(TestCase):
    async def _ask(self, handle: Callable[[socket.socket], None]) -> bool | None:
        port, stop = _server(handle)
        self.addCleanup(stop)
        from twisted.internet import reactor

        return await speaks_tls(reactor, "127.0.0.1", port, timeout=5)

    async def test_tls_server(self) -> None:
        tmp = tempfile.mkdtemp(prefix="pyd-t-tlsprobe-")
        self.addCleanup(shutil.rmtree, tmp, True)
        ctx = _tls_context(tmp)

        def handshake(conn: socket.socket) -> None:
            try:
                ctx.wrap_socket(conn, server_side=True).close()
            except (ssl.SSLError, OSError):
                pass  # the probe hangs up after the server's first record

        self.assertIs(await self._ask(handshake), True)

    async def test_plain_http_server(self) -> None:
        def http(conn: socket.socket) -> None:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")

        self.assertIs(await self._ask(http), False)

    async def test_silent_close_decides_nothing(self) -> None:
        self.assertIsNone(await self._ask(lambda conn: None))

    async def test_closed_port_decides_nothing(self) -> None:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        from twisted.internet import reactor

        self.assertIsNone(await speaks_tls(reactor, "127.0.0.1", port, timeout=5))
