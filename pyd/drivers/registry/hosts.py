"""Where and how to reach a registry (layer: drivers): TLS policy (verified, or unverified for
insecure registries), the per-registry certs.d material, endpoints and mirrors, and the shared
HTTP connection pools.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.logger import Logger
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from pyd.core import tlsstack
from pyd.core.seams import INetReactor
from pyd.drivers.registry.proxy import ProxySettings

if TYPE_CHECKING:
    from OpenSSL import SSL
    from twisted.internet import ssl as tssl
from pyd.drivers.registry.wire import DOCKER_HUB, DOCKER_HUB_API

log = Logger()


# --- TLS policy ----------------------------------------------------------------------------------


@implementer(IOpenSSLClientConnectionCreator)
class _NoVerifyCreator:
    """TLS without certificate or host-name checks (insecure registries only)."""

    def __init__(self, hostname: str, client: tssl.PrivateCertificate | None = None) -> None:
        from twisted.internet import ssl as tssl  # loaded: made by _TLSPolicy.creatorForNetloc

        self._hostname = hostname
        if client is not None:
            opts = tssl.CertificateOptions(
                privateKey=client.privateKey.original,
                certificate=client.original,
                verify=False,
            )
        else:
            opts = tssl.CertificateOptions(verify=False)
        self._ctx = opts.getContext()

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        """A client-side connection for C{tlsProtocol}, sending SNI for names."""
        from OpenSSL import SSL

        conn = SSL.Connection(self._ctx, None)
        conn.set_app_data(tlsProtocol)
        try:
            ipaddress.ip_address(self._hostname)
        except ValueError:
            conn.set_tlsext_host_name(self._hostname.encode("idna"))
        conn.set_connect_state()
        return conn


@implementer(IPolicyForHTTPS)
class _TLSPolicy:
    """Verified TLS (service_identity host-name check) unless told otherwise.

    Trust comes from the platform store, or, for a host with a C{certs.d/HOST[:PORT]/} directory
    (dockerd's layout), from its C{*.crt} CA files; C{*.cert} + C{*.key} there are presented as
    the client certificate.
    """

    def __init__(self, verify: bool, host_certs: dict[str, HostCerts] | None = None) -> None:
        self.verify = verify
        self.host_certs = host_certs or {}

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        """The connection creator for one host (the first HTTPS connection loads the TLS
        stack: a daemon that talks only to plain-HTTP registries never does)."""
        tlsstack.load()
        from twisted.internet import ssl as tssl

        host = hostname.decode("ascii")
        certs = self.host_certs.get(f"{host}:{port}") or self.host_certs.get(host)
        client = certs.client if certs is not None else None
        if self.verify:
            trust = None
            if certs is not None and certs.cas:
                trust = tssl.trustRootFromCertificates(list(certs.cas))
            return tssl.optionsForClientTLS(host, trustRoot=trust, clientCertificate=client)
        return _NoVerifyCreator(host, client)


def https_policy() -> IPolicyForHTTPS:
    """Verified TLS against the platform's trust store, the stack loaded by the first HTTPS
    connection: what twisted.web's BrowserLikePolicyForHTTPS does, for an agent made before
    the TLS stack is loaded (that one's methods were bound without it)."""
    return _TLSPolicy(True)


@attrs.frozen
class HostCerts:
    """TLS material for one registry host from C{certs.d}."""

    cas: tuple[tssl.Certificate, ...] = ()
    client: tssl.PrivateCertificate | None = None


def load_certs_dir(root: str) -> dict[str, HostCerts]:
    """Read C{root/HOST[:PORT]/{*.crt,*.cert,*.key}} (blocking: at start and on reload)."""
    import os

    out: dict[str, HostCerts] = {}
    try:
        hosts = sorted(os.listdir(root))
    except OSError:
        return out
    for host in hosts:
        d = os.path.join(root, host)
        if not os.path.isdir(d):
            continue
        tlsstack.load()
        from OpenSSL import SSL
        from twisted.internet import ssl as tssl

        cas: list[tssl.Certificate] = []
        client: tssl.PrivateCertificate | None = None
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            try:
                if name.endswith(".crt"):
                    with open(path, "rb") as f:
                        cas.append(tssl.Certificate.loadPEM(f.read()))
                elif name.endswith(".cert"):
                    key = path[: -len(".cert")] + ".key"
                    with open(path, "rb") as f, open(key, "rb") as k:
                        client = tssl.PrivateCertificate.loadPEM(f.read() + b"\n" + k.read())
            except (OSError, SSL.Error, ValueError) as e:
                log.warn("ignoring {path}: {err}", path=path, err=e)
        out[host] = HostCerts(tuple(cas), client)
    return out


# --- endpoints ------------------------------------------------------------------------------------


@attrs.frozen
class Endpoint:
    """One way to reach a registry: C{https://host} (verified or not) or C{http://host}."""

    host: str  # "127.0.0.1:5000", "registry-1.docker.io"
    scheme: str  # "https" | "http"
    verify_tls: bool = True
    mirror: bool = False

    @property
    def base(self) -> str:
        """C{scheme://host}."""
        return f"{self.scheme}://{self.host}"


class RegistryHosts:
    """Which endpoints serve a registry host name, from the daemon's registry options.

    Like dockerd: C{127.0.0.0/8} and C{::1} are always insecure; C{insecure_registries} entries are
    host names (with or without port) or CIDRs; C{mirrors} (URLs) serve Docker Hub pulls.
    """

    def __init__(
        self, insecure_registries: Sequence[str] = (), mirrors: Sequence[str] = ()
    ) -> None:
        self.insecure_hosts: set[str] = set()
        self.insecure_nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [
            ipaddress.ip_network("127.0.0.0/8"),
            ipaddress.ip_network("::1/128"),
        ]
        for entry in insecure_registries:
            e = entry.strip()
            if "://" in e:
                e = urlsplit(e).netloc
            try:
                self.insecure_nets.append(ipaddress.ip_network(e, strict=False))
            except ValueError:
                self.insecure_hosts.add(e.rstrip("/").lower())
        self.mirrors: list[Endpoint] = []
        for m in mirrors:
            u = urlsplit(m if "://" in m else "https://" + m)
            host = u.netloc
            if u.scheme == "http":
                self.mirrors.append(Endpoint(host, "http", mirror=True))
            else:
                self.mirrors.append(
                    Endpoint(host, "https", verify_tls=not self.is_insecure(host), mirror=True)
                )

    def is_insecure(self, host: str) -> bool:
        """Whether C{host} (C{name[:port]}) may be reached without TLS verification."""
        h = host.lower()
        if h in self.insecure_hosts:
            return True
        name = h
        if name.startswith("["):
            name = name[1:].partition("]")[0]
        elif name.count(":") == 1:
            name = name.partition(":")[0]
        if name in self.insecure_hosts:
            return True
        if name == "localhost":
            name = "127.0.0.1"
        try:
            addr = ipaddress.ip_address(name)
        except ValueError:
            return False
        return any(addr in net for net in self.insecure_nets)

    def endpoints(self, host: str, push: bool = False) -> list[Endpoint]:
        """Endpoints to try in order for C{host} (mirrors first for Docker Hub pulls)."""
        if host == DOCKER_HUB:
            official = Endpoint(DOCKER_HUB_API, "https")
            return [official] if push else [*self.mirrors, official]
        if self.is_insecure(host):
            return [Endpoint(host, "https", verify_tls=False), Endpoint(host, "http")]
        return [Endpoint(host, "https")]


class HTTPClients:
    """The daemon's shared HTTP clients (one connection pool per TLS policy).

    The clients and their pools are built on first use, and the TLS stack on the first HTTPS
    connection (L{_TLSPolicy}): a daemon that never talks to a registry never loads
    twisted.web.client (L{pyd.drivers.registry.webclient}), and one that talks only to plain-HTTP registries (a mirror on the
    host, a loopback registry) never loads pyOpenSSL and cryptography (~12 MiB resident,
    L{pyd.core.tlsstack}).
    """

    def __init__(
        self,
        reactor: INetReactor,
        certs_dir: str | None = None,
        proxies: ProxySettings | None = None,
    ) -> None:
        self.reactor = reactor
        self.certs_dir = certs_dir
        host_certs = load_certs_dir(certs_dir) if certs_dir else {}
        self._verified_policy = _TLSPolicy(True, host_certs)
        self._unverified_policy = _TLSPolicy(False, host_certs)
        self._pool: Any = None
        self._proxy_pool: Any = None
        self._clients: tuple[Any, Any] | None = None
        self.proxies = proxies or ProxySettings()

    def _build(self) -> tuple[Any, Any]:
        if self._clients is not None:
            return self._clients
        # twisted.web.client may be imported without the TLS stack: only its own default policy
        # (BrowserLikePolicyForHTTPS) is then left without TLS, and pyd's agents never use it
        # (their policy is _TLSPolicy, which loads the stack before its first TLS connection).
        from twisted.web.client import Agent, HTTPConnectionPool

        from pyd.drivers.registry.proxy import ProxiedAgent
        from pyd.drivers.registry.webclient import WebClient

        reactor = self.reactor
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 8
        self._pool.cachedConnectionTimeout = 30
        # Proxied connections get a pool of their own: the pool keys by scheme, host and port only.
        self._proxy_pool = HTTPConnectionPool(reactor, persistent=True)

        def agent(policy: _TLSPolicy) -> Any:
            direct = Agent(reactor, policy, connectTimeout=30, pool=self._pool)
            if not self.proxies.active:
                return direct
            return ProxiedAgent(reactor, direct, policy, self.proxies, self._proxy_pool)

        self._clients = (
            WebClient(agent(self._verified_policy), reactor),
            WebClient(agent(self._unverified_policy), reactor),
        )
        return self._clients

    @property
    def verified(self) -> Any:
        """The client that checks certificates."""
        return self._build()[0]

    @property
    def unverified(self) -> Any:
        """The client for insecure registries (no certificate check)."""
        return self._build()[1]

    def reload_certs(self) -> None:
        """Re-read C{certs.d} (blocking; on SIGHUP)."""
        if self.certs_dir:
            certs = load_certs_dir(self.certs_dir)
            self._verified_policy.host_certs = certs
            self._unverified_policy.host_certs = certs

    def for_endpoint(self, ep: Endpoint) -> Any:
        """The client to use for C{ep}."""
        return self.verified if ep.verify_tls else self.unverified

    def close(self) -> Deferred[None]:
        """Close idle persistent connections (at daemon stop).

        Waits one reactor turn first: a connection whose last response just completed goes back
        to the pool only after its reader ran.
        """
        from twisted.internet.defer import succeed
        from twisted.internet.task import deferLater

        if self._clients is None:
            return succeed(None)

        def close_all(_: object) -> Deferred[None]:
            d: Deferred[None] = self._pool.closeCachedConnections()
            d.addCallback(lambda _: self._proxy_pool.closeCachedConnections())
            return d

        d: Deferred[None] = deferLater(self.reactor, 0, lambda: None)
        d.addCallback(close_all)
        # a connection still finishing its last response comes back a moment later
        d.addCallback(lambda _: deferLater(self.reactor, 0.05, lambda: None))
        d.addCallback(close_all)
        return d
