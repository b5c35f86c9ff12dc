"""Pull, push and /auth endpoints in memory, over a scripted distribution engine."""

from __future__ import annotations

import base64
import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from pyd.api.base import make_app
from pyd.api.distribution import DistributionHandlers
from pyd.api.root import ApiRoot
from pyd.core.errors import NotFound, SystemError_, Unauthorized
from pyd.core.records import RegistryAuth
from pyd.engine.distribution import Progress, ProgressSink


class FakeDistribution:
    """Records calls; emits scripted progress, then raises C{fail} if set."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.script: list[Progress] = []
        self.fail: Exception | None = None

    async def pull(
        self, image: str, tag: str, platform: str, auth: RegistryAuth | None, progress: ProgressSink
    ) -> None:
        self.calls.append(("pull", image, tag, platform, auth))
        for p in self.script:
            progress(p)
        if self.fail:
            raise self.fail

    async def push(
        self, name: str, tag: str, auth: RegistryAuth | None, progress: ProgressSink
    ) -> None:
        self.calls.append(("push", name, tag, auth))
        for p in self.script:
            progress(p)
        if self.fail:
            raise self.fail

    async def login(self, auth: RegistryAuth) -> str:
        self.calls.append(("login", auth))
        if auth.password != "good":
            raise Unauthorized("login attempt to http://r/v2/ failed with status: 401 Unauthorized")
        return "Login Succeeded"


class _Router:
    """Routes the way the images router does, to the registry handlers."""

    app = make_app()
    prefixes = ("images", "auth")

    def __init__(self, dist: FakeDistribution) -> None:
        self.h = DistributionHandlers(dist)

    def resource(self) -> Any:
        return self.app.resource()

    @app.route("/images/create", methods=["POST"])
    async def create(self, request: Any) -> Any:
        return await self.h.pull(request, "", None)

    @app.route("/images/<path:name>/push", methods=["POST"])
    async def push(self, request: Any, name: str) -> Any:
        return await self.h.push(request, name)

    @app.route("/auth", methods=["POST"])
    async def auth(self, request: Any) -> Any:
        return await self.h.login(request)


class DistributionApiTests(SynchronousTestCase):
    """Wire shapes and error placement."""

    def setUp(self) -> None:
        self.dist = FakeDistribution()
        self.http = StubTreq(ApiRoot([_Router(self.dist)]))

    def call(self, method: str, path: str, **kw: Any) -> tuple[int, bytes, Any]:
        d: Deferred[Any] = self.http.request(method, "http://pyd" + path, **kw)
        self.http.flush()
        resp = self.successResultOf(d)
        body = self.successResultOf(resp.content())
        return resp.code, body, resp

    def test_pull_streams_lines(self) -> None:
        """Progress becomes JSON lines; query and X-Registry-Auth reach the engine."""
        self.dist.script = [Progress("Pulling from x", "latest"), Progress("Digest: sha256:1")]
        hdr = base64.urlsafe_b64encode(json.dumps({"username": "u", "password": "p"}).encode())
        code, body, resp = self.call(
            "POST",
            "/v1.50/images/create?fromImage=127.0.0.1:5000/x&tag=latest&platform=linux/amd64",
            headers={b"X-Registry-Auth": [hdr]},
        )
        self.assertEqual(code, 200)
        self.assertEqual(resp.headers.getRawHeaders(b"content-type"), [b"application/json"])
        self.assertEqual(
            body,
            # CRLF: moby pkg/streamformatter's streamNewline
            b'{"status":"Pulling from x","id":"latest"}\r\n{"status":"Digest: sha256:1"}\r\n',
        )
        self.assertEqual(
            self.dist.calls,
            [("pull", "127.0.0.1:5000/x", "latest", "linux/amd64", RegistryAuth("u", "p"))],
        )

    def test_error_before_stream_is_status(self) -> None:
        """A failure before any progress is an HTTP error with dockerd's message."""
        self.dist.fail = NotFound(
            "manifest for x:nope not found: manifest unknown: manifest unknown"
        )
        code, body, _ = self.call("POST", "/images/create?fromImage=x&tag=nope")
        self.assertEqual(code, 404)
        self.assertEqual(json.loads(body), {"message": str(self.dist.fail)})

    def test_error_mid_stream_is_in_band(self) -> None:
        """A failure after progress started ends the stream with errorDetail."""
        self.dist.script = [Progress("The push refers to repository [r/x]")]
        self.dist.fail = SystemError_("unauthorized: authentication required")
        code, body, _ = self.call("POST", "/images/127.0.0.1:5000/x/push?tag=v1")
        self.assertEqual(code, 200)
        lines = [json.loads(x) for x in body.splitlines()]
        self.assertEqual(
            lines[-1],
            {
                "errorDetail": {"message": "unauthorized: authentication required"},
                "error": "unauthorized: authentication required",
            },
        )
        self.assertEqual(self.dist.calls, [("push", "127.0.0.1:5000/x", "v1", None)])

    def test_auth(self) -> None:
        """POST /auth answers dockerd's body on success and 401 with the message on failure."""
        body = {"username": "u", "password": "good", "serveraddress": "127.0.0.1:5000"}
        code, out, _ = self.call("POST", "/auth", json=body)
        self.assertEqual(
            (code, json.loads(out)), (200, {"Status": "Login Succeeded", "IdentityToken": ""})
        )
        code, out, _ = self.call("POST", "/auth", json={**body, "password": "bad"})
        self.assertEqual(code, 401)
        self.assertIn("failed with status: 401", json.loads(out)["message"])
