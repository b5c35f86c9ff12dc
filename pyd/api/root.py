"""The root resource: version prefix, common headers, C{/_ping}, dispatch to routers (layer: api)."""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import unquote_to_bytes

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.http import datetimeToString, parse_qs
from twisted.web.http_headers import Headers
from twisted.web.resource import IResource, Resource

from pyd import __version__
from pyd.api.base import Route, Router, RouteTable, run_route
from pyd.api.bodystream import StreamedBody
from pyd.api.channel import ApiChannel
from pyd.api.errors import error_body, write_error
from pyd.core.errors import PydError

log = Logger()

MIN_API = (1, 24)
MAX_API = (1, 50)
MIN_API_STR = "1.24"
MAX_API_STR = "1.50"
ENGINE_VERSION = "28.2.2"
SERVER_HEADER = f"pyd/{__version__} (linux)".encode()

_VERSION_RE = re.compile(rb"^v(\d+)\.(\d+)$")
_COMMON = [
    (b"Api-Version", MAX_API_STR.encode()),
    (b"Ostype", b"linux"),
    (b"Docker-Experimental", b"false"),
    (b"Server", SERVER_HEADER),
]


def _raw_template(pairs: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """C{pairs} as twisted.web stores them (canonical name, sanitized value), computed once."""
    h = Headers()
    for name, value in pairs:
        h.setRawHeaders(name, [value])
    return [(name, values[0]) for name, values in h.getAllRawHeaders()]


_COMMON_RAW = _raw_template(_COMMON)
_PING_RAW = _raw_template(
    [
        (b"Builder-Version", b"1"),
        (b"Swarm", b"inactive"),
        (b"Cache-Control", b"no-cache, no-store, must-revalidate"),
        (b"Pragma", b"no-cache"),
        (b"Content-Type", b"text/plain; charset=utf-8"),
    ]
)
_DATE_NAME = _raw_template([(b"Date", b"x")])[0][0]
_date_cache: list[Any] = [0, b""]


def _http_date() -> bytes:
    """The Date header's value: formatting it costs more than the rest of a /_ping's headers,
    and it only changes once a second."""
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0], _date_cache[1] = now, datetimeToString(now)
    date: bytes = _date_cache[1]
    return date


def _put_headers(request: Any, pairs: list[tuple[bytes, bytes]]) -> None:
    """Set prepared (canonical, sanitized) headers without twisted.web's per-call name and value
    checks; the public path where the private store is not there."""
    raw = getattr(request.responseHeaders, "_rawHeaders", None)
    if isinstance(raw, dict):
        for name, value in pairs:
            raw[name] = [value]
    else:
        for name, value in pairs:
            request.responseHeaders.setRawHeaders(name, [value])


# A request that is only a ping: `GET|HEAD /[vX.Y/]_ping HTTP/1.1`, nothing after the path.
_QUICK_PING = re.compile(rb"(GET|HEAD) /(?:v(\d+)\.(\d+)/)?_ping HTTP/1\.1\Z")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Headers after which a request is no longer "just a ping" (a body, an upgrade, a close...).
_QUICK_REFUSE = frozenset(
    (b"content-length", b"transfer-encoding", b"connection", b"expect", b"upgrade")
)


def _ping_answer(head: bool, date: bytes) -> bytes:
    """The whole response to a ping, exactly as the resource path writes it."""
    lines = [b"HTTP/1.1 200 OK", _DATE_NAME + b": " + date]
    lines += [name + b": " + value for name, value in (*_COMMON_RAW, *_PING_RAW)]
    lines.append(b"Content-Length: " + (b"0" if head else b"2"))
    return b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if head else b"OK")


_ping_cache: list[Any] = [b"", b"", b""]  # date, GET answer, HEAD answer


