"""The lean door of the API (layer: api): a read that holds exactly one whole, plain request for
a route marked L{pyd.api.base.lean} is served without twisted.web's line parser.

Every CLI command opens a connection, sends one small request and C{Connection: close}; for
those twisted.web's C{HTTPChannel} splits the read into lines, parses each header on its own,
chooses a transfer decoder, builds the request's content file, and only then processes it:
about as much work as the route itself. Here the read is parsed at once (L{parse}), with the
same validations twisted.web applies (its request-line parser, its header-name encoder, its
value checks), into a L{LeanRequest}: a L{pyd.api.root.ApiRequest} (so writing, finishing,
logging, observers, C{notifyFinish} and the handler's cancellation on a lost connection are
twisted.web's own code) whose state is set from the parse instead of by the channel.

The request is then resolved by the root exactly as the full path does (L{ApiRoot.resolve}:
version prefix, route lookup); only when the answer is decided there, or the route's handler
is marked lean, is it served here, through the same guard and dispatch (L{ApiRoot.proceed})
and twisted.web's own C{render} tail (HEAD, Content-Length). Anything else (a pipelined or
partial read, a body that is chunked or not all there, C{Expect}, C{Upgrade}, HTTP/1.0, a form
body, a malformed head, a route that is not marked) is left, untouched, to the full path.
"""

from __future__ import annotations

import io
import time
from typing import Any
from urllib.parse import unquote_to_bytes

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel, _parseRequestLine, parse_qs
from twisted.web.http_headers import Headers, InvalidHeaderName, _nameEncoder

from pyd.api.base import is_lean
from pyd.api.channel import head_bytes
from pyd.api.root import _DATE_NAME, METHODS, ApiRequest, ApiRoot, _http_date, _put_headers

log = Logger()

# What a lean read may hold: a head within twisted.web's limits (16 KiB of header lines, 500
# headers) and a body twisted.web would keep in memory (under 100 kB).
MAX_HEAD = 8192
MAX_HEADERS = 100
MAX_BODY = 65536

_CONTENT_LENGTH = b"Content-Length"
# Headers after which a request is not plain: a body of unknown length, a wish to be told to
# send the body, a protocol switch.
_REFUSE = frozenset((b"Transfer-Encoding", b"Expect", b"Upgrade"))


class Parsed:
    """One whole request read from the wire."""

    __slots__ = ("body", "headers", "method", "uri")

    def __init__(
        self, method: bytes, uri: bytes, headers: dict[bytes, list[bytes]], body: bytes
    ) -> None:
        self.method = method
        self.uri = uri
        self.headers = headers  # canonical name -> values, in order, as twisted.web's Headers
        self.body = body


def parse(data: bytes) -> Parsed | None:
    """The request C{data} holds, when it is exactly one whole plain HTTP/1.1 request that
    twisted.web would accept as it is; None for anything else (the full path decides)."""
    end = data.find(b"\r\n\r\n")
    if end < 0 or end > MAX_HEAD:
        return None
    lines = data[:end].split(b"\r\n")
    if len(lines) > MAX_HEADERS + 1:
        return None
    try:
        method, uri, version = _parseRequestLine(lines[0])
    except ValueError:
        return None
    if version != b"HTTP/1.1" or method not in METHODS or uri[:1] != b"/":
        return None
    headers: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or line[:1] in b" \t":
            return None  # no colon, or a folded line: twisted.web's own answer
        try:
            name = _nameEncoder.encode(name)
        except InvalidHeaderName:
            return None
        value = value.strip(b" \t")
        if len(value.translate(None, b"\x00\r\n")) != len(value):
            return None
        if name in _REFUSE:
            return None
        headers.setdefault(name, []).append(value)
    body = data[end + 4 :]
    length = headers.get(_CONTENT_LENGTH)
    if length is None:
        if body:
            return None  # a second request (pipelined) or garbage after this one
    elif len(length) != 1 or not length[0].isdigit() or int(length[0]) != len(body):
        return None  # twisted.web refuses several lengths; a body split or followed by more
    elif len(body) > MAX_BODY:
        return None
    ctype = headers.get(b"Content-Type")
    if ctype is not None and b"form" in ctype[0].lower():
        return None  # twisted.web may parse a form body into the arguments (ApiRequest)
    return Parsed(method, uri, headers, body)


class _Address:
    """A request's address attribute read from its channel when first asked (C{getPeer} or
    C{getHost}), then kept; assignable, as twisted.web's plain attribute is."""

    def __init__(self, getter: str) -> None:
        self._getter = getter

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = "_lean_" + name

    def __get__(self, request: Any, owner: type | None = None) -> Any:
        if request is None:
            return self
        found = request.__dict__.get(self._slot)
        if found is None:
            found = request.__dict__[self._slot] = getattr(request.channel, self._getter)()
        return found

    def __set__(self, request: Any, value: Any) -> None:
        request.__dict__[self._slot] = value


class LeanRequest(ApiRequest):
    """An L{ApiRequest} whose state comes from L{parse} rather than from the channel's parser;
    everything it does once processed (write, finish, log, notifications, connection loss) is
    twisted.web's own."""

    # set by the door (as ApiSite.getResourceFor would) and by the root (its route lookup)
    pyd_started: float
    pyd_route: Any

    def __init__(self, channel: Any, parsed: Parsed) -> None:
        # What twisted.web's Request.__init__ sets (http.Request's, Componentized's), but the
        # two addresses: read when asked (L{client}, L{host}), which nothing in pyd does, while
        # the first read of each costs an address object per connection. The component test
        # compares the attributes with twisted.web's.
        self.notifications = []
        self.channel = channel
        self.transport = channel.transport
        self.requestHeaders = Headers()
        self.requestHeaders._rawHeaders = parsed.headers  # type: ignore[misc]  # twisted's own store, filled as its addRawHeader would
        self.received_cookies = {}
        self.responseHeaders = Headers()
        self.cookies = []
        self.queued = 0
        # (the form parsing is decided on this before a request is processed: parse() leaves
        # forms to the full path)
        self._parsePOSTFormSubmission = False
        self._adapterCache = {}
        self.content = io.BytesIO(parsed.body)
        self.method = parsed.method
        self.uri = uri = parsed.uri
        self.clientproto = b"HTTP/1.1"
        self.args = {}
        path, sep, query = uri.partition(b"?")
        self.path = path
        if sep:
            self.args = parse_qs(query, 1)

    # twisted.web's C{Request.client} and C{Request.host}, read when first asked
    client = _Address("getPeer")
    host = _Address("getHost")


