"""The conformance coverage: derived from recorded requests, and docs/api-coverage.md current."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import tempfile
import threading
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.conformance import __main__ as conformance
from tests.conformance import coverage, proxy
from tests.conformance.scenarios import SCENARIOS


def _req(method: str, path: str, status: int, body: Any = None) -> dict[str, Any]:
    return {"method": method, "path": path, "status": status, "body": body}


class CoverageTests(SynchronousTestCase):
    """What counts as checked."""

    def setUp(self) -> None:
        self.ops = coverage.operations()

    def test_doc_is_current(self) -> None:
        """docs/api-coverage.md holds the table the recorded requests give."""
        doc = coverage.DOC.read_text()
        self.assertEqual(
            doc,
            coverage.document(doc, coverage.compute(ops=self.ops)),
            "run: python -m tests.conformance coverage --write",
        )

    def test_every_scenario_has_its_requests(self) -> None:
        """A golden and its request list are recorded together."""
        missing = [s.name for s in SCENARIOS if not conformance.requests_path(s).exists()]
        self.assertEqual(missing, [])

    def test_versioned_paths_and_image_names_match(self) -> None:
        """A request names its operation with or without a version, with a slash in a name."""
        match = coverage.Matcher(self.ops)
        for method, path, template in (
            ("GET", "/v1.41/images/json", "/images/json"),
            ("GET", "/v1.41/images/pyd-test/busybox:latest/json", "/images/{name}/json"),
            ("DELETE", "/images/a/b:1", "/images/{name}"),
            ("POST", "/containers/nope%2Fweb/kill", "/containers/{id}/kill"),
            ("HEAD", "/_ping", "/_ping"),
        ):
            op = match(method, path)
            self.assertEqual(op.template if op else None, template, path)
        self.assertIsNone(match("GET", "/v1.41/no/such/thing"))

    def test_fields_with_values_count(self) -> None:
        """A field counts on the path its answer took, only with a non-zero value; HostConfig's
        fields count for create."""
        report = coverage.compute(
            {
                "a": [
                    _req("POST", "/v1.41/containers/create?name=x&platform=", 201,
                         {"Image": "b", "Tty": False, "hostconfig": {"Memory": 0, "Privileged": True}}),
                    _req("POST", "/containers/create", 400, {"image": "b", "Env": []}),
                    _req("GET", "/swarm", 503),
                    _req("GET", "/nope", 404),
                ]
            },
            self.ops,
        )  # fmt: skip
        key = "POST /containers/create"
        seen = {f.name: s for (k, f), s in report.fields.items() if k == key}
        self.assertEqual((seen["Image"].ok, seen["Image"].err), ({"a"}, {"a"}))
        self.assertEqual((seen["name"].ok, seen["platform"].ok), ({"a"}, set()))
        self.assertEqual(seen["HostConfig.Privileged"].ok, {"a"})
        for unset in ("Tty", "HostConfig.Memory", "Env"):
            self.assertEqual((seen[unset].ok, seen[unset].err), (set(), set()), unset)
        self.assertEqual(report.endpoints["GET /swarm"].err, {"a"})
        self.assertEqual(report.unmatched, ["GET /nope"])
        self.assertIn("refused endpoints", coverage.summary(report))


class ProxyTests(SynchronousTestCase):
    """The recording proxy notes each request of a keep-alive connection with its status."""

    def test_keep_alive_and_chunked(self) -> None:
        tmp = tempfile.mkdtemp(prefix="pyd-t-proxy-")
        self.addCleanup(shutil.rmtree, tmp, True)
        upstream = os.path.join(tmp, "d.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(upstream)
        server.listen(1)
        self.addCleanup(server.close)

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                f = conn.makefile("rb")
                for status in (201, 404):
                    length = 0
                    while (line := f.readline()) not in (b"\r\n", b""):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                        if line.lower().startswith(b"transfer-encoding: chunked"):
                            length = -1
                    if length > 0:
                        f.read(length)
                    while length < 0 and (size := int(f.readline(), 16)) > 0:
                        f.read(size + 2)
                    if length < 0:
                        f.readline()
                    head = f"HTTP/1.1 {status} X\r\n".encode()
                    if status == 201:  # a chunked answer, then one with an empty body
                        conn.sendall(
                            head + b"Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n0\r\n\r\n"
                        )
                    else:
                        conn.sendall(head + b"Content-Length: 0\r\n\r\n")

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        rec = proxy.RecordingProxy(upstream, os.path.join(tmp, "p.sock"))
        self.addCleanup(rec.close)
        c = http.client.HTTPConnection("localhost")
        c.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.sock.connect(rec.path)
        c.request("POST", "/v1.41/containers/create?name=a", json.dumps({"Image": "b"}),
                  {"Content-Type": "application/json"})  # fmt: skip
        self.assertEqual(c.getresponse().read(), b"{")
        c.request("GET", "/containers/a/json", body=iter([b"ab"]), encode_chunked=True)
        self.assertEqual(c.getresponse().status, 404)
        c.close()
        t.join(30)
        self.assertEqual(
            rec.take(),
            [
                {"method": "POST", "target": "/v1.41/containers/create?name=a", "status": 201,
                 "body": {"Image": "b"}},
                {"method": "GET", "target": "/containers/a/json", "status": 404, "body": None},
            ],
        )  # fmt: skip