def _parse_ping(data: bytes) -> tuple[bool, str] | None:
    """(HEAD?, path) when C{data} is exactly one ping request that the full path would answer
    200, else None."""
    end = data.find(b"\r\n\r\n")
    if end != len(data) - 4:
        return None  # more than one request in the chunk
    lines = data[:end].split(b"\r\n")
    m = _QUICK_PING.match(lines[0])
    if m is None:
        return None
    if m.group(2) is not None:
        version = (int(m.group(2)), int(m.group(3)))
        if not MIN_API <= version <= MAX_API:
            return None
    if len(lines) > 64:
        return None  # the full path enforces the header count limit
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or _TOKEN.fullmatch(name) is None or b"\x00" in value:
            return None
        lname = name.lower()
        if lname in _QUICK_REFUSE:
            v = value.strip().lower()
            if not (
                (lname == b"content-length" and v == b"0")
                or (lname == b"connection" and v == b"keep-alive")
            ):
                return None
    return m.group(1) == b"HEAD", lines[0][len(m.group(1)) + 1 : -9].decode()


# Requests already found to be pings, by their exact bytes (a client sends the same ping each
# time): the verdict is a function of the bytes alone. Bounded: emptied when full.
_known_pings: dict[bytes, tuple[bool, str]] = {}
_KNOWN_PINGS_MAX = 256


def quick_ping(data: bytes) -> tuple[bytes, str, str] | None:
    """(response, method, path) when C{data} is exactly one ping request that the full path
    would answer 200, else None (the full path handles it, whatever it is).

    Every docker CLI command starts with a ping; answering it from the raw bytes skips
    twisted.web's request object, header parsing and resource traversal (~3/4 of its cost).
    """
    if len(data) > 8192 or not data.endswith(b"\r\n\r\n"):
        return None
    if not data.startswith(b"_ping HTTP/1.1\r\n", data.find(b"\r\n") - 14):
        return None  # not a ping (most requests): decided on the first line alone
    known = _known_pings.get(data)
    if known is None:
        known = _parse_ping(data)
        if known is None:
            return None
        if len(_known_pings) >= _KNOWN_PINGS_MAX:
            _known_pings.clear()
        _known_pings[data] = known
    head, path = known
    date = _http_date()
    if _ping_cache[0] != date:
        _ping_cache[:] = [date, _ping_answer(False, date), _ping_answer(True, date)]
    return _ping_cache[2 if head else 1], "HEAD" if head else "GET", path


# The methods the API has, exactly as sent (HTTP methods are case-sensitive tokens).
METHODS = frozenset((b"GET", b"HEAD", b"POST", b"PUT", b"DELETE"))

# Called before dispatch with (request, method, route path); raises PydError (e.g. Forbidden) to
# refuse, or returns a Deferred that fails with one (when the decision needs a lookup).
Guard = Callable[[Any, str, str], "Deferred[None] | None"]


