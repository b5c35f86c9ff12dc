"""C{pyd fleet}'s transport: one Engine API client per host, all hosts at once (layer: cli).

Each host is a docker context (see L{pyd.cli.contexts}). Requests go out to every host at once;
each host has its own timeout for connecting and for the answer's head, so a host that is down,
hung or refusing shows up as its own error and never holds up the others. Streams (events, logs,
exec output) have no timeout once they started: they end when the daemon ends them or when the
user interrupts (L{Interrupt}). Server identity is checked with service-identity against the host
name or IP address in the context's endpoint.
"""

from __future__ import annotations

import fnmatch
import json
import os
import struct
from collections.abc import Awaitable, Callable, Sequence
from io import BytesIO
from typing import Any
from urllib.parse import urlsplit

import attrs
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint, wrapClientTLS
from twisted.internet.error import (
    ConnectError,
    ConnectingCancelledError,
    ConnectionDone,
    ConnectionRefusedError,
    TimeoutError,
)
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    FileBodyProducer,
    HTTPConnectionPool,
    ResponseDone,
    ResponseFailed,
    readBody,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IResponse
from zope.interface import implementer

from pyd.cli.contexts import Context
from pyd.cli.output import HostResult
from pyd.core.seams import ICliReactor

API = "/v1.50"


class HostError(Exception):
    """A host answered with an error, or could not be reached; the text goes in its row."""


class SelectionError(Exception):
    """C{--host}/C{--label} matched nothing, or named a context that does not exist."""


def select(
    contexts: Sequence[Context], patterns: Sequence[str], labels: Sequence[str]
) -> list[Context]:
    """The contexts chosen by name or glob (C{--host 'web*'}) and by label (C{--label k=v}).

    Without patterns, every context with an endpoint; C{--label} then narrows the choice (all
    labels must match; C{--label k} only asks that the label exists). The docker CLI's
    C{default} context is chosen only by its name, never by a glob or by default.
    @raise SelectionError: a plain name that is no context, or nothing matched at all.
    """
    by_name = {c.name: c for c in contexts}
    if patterns:
        chosen: dict[str, Context] = {}
        for p in patterns:
            if any(ch in p for ch in "*?["):
                for c in contexts:
                    if fnmatch.fnmatchcase(c.name, p) and c.host and c.name != "default":
                        chosen.setdefault(c.name, c)
            elif p in by_name:
                chosen.setdefault(p, by_name[p])
            else:
                raise SelectionError(f"context {p!r} does not exist")
        picked = list(chosen.values())
    else:
        picked = [c for c in contexts if c.host and c.name != "default"]
    for spec in labels:
        key, eq, value = spec.partition("=")
        picked = [c for c in picked if key in c.labels and (not eq or c.labels.get(key) == value)]
    if not picked:
        what = " ".join([*(f"--host {p}" for p in patterns), *(f"--label {x}" for x in labels)])
        raise SelectionError(
            f"no hosts match {what}"
            if what
            else "no hosts: add some with `pyd hosts add` (or `docker context create`)"
        )
    return sorted(picked, key=lambda c: c.name)


@implementer(IAgentEndpointFactory)
@attrs.define
class _OneHost:
    """Every URI goes to the one host of a context (TLS-wrapped when it has certificates)."""

    reactor: ICliReactor
    context: Context
    timeout: float

    def endpointForURI(self, uri: Any) -> Any:
        """The endpoint of this context's daemon."""
        return endpoint(self.reactor, self.context, self.timeout)


def endpoint(reactor: ICliReactor, context: Context, timeout: float) -> Any:
    """A client endpoint for the context's daemon. @raise HostError: unsupported endpoint."""
    u = urlsplit(context.host)
    if u.scheme == "unix":
        return UNIXClientEndpoint(reactor, u.path, timeout=timeout)
    if u.scheme != "tcp" or not u.hostname:
        raise HostError(f"unsupported endpoint {context.host}")
    port = u.port or (2376 if context.has_tls else 2375)
    tcp = TCP4ClientEndpoint(reactor, u.hostname, port, timeout=timeout)
    if not context.has_tls:
        return tcp
    assert context.tls_dir is not None
    d = context.tls_dir
    try:
        ca = Certificate.loadPEM((d / "ca.pem").read_bytes())
        client = PrivateCertificate.loadPEM(
            (d / "key.pem").read_bytes() + (d / "cert.pem").read_bytes()
        )
    except OSError as e:
        raise HostError(f"cannot read the context's TLS files: {e.strerror}") from e
    options = optionsForClientTLS(u.hostname, trustRoot=ca, clientCertificate=client)
    return wrapClientTLS(options, tcp)


