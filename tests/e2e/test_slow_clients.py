"""Clients that stop reading (issue 18): per stream type, many clients send a request and never
read the answer; the daemon's memory stays within a bound and other clients are served.

Each client's receive buffer is made small, so the daemon's writes back up at once; before
back-pressure, each such client made the daemon hold the whole stream (a 64 MiB log per
C{logs} request, every event, every build line).
"""

from __future__ import annotations

import io
import json
import socket
import tarfile
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.helpers.daemon import PydDaemon, unix_request, wait_until
from tests.helpers.images import DEFAULT_TAG

pytestmark = pytest.mark.e2e

IMG = DEFAULT_TAG
# The daemon may grow this much while the stalled clients hang on (pyd's own working set
# varies by a few MiB; one stalled stream used to cost its whole size).
RSS_BOUND = 48 << 20


def _name() -> str:
    return "pyd-t-" + uuid.uuid4().hex[:8]


def _rss(d: PydDaemon) -> int:
    assert d.proc is not None
    with open(f"/proc/{d.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _stall(
    d: PydDaemon, method: str, path: str, n: int, body: bytes = b"", ctype: str = ""
) -> list[socket.socket]:
    """C{n} connections that send the request and never read."""
    out = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(d.sock)
        head = f"{method} {path} HTTP/1.1\r\nHost: pyd\r\n"
        if body:
            head += f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
        s.sendall(head.encode() + b"\r\n" + body)
        out.append(s)
    return out


def _served_while_stalled(d: PydDaemon, base: int, settle: float = 3.0) -> int:
    """Other clients' /_ping answers (each within its socket timeout) while the stalled
    clients hang on; returns the daemon's growth after it had time to fill every buffer."""
    end = time.monotonic() + settle
    while time.monotonic() < end:
        status, _, body = unix_request(d.sock, "GET", "/_ping", timeout=10)
        assert (status, body) == (200, b"OK")
        time.sleep(0.2)
    return _rss(d) - base


@pytest.fixture
def stalled() -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    try:
        yield socks
    finally:
        for s in socks:
            s.close()


class SlowClientTests:
    """One test per stream type."""

    def test_logs(self, pyd: PydDaemon, stalled: list[socket.socket]) -> None:
        """A log of 6 million lines: 10 stalled C{logs} and 10 stalled C{logs?tail=10&follow=1} clients;
        the daemon grows by less than the bound, and C{tail} still answers at once."""
        n = _name()
        pyd.docker(
            "run",
            "--name",
            n,
            "--log-opt",
            "max-size=1g",
            IMG,
            "sh",
            "-c",
            "yes 0123456789012345678901234567890123456789012345678901234567890123456789 "
            "| head -c 67108864 >/dev/null; yes 0123456789 | head -c 67108864",
            timeout=300,
        )
        base = _rss(pyd)
        stalled += _stall(pyd, "GET", f"/containers/{n}/logs?stdout=1&stderr=1", 10)
        stalled += _stall(pyd, "GET", f"/containers/{n}/logs?stdout=1&tail=10&follow=1", 10)
        growth = _served_while_stalled(pyd, base)
        assert growth < RSS_BOUND, growth
        status, _, body = unix_request(
            pyd.sock, "GET", f"/containers/{n}/logs?stdout=1&tail=3", timeout=10
        )
        assert status == 200 and body.count(b"0123456789\n") == 3, body[-200:]

    def test_attach_logs(self, pyd: PydDaemon, stalled: list[socket.socket]) -> None:
        """C{attach?logs=1} of a 32 MiB log: 10 stalled clients (C{stream=0} and C{stream=1}) cost
        the daemon less than the bound (each read the whole log into memory before); a client
        that reads gets the whole log, in order."""
        n = _name()
        line = "0123456789" * 9 + "abcdefghi"  # 100 bytes with the newline
        pyd.docker(
            "run", "--name", n, IMG, "sh", "-c", f"yes {line} | head -c 33554432", timeout=300
        )
        base = _rss(pyd)
        stalled += _stall(pyd, "POST", f"/containers/{n}/attach?logs=1&stream=0&stdout=1", 5)
        stalled += _stall(pyd, "POST", f"/containers/{n}/attach?logs=1&stream=1&stdout=1", 5)
        growth = _served_while_stalled(pyd, base, settle=5.0)
        assert growth < RSS_BOUND, growth
        status, _, raw = unix_request(
            pyd.sock, "POST", f"/containers/{n}/attach?logs=1&stream=0&stdout=1", timeout=120
        )
        assert status == 200
        out = bytearray()
        view = memoryview(raw)
        while view:
            size = int.from_bytes(view[4:8], "big")
            assert view[0] == 1
            out += view[8 : 8 + size]
            view = view[8 + size :]
        assert len(out) == 33554432 and out[:100] == (line + "\n").encode()

    def test_events(self, pyd: PydDaemon, stalled: list[socket.socket]) -> None:
        """50 stalled C{events?since=0} subscribers while 30 containers come and go."""
        base = _rss(pyd)
        stalled += _stall(pyd, "GET", "/events?since=0", 50)
        for _ in range(30):
            status, _, body = pyd.request(
                "POST", f"/containers/create?name={_name()}", {"Image": IMG, "Cmd": ["true"]}
            )
            assert status == 201, body
            cid = json.loads(body)["Id"]
            assert pyd.request("DELETE", f"/containers/{cid}")[0] == 204
        growth = _served_while_stalled(pyd, base)
        assert growth < RSS_BOUND, growth

    def test_stats_and_attach(self, pyd: PydDaemon, stalled: list[socket.socket]) -> None:
        """A container writing as fast as it can: 10 stalled C{attach} and 10 stalled
        C{stats} streams."""
        n = _name()
        pyd.docker("run", "-d", "--name", n, IMG, "sh", "-c", "yes 0123456789abcdef")
        base = _rss(pyd)
        stalled += _stall(pyd, "POST", f"/containers/{n}/attach?stream=1&stdout=1", 10)
        stalled += _stall(pyd, "GET", f"/containers/{n}/stats", 10)
        growth = _served_while_stalled(pyd, base, settle=5.0)
        assert growth < RSS_BOUND, growth
        pyd.docker("rm", "-f", n)

    def test_build_progress(self, pyd: PydDaemon, stalled: list[socket.socket]) -> None:
        """5 stalled builds whose RUN prints 32 MiB: a client is cut off once its small
        buffer is full (the build ends as for a client that went away)."""
        ctx = io.BytesIO()
        with tarfile.open(fileobj=ctx, mode="w") as tar:
            df = f"FROM {IMG}\nRUN yes 0123456789abcdef | head -c 33554432\n".encode()
            ti = tarfile.TarInfo("Dockerfile")
            ti.size = len(df)
            tar.addfile(ti, io.BytesIO(df))
        base = _rss(pyd)
        stalled += _stall(pyd, "POST", "/build?nocache=1", 5, ctx.getvalue(), "application/x-tar")
        growth = _served_while_stalled(pyd, base, settle=10.0)
        assert growth < RSS_BOUND, growth
        assert "cutting off a client that does not read" in pyd.log()
        # The cut-off builds remove their step containers while the stalled clients still
        # hold their connections (a cancel landing mid-removal used to leave them listed).
        wait_until(lambda: pyd.docker("ps", "-aq").stdout.strip() == "", timeout=120)