class ApiRoot(Resource):
    """Serves the whole Engine API; routers never see the C{/vX.Y} prefix."""

    isLeaf = True

    def __init__(self, routers: Iterable[Router], guard: Guard | None = None) -> None:
        super().__init__()
        self._by_prefix: dict[bytes, IResource] = {}
        # Several routers may serve one first segment (e.g. "containers": lifecycle and streams);
        # then the first whose Klein URL map matches the path and method gets the request.
        self._shared: dict[bytes, list[tuple[Any, IResource]]] = {}
        routers = list(routers)
        for router in routers:
            res = router.resource()
            for prefix in router.prefixes:
                key = prefix.encode()
                self._shared.setdefault(key, []).append((router, res))
                self._by_prefix.setdefault(key, res)
        # The one route lookup per request: the guard decides on it and the dispatch runs it.
        self._routes = RouteTable(routers)
        self.guard = guard

    def render(self, request: Any) -> Any:
        """Negotiate the version, add the common headers, dispatch."""
        early = self.resolve(request)
        if early is not None:
            return early
        return self.proceed(request)

    def resolve(self, request: Any) -> bytes | None:
        """The first half of L{render}: the common headers, the method, the version prefix and
        the route lookup (C{request.pyd_route}). Returns the answer's body when it is decided
        here (a ping, a version out of range, no path), else None: then L{proceed} runs the
        guard and the route. Nothing but C{request} is changed, so a caller that only looks at
        the route (L{pyd.api.lean}) may still hand the connection to the full path."""
        _put_headers(request, _COMMON_RAW)
        if request.method not in METHODS:
            # dockerd's router matches methods exactly (C{post} is no route of its); werkzeug
            # would upper-case it and dispatch, after the guard had read it as another method.
            # One normalized method for the guard and the routers: refuse anything else.
            return self._not_found(request)
        path = request.postpath
        if path and path[0] == b"_ping":
            return self._ping(request)
        if path:
            m = _VERSION_RE.match(path[0])
            if m:
                version = (int(m.group(1)), int(m.group(2)))
                if version > MAX_API:
                    return self._fail(
                        request,
                        400,
                        (
                            f"client version {m.group(1).decode()}.{m.group(2).decode()} is too new. "
                            f"Maximum supported API version is {MAX_API_STR}"
                        ),
                    )
                if version < MIN_API:
                    return self._fail(
                        request,
                        400,
                        (
                            f"client version {m.group(1).decode()}.{m.group(2).decode()} is too old. "
                            f"Minimum supported API version is {MIN_API_STR}, please upgrade your "
                            "client to a newer version"
                        ),
                    )
                request.pyd_api_version = version
                request.prepath.append(path[0])
                path = request.postpath = path[1:]
        if not path or not path[0]:
            return self._not_found(request)
        if path[0] == b"_ping":
            return self._ping(request)
        # The one route lookup: the guard decides on it and the dispatch runs it.
        request.pyd_route = self._route(request, path)
        return None

    def proceed(self, request: Any) -> Any:
        """The second half of L{render}, after L{resolve} returned None: the guard decides on
        the route, then the route runs. Returns a body or C{NOT_DONE_YET}, as L{render}."""
        path = request.postpath
        if self.guard is not None:
            try:
                verdict = self.guard(
                    request,
                    request.method.decode(),
                    "/" + b"/".join(path).decode("utf-8", "replace"),
                )
            except PydError as e:
                return write_error(request, e)
            if verdict is not None:
                return self._after(verdict, request, path)
        return self._dispatch(request, path)

    def _after(self, verdict: Deferred[None], request: Any, path: list[bytes]) -> Any:
        """Dispatch once the guard's Deferred fires (at once when it already has)."""
        if verdict.called:  # decided without waiting (the common case): stay synchronous
            box: list[Any] = []
            verdict.addBoth(box.append)
            outcome = box[0]
            if isinstance(outcome, Failure):
                if not outcome.check(PydError):
                    log.failure("authorization check failed", outcome)
                return write_error(request, outcome.value or Exception())
            return self._dispatch(request, path)

        def go(outcome: Any) -> None:
            if isinstance(outcome, Failure):
                if not outcome.check(PydError):
                    log.failure("authorization check failed", outcome)
                body = write_error(request, outcome.value or Exception())
            else:
                body = self._dispatch(request, path)
                if body is server.NOT_DONE_YET:
                    return
            if not getattr(request, "_disconnected", False) and not request.finished:
                request.write(body)
                request.finish()

        verdict.addBoth(go)
        return server.NOT_DONE_YET

    def _route(self, request: Any, path: list[bytes]) -> Route | None:
        """The route this request will run (as Klein would match it), or None: no handler runs
        (no router for the first segment, or Klein answers 404, 405 or a redirect)."""
        try:
            path_info = "/" + b"/".join(path).decode("utf-8")
        except UnicodeDecodeError:
            return None  # Klein answers 400
        return self._routes.match(path[0], request.method.decode(), path_info)

    def _dispatch(self, request: Any, path: list[bytes]) -> Any:
        route: Route | None = getattr(request, "pyd_route", None)
        if route is not None and route.endpoint:
            return run_route(route, request)  # the route matched above, not matched again
        # No handler matched (Klein answers 404, 405, 400 or the redirect) or a branch route.
        target = self._by_prefix.get(path[0])
        if target is None:
            return self._not_found(request)
        for router, res in self._shared.get(path[0], []):
            if route is not None and router is route.router:
                target = res
                break
        return target.render(request)

    def _ping(self, request: Any) -> bytes:
        _put_headers(request, _PING_RAW)
        if request.method == b"HEAD":
            request.setHeader(b"Content-Length", b"0")
            return b""
        if request.method != b"GET":
            return self._not_found(request)
        return b"OK"

    def _fail(self, request: Any, code: int, message: str) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"application/json")
        return error_body(message)

    def _not_found(self, request: Any) -> bytes:
        return self._fail(request, 404, "page not found")


