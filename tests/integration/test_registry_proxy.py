"""Registry traffic through a proxy of the test's own on loopback (real reactor, real sockets).

The registry is reached by a name only the proxy resolves (C{*.pyd-test.invalid}), so an answer
proves the request went through the proxy; loopback addresses go direct, as with dockerd.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from twisted.trial.unittest import TestCase

from pyd.drivers.registry import HTTPClients
from pyd.drivers.registry.proxy import ProxySettings
from tests.helpers.proxy import LoopbackProxy
from tests.helpers.registry import Registry

NAME = "reg.pyd-test.invalid"


class _Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b'{"over": "tls"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _tls_server(tmp: str) -> tuple[ThreadingHTTPServer, str]:
    """An HTTPS server on loopback whose certificate names L{NAME}; returns it and the cert."""
    key, cert = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", key, "-out", cert, "-subj", f"/CN={NAME}",
         "-addext", f"subjectAltName=DNS:{NAME}"],
        check=True, capture_output=True,
    )  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, cert


class RegistryProxyTests(TestCase):
    """HTTP with absolute URIs, HTTPS through CONNECT, loopback direct."""

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-proxy-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.proxy = LoopbackProxy({NAME: "127.0.0.1"})
        self.addCleanup(self.proxy.stop)

    def clients(self, settings: ProxySettings, certs_dir: str | None = None) -> HTTPClients:
        from twisted.internet import reactor

        http = HTTPClients(reactor, certs_dir, settings)
        self.addCleanup(http.close)
        return http

    async def test_http_through_proxy(self) -> None:
        """A plain-HTTP registry by a name only the proxy knows answers /v2/ through it."""
        registry = Registry(None)
        self.addCleanup(registry.stop)
        registry.start()
        http = self.clients(ProxySettings.resolve(http=self.proxy.url))
        url = f"http://{NAME}:{registry.port}/v2/"

        resp = await http.verified.get(url)
        await resp.content()
        self.assertEqual(resp.code, 200)
        self.assertIn(("GET", url, ""), self.proxy.seen)

    async def test_https_through_connect(self) -> None:
        """HTTPS goes through CONNECT with the proxy's credentials, and TLS (with the certificate
        checked against certs.d and the name) runs end to end with the registry."""
        server, cert = _tls_server(self.tmp)
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        port = server.server_address[1]
        certs = os.path.join(self.tmp, "certs.d", f"{NAME}:{port}")
        os.makedirs(certs)
        shutil.copy(cert, os.path.join(certs, "ca.crt"))
        proxy_url = self.proxy.url.replace("http://", "http://alice:s3cret@")
        http = self.clients(
            ProxySettings.resolve(https=proxy_url), os.path.join(self.tmp, "certs.d")
        )

        resp = await http.verified.get(f"https://{NAME}:{port}/v2/")
        body = json.loads(await resp.content())
        self.assertEqual((resp.code, body), (200, {"over": "tls"}))
        method, target, auth = self.proxy.seen[0]
        self.assertEqual((method, target), ("CONNECT", f"{NAME}:{port}"))
        self.assertEqual(auth, "Basic YWxpY2U6czNjcmV0")

    async def test_loopback_direct(self) -> None:
        """127.0.0.1 is never proxied (Go's rule, so dockerd's)."""
        registry = Registry(None)
        self.addCleanup(registry.stop)
        registry.start()
        http = self.clients(ProxySettings.resolve(http=self.proxy.url, https=self.proxy.url))

        resp = await http.verified.get(f"http://127.0.0.1:{registry.port}/v2/")
        await resp.content()
        self.assertEqual(resp.code, 200)
        self.assertEqual(self.proxy.seen, [])

    async def test_proxy_refuses(self) -> None:
        """A CONNECT the proxy refuses fails the request with the proxy's status line."""
        http = self.clients(ProxySettings.resolve(https=self.proxy.url))

        try:
            await http.verified.get("https://nowhere.pyd-test.invalid:1/v2/")
        except Exception as e:  # whatever the agent wraps it in
            self.assertIn("502", repr(e))
        else:
            self.fail("expected the request to fail")
