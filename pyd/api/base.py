"""What every router shares: a Klein app with pyd's error handling (layer: api).

A router is a class with a class-level C{app = make_app()}, C{@app.route(...)} methods (C{async def},
parse -> engine -> render) and a C{prefixes} tuple naming the first path segments it serves. The
root dispatches on the first segment, after stripping the C{/vX.Y} prefix.

Each route declares the least role that may call it, where it is defined (L{role}); the root
matches the request to its route once (L{RouteTable}) and hands that same route to the
authorization guard and to the dispatch (L{run_route}: the handler is called directly, without
Klein matching the URL again), so the rules decide on what will run. Klein's resource still answers what no
handler matched (404, 405, the merged-slashes redirect) and the branch routes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import CoroutineType, FunctionType, coroutine
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import attrs

# The module that defines what `klein.Klein` re-exports: with klein registered bare
# (pyd.tap.lean_imports) its forms, sessions, plating and requirer modules stay unloaded (~0.35 MB)
import klein._app
from klein._app import Klein
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.resource import IResource, getChildForRequest
from werkzeug.exceptions import HTTPException
from werkzeug.routing import MapAdapter, RequestRedirect

from pyd.api.errors import error_body, handle_failure
from pyd.api.rules import DeferredBuilderRule

log = Logger()

# Klein.route makes its werkzeug rules by this name: pyd's compile their URL builders, which
# the daemon never calls, on first use (pyd.api.rules)
klein._app.Rule = DeferredBuilderRule  # type: ignore[attr-defined,misc]  # a subclass of the same rule


def render_error(request: Any, failure: Failure) -> bytes:
    """A failed route as dockerd answers it: the body of the error, the status set."""
    if isinstance(failure.value, RequestRedirect):
        # a path with empty segments (C{/networks//x}): dockerd's router (gorilla mux)
        # answers 301 with the cleaned path in Location; werkzeug's 308 had none
        target = urlsplit(failure.value.new_url)
        _, sep, query = bytes(request.uri).partition(b"?")
        location = target.path.encode("utf-8") + (b"?" + query if sep else b"")
        request.setResponseCode(301)
        request.setHeader(b"Location", location)
        return b""
    if isinstance(failure.value, HTTPException):
        code = failure.value.code or 500
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"application/json")
        body = error_body("page not found" if code == 404 else str(failure.value.description))
        request.setHeader(b"Content-Length", str(len(body)).encode())  # as write_error's
        return body
    return handle_failure(request, failure)


def make_app() -> Klein:
    """A Klein app whose errors render as dockerd's C{{"message": ...}} bodies."""
    app = Klein()

    @app.handle_errors(Exception)  # type: ignore[arg-type]  # variadic: bound and unbound calls
    def _on_error(*args: Any) -> bytes:
        # Klein passes (instance, request, failure) when bound, (request, failure) otherwise.
        request, failure = args[-2], args[-1]
        assert isinstance(failure, Failure)
        return render_error(request, failure)

    return app


class Router(Protocol):
    """One area of the API."""

    prefixes: tuple[str, ...]

    def resource(self) -> IResource:
        """The Klein resource serving this router's routes."""
        ...


def api_version(request: Any) -> tuple[int, int]:
    """The API version the request asked for (set by the root; current when unversioned)."""
    v: tuple[int, int] = getattr(request, "pyd_api_version", (1, 50))
    return v


ROLES = ("viewer", "operator", "admin")  # least to most powerful
_F = TypeVar("_F", bound=Callable[..., Any])


def role(minimum: str, *, reads: str | None = None) -> Callable[[_F], _F]:
    """Declare the least role that may call the route(s) of the decorated handler.

    Put it under the C{@app.route(...)} lines. C{reads}: a different least role for GET and
    HEAD (a handler that serves several methods). A route without a declaration is admin-only.
    """
    if minimum not in ROLES or (reads is not None and reads not in ROLES):
        raise ValueError(f"unknown role {minimum!r}/{reads!r}")

    def mark(f: _F) -> _F:
        f.pyd_role = (minimum, reads or minimum)  # type: ignore[attr-defined]  # a role mark stored on the handler function for the router
        return f

    return mark