class _Collector(Protocol):
    """Receives a streamed body and hands each piece to C{on_data}; C{done} fires at its end.

    Cancelling C{done} stops the transfer (the user interrupted a stream).
    """

    def __init__(self, on_data: Callable[[bytes], None]) -> None:
        self.on_data = on_data
        self.done: defer.Deferred[None] = defer.Deferred(self._cancel)

    def _cancel(self, _: object) -> None:
        transport: Any = self.transport  # the response body's transport is a producer
        if transport is not None:
            transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        self.on_data(data)

    def connectionLost(self, reason: Failure = ConnectionDone) -> None:  # type: ignore[assignment]  # Twisted's own default
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss, ConnectionDone):
            self.done.callback(None)
        else:
            self.done.errback(reason)


class LineSplitter:
    """Feeds complete lines (without the newline) to C{on_line}; keeps the rest for later."""

    def __init__(self, on_line: Callable[[bytes], None]) -> None:
        self.on_line = on_line
        self.buf = b""

    def feed(self, data: bytes) -> None:
        """Add bytes; emit every complete line."""
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            self.on_line(line.rstrip(b"\r"))

    def flush(self) -> None:
        """Emit what is left (a last line without a newline)."""
        if self.buf:
            rest, self.buf = self.buf, b""
            self.on_line(rest)


class FrameDemux:
    """Splits dockerd's multiplexed stream (8-byte header: stream, 0, 0, 0, size) into
    C{on_frame(stream, payload)} calls; with C{raw}, everything is stdout (a TTY stream)."""

    def __init__(self, on_frame: Callable[[int, bytes], None], raw: bool = False) -> None:
        self.on_frame = on_frame
        self.raw = raw
        self.buf = b""

    def feed(self, data: bytes) -> None:
        """Add bytes; emit every complete frame."""
        if self.raw:
            self.on_frame(1, data)
            return
        self.buf += data
        while len(self.buf) >= 8:
            stream, size = struct.unpack(">BxxxL", self.buf[:8])
            if len(self.buf) < 8 + size:
                return
            payload, self.buf = self.buf[8 : 8 + size], self.buf[8 + size :]
            self.on_frame(stream, payload)


@attrs.define
class Client:
    """HTTP calls to one host's Engine API."""

    reactor: ICliReactor
    context: Context
    timeout: float
    pool: HTTPConnectionPool

    @property
    def name(self) -> str:
        """The host's (context's) name."""
        return self.context.name

    def _agent(self) -> Agent:
        agent: Agent = Agent.usingEndpointFactory(
            self.reactor, _OneHost(self.reactor, self.context, self.timeout), pool=self.pool
        )
        return agent

    async def open(
        self, method: str, path: str, body: object = None, timeout: float | None = None
    ) -> IResponse:
        """Send a request and wait (at most the timeout) for the answer's head.

        @raise HostError: the host cannot be reached, does not answer in time, or answers >= 400.
        """
        headers = Headers({b"Host": [b"pyd"], b"User-Agent": [b"pyd-fleet"]})
        producer = None
        if body is not None:
            headers.addRawHeader(b"Content-Type", b"application/json")
            producer = FileBodyProducer(BytesIO(json.dumps(body).encode()))
        try:
            d = self._agent().request(
                method.encode(), f"http://pyd{API}{path}".encode(), headers, producer
            )
            d.addTimeout(timeout or self.timeout, self.reactor)
            response: IResponse = await d
        except HostError:
            raise
        except Exception as e:  # every failure becomes this host's error row
            raise HostError(describe_failure(e)) from e
        if response.code >= 400:
            data = await self._read(response, timeout)
            try:
                message = json.loads(data).get("message", "")
            except (ValueError, AttributeError):
                message = data.decode("utf-8", "replace").strip()
            raise HostError(message or f"HTTP {response.code}")
        return response

    async def _read(self, response: IResponse, timeout: float | None) -> bytes:
        try:
            data: bytes = await readBody(response).addTimeout(timeout or self.timeout, self.reactor)
        except Exception as e:  # every failure becomes this host's error row
            raise HostError(describe_failure(e)) from e
        return data

    async def request(
        self, method: str, path: str, body: object = None, timeout: float | None = None
    ) -> Any:
        """One call; returns the decoded JSON (a list for JSON-lines answers, None when empty).

        @raise HostError: any failure.
        """
        response = await self.open(method, path, body, timeout)
        data = await self._read(response, timeout)
        if not data.strip():
            return None
        try:
            return json.loads(data)
        except ValueError:
            try:
                return [json.loads(line) for line in data.splitlines() if line.strip()]
            except ValueError:
                raise HostError("the daemon's answer is not JSON") from None

    async def stream(
        self,
        method: str,
        path: str,
        on_data: Callable[[bytes], None],
        body: object = None,
        stop: defer.Deferred[None] | None = None,
    ) -> IResponse:
        """Send a request and hand the answer's body to C{on_data} as it arrives, until the
        daemon ends it or C{stop} fires. @return: the response (its head).
        @raise HostError: as L{open}, or the stream broke off."""
        response = await self.open(method, path, body)
        collector = _Collector(on_data)
        response.deliverBody(collector)
        waits: list[defer.Deferred[Any]] = [collector.done]
        if stop is not None:
            waits.append(stop)
        try:
            await defer.race(waits)
        except defer.FirstError as e:
            raise HostError(describe_failure(e.subFailure.value or e)) from e
        return response


