"""A tiny v1 index (C{GET /v1/_ping}, C{GET /v1/search}) on loopback for C{docker search} tests.

Plain HTTP on 127.0.0.1 (an insecure registry for every daemon). It answers a search with the
repositories whose name contains the query, at most C{n}, and records every request (path and
headers) so tests can check what the daemon sent::

    with FakeIndex(REPOS) as index:
        daemon.docker("search", f"{index.host}/busy")
        assert index.requests[-1].query["q"] == ["busy"]
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

REPOS: tuple[dict[str, Any], ...] = (
    {"name": "library/busybox", "description": "Busybox base image.", "star_count": 3300,
     "is_official": True, "is_automated": False},
    {"name": "someone/busybox-tools", "description": "Tools on busybox", "star_count": 12,
     "is_official": False, "is_automated": True},
    {"name": "other/busybox-mini", "description": "", "star_count": 0,
     "is_official": False, "is_automated": False},
    {"name": "library/alpine", "description": "A minimal Docker image", "star_count": 11000,
     "is_official": True, "is_automated": False},
)  # fmt: skip


@attrs.frozen
class Seen:
    """One request the index received."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class FakeIndex:
    """The server; use as a context manager (or L{start}/L{stop})."""

    def __init__(self, repos: tuple[dict[str, Any], ...] = REPOS, status: int = 200) -> None:
        self.repos = repos
        self.status = status
        self.body: bytes | None = None  # a raw search answer instead of the computed one
        self.requests: list[Seen] = []
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                index._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        u = urlsplit(h.path)
        q = parse_qs(u.query)
        self.requests.append(Seen(u.path, q, {k.lower(): v for k, v in h.headers.items()}))
        if u.path == "/v1/_ping":
            self._send(h, 200, b"true")
        elif u.path == "/v1/search":
            if self.status != 200:
                self._send(h, self.status, b'{"error": "no"}')
                return
            term = q.get("q", [""])[0]
            n = int(q.get("n", ["25"])[0])
            hits = [r for r in self.repos if term in r["name"]][:n]
            body = self.body
            if body is None:
                doc = {"query": term, "num_results": len(hits), "results": hits}
                body = json.dumps(doc).encode()
            self._send(h, 200, body)
        else:
            self._send(h, 404, b"not found")

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, code: int, body: bytes) -> None:
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def searches(self) -> list[Seen]:
        """The search requests received so far."""
        return [r for r in self.requests if r.path == "/v1/search"]

    def start(self) -> FakeIndex:
        """Serve in a thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def __enter__(self) -> FakeIndex:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
