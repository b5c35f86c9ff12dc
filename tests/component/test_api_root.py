"""The API root in memory: ping, version negotiation, common headers, errors, events."""

from __future__ import annotations

import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from pyd.api.root import ApiRoot
from pyd.api.system import SystemRouter
from pyd.config import DaemonConfig
from pyd.core.errors import Forbidden
from pyd.engine.events import EventService
from pyd.engine.system import HostFacts, SystemService
from pyd.state.events import EventRepository
from tests.helpers.memdb import memory_db


def make_root(clock: Clock) -> tuple[ApiRoot, EventService]:
    """A root with the system router over an in-memory database."""
    db = memory_db(alembic=True)
    events = EventService(EventRepository(db), clock)
    host = HostFacts("6.1", "Debian", "x86_64", 2, 1 << 30, "1", "h")
    system = SystemService("ID1", host, DaemonConfig(data_root="/d"))
    return ApiRoot([SystemRouter(system, events, clock)]), events


class ApiRootTests(SynchronousTestCase):
    """Routing and negotiation rules shared by every endpoint."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        root, self.events = make_root(self.clock)
        self.http = StubTreq(root)

    def get(self, path: str, method: str = "GET") -> tuple[Any, bytes]:
        resp = self.successResultOf(self.http.request(method, "http://pyd" + path))
        body = self.successResultOf(resp.content())
        return resp, body

    def test_ping_headers(self) -> None:
        """GET /_ping answers OK with the headers the CLI negotiates from."""
        resp, body = self.get("/_ping")
        self.assertEqual(body, b"OK")
        h = resp.headers
        self.assertEqual(h.getRawHeaders("Api-Version"), ["1.50"])
        self.assertEqual(h.getRawHeaders("Builder-Version"), ["1"])
        self.assertEqual(h.getRawHeaders("Ostype"), ["linux"])
        self.assertEqual(h.getRawHeaders("Swarm"), ["inactive"])
        self.assertEqual(h.getRawHeaders("Docker-Experimental"), ["false"])
        self.assertEqual(h.getRawHeaders("Cache-Control"), ["no-cache, no-store, must-revalidate"])

    def test_empty_path_segment_redirects(self) -> None:
        """A path with an empty segment is redirected to the cleaned path as dockerd's router
        does (301 with Location, the version prefix and query kept); it was a 308 without a
        Location, which no client can follow."""
        resp = self.successResultOf(
            self.http.request(
                "GET", "http://pyd/v1.44/system//df?type=image", allow_redirects=False
            )
        )
        self.assertEqual(resp.code, 301)
        self.assertEqual(resp.headers.getRawHeaders("Location"), ["/v1.44/system/df?type=image"])

    def test_head_ping(self) -> None:
        """HEAD /_ping has an empty body."""
        resp, body = self.get("/_ping", "HEAD")
        self.assertEqual((resp.code, body), (200, b""))

    def test_versioned_and_unversioned(self) -> None:
        """/v1.45/version and /version both work; every response has the common headers."""
        for path in ("/v1.45/version", "/version", "/v1.24/version"):
            resp, body = self.get(path)
            self.assertEqual(resp.code, 200, path)
            self.assertEqual(json.loads(body)["ApiVersion"], "1.50")
            self.assertEqual(resp.headers.getRawHeaders("Api-Version"), ["1.50"])

    def test_too_new_and_too_old(self) -> None:
        """Out-of-range versions get dockerd's 400 messages."""
        resp, body = self.get("/v1.51/info")
        self.assertEqual(resp.code, 400)
        self.assertEqual(
            json.loads(body)["message"],
            "client version 1.51 is too new. Maximum supported API version is 1.50",
        )
        resp, body = self.get("/v1.12/info")
        self.assertEqual(resp.code, 400)
        self.assertIn(
            "client version 1.12 is too old. Minimum supported API version is 1.24",
            json.loads(body)["message"],
        )

    def test_unknown_route(self) -> None:
        """Unknown paths are 404 with a JSON message."""
        for path in ("/nope", "/v1.45/", "/system/nope"):
            resp, body = self.get(path)
            self.assertEqual(resp.code, 404, path)
            self.assertEqual(json.loads(body), {"message": "page not found"})
            self.assertEqual(resp.headers.getRawHeaders("Content-Type"), ["application/json"])

    def test_info_counts(self) -> None:
        """/info reports identity and zero counts without any area wired."""
        _, body = self.get("/info")
        info = json.loads(body)
        self.assertEqual((info["ID"], info["Containers"], info["DockerRootDir"]), ("ID1", 0, "/d"))

    def test_events_window(self) -> None:
        """since/until replay stored events, filtered, and end the stream."""
        self.successResultOf(self.events.emit("container", "start", "a" * 64, {"name": "web"}))
        self.successResultOf(self.events.emit("network", "create", "b" * 64, {"name": "n"}))
        self.clock.advance(5)
        now = int(self.clock.seconds())
        _, body = self.get(f"/events?since={now - 60}&until={now}")
        lines = [json.loads(x) for x in body.splitlines()]
        self.assertEqual([e["Action"] for e in lines], ["start", "create"])
        self.assertEqual(lines[0]["status"], "start")
        self.assertEqual(lines[0]["Actor"]["Attributes"]["name"], "web")
        flt = json.dumps({"type": {"network": True}})
        _, body = self.get(f"/events?since={now - 60}&until={now}&filters={flt}")
        self.assertEqual([json.loads(x)["Type"] for x in body.splitlines()], ["network"])

    def test_events_bad_filter(self) -> None:
        """As moby 28's getEvents: filters that do not decode are a 400 "invalid filter" (the
        decoder's words are not passed on); a key the event filter does not know is no error
        and filters nothing out."""
        for bad in ("nope", "[1]", '{"type":"x"}'):
            resp, body = self.get(f"/events?since=0&until=1&filters={bad}")
            self.assertEqual(resp.code, 400, bad)
            self.assertEqual(json.loads(body), {"message": "invalid filter"}, bad)
        self.successResultOf(self.events.emit("container", "start", "a" * 64, {"name": "web"}))
        self.clock.advance(5)
        now = int(self.clock.seconds())
        resp, body = self.get(
            f'/events?since={now - 60}&until={now}&filters={{"bogus":{{"x":true}}}}'
        )
        self.assertEqual(resp.code, 200)
        self.assertEqual([json.loads(x)["Action"] for x in body.splitlines()], ["start"])