# Bytes of a request body gathered before one write to its spool file. twisted.web writes each
# piece its chunked decoder yields (a CLI's 32 KiB chunks arrive as ~3 pieces per read): a
# 32 MiB `docker cp` body was ~1,500 writes.
BODY_WRITE_BUFFER = 1 << 20


# The requests whose body is handed on as it arrives (L{pyd.api.bodystream}): C{docker cp}
# into a container. Decided on the request line alone; the route and the guard decide the rest.
_STREAMED = re.compile(rb"/(?:v\d+\.\d+/)?containers/[^/?#]+/archive(?:\?.*)?\Z", re.DOTALL)


class ApiRequest(server.Request):
    """twisted.web's request without its default C{Server} header (the root sets pyd's), with
    the C{Date} formatted once a second, a large body spooled in large writes, and the body of
    a C{PUT archive} streamed to its handler (processed once its headers are in)."""

    streamed: StreamedBody | None = None
    _body_complete = False
    _finish_pending = False

    def gotLength(self, length: int | None) -> None:
        """A body of unknown length or over twisted.web's 100 kB goes to an unlinked file, as
        twisted.web does, written through a L{BODY_WRITE_BUFFER} buffer; a streamed route's
        body is a L{StreamedBody} and the request is processed now."""
        if length != 0 and self._stream_now():
            return
        if length is not None and length < 100000:
            super().gotLength(length)
            return
        self.content = tempfile.TemporaryFile(buffering=BODY_WRITE_BUFFER)  # noqa: SIM115 - closed by twisted.web

    def _stream_now(self) -> bool:
        """Process a streamed route's request before its body (see L{_STREAMED})."""
        channel: Any = self.channel
        command, uri = getattr(channel, "_command", None), getattr(channel, "_path", None)
        if command != b"PUT" or uri is None or _STREAMED.match(uri) is None:
            return False
        if self.requestHeaders.hasHeader(b"Expect"):
            return False  # the channel answers 100-continue after this: no early answer
        reactor = getattr(channel.site, "reactor", None)
        if reactor is None or channel.transport is None:
            return False
        self.streamed = StreamedBody(reactor, channel.transport)
        self.content = self.streamed  # type: ignore[assignment]  # written by the channel as a file would be
        # what twisted.web's requestReceived sets, but for the body (see requestReceived)
        self.args = {}
        self.method, self.uri, self.clientproto = command, uri, channel._version
        path, _, query = uri.partition(b"?")
        self.path = path
        if query:
            self.args = parse_qs(query, 1)
        self.process()
        return True

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """The body is complete: a streamed request was processed already (its answer, if
        written, is finished now); any other is processed as twisted.web does.

        twisted.web parses a POST body into C{args} when it is a form (dockerd's ParseForm
        reads an urlencoded body too) and, to tell, parses every POST's Content-Type with the
        C{email} package: ~0.6 MB of modules loaded at the first C{docker create} and tens of
        microseconds a request. A type without "form" in it is no form whatever the email
        parser makes of it, so its body is left alone."""
        if self.streamed is None:
            ctype = self.requestHeaders.getRawHeaders(b"content-type")
            self._parsePOSTFormSubmission = ctype is not None and b"form" in ctype[0].lower()
            super().requestReceived(command, path, version)
            return
        self._body_complete = True
        self.streamed.end()
        if self._finish_pending:
            super().finish()

    def connectionLost(self, reason: Failure) -> None:
        """The client went away: its handler is cancelled first (as for any request), then a
        streamed body is closed (its reader sees an early end and stops)."""
        streamed = self.streamed
        if streamed is not None:
            self.content = None
        super().connectionLost(reason)
        if streamed is not None:
            streamed.close()

    def finish(self) -> None:
        """A streamed request's answer ends only after its body (the channel reads the next
        request after it): until then what is left of the body is discarded."""
        if self.streamed is not None and not self._body_complete:
            self.streamed.drop()
            self._finish_pending = True
            return
        super().finish()

    def process(self) -> None:
        """Find the resource and render it, as twisted.web does."""
        self.site = self.channel.site  # type: ignore[attr-defined]  # HTTPChannel.site is set by Site.buildProtocol, untyped in twisted
        _put_headers(self, [(_DATE_NAME, _http_date())])
        self.prepath = []
        self.postpath = list(map(unquote_to_bytes, self.path[1:].split(b"/")))
        if self.path == b"*":
            self._handleStar()
            return
        try:
            self.render(self.site.getResourceFor(self))
        except BaseException:  # noqa: BLE001 - twisted.web's own contract: a failed render is a 500
            self.processingFailed(Failure())