def _prepare(channel: Any, data: bytes) -> tuple[LeanRequest, bytes | None, bool] | None:
    """The request C{data} holds, resolved by the root, with its early answer (if decided
    there) and whether the connection persists after it; None when it is not one lean request
    (nothing outside the request was touched then)."""
    site = channel.site
    root = site.resource
    if not isinstance(root, ApiRoot):
        return None
    try:
        parsed = parse(data)
        if parsed is None:
            return None
        request = LeanRequest(channel, parsed)
        # as twisted.web: the persistence first (it may set "Connection: close"), then process()
        persistent = HTTPChannel.checkPersistence(channel, request, b"HTTP/1.1")
        request.site = site
        _put_headers(request, [(_DATE_NAME, _http_date())])
        request.prepath = []
        path = parsed.uri.partition(b"?")[0]
        request.postpath = list(map(unquote_to_bytes, path[1:].split(b"/")))
        request.pyd_started = time.monotonic()  # as ApiSite.getResourceFor
        early = root.resolve(request)
        if early is None and not is_lean(request.pyd_route):
            return None
    except Exception:  # noqa: BLE001 - never worse than the full path, which then has the read
        log.failure("lean request refused by a failure; the full path serves it")
        return None
    return request, early, persistent


def _render(request: LeanRequest, early: bytes | None) -> None:
    """Render a prepared request as twisted.web's C{process} does."""
    site: Any = request.site
    try:
        request.render(_Resolved(site.resource, early))
    except BaseException:  # noqa: BLE001 - twisted.web's own contract: a failed render is a 500
        request.processingFailed(Failure())


def serve(channel: Any, data: bytes) -> bool:
    """Serve C{data} on C{channel} (an L{pyd.api.channel.ApiChannel} between requests) when it
    is one lean request: True once it is answered or under way (the channel then holds it as
    its current request, as its parser would), False when the full path must have it."""
    prepared = _prepare(channel, data)
    if prepared is None:
        return False
    request, early, persistent = prepared
    # the channel's state as its parser leaves it for a request being handled
    # (HTTPChannel.allHeadersReceived and allContentReceived)
    channel.persistent = persistent
    channel.requests.append(request)
    if channel.timeOut:
        channel._savedTimeOut = channel.setTimeout(None)
    channel._handlingRequest = True
    channel.setRawMode()
    _render(request, early)
    return True


def serve_direct(site: Any, conn: Any, data: bytes) -> bool:
    """Serve C{data}, the first read of a connection that has no transport yet
    (L{pyd.daemon.direct.RawConnection}), when it is one lean request: True once it is
    answered or under way (its answer leaves through C{conn.done}), False when the full path
    must have the connection and the read."""
    channel = DirectChannel(site, conn)
    prepared = _prepare(channel, data)
    if prepared is None:
        return False
    request, early, channel.persistent = prepared
    channel.requests.append(request)
    _render(request, early)
    return True


class DirectChannel:
    """The channel of a request served on a connection with no transport (L{serve_direct}):
    what twisted.web's request asks of its channel while it is written and finished. The
    answer is gathered and handed to the connection at once when the request is done."""

    def __init__(self, site: Any, conn: Any) -> None:
        self.site = site
        # twisted.web's finish logs the request through its channel's factory, before the
        # answer leaves; here it is logged (the access line, the metrics) once it has left
        self.factory = self
        self.transport = conn
        self.requests: list[Any] = []
        self.persistent = False
        self._out: list[bytes] = []
        self._finished: Any = None

    def log(self, request: Any) -> None:
        """The site's log of C{request}, kept for after its answer left (L{requestDone})."""
        self._finished = request

    def getPeer(self) -> Any:
        return self.transport.getPeer()

    def getHost(self) -> Any:
        return self.transport.getHost()

    def isSecure(self) -> bool:
        return False  # a Unix socket

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Any) -> None:
        self._out.append(head_bytes(version, code, reason, headers))

    def write(self, data: bytes) -> None:
        self._out.append(data)

    def writeSequence(self, data: Any) -> None:
        self._out.extend(data)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        # a lean route answers with a body (L{pyd.api.base.lean}); a producer is a stream
        raise RuntimeError("a lean route's request took a producer")

    def requestDone(self, request: Any) -> None:
        """The request is finished: its answer leaves (L{RawConnection.done})."""
        self.requests.remove(request)
        out, self._out = b"".join(self._out), []
        self.transport.done(out, self.persistent)
        finished, self._finished = self._finished, None
        if finished is not None:
            self.site.log(finished)


class _Resolved:
    """What twisted.web's C{Request.render} renders: the answer L{ApiRoot.resolve} decided, or
    the guard and the route (L{ApiRoot.proceed})."""

    __slots__ = ("early", "root")

    def __init__(self, root: ApiRoot, early: bytes | None) -> None:
        self.root = root
        self.early = early

    def render(self, request: Any) -> Any:
        if self.early is not None:
            return self.early
        return self.root.proceed(request)