class GuardTests(SynchronousTestCase):
    """The root's guard hook: a refusal is a dockerd-shaped 403; a pending decision waits."""

    def setUp(self) -> None:
        clock = Clock()
        clock.advance(1_800_000_000)
        self.root, _ = make_root(clock)
        self.http = StubTreq(self.root)

    def request(self, path: str) -> Any:
        return self.http.request("GET", "http://pyd" + path)

    def test_pending_decision_then_allowed(self) -> None:
        """The call is dispatched only once the guard's Deferred fires with success."""
        pending: Deferred[None] = Deferred()
        self.root.guard = lambda request, method, path: pending
        d = self.request("/v1.50/version")
        self.assertNoResult(d)
        pending.callback(None)
        self.http.flush()
        resp = self.successResultOf(d)
        self.assertEqual(resp.code, 200)
        self.assertEqual(json.loads(self.successResultOf(resp.content()))["ApiVersion"], "1.50")

    def test_pending_decision_then_refused(self) -> None:
        """A guard Deferred failing with Forbidden answers 403 {"message": ...}."""
        pending: Deferred[None] = Deferred()
        self.root.guard = lambda request, method, path: pending
        d = self.request("/version")
        pending.errback(Forbidden("pyd authorization: role operator may not x"))
        self.http.flush()
        resp = self.successResultOf(d)
        self.assertEqual(resp.code, 403)
        body = json.loads(self.successResultOf(resp.content()))
        self.assertEqual(body, {"message": "pyd authorization: role operator may not x"})

    def test_decided_at_once(self) -> None:
        """A guard that raises, or returns an already failed Deferred, answers 403 at once."""

        def raising(request: Any, method: str, path: str) -> None:
            raise Forbidden("no")

        self.root.guard = raising
        self.assertEqual(self.successResultOf(self.request("/info")).code, 403)
        self.root.guard = lambda request, method, path: fail(Forbidden("no"))
        self.assertEqual(self.successResultOf(self.request("/info")).code, 403)
        self.root.guard = lambda request, method, path: succeed(None)
        self.assertEqual(self.successResultOf(self.request("/info")).code, 200)


class MethodTests(SynchronousTestCase):
    """One method for the guard and the routers (issue 12, escape 1)."""

    def setUp(self) -> None:
        clock = Clock()
        clock.advance(1_800_000_000)
        self.root, _ = make_root(clock)
        self.seen: list[str] = []
        self.root.guard = lambda request, method, path: self.seen.append(method)
        self.http = StubTreq(self.root)

    def test_methods_the_api_does_not_have_are_refused(self) -> None:
        """post, Post, pOST, get and unknown tokens get dockerd's 404 before the guard runs
        (the request as the HTTP parser hands it over: treq would upper-case the method)."""
        for method in (b"post", b"Post", b"pOST", b"get", b"PATCH", b"PROPFIND", b"OPTIONS"):
            for path in ([b"v1.41", b"containers", b"create"], [b"containers", b"create"]):
                req = DummyRequest(path)
                req.method = method
                body = self.root.render(req)
                self.assertEqual(req.responseCode, 404, method)
                self.assertEqual(json.loads(body), {"message": "page not found"})
        self.assertEqual(self.seen, [])
        resp = self.successResultOf(self.http.request("GET", "http://pyd/version"))
        self.assertEqual(resp.code, 200)
        self.assertEqual(self.seen, ["GET"])