def lean(f: _F) -> _F:
    """Declare that the decorated handler only returns a whole body (bytes or text from
    L{pyd.api.wire.json_body}, L{pyd.api.wire.no_content}, or an error): no resource, no
    stream, no use of the connection. Its requests may then be served by L{pyd.api.lean}
    without twisted.web's parser. Put it next to L{role}."""
    f.pyd_lean = True  # type: ignore[attr-defined]  # a mark stored on the handler function
    return f


def is_lean(route: Route | None) -> bool:
    """Whether C{route} runs a handler marked L{lean}."""
    if route is None or not route.endpoint:
        return False
    handler = _handler(route)
    return handler is not None and getattr(handler, "pyd_lean", False) is True


@attrs.frozen
class Route:
    """The route a request will be dispatched to: its router, rule, arguments, least role."""

    router: Any
    rule: str  # werkzeug's rule text, e.g. "/containers/<string:ref>/exec"
    args: dict[str, Any]
    least_role: str
    # Klein's endpoint name, which L{run_route} runs; "" for a branch route (Klein runs it).
    endpoint: str = ""

    def parts(self) -> tuple[str, str, str]:
        """(first segment, the first argument's value, the rule after that argument): for
        C{/containers/<string:ref>/attach/ws}, C{("containers", <ref>, "attach/ws")}; for a
        rule without arguments, C{("containers", "", "create")}."""
        segments = self.rule.strip("/").split("/")
        for i, seg in enumerate(segments):
            if seg.startswith("<"):
                name = seg.strip("<>").split(":")[-1]
                return segments[0], str(self.args.get(name, "")), "/".join(segments[i + 1 :])
        return segments[0], "", "/".join(segments[1:])


def _match(router: Any, adapter: MapAdapter, method: str, path_info: str) -> Route | None:
    try:
        rule, args = adapter.match(path_info, method, return_rule=True)
    except (HTTPException, RequestRedirect):
        return None
    name = str(rule.endpoint)
    endpoint = name.removesuffix("_branch")
    handler = getattr(type(router) if not isinstance(router, type) else router, endpoint, None)
    declared = getattr(handler, "pyd_role", ("admin", "admin"))
    least = declared[1] if method in ("GET", "HEAD") else declared[0]
    return Route(router, str(rule.rule), dict(args), least, "" if name != endpoint else name)


def match_route(routers: Iterable[Any], method: str, path_info: str) -> Route | None:
    """The route of the first router whose URL map matches, as Klein will match it (None: no
    handler will run: Klein answers 404, 405 or a redirect to the merged-slashes URL)."""
    for router in routers:
        url_map = getattr(getattr(router, "app", None), "url_map", None)
        if url_map is None:
            continue
        route = _match(router, url_map.bind("pyd"), method, path_info)
        if route is not None:
            return route
    return None


# How many (path, method) verdicts a L{RouteTable} keeps.
RECENT_ROUTES = 512


class RouteTable:
    """The routers by the first path segment they serve, each URL map bound once (binding
    one per request and router cost more than the match itself): L{match_route} for the root."""

    def __init__(self, routers: Iterable[Any]) -> None:
        self._by_prefix: dict[bytes, list[tuple[Any, MapAdapter]]] = {}
        for router in routers:
            url_map = getattr(getattr(router, "app", None), "url_map", None)
            for prefix in router.prefixes:
                entries = self._by_prefix.setdefault(prefix.encode(), [])
                if url_map is not None:
                    entries.append((router, url_map.bind("pyd")))
        # Recent matches: the verdict is a function of (first, method, path) alone (the URL
        # maps are fixed once the routers are built), and werkzeug's matcher was ~8 % of a
        # small request. Bounded: emptied when full.
        self._recent: dict[tuple[bytes, str, str], Route | None] = {}

    def match(self, first: bytes, method: str, path_info: str) -> Route | None:
        """As L{match_route} over the routers serving the segment C{first}."""
        key = (first, method, path_info)
        try:
            return self._recent[key]
        except KeyError:
            pass
        found = None
        for router, adapter in self._by_prefix.get(first, ()):
            route = _match(router, adapter, method, path_info)
            if route is not None:
                found = route
                break
        if len(path_info) <= 256:  # a client's long paths do not fill the memory
            if len(self._recent) >= RECENT_ROUTES:
                self._recent.clear()
            self._recent[key] = found
        return found


