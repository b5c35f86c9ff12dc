"""pyd.api.hijack over a real Unix socket to a real twisted.web Site (the reactor runs in a child).

Checks what the docker CLI depends on: the byte-exact 101, bytes sent right behind the request
reach the stream, and a half-close ends only the input while output keeps flowing.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.daemon import REPO

HEAD_MUX = (
    b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\n"
    b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
)
HEAD_RAW = (
    b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
    b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="pyd-hj-")
    sock = os.path.join(d, "s.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.hijack_server", sock],
        cwd=str(REPO),
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        yield sock
    finally:
        proc.kill()
        proc.wait()
        for p in Path(d).iterdir():
            p.unlink()
        os.rmdir(d)


def _request(path: str, body: bytes = b'{"a":1}') -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: api.moby.localhost\r\nConnection: Upgrade\r\n"
        f"Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _read_exact(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise AssertionError(f"EOF after {out!r}")
        out += chunk
    return out


def _read_frame(s: socket.socket) -> tuple[int, bytes]:
    stream, size = struct.unpack(">BxxxL", _read_exact(s, 8))
    return stream, _read_exact(s, size)


def _read_all(s: socket.socket) -> bytes:
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return out
        out += chunk


def _connect(sock: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock)
    return s


class HijackTests:
    """The hijacked connection behaves as dockerd's does."""

    def test_exact_101_and_early_bytes(self, server: str) -> None:
        """The 101 is byte-exact, and stdin sent in the same packet as the request is not lost."""
        s = _connect(server)
        try:
            s.sendall(_request("/v1.50/echo/start") + b"early")
            assert _read_exact(s, len(HEAD_MUX)) == HEAD_MUX
            assert _read_frame(s) == (1, b"hello ['a']")
            assert _read_frame(s) == (1, b"EARLY")
            s.sendall(b"more")
            assert _read_frame(s) == (1, b"MORE")
        finally:
            s.close()

    def test_half_close_keeps_output(self, server: str) -> None:
        """After the client's shutdown(SHUT_WR), output sent later still arrives, then EOF."""
        s = _connect(server)
        try:
            s.sendall(_request("/v1.50/echo/start"))
            assert _read_exact(s, len(HEAD_MUX)) == HEAD_MUX
            assert _read_frame(s) == (1, b"hello ['a']")
            s.sendall(b"x")
            assert _read_frame(s) == (1, b"X")
            s.shutdown(socket.SHUT_WR)
            rest = _read_all(s)
            assert (
                rest
                == struct.pack(">BxxxL", 1, 3) + b"EOF" + struct.pack(">BxxxL", 1, 9) + b"after-eof"
            )
        finally:
            s.close()

    def test_raw_for_tty_and_old_api(self, server: str) -> None:
        """Raw-stream is announced with a TTY, and without one for API versions before 1.42."""
        for path in ("/v1.50/echo/start?tty=1", "/v1.41/echo/start?tty=0"):
            s = _connect(server)
            try:
                s.sendall(_request(path))
                assert _read_exact(s, len(HEAD_RAW)) == HEAD_RAW
            finally:
                s.close()

    def test_plain_requests_still_work(self, server: str) -> None:
        """A hijack on one connection leaves the site serving normal requests on others."""
        s = _connect(server)
        try:
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = _read_all(s)
            assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"OK")
        finally:
            s.close()
