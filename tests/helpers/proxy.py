"""An HTTP proxy of the test's own on loopback: CONNECT tunnels and absolute-URI requests.

Names in C{hosts} resolve only here (e.g. C{reg.pyd-test.invalid} -> 127.0.0.1), so a client that
reaches such a name proves it went through the proxy. Every request is recorded in C{seen} as
(method, target, Proxy-Authorization). Only loopback targets are allowed: nothing leaves the machine.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class LoopbackProxy:
    """A proxy on 127.0.0.1:<free port>; L{stop} shuts it down."""

    def __init__(self, hosts: dict[str, str]) -> None:
        self.hosts = hosts
        self.seen: list[tuple[str, str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _resolve(self, host: str) -> str:
                addr = proxy.hosts.get(host, host)
                if addr not in ("127.0.0.1", "localhost", "::1"):
                    raise PermissionError(f"not a loopback target: {host}")
                return addr

            def _record(self) -> None:
                auth = self.headers.get("Proxy-Authorization", "")
                proxy.seen.append((self.command, self.path, auth))

            def do_CONNECT(self) -> None:
                self._record()
                host, _, port = self.path.rpartition(":")
                try:
                    upstream = socket.create_connection((self._resolve(host), int(port)), 10)
                except (OSError, ValueError):
                    self.send_response(502)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200, "Connection established")
                self.end_headers()
                self.close_connection = True
                conns = [self.connection, upstream]
                try:
                    while True:
                        ready, _, _ = select.select(conns, [], [], 30)
                        if not ready:
                            return
                        for s in ready:
                            data = s.recv(65536)
                            if not data:
                                return
                            (upstream if s is self.connection else self.connection).sendall(data)
                except OSError:
                    return
                finally:
                    upstream.close()

            def _forward(self) -> None:
                self._record()
                u = urlsplit(self.path)
                if u.scheme != "http" or not u.hostname:
                    self.send_error(400, "absolute http URI expected")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(self._resolve(u.hostname), u.port or 80, 30)
                path = u.path + ("?" + u.query if u.query else "")
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("proxy-authorization", "proxy-connection", "connection")
                }
                conn.request(self.command, path or "/", body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                length_out = resp.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length_out or str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()
