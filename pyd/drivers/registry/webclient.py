"""The HTTP client the registry clients speak through (layer: drivers): one request on
twisted.web's C{Agent} with headers, a body (bytes or a producer), Basic credentials, redirects
followed, gzip answers decoded and a deadline for the answer's head; the answer's body read
whole (L{WebResponse.content}) or streamed (L{WebResponse.deliverBody}).

Why not treq, which pyd used here before: the part of treq pyd used is this module's few
lines over C{Agent}, which did the work already, and treq with what it imports (hyperlink,
idna, multipart, email's parser) made the daemon's first pull or push cost it ~1.2 MiB more
resident for good (docs/performance.md, issue 21). The behaviour is treq's for what pyd asks
of it (tests/unit/test_webclient.py, and tests/contract/test_registry_transport.py against
registries), except that no cookie is kept between requests, as dockerd keeps none.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from io import BytesIO
from typing import Any
from urllib.parse import quote

from twisted.internet.defer import Deferred
from twisted.internet.error import TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import (
    ContentDecoderAgent,
    FileBodyProducer,
    GzipDecoder,
    RedirectAgent,
    ResponseDone,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IResponse

# What a URL may keep as it is: RFC 3986's reserved and unreserved characters, and '%' (a
# URL pyd builds is already encoded). Anything else (a space, a non-ASCII letter in a realm a
# registry sent) is percent-encoded, as treq's hyperlink did, instead of making Agent refuse
# the whole URL.
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"


def _uri(url: str) -> bytes:
    return quote(url, safe=_URL_SAFE).encode("ascii")


class _Collect(Protocol):
    """Gathers a body for C{finished}; a body that ended without its length known (HTTP/1.0)
    is whole too."""

    def __init__(self, finished: Callable[[bytes | Failure], None]) -> None:
        self._parts: list[bytes] = []
        self._finished = finished

    def dataReceived(self, data: bytes) -> None:
        self._parts.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if reason.check(ResponseDone, PotentialDataLoss):
            self._finished(b"".join(self._parts))
        else:
            self._finished(reason)


class WebResponse:
    """An answer: its status, headers and body, read once (whole or streamed)."""

    def __init__(self, original: IResponse) -> None:
        self.original = original
        self._result: bytes | Failure | None = None
        self._waiters: list[Deferred[bytes]] | None = None

    @property
    def code(self) -> int:
        """The status code."""
        return int(self.original.code)

    @property
    def phrase(self) -> bytes:
        """The status phrase."""
        return bytes(self.original.phrase)

    @property
    def headers(self) -> Headers:
        """The answer's headers."""
        headers: Headers = self.original.headers
        return headers

    def deliverBody(self, protocol: Protocol) -> None:
        """Stream the body to C{protocol} (instead of L{content})."""
        self.original.deliverBody(protocol)

    def content(self) -> Deferred[bytes]:
        """The whole body: read the first time, the same bytes (or failure) after."""
        d: Deferred[bytes] = Deferred()
        if self._result is not None:
            self._fire(d, self._result)
        elif self._waiters is not None:
            self._waiters.append(d)
        else:
            self._waiters = [d]
            self.original.deliverBody(_Collect(self._finished))
        return d

    def _finished(self, result: bytes | Failure) -> None:
        self._result = result
        waiters, self._waiters = self._waiters or [], []
        for d in waiters:
            self._fire(d, result)

    @staticmethod
    def _fire(d: Deferred[bytes], result: bytes | Failure) -> None:
        if isinstance(result, Failure):
            d.errback(result)
        else:
            d.callback(result)


class WebClient:
    """Requests through C{agent} (the daemon's pooled, TLS-policy-bound Agent, or its proxied
    one), with treq's call shape: C{request(method, url, headers=, data=, auth=,
    allow_redirects=, timeout=)}, C{get} and C{post}. A body is read only when asked for
    (L{WebResponse.content} or C{deliverBody}), so treq's C{unbuffered} has no use here."""

    def __init__(self, agent: IAgent, reactor: IReactorTime) -> None:
        self._agent = agent
        self._reactor = reactor
        # Go's client (dockerd's) asks for gzip and decodes it; treq did too
        self._redirecting = ContentDecoderAgent(RedirectAgent(agent), [(b"gzip", GzipDecoder)])
        self._direct = ContentDecoderAgent(agent, [(b"gzip", GzipDecoder)])

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Headers | Mapping[str, Sequence[str]] | None = None,
        data: bytes | IBodyProducer | None = None,
        auth: tuple[str, str] | None = None,
        allow_redirects: bool = True,
        timeout: float | None = None,
    ) -> Deferred[WebResponse]:
        """Send one request; fires with the answer once its head arrived.

        @param data: the body: bytes (none when empty) or a producer.
        @param auth: Basic credentials sent with this request (and its redirects to the
            same origin: C{RedirectAgent} drops them for another one).
        @param timeout: seconds until the answer's head, then C{TimeoutError}.
        """
        hdrs = headers.copy() if isinstance(headers, Headers) else Headers(dict(headers or {}))
        if auth is not None:
            cred = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            hdrs.setRawHeaders(b"Authorization", [b"Basic " + cred.encode()])
        producer: IBodyProducer | None
        if isinstance(data, bytes):
            producer = FileBodyProducer(BytesIO(data)) if data else None
        else:
            producer = data
        agent = self._redirecting if allow_redirects else self._direct
        d: Deferred[Any] = agent.request(method.upper().encode("ascii"), _uri(url), hdrs, producer)
        if timeout:
            timer = self._reactor.callLater(timeout, d.cancel)

            def settle(result: object) -> object:
                if timer.active():
                    timer.cancel()
                elif isinstance(result, Failure):
                    # cancelled by the timer (Agent reports it as ResponseNeverReceived or
                    # a CancelledError): the registry client's transport failure
                    return Failure(TimeoutError(f"no answer within {timeout:g}s"))
                return result

            d.addBoth(settle)
        return d.addCallback(WebResponse)

    def get(self, url: str, **kwargs: Any) -> Deferred[WebResponse]:
        """C{request("GET", url, ...)}."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, data: bytes | None = None, **kwargs: Any) -> Deferred[WebResponse]:
        """C{request("POST", url, data=data, ...)}."""
        return self.request("POST", url, data=data, **kwargs)
