"""Registry traffic through HTTP(S) proxies, as dockerd sends it (layer: drivers).

dockerd takes its proxies from daemon.json (C{proxies}: http-proxy, https-proxy, no-proxy) or, when
unset, from its environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY and their lower-case forms). Plain
HTTP requests go to the proxy with an absolute URI; HTTPS goes through a C{CONNECT host:port}
tunnel and TLS is then spoken end to end with the registry (its certificate checked as without a
proxy). Like Go's net/http (which dockerd uses), C{localhost} and loopback addresses never go
through a proxy, and NO_PROXY entries match a host, a domain and its subdomains (C{example.org},
C{.example.org}), an address, a CIDR, or C{*} for everything.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IProtocol, IProtocolFactory, IStreamClientEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import (
    IAgent,
    IAgentEndpointFactory,
    IBodyProducer,
    IPolicyForHTTPS,
    IResponse,
)
from zope.interface import implementer

from pyd.core.seams import INetReactor

if TYPE_CHECKING:
    from twisted.web.client import HTTPConnectionPool


@attrs.frozen
class Proxy:
    """One proxy: where it listens and the Proxy-Authorization value ("" = none)."""

    host: str
    port: int
    authorization: str = ""

    @classmethod
    def parse(cls, url: str) -> Proxy:
        """C{http://[user:password@]host[:port]} (a bare C{host:port} is taken as http).

        @raise ValueError: not a URL pyd can use.
        """
        u = urlsplit(url if "://" in url else "http://" + url)
        if u.scheme not in ("http", "") or not u.hostname:
            raise ValueError(f"unsupported proxy URL {url!r} (use http://host:port)")
        auth = ""
        if u.username is not None:
            raw = f"{unquote(u.username)}:{unquote(u.password or '')}".encode()
            auth = "Basic " + base64.b64encode(raw).decode()
        return cls(u.hostname, u.port or 80, auth)


def _env(*names: str) -> str:
    for n in names:
        v = os.environ.get(n, "")
        if v:
            return v
    return ""


@attrs.frozen
class ProxySettings:
    """Which proxy, if any, a request to a registry goes through."""

    http: Proxy | None = None
    https: Proxy | None = None
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def resolve(cls, http: str = "", https: str = "", no_proxy: str = "") -> ProxySettings:
        """The configured values, each falling back to the daemon's environment (dockerd's
        getConfigOrEnv). @raise ValueError: a proxy URL pyd cannot use."""
        http = http or _env("HTTP_PROXY", "http_proxy")
        https = https or _env("HTTPS_PROXY", "https_proxy")
        no_proxy = no_proxy or _env("NO_PROXY", "no_proxy")
        return cls(
            Proxy.parse(http) if http else None,
            Proxy.parse(https) if https else None,
            tuple(e.strip().lower() for e in no_proxy.split(",") if e.strip()),
        )

    @property
    def active(self) -> bool:
        """Whether any request may go through a proxy."""
        return self.http is not None or self.https is not None

    def for_url(self, scheme: str, host: str, port: int) -> Proxy | None:
        """The proxy for a request, or None to connect directly."""
        proxy = self.https if scheme == "https" else self.http
        if proxy is None or self._bypass(host.lower(), port):
            return None
        return proxy

    def _bypass(self, host: str, port: int) -> bool:
        if host == "localhost":
            return True
        try:
            addr: Any = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            addr = None
        if addr is not None and addr.is_loopback:
            return True
        for entry in self.no_proxy:
            if entry == "*":
                return True
            name, _, eport = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
            if eport and eport != str(port):
                continue
            if addr is not None:
                try:
                    if addr in ipaddress.ip_network(name, strict=False):
                        return True
                except ValueError:  # not a network: an address host matches network entries only
                    pass
                continue
            domain = name.lstrip(".").removeprefix("*.")
            if host == domain or host.endswith("." + domain):
                return True
        return False


class _TunnelProtocol(Protocol):
    """Sends CONNECT, waits for the proxy's 2xx, then hands the connection to the real protocol."""

    def __init__(
        self, target: bytes, auth: str, factory: IProtocolFactory, ready: Deferred[IProtocol]
    ) -> None:
        self._target = target
        self._auth = auth
        self._factory = factory
        self._ready = ready
        self._buf = b""
        self._inner: IProtocol | None = None

    def connectionMade(self) -> None:
        lines = [b"CONNECT " + self._target + b" HTTP/1.1", b"Host: " + self._target]
        if self._auth:
            lines.append(b"Proxy-Authorization: " + self._auth.encode())
        assert self.transport is not None
        self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n")

    def dataReceived(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.dataReceived(data)
            return
        self._buf += data
        if b"\r\n\r\n" not in self._buf:
            if len(self._buf) > 16384:
                self._fail("the proxy's answer to CONNECT is too long")
            return
        head, _, rest = self._buf.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].split(b" ", 2)
        if len(status) < 2 or not status[1].startswith(b"2"):
            text = head.split(b"\r\n", 1)[0].decode("latin-1")
            self._fail(f"proxy refused CONNECT {self._target.decode()}: {text}")
            return
        inner = self._factory.buildProtocol(None)  # type: ignore[arg-type]  # no address to give
        if inner is None:
            self._fail("no protocol for the tunnel")
            return
        self._inner = inner
        inner.makeConnection(self.transport)  # type: ignore[arg-type]  # the tunnel's transport
        ready, self._ready = self._ready, Deferred()
        ready.callback(inner)
        if rest:
            inner.dataReceived(rest)

    def _fail(self, why: str) -> None:
        assert self.transport is not None
        self.transport.loseConnection()
        if not self._ready.called:
            self._ready.errback(ConnectionError(why))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._inner is not None:
            self._inner.connectionLost(reason)
        elif not self._ready.called:
            self._ready.errback(reason)


