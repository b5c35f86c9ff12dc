"""The root matches a request to its route once (pyd.api.base.RouteTable), hands that route to
the guard, and runs that same route (pyd.api.base.run_route) without Klein matching the URL a
second time; what the client gets is what Klein's own resource answered."""

from __future__ import annotations

from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest
from werkzeug.routing import MapAdapter

from pyd.api import base
from pyd.api.base import RouteTable, make_app, role, run_route
from pyd.api.root import ApiRoot
from pyd.api.wire import json_body
from pyd.core.errors import Conflict, NotFound


class _Router:
    """A router with one route of each kind the API has."""

    prefixes = ("things",)
    app = make_app()

    def __init__(self) -> None:
        self.pending: list[Deferred[None]] = []
        self.cancelled = 0

    def resource(self) -> Any:
        return self.app.resource()

    @app.route("/things/<string:ref>/json", methods=["GET", "HEAD"])
    @role("viewer")
    async def get_json(self, request: Any, ref: str) -> bytes:
        return json_body(request, {"Ref": ref})

    @app.route("/things/<string:ref>/text", methods=["GET"])
    @role("viewer")
    def get_text(self, request: Any, ref: str) -> str:
        return f"text {ref}"

    @app.route("/things/<string:ref>", methods=["DELETE"])
    @role("operator")
    async def delete(self, request: Any, ref: str) -> bytes:
        if ref == "missing":
            raise NotFound("no such thing: missing")
        if ref == "busy":
            raise Conflict("thing busy is in use")
        raise RuntimeError("a bug")

    @app.route("/things/<string:ref>/wait", methods=["POST"])
    @role("operator")
    async def wait(self, request: Any, ref: str) -> bytes:
        d: Deferred[None] = Deferred(lambda _: self._cancelled())
        self.pending.append(d)
        await d
        return b"done"

    @app.route("/things/<string:ref>/later", methods=["POST"])
    @role("operator")
    def later(self, request: Any, ref: str) -> Deferred[bytes]:
        """No coroutine: a Deferred, fired later (as the events stream's handler)."""
        d: Deferred[None] = Deferred(lambda _: self._cancelled())
        self.pending.append(d)
        return d.addCallback(lambda _: json_body(request, {"Later": ref}))

    @app.route("/things/<string:ref>/bad", methods=["POST"])
    @role("operator")
    async def bad(self, request: Any, ref: str) -> bytes:
        """Refuses after a wait, catching the awaited failure as handlers do."""
        d: Deferred[None] = Deferred()
        self.pending.append(d)
        try:
            await d
        except KeyError:
            raise NotFound(f"no such thing: {ref}") from None
        return b"unreachable"

    def _cancelled(self) -> None:
        self.cancelled += 1

    @app.route("/things/tree", methods=["GET"], branch=True)
    async def tree(self, request: Any) -> bytes:
        return b"branch"


def _through_klein(route: Any) -> Any:
    """The route with no endpoint: the root hands the request to Klein's resource."""
    return (
        None
        if route is None
        else base.Route(route.router, route.rule, route.args, route.least_role, "")
    )


REQUESTS = [
    ("GET", "/v1.45/things/a/json"),
    ("HEAD", "/things/a/json"),
    ("GET", "/things/b%20c/text"),
    ("DELETE", "/things/missing"),
    ("DELETE", "/things/busy"),
    ("DELETE", "/things/x"),
    ("POST", "/things/a/json"),  # 405
    ("GET", "/things/nothing/here/at/all"),  # 404 of the router
    ("GET", "/things//a/json"),  # redirect
    ("GET", "/things/tree/x/y"),  # a branch route: Klein runs it
]


def _with_marks(router: Any) -> dict[str, Any]:
    """The handlers the root runs itself (a role mark), by name."""
    return {name: fn for name, fn in vars(type(router)).items() if getattr(fn, "pyd_role", None)}


class RouteOnceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.router = _Router()
        self.root = ApiRoot([self.router])
        self.http = StubTreq(self.root)

    def _get(self, method: str, path: str) -> tuple[int, list[tuple[bytes, list[bytes]]], bytes]:
        resp = self.successResultOf(
            self.http.request(method, "http://pyd" + path, allow_redirects=False)
        )
        body = self.successResultOf(resp.content())
        headers = sorted((k, v) for k, v in resp.headers.getAllRawHeaders() if k.lower() != b"date")
        return resp.code, headers, body

    def test_answers_as_klein_does(self) -> None:
        """Every kind of outcome (body, text, HEAD, a refusal, a bug, 405, 404, a redirect, a
        branch) gives the status, headers and body Klein's own dispatch gives."""
        ours = [self._get(m, p) for m, p in REQUESTS]
        matched = self.root._routes.match

        def klein_only(first: bytes, method: str, path_info: str) -> Any:
            return _through_klein(matched(first, method, path_info))

        self.patch(self.root._routes, "match", klein_only)
        klein = [self._get(m, p) for m, p in REQUESTS]
        for (m, p), a, b in zip(REQUESTS, ours, klein, strict=True):
            self.assertEqual(a, b, f"{m} {p}")
        self.assertEqual([code for code, _, _ in ours][:7], [200, 200, 200, 404, 409, 500, 405])
        self.assertEqual(ours[0][2], b'{"Ref":"a"}\n')
        self.assertEqual(ours[2][2], b"text b c")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)  # the bug, both times

    def test_the_url_is_matched_once(self) -> None:
        """One URL-map match per request: the root's (the guard sees it, the dispatch runs it)."""
        calls: list[str] = []
        real = MapAdapter.match

        def counting(adapter: MapAdapter, *args: Any, **kw: Any) -> Any:
            calls.append(str(args[0] if args else kw.get("path_info")))
            return real(adapter, *args, **kw)

        self.patch(MapAdapter, "match", counting)
        seen: list[Any] = []
        self.root.guard = lambda request, method, path: seen.append(request.pyd_route)
        code, _, body = self._get("GET", "/v1.41/things/a/json")
        self.assertEqual((code, body), (200, b'{"Ref":"a"}\n'))
        self.assertEqual(calls, ["/things/a/json"])
        self.assertEqual(seen[0].endpoint, "get_json")
        self.assertEqual(seen[0].least_role, "viewer")

    def test_pending_handler_then_answer(self) -> None:
        """A handler that waits answers when it resumes."""
        d = self.http.request("POST", "http://pyd/things/a/wait")
        self.assertNoResult(d)
        self.router.pending[0].callback(None)
        self.http.flush()
        resp = self.successResultOf(d)
        self.assertEqual((resp.code, self.successResultOf(resp.content())), (200, b"done"))

    def test_handlers_run_directly(self) -> None:
        """Every marked handler of the router runs without Klein's endpoint (the root calls
        it), for each kind: a coroutine, a plain function, a refusal, a wait."""
        self.assertEqual(
            sorted(_with_marks(self.router)),
            ["bad", "delete", "get_json", "get_text", "later", "wait"],
        )
        self.patch(
            self.router.app, "execute_endpoint", lambda *a, **kw: self.fail("Klein's endpoint")
        )
        self.assertEqual(self._get("GET", "/things/a/json")[0], 200)
        self.assertEqual(self._get("GET", "/things/a/text")[2], b"text a")
        self.assertEqual(self._get("DELETE", "/things/busy")[0], 409)

    def test_deferred_handler_answers_when_fired(self) -> None:
        """A handler that returns a Deferred (no coroutine) answers with what it fires with."""
        d = self.http.request("POST", "http://pyd/things/a/later")
        self.assertNoResult(d)
        self.router.pending[0].callback(None)
        self.http.flush()
        resp = self.successResultOf(d)
        body = self.successResultOf(resp.content())
        self.assertEqual((resp.code, body), (200, b'{"Later":"a"}\n'))

    def test_awaited_failure_reaches_the_handler(self) -> None:
        """A failure of what a resumed handler awaits is raised inside it, where it is caught
        and turned into the handler's own refusal."""
        d = self.http.request("POST", "http://pyd/things/a/bad")
        self.router.pending[0].errback(KeyError("a"))
        self.http.flush()
        resp = self.successResultOf(d)
        body = self.successResultOf(resp.content())
        self.assertEqual((resp.code, body), (404, b'{"message": "no such thing: a"}\n'))

    def test_client_gone_cancels_the_handler(self) -> None:
        """The connection is lost before the answer: the handler's wait is cancelled, nothing is
        written, nothing is logged as an error."""
        request = DummyRequest([b"things", b"a", b"wait"])
        request.method = b"POST"
        route = RouteTable([self.router]).match(b"things", "POST", "/things/a/wait")
        assert route is not None
        run_route(route, request)
        self.assertEqual(self.router.cancelled, 0)
        request.processingFailed(Failure(ConnectionError("gone")))
        self.assertEqual(self.router.cancelled, 1)
        self.assertEqual(request.written, [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_client_gone_cancels_a_deferred_handler(self) -> None:
        """The same for a handler answering with a Deferred."""
        request = DummyRequest([b"things", b"a", b"later"])
        request.method = b"POST"
        route = RouteTable([self.router]).match(b"things", "POST", "/things/a/later")
        assert route is not None
        run_route(route, request)
        request.processingFailed(Failure(ConnectionError("gone")))
        self.assertEqual(self.router.cancelled, 1)
        self.assertEqual(request.written, [])
        self.assertEqual(self.flushLoggedErrors(), [])