def describe_failure(e: BaseException) -> str:
    """A one-line reason for a transport failure."""
    if isinstance(e, defer.TimeoutError | defer.CancelledError | TimeoutError):
        return "timed out"
    if isinstance(e, ConnectingCancelledError):  # the per-host timeout cancelled the connect
        return "timed out"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, ResponseFailed):
        reasons = [r.value for r in e.reasons if isinstance(r, Failure) and r.value is not None]
        if any(
            isinstance(r, defer.TimeoutError | defer.CancelledError | TimeoutError) for r in reasons
        ):
            return "timed out"
        for r in reasons:
            if "SSL" in type(r).__name__ or "ssl" in type(r).__module__.lower():
                return f"TLS refused: {_ssl_reason(r)}"
        if reasons:
            return f"{type(reasons[0]).__name__}: {reasons[0]}"
    if isinstance(e, ConnectError):
        reason = os.strerror(e.osError) if isinstance(e.osError, int) else (e.osError or e)
        return f"cannot connect: {reason}"
    if "VerificationError" in type(e).__name__:
        return f"server identity check failed: {e}"
    return f"{type(e).__name__}: {e}"


def _ssl_reason(e: BaseException) -> str:
    args: Any = getattr(e, "args", ())
    try:
        return ", ".join(str(x[2]) for x in args[0])
    except (IndexError, TypeError):
        return str(e)


# A fleet command: given one host's client, its rows. Raising HostError fails the host.
Command = Callable[[Client], Awaitable[list[dict[str, Any]]]]


async def run_everywhere(
    reactor: ICliReactor, targets: Sequence[Context], command: Command, timeout: float
) -> list[HostResult]:
    """Run C{command} against all targets at once; a failure becomes that host's error."""
    pool = HTTPConnectionPool(reactor, persistent=False)

    async def one(ctx: Context) -> HostResult:
        try:
            return HostResult(ctx.name, await command(Client(reactor, ctx, timeout, pool)))
        except HostError as e:
            return HostResult(ctx.name, error=str(e))
        except Exception as e:  # noqa: BLE001  # a bug for one host must not hide the others
            return HostResult(ctx.name, error=describe_failure(e))

    results = await defer.gatherResults(
        [defer.Deferred.fromCoroutine(one(t)) for t in targets], consumeErrors=True
    )
    await pool.closeCachedConnections()
    return list(results)


@attrs.define
class Interrupt:
    """Ends running streams when the user interrupts (Ctrl-C) or a deadline passes.

    Each stream asks for its own Deferred (L{wait}); L{fire} fires them all, so every stream
    stops, the command still prints its summary, and the exit status says how the hosts did.
    """

    waiting: list[defer.Deferred[None]] = attrs.field(factory=list)
    fired: bool = False

    def wait(self) -> defer.Deferred[None]:
        """A Deferred that fires when the streams should stop."""
        d: defer.Deferred[None] = defer.Deferred()
        if self.fired:
            d.callback(None)
        else:
            self.waiting.append(d)
        return d

    def fire(self) -> None:
        """Stop every stream."""
        self.fired = True
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            if not d.called:
                d.callback(None)
