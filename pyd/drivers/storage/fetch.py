"""Download a URL to a file (layer: drivers), for C{docker import <url>}.

Uses Twisted's HTTP client; the body is written to disk in the io pool while the connection is
paused, so the reactor never blocks on the file and memory stays bounded. The daemon's proxies
(C{http-proxy}/C{https-proxy}/C{no-proxy}, else the environment's) apply as for registry traffic:
dockerd's URL import goes through Go's proxy-from-environment transport, which dockerd sets from
the same configuration.
"""

from __future__ import annotations

from typing import IO, Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers

from pyd.core.seams import Blocking, INetReactor
from pyd.drivers.registry.proxy import ProxySettings


class FetchFailed(Exception):
    """The download failed (bad status, connection error, truncated body)."""


class _ToFile(Protocol):
    def __init__(self, out: IO[bytes], blocking: Blocking, done: Deferred[int]) -> None:
        self._out = out
        self._blocking = blocking
        self._done = done
        self._pending: Deferred[Any] = succeed(None)
        self.count = 0

    def dataReceived(self, data: bytes) -> None:
        self.count += len(data)
        transport: Any = self.transport
        transport.pauseProducing()

        def write(_: object) -> Deferred[Any]:
            return self._blocking.run(self._out.write, data)

        def resume(_: object) -> None:
            transport.resumeProducing()

        self._pending.addCallback(write)
        self._pending.addCallback(resume)

    def connectionLost(self, reason: Failure | None = None) -> None:  # type: ignore[override]  # Protocol's default is a ConnectionDone instance
        # twisted.web.client's (loaded by the download's client)
        from twisted.web._newclient import ResponseDone

        if reason is None:
            reason = Failure(ResponseDone())

        def finish(_: object) -> None:
            if reason.check(ResponseDone, PotentialDataLoss):
                self._done.callback(self.count)
            else:
                self._done.errback(FetchFailed(f"download interrupted: {reason.getErrorMessage()}"))

        self._pending.addCallbacks(finish, self._done.errback)


class UrlFetcher:
    """Fetches http(s) URLs into files."""

    def __init__(
        self, reactor: INetReactor, blocking: Blocking, proxies: ProxySettings | None = None
    ) -> None:
        self._reactor = reactor
        self._agent: Any = None  # built on first use (twisted.web.client, not loaded at start)
        self._blocking = blocking
        self._proxies = proxies

    async def fetch(self, url: str, path: str) -> None:
        """Write the body of C{url} to C{path}. @raise FetchFailed: it could not be fetched."""
        if not url.startswith(("http://", "https://")):
            raise FetchFailed(f"unsupported URL scheme: {url}")
        if self._agent is None:
            # the TLS stack is loaded by the policy, for an https URL only (twisted.web.client
            # may have been imported without it: its own default policy is not used)
            from twisted.web.client import Agent, HTTPConnectionPool

            from pyd.drivers.registry.hosts import https_policy

            policy = https_policy()
            self._agent = Agent(self._reactor, policy, connectTimeout=30)
            if self._proxies is not None and self._proxies.active:
                from pyd.drivers.registry.proxy import ProxiedAgent

                self._agent = ProxiedAgent(
                    self._reactor,
                    self._agent,
                    policy,
                    self._proxies,
                    HTTPConnectionPool(self._reactor, persistent=False),
                )
        try:
            response = await self._agent.request(
                b"GET", url.encode(), Headers({b"User-Agent": [b"pyd"]})
            )
        except Exception as e:
            raise FetchFailed(f"Get {url!r}: {e}") from e
        if response.code != 200:
            raise FetchFailed(f"Get {url!r}: status code {response.code}")
        out = await self._blocking.run(open, path, "wb")
        try:
            done: Deferred[int] = Deferred()
            response.deliverBody(_ToFile(out, self._blocking, done))
            await done
        finally:
            await self._blocking.run(out.close)