def run_route(route: Route, request: Any) -> Any:
    """Run the handler of the route the root matched, as Klein's resource would once it had
    matched the same route again: the handler's result (bytes or text) is written and the
    request finished; a failure is rendered by L{render_error}; a client that goes away cancels
    the handler. Returns C{NOT_DONE_YET}, as Klein's render does.

    The handler is called directly (Klein's endpoint calls it with the router bound) and its
    coroutine stepped once: one that needs nothing it must wait for (an answer from a cache,
    a refusal) is written at once, without the Deferreds of Klein's C{ensureDeferred} and of
    C{notifyFinish}; one that waits continues under Twisted's coroutine driver, from where it
    stopped, cancellable as before."""
    handler = _handler(route)
    if handler is None:
        return _run_deferred(route, request)
    try:
        result = handler(route.router, request, **route.args)
        if isinstance(result, CoroutineType):
            try:
                waiting = result.send(None)
            except StopIteration as done:
                result = done.value
            else:
                return _run_deferred(
                    route, request, Deferred.fromCoroutine(_resume(result, waiting))
                )
        elif isinstance(result, Deferred):  # a handler that is no coroutine, answering later
            return _run_deferred(route, request, result)
    except BaseException:  # noqa: BLE001 - as maybeDeferred: rendered as the route's failure
        _write_failure(request, Failure(), False)
        return server.NOT_DONE_YET
    _write_result(request, result, False)
    return server.NOT_DONE_YET


def _handler(route: Route) -> Callable[..., Any] | None:
    """The function Klein's endpoint of C{route} calls (C{@app.route} returns it unchanged, under
    its endpoint's name), or None where that cannot be told (then Klein's endpoint runs)."""
    router = route.router
    fn = getattr(type(router), route.endpoint, None)
    if not isinstance(fn, FunctionType) or getattr(fn, "pyd_role", None) is None:
        return None
    return fn


@coroutine
def _resume(coro: Any, waiting: Any) -> Any:
    """Continue C{coro}, suspended awaiting C{waiting}, under Twisted's coroutine driver: each
    Deferred C{coro} awaits is handed to the driver (which waits for it, or cancels it), and
    its outcome handed back to C{coro}'s await: the value sent, the failure (a cancellation
    too) raised there, where the handler's own code can catch it."""
    while True:
        try:
            value = yield waiting
        except BaseException as e:  # noqa: BLE001 - raised inside coro, at its await
            step, arg = coro.throw, e
        else:
            step, arg = coro.send, value
        try:
            waiting = step(arg)
        except StopIteration as done:
            return done.value


def _write_result(request: Any, result: Any, finished: bool) -> None:
    if IResource.providedBy(result):
        request.render(getChildForRequest(result, request))
        return
    if isinstance(result, str):
        result = result.encode("utf-8")
    if isinstance(result, bytes):
        request.write(result)
    if not finished and not request.finished and not getattr(request, "_disconnected", False):
        request.finish()


def _write_failure(request: Any, failure: Failure, finished: bool) -> None:
    if finished:
        if not failure.check(CancelledError):
            log.failure("Unhandled Error Processing Request.", failure)
        return
    try:
        body = render_error(request, failure)
    except Exception:  # noqa: BLE001 - as Klein: an error handler's own failure is a 500
        request.processingFailed(Failure())
        return
    _write_result(request, body, finished)


def _run_deferred(route: Route, request: Any, started: Deferred[Any] | None = None) -> Any:
    """The handler's run through Deferreds: Klein's endpoint (or the run L{run_route} started,
    C{started}), written when it fires, cancelled when the client goes away."""
    app = route.router.app  # bound to the router instance (Klein's descriptor)
    finished = False
    running: list[Deferred[Any]] = []

    def gone(outcome: Any) -> None:
        nonlocal finished
        finished = True
        if isinstance(outcome, Failure) and running:
            running[0].cancel()  # the connection was lost before the answer

    request.notifyFinish().addBoth(gone)
    d: Deferred[Any] = (
        maybeDeferred(app.execute_endpoint, route.endpoint, request, **route.args)
        if started is None
        else started
    )
    running.append(d)
    d.addCallbacks(
        lambda result: _write_result(request, result, finished),
        lambda failure: _write_failure(request, failure, finished),
    )
    d.addErrback(lambda f: log.failure("Unhandled Error writing response", f))
    return server.NOT_DONE_YET