@implementer(IStreamClientEndpoint)
class ConnectTunnelEndpoint:
    """A TCP stream to C{host:port} through an HTTP proxy's CONNECT."""

    def __init__(self, reactor: INetReactor, proxy: Proxy, host: str, port: int) -> None:
        self._proxy_ep = HostnameEndpoint(reactor, proxy.host, proxy.port, timeout=30)
        self._auth = proxy.authorization
        self._target = f"{host}:{port}".encode("idna")

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """Connect to the proxy, open the tunnel, then build C{protocolFactory}'s protocol."""
        from twisted.internet.protocol import Factory

        ready: Deferred[IProtocol] = Deferred()
        target, auth = self._target, self._auth
        outer = Factory.forProtocol(lambda: _TunnelProtocol(target, auth, protocolFactory, ready))
        d = self._proxy_ep.connect(outer)
        d.addErrback(lambda f: ready.errback(f) if not ready.called else None)
        return ready


@implementer(IAgentEndpointFactory)
class _TunnelEndpoints:
    def __init__(self, reactor: INetReactor, proxy: Proxy, policy: IPolicyForHTTPS) -> None:
        self._reactor = reactor
        self._proxy = proxy
        self._policy = policy

    def endpointForURI(self, uri: Any) -> IStreamClientEndpoint:
        tunnel = ConnectTunnelEndpoint(self._reactor, self._proxy, uri.host.decode(), uri.port)
        creator = self._policy.creatorForNetloc(uri.host, uri.port)
        return wrapClientTLS(creator, tunnel)


@implementer(IAgent)
class ProxiedAgent:
    """An IAgent that sends each request directly or through its proxy per L{ProxySettings}."""

    def __init__(
        self,
        reactor: INetReactor,
        direct: IAgent,
        policy: IPolicyForHTTPS,
        settings: ProxySettings,
        pool: HTTPConnectionPool,
    ) -> None:
        # imported here: twisted.web.client is loaded on first use (HTTPClients), not at start
        from twisted.web.client import Agent, ProxyAgent

        self._direct = direct
        self._settings = settings
        self._http = (
            ProxyAgent(
                HostnameEndpoint(reactor, settings.http.host, settings.http.port, timeout=30),
                reactor,
                pool=pool,
            )
            if settings.http
            else None
        )
        self._https = (
            Agent.usingEndpointFactory(
                reactor, _TunnelEndpoints(reactor, settings.https, policy), pool=pool
            )
            if settings.https
            else None
        )

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
    ) -> Deferred[IResponse]:
        """Send through the proxy the URL's scheme and host call for."""
        u = urlsplit(uri.decode("ascii"))
        port = u.port or (443 if u.scheme == "https" else 80)
        proxy = self._settings.for_url(u.scheme, u.hostname or "", port)
        d: Deferred[IResponse]
        if proxy is None:
            d = self._direct.request(method, uri, headers, bodyProducer)
            return d
        if u.scheme == "https":
            assert self._https is not None
            d = self._https.request(method, uri, headers, bodyProducer)
            return d
        assert self._http is not None
        if proxy.authorization:
            headers = headers.copy() if headers is not None else Headers()
            headers.setRawHeaders(b"Proxy-Authorization", [proxy.authorization.encode()])
        d = self._http.request(method, uri, headers, bodyProducer)
        return d