class ApiSite(server.Site):
    """A Site that logs one line per request (method, path, status, duration) at debug level."""

    noisy = False
    # our channel: a header deadline and the TLS handshake notice (no HTTP/2 offered)
    protocol = ApiChannel  # type: ignore[assignment]  # twisted types Site.protocol as the HTTPFactory's own channel class
    requestFactory = ApiRequest

    def __init__(
        self,
        resource: IResource,
        observers: Sequence[Callable[[str, str, int, float], None]] = (),
        debug_enabled: Callable[[], bool] = lambda: True,
        header_timeout: float = 0.0,
        **kw: Any,
    ) -> None:
        super().__init__(resource, **kw)
        # Seconds a request's headers may take from its first byte (0: no deadline).
        self.header_timeout = header_timeout
        self.sessionFactory = server.Session
        # Called with (path, method, status, seconds) for every finished request (metrics).
        self.observers = list(observers)
        # Whether debug events would be kept; the access line is skipped otherwise (it is the
        # single most expensive part of a /_ping when built and then filtered out).
        self.debug_enabled = debug_enabled
        # Whether whole plain requests for lean routes skip twisted.web's parser (pyd.api.lean);
        # off, every request takes the full path (the tests compare the two).
        self.lean = True
        from pyd.api import lean  # here: pyd.api.lean imports this module

        self._lean_serve = lean.serve
        self._lean_direct = lean.serve_direct

    def lean_request(self, channel: Any, data: bytes) -> bool:
        """Serve C{data}, read by C{channel} between requests, when it is one whole request
        for a lean route (L{pyd.api.lean.serve}); False leaves it to twisted.web's parser.
        Called by L{ApiChannel}."""
        return self.lean and self._lean_serve(channel, data)

    def direct(self, conn: Any, data: bytes) -> bool:
        """Serve C{data}, the first read of a connection that has no transport yet
        (L{pyd.daemon.direct}), when it is a ping or one lean request; False leaves the
        connection and the read to the full path."""
        if not self.lean:
            return False
        answer = self.quick_response(data)
        if answer is not None:
            conn.done(answer, True)  # a quick ping is never "Connection: close"
            return True
        return self._lean_direct(self, conn, data)

    def quick_response(self, data: bytes) -> bytes | None:
        """The answer to C{data} when it is exactly one ping (L{quick_ping}), counted and
        logged as the full path does; None otherwise. Called by L{ApiChannel}."""
        started = time.monotonic()
        quick = quick_ping(data)
        if quick is None:
            return None
        answer, method, path = quick
        duration = time.monotonic() - started
        for observe in self.observers:
            observe(path, method, 200, duration)
        if self.debug_enabled():
            log.debug(
                "{method} {path} {code} {duration:.4f}s api={version}",
                method=method,
                path=path,
                code=200,
                duration=duration,
                version=path[2:].split("/")[0] if path.startswith("/v") else MAX_API_STR,
            )
        return answer

    def log(self, request: Any) -> None:
        """twisted.web's access-log hook, as one structured event."""
        started = getattr(request, "pyd_started", None)
        duration = (time.monotonic() - started) if started else 0.0
        if self.observers:
            path = request.path.decode("utf-8", "replace")
            method = request.method.decode()
            for observe in self.observers:
                observe(path, method, request.code, duration)
        if not self.debug_enabled():
            return
        log.debug(
            "{method} {path} {code} {duration:.4f}s api={version}",
            method=request.method.decode(),
            path=request.uri.decode("utf-8", "replace"),
            code=request.code,
            duration=duration,
            version=".".join(map(str, getattr(request, "pyd_api_version", MAX_API))),
        )

    def getResourceFor(self, request: Any) -> IResource:
        """Stamp the start time, then resolve as usual."""
        request.pyd_started = time.monotonic()
        resource: IResource = super().getResourceFor(request)
        return resource
