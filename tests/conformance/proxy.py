"""A Unix-socket proxy that notes every Engine API request a scenario makes, with its status.

The recorder puts it between the clients (the docker CLI, the raw API steps) and dockerd, so
that the conformance coverage (L{tests.conformance.coverage}) is derived from the requests
dockerd really answered, CLI steps included, rather than from a hand-kept list. Bytes are
forwarded unchanged as they come; a copy of each direction is parsed as HTTP/1.1 (Content-Length
and chunked bodies, keep-alive) only to find where one message ends and the next begins. After
a hijack (an C{Upgrade} request, a 101, or a response without a length) the connection is piped
without parsing: what follows is a raw stream.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections import deque
from typing import Any

# A body bigger than this is not kept (build contexts, image archives): only JSON bodies are
# read, and those are small.
_BODY_CAP = 256 * 1024


class _Message:
    """One request or response being parsed."""

    def __init__(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        self.start = lines[0]
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.body = bytearray()
        self.tail = b""  # the last bytes of the body (a stream's end, past the cap)
        # a response's entry (its request's note)
        self.entry: dict[str, Any] | None = None


class _Parser:
    """Splits one direction of a connection into messages (C{on_head}, C{on_done} callbacks)."""

    def __init__(self, is_response: bool, proxy_conn: _Conn) -> None:
        self.is_response = is_response
        self.conn = proxy_conn
        self.buf = bytearray()
        self.state = "head"
        self.remaining = 0
        self.msg: _Message | None = None

    def feed(self, data: bytes) -> None:
        if self.state == "raw":
            return
        self.buf += data
        while self.buf and self.state != "raw":
            if not self._step():
                return

    def _keep(self, chunk: bytes | bytearray) -> None:
        assert self.msg is not None
        if len(self.msg.body) < _BODY_CAP:
            self.msg.body += chunk[: _BODY_CAP - len(self.msg.body)]
        self.msg.tail = (self.msg.tail + chunk)[-4096:]

    def _step(self) -> bool:
        """Consume what the buffer holds for the current state; False: need more bytes."""
        if self.state == "head":
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            self.msg = _Message(bytes(self.buf[:end]))
            del self.buf[: end + 4]
            self.state = self.conn.on_head(self.is_response, self.msg)
            if self.state == "done":
                self._done()
            return True
        if self.state == "length":
            take = self.buf[: self.remaining]
            self._keep(take)
            self.remaining -= len(take)
            del self.buf[: len(take)]
            if self.remaining == 0:
                self._done()
            return True
        if self.state == "chunk-size":
            end = self.buf.find(b"\r\n")
            if end < 0:
                return False
            size = int(bytes(self.buf[:end]).split(b";")[0] or b"0", 16)
            del self.buf[: end + 2]
            self.remaining = size
            self.state = "chunk-data" if size else "trailer"
            return True
        if self.state == "chunk-data":
            take = self.buf[: self.remaining]
            self._keep(take)
            self.remaining -= len(take)
            del self.buf[: len(take)]
            if self.remaining == 0:
                self.state = "chunk-end"
            return True
        if self.state == "chunk-end":
            if len(self.buf) < 2:
                return False
            del self.buf[:2]
            self.state = "chunk-size"
            return True
        if self.state == "trailer":
            end = self.buf.find(b"\r\n")
            if end < 0:
                return False
            del self.buf[: end + 2]
            if end == 0:
                self._done()
            return True
        return False

    def _done(self) -> None:
        assert self.msg is not None
        after = self.conn.on_done(self.is_response, self.msg)
        self.state = after
        self.msg = None


def body_state(msg: _Message) -> tuple[str, int]:
    """How a message's body is framed: ("length", n), ("chunk-size", 0) or ("done", 0)."""
    if "chunked" in msg.headers.get("transfer-encoding", "").lower():
        return "chunk-size", 0
    n = int(msg.headers.get("content-length", "0") or 0)
    return ("length", n) if n else ("done", 0)


class _Conn:
    """One proxied connection: two pumps, the requests waiting for their responses."""

    def __init__(self, proxy: RecordingProxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.upstream.connect(proxy.upstream)
        self.pending: deque[dict[str, Any]] = deque()
        self.requests = _Parser(False, self)
        self.responses = _Parser(True, self)
        self.hijacked = False

    def on_head(self, is_response: bool, msg: _Message) -> str:
        if not is_response:
            method, target = msg.start.split(" ")[:2]
            entry: dict[str, Any] = {"method": method, "target": target, "status": None}
            self.proxy.note(entry)
            self.pending.append(entry)
            entry["_msg"] = msg
            if "upgrade" in msg.headers:
                self.hijacked = True
            state, n = body_state(msg)
            self.requests.remaining = n
            return state
        status = int(msg.start.split(" ")[1])
        if status == 100:
            return "done"
        entry = self.pending.popleft() if self.pending else {}
        entry["status"] = status
        msg.entry = entry
        if status == 101:
            return "raw"
        method = entry.get("method", "GET")
        if method == "HEAD" or status in (204, 304):
            return "done"
        if "content-length" not in msg.headers and "chunked" not in msg.headers.get(
            "transfer-encoding", ""
        ):
            return "raw"  # until the connection closes: a hijacked or streamed answer
        state, n = body_state(msg)
        self.responses.remaining = n
        return state

    def on_done(self, is_response: bool, msg: _Message) -> str:
        if is_response:
            # A stream (load, push, pull, build) that started with 200 and ended in dockerd's
            # in-band error: that request took the error path.
            if msg.entry is not None and b'"errorDetail"' in msg.tail:
                msg.entry["stream_error"] = True
            return "head"
        for entry in reversed(self.pending):
            if entry.get("_msg") is msg:
                entry.pop("_msg")
                entry["body"] = _json_or_none(msg)
                break
        return "raw" if self.hijacked else "head"

    def pump(self, src: socket.socket, dst: socket.socket, parser: _Parser) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                parser.feed(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
                try:
                    s.shutdown(how)
                except OSError:
                    pass

    def run(self) -> None:
        t = threading.Thread(
            target=self.pump, args=(self.upstream, self.client, self.responses), daemon=True
        )
        t.start()
        self.pump(self.client, self.upstream, self.requests)
        t.join()
        self.client.close()
        self.upstream.close()


def _json_or_none(msg: _Message) -> Any:
    if "json" not in msg.headers.get("content-type", "") or not msg.body:
        return None
    try:
        return json.loads(bytes(msg.body))
    except ValueError:
        return None


class RecordingProxy:
    """Listens on C{path}, forwards to the daemon socket C{upstream}, notes the requests."""

    def __init__(self, upstream: str, path: str) -> None:
        self.upstream = upstream.removeprefix("unix://")
        self.path = path
        self.entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(path)
        self._sock.listen(64)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        """The C{DOCKER_HOST} of the proxy."""
        return "unix://" + self.path

    def note(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.entries.append(entry)

    def take(self) -> list[dict[str, Any]]:
        """The requests noted so far (in the order they were sent), and forget them."""
        with self._lock:
            out, self.entries = self.entries, []
        for e in out:
            e.pop("_msg", None)
            e.setdefault("body", None)
        return out

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            try:
                conn = _Conn(self, client)
            except OSError:
                client.close()
                continue
            threading.Thread(target=conn.run, daemon=True).start()

    def close(self) -> None:
        """Stop listening (connections still open end with their clients)."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        if os.path.exists(self.path):
            os.unlink(self.path)
