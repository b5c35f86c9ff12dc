"""Distribution (registry v2) HTTP client on treq (layer: drivers).

The only module of pyd that speaks HTTP to registries (and the only one using treq). It does
what it is told and holds no Docker rules beyond the wire protocol:

  - endpoints: HTTPS with host-name checks (service_identity), or, for insecure registries,
    HTTPS without verification then plain HTTP (like dockerd); mirrors are tried first for
    Docker Hub names (L{RegistryHosts});
  - authentication: the C{/v2/} ping, then C{WWW-Authenticate: Basic} (credentials sent as is) or
    C{Bearer} (a token fetched from the realm with the service and scopes, with Basic
    credentials, an identity (refresh) token, or anonymously); a registry token is used directly;
  - manifests (any media type; the caller chooses), blobs streamed to a sink with sha256
    verification, blob HEAD, monolithic and chunked uploads, cross-repository mount, tags list.

Sinks and file reads run through the L{Blocking} seam; network I/O stays on the reactor with
back-pressure (the response transport is paused while writes are pending).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import urlencode, urljoin, urlsplit

import attrs
from OpenSSL import SSL
from twisted.internet import ssl as tssl
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectError, ConnectionLost, DNSLookupError, TimeoutError
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.protocol import Protocol as TxProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer, IPolicyForHTTPS, IResponse
from zope.interface import implementer

from pyd.core.records import RegistryAuth
from pyd.core.seams import Blocking

log = Logger()

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"

MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
)
MANIFEST_ACCEPT = (MT_DOCKER_MANIFEST, MT_DOCKER_LIST, MT_OCI_MANIFEST, MT_OCI_INDEX)

_CHUNK = 1 << 20  # upload read size
_HIGH_WATER = 8 << 20  # pause a download when this much waits to be written
_TIMEOUT = 60.0


# --- errors -------------------------------------------------------------------------------------


class RegistryError(Exception):
    """The registry answered with an error status.

    C{errors} are the Distribution error entries (C{code}, C{message}, C{detail}) if the body had
    them; C{str()} is Go's C{errcode.Errors} rendering: C{"denied: requested access ..."}.
    """

    def __init__(self, status: int, errors: list[dict[str, Any]], url: str, text: str = "") -> None:
        self.status = status
        self.errors = errors
        self.url = url
        super().__init__(self.render() or text or f"unexpected status {status} from {url}")

    @property
    def codes(self) -> list[str]:
        """The Distribution error codes (C{MANIFEST_UNKNOWN}, C{DENIED}...)."""
        return [str(e.get("code", "")) for e in self.errors]

    def render(self) -> str:
        """Like Go's errcode rendering: C{code: message} (lower-case code, underscores as spaces)."""
        parts = []
        for e in self.errors:
            code = str(e.get("code", "unknown")).lower().replace("_", " ")
            msg = str(e.get("message", ""))
            parts.append(f"{code}: {msg}" if msg else code)
        if not parts:
            return ""
        if len(parts) == 1:
            return parts[0]
        return "errors:\n" + "\n".join(parts) + "\n"


class AuthenticationFailed(RegistryError):
    """The registry (or its token server) refused the credentials."""


class TransportFailed(Exception):
    """The registry could not be reached (connection, TLS, timeout); the next endpoint may work."""


class DigestMismatch(Exception):
    """Downloaded content does not hash to the expected digest (or has the wrong size)."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"digest mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


# --- helpers --------------------------------------------------------------------------------------


def sha256_digest(data: bytes) -> str:
    """C{sha256:<hex>} of C{data}."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """Validate a C{sha256:<64 hex>} digest and return it (ValueError otherwise)."""
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise ValueError(f"invalid digest {digest!r}")
    return digest


_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


@attrs.frozen
class Challenge:
    """One parsed C{WWW-Authenticate} challenge."""

    scheme: str  # "basic" | "bearer" (lower case)
    params: dict[str, str]


def parse_challenges(values: Sequence[bytes | str]) -> list[Challenge]:
    """Parse C{WWW-Authenticate} header values into challenges (scheme + quoted parameters)."""
    out = []
    for raw in values:
        v = raw.decode("latin-1") if isinstance(raw, bytes) else raw
        v = v.strip()
        scheme, _, rest = v.partition(" ")
        params = {
            m.group(1).lower(): (m.group(2) or m.group(3) or "") for m in _PARAM.finditer(rest)
        }
        out.append(Challenge(scheme.lower(), params))
    return out


def _errors_of(body: bytes) -> list[dict[str, Any]]:
    try:
        doc = json.loads(body)
    except ValueError:
        return []
    errs = doc.get("errors") if isinstance(doc, dict) else None
    if isinstance(errs, list):
        return [e for e in errs if isinstance(e, dict)]
    if isinstance(doc, dict) and "details" in doc:  # token servers: {"details": "..."}
        return [{"code": "UNAUTHORIZED", "message": str(doc["details"])}]
    return []


# --- TLS policy ----------------------------------------------------------------------------------


@implementer(IOpenSSLClientConnectionCreator)
class _NoVerifyCreator:
    """TLS without certificate or host-name checks (insecure registries only)."""

    def __init__(self, hostname: str, client: tssl.PrivateCertificate | None = None) -> None:
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
        """The connection creator for one host."""
        host = hostname.decode("ascii")
        certs = self.host_certs.get(f"{host}:{port}") or self.host_certs.get(host)
        client = certs.client if certs is not None else None
        if self.verify:
            trust = None
            if certs is not None and certs.cas:
                trust = tssl.trustRootFromCertificates(list(certs.cas))
            return tssl.optionsForClientTLS(host, trustRoot=trust, clientCertificate=client)
        return _NoVerifyCreator(host, client)


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


# --- the client -----------------------------------------------------------------------------------


class BlobSink(Protocol):
    """Where a downloaded blob goes; called in the io pool, one call at a time, in order."""

    def write(self, data: bytes) -> None:
        """Append bytes."""
        ...


ProgressFn = Callable[[int], None]


class _Sender(Protocol):
    def __call__(self) -> Deferred[IResponse]: ...


class _StreamToSink(TxProtocol):
    """Receives a response body; hands it to the sink in the io pool in order, hashing it.

    Pauses the transport while more than L{_HIGH_WATER} bytes wait, so a fast registry cannot
    fill memory when the disk is slow.
    """

    def __init__(
        self,
        sink: BlobSink,
        blocking: Blocking,
        progress: ProgressFn | None,
        done: Deferred[tuple[str, int]],
    ) -> None:
        self._sink = sink
        self._blocking = blocking
        self._progress = progress
        self._done = done
        self._hash = hashlib.sha256()
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._writing = False
        self._paused = False
        self._ended: Failure | None = None
        self._finished = False
        self._failed: Failure | None = None
        self.received = 0

    def _transport(self) -> Any:
        # The body transport of a response is a producer (pause/resume/stop).
        return self.transport

    def _write_in_thread(self, data: bytes) -> None:
        self._hash.update(data)
        self._sink.write(data)

    def dataReceived(self, data: bytes) -> None:
        """Queue bytes; pause the transport above the high-water mark."""
        if self._failed is not None:
            return
        self.received += len(data)
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self._transport().pauseProducing()
        self._pump()

    def _pump(self) -> None:
        if self._writing:
            return
        if self._failed is not None:
            self._finish()
            return
        if not self._pending:
            if self._ended is not None:
                self._finish()
            return
        data = b"".join(self._pending)
        self._pending = []
        self._pending_size = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self._transport().resumeProducing()
        self._writing = True
        d = self._blocking.run(self._write_in_thread, data)
        d.addCallbacks(self._written, self._write_failed, callbackArgs=(len(data),))

    def _written(self, _: object, n: int) -> None:
        self._writing = False
        if self._progress is not None:
            self._progress(n)
        self._pump()

    def _write_failed(self, f: Failure) -> None:
        self._writing = False
        self._failed = f
        if self.transport is not None and self._ended is None:
            self._transport().stopProducing()
        self._pump()

    def connectionLost(self, reason: Failure = ResponseDone) -> None:  # type: ignore[assignment]
        """The body ended (cleanly or not); finish once the writes drained."""
        self._ended = reason
        self._pump()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._failed is not None:
            self._done.errback(self._failed)
            return
        assert self._ended is not None
        if not self._ended.check(ResponseDone, PotentialDataLoss):
            self._done.errback(TransportFailed(f"blob download interrupted: {self._ended.value}"))
            return
        self._done.callback(("sha256:" + self._hash.hexdigest(), self.received))


@implementer(IBodyProducer)
class _FileProducer:
    """An C{IBodyProducer} reading a file in the io pool, reporting progress as it goes."""

    def __init__(self, path: str, length: int, blocking: Blocking, progress: ProgressFn | None):
        self.length = length
        self._path = path
        self._blocking = blocking
        self._progress = progress
        self._paused: Deferred[None] | None = None
        self._stopped = False

    def startProducing(self, consumer: Any) -> Deferred[None]:
        """Read and write the whole file; fires when done."""
        return Deferred.fromCoroutine(self._produce(consumer))

    async def _produce(self, consumer: Any) -> None:
        f = await self._blocking.run(open, self._path, "rb")
        try:
            while not self._stopped:
                if self._paused is not None:
                    await self._paused
                data = await self._blocking.run(f.read, _CHUNK)
                if not data:
                    break
                consumer.write(data)
                if self._progress is not None:
                    self._progress(len(data))
        finally:
            await self._blocking.run(f.close)

    def pauseProducing(self) -> None:
        """The transport's buffer is full."""
        if self._paused is None:
            self._paused = Deferred()

    def resumeProducing(self) -> None:
        """The transport drained."""
        d, self._paused = self._paused, None
        if d is not None:
            d.callback(None)

    def stopProducing(self) -> None:
        """The request was abandoned."""
        self._stopped = True
        self.resumeProducing()


@attrs.frozen
class Manifest:
    """A manifest or index as fetched: exact bytes, media type and digest."""

    media_type: str
    data: bytes
    digest: str

    def json(self) -> dict[str, Any]:
        """The parsed document."""
        doc = json.loads(self.data)
        if not isinstance(doc, dict):
            raise ValueError("manifest is not a JSON object")
        return doc


class HTTPClients:
    """The daemon's shared HTTP clients (one connection pool per TLS policy)."""

    def __init__(self, reactor: Any, certs_dir: str | None = None) -> None:
        import treq.client

        self.reactor = reactor
        self.certs_dir = certs_dir
        host_certs = load_certs_dir(certs_dir) if certs_dir else {}
        self._verified_policy = _TLSPolicy(True, host_certs)
        self._unverified_policy = _TLSPolicy(False, host_certs)
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 8
        self._pool.cachedConnectionTimeout = 30
        self.verified = treq.client.HTTPClient(
            Agent(reactor, self._verified_policy, connectTimeout=30, pool=self._pool)
        )
        self.unverified = treq.client.HTTPClient(
            Agent(reactor, self._unverified_policy, connectTimeout=30, pool=self._pool)
        )

    def reload_certs(self) -> None:
        """Re-read C{certs.d} (blocking; on SIGHUP)."""
        if self.certs_dir:
            certs = load_certs_dir(self.certs_dir)
            self._verified_policy.host_certs = certs
            self._unverified_policy.host_certs = certs

    def for_endpoint(self, ep: Endpoint) -> Any:
        """The treq client to use for C{ep}."""
        return self.verified if ep.verify_tls else self.unverified

    def close(self) -> Deferred[None]:
        """Close idle persistent connections (at daemon stop).

        Waits one reactor turn first: a connection whose last response just completed goes back
        to the pool only after its reader ran.
        """
        from twisted.internet.task import deferLater

        d: Deferred[None] = deferLater(self.reactor, 0, lambda: None)
        d.addCallback(lambda _: self._pool.closeCachedConnections())
        # a connection still finishing its last response comes back a moment later
        d.addCallback(lambda _: deferLater(self.reactor, 0.05, lambda: None))
        d.addCallback(lambda _: self._pool.closeCachedConnections())
        return d


class RegistryClient:
    """Talks to one repository on one endpoint, with one set of credentials.

    C{scopes} are the token scopes asked for (C{repository:<name>:pull[,push]}); a cross-repository
    mount adds C{repository:<from>:pull}.
    """

    def __init__(
        self,
        http: HTTPClients,
        blocking: Blocking,
        endpoint: Endpoint,
        repository: str,
        auth: RegistryAuth | None = None,
        actions: Sequence[str] = ("pull",),
        extra_scopes: Sequence[str] = (),
    ) -> None:
        self.http = http
        self._client = http.for_endpoint(endpoint)
        self._blocking = blocking
        self.endpoint = endpoint
        self.repository = repository
        self.auth = auth or RegistryAuth()
        self.scopes = [f"repository:{repository}:{','.join(actions)}", *extra_scopes]
        self._authorization: str | None = None
        if self.auth.registry_token:
            self._authorization = "Bearer " + self.auth.registry_token

    # -- plumbing --

    def _url(self, path: str) -> str:
        return f"{self.endpoint.base}/v2/{self.repository}/{path}"

    async def _request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        body: bytes | Callable[[], IBodyProducer] | None = None,
        unbuffered: bool = False,
        allow_redirects: bool = True,
    ) -> Any:
        for attempt in range(2):
            hdrs = {"User-Agent": "pyd", **(headers or {})}
            if self._authorization:
                hdrs["Authorization"] = self._authorization
            data = body() if callable(body) else body
            try:
                resp: Any = await self._client.request(
                    method,
                    url,
                    headers={k: [v] for k, v in hdrs.items()},
                    data=data,
                    unbuffered=unbuffered,
                    allow_redirects=allow_redirects,
                    timeout=None if unbuffered or callable(body) else _TIMEOUT,
                )
            except (
                ConnectError,
                DNSLookupError,
                TimeoutError,
                ConnectionLost,
                ResponseFailed,
                SSL.Error,
            ) as e:
                raise TransportFailed(f'{method.capitalize()} "{url}": {_describe(e, url)}') from e
            if resp.code != 401:
                return resp
            challenges = parse_challenges(resp.headers.getRawHeaders(b"www-authenticate", []))
            body_401 = b"" if method == "HEAD" else await resp.content()
            if attempt == 1 or not challenges or not await self._authorize(challenges[0]):
                raise AuthenticationFailed(401, _errors_of(body_401), url, "unauthorized")
        raise AssertionError("unreachable")

    async def _authorize(self, ch: Challenge) -> bool:
        """Set C{Authorization} for the challenge; False when there is nothing more to try."""
        a = self.auth
        if ch.scheme == "basic":
            if not a.username:
                return False
            cred = base64.b64encode(f"{a.username}:{a.password}".encode()).decode()
            new = "Basic " + cred
        elif ch.scheme == "bearer":
            if a.registry_token:
                return False
            token = await self.fetch_token(ch, self.scopes)
            new = "Bearer " + token
        else:
            return False
        if new == self._authorization:
            return False
        self._authorization = new
        return True

    async def fetch_token(self, ch: Challenge, scopes: Sequence[str]) -> str:
        """Get a bearer token from the challenge's realm (credentials if we have any).

        @raise AuthenticationFailed: the token server refused.
        """
        realm = ch.params.get("realm", "")
        if not realm:
            raise RegistryError(401, [], self.endpoint.base, "bearer challenge without realm")
        a = self.auth
        query: list[tuple[str, str]] = []
        if ch.params.get("service"):
            query.append(("service", ch.params["service"]))
        query += [("scope", s) for s in scopes]
        client = self.http.verified if realm.startswith("https:") else self.http.unverified
        if not self.endpoint.verify_tls:
            client = self.http.unverified
        try:
            if a.identity_token:
                form = [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", a.identity_token),
                    ("client_id", "docker"),
                    *query,
                ]
                resp = await client.post(
                    realm,
                    data=urlencode(form).encode(),
                    headers=Headers({b"Content-Type": [b"application/x-www-form-urlencoded"]}),
                    timeout=_TIMEOUT,
                )
            else:
                if a.username:
                    query.append(("account", a.username))
                sep = "&" if "?" in realm else "?"
                url = realm + (sep + urlencode(query) if query else "")
                auth = (a.username, a.password) if a.username else None
                resp = await client.get(url, auth=auth, timeout=_TIMEOUT)
        except (ConnectError, DNSLookupError, TimeoutError, ConnectionLost, ResponseFailed) as e:
            raise TransportFailed(f'Get "{realm}": {_describe(e, realm)}') from e
        body = await resp.content()
        if resp.code != 200:
            errs = _errors_of(body)
            cls = AuthenticationFailed if resp.code in (401, 403) else RegistryError
            raise cls(resp.code, errs, realm, f"token server answered {resp.code}")
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(resp.code, [], realm, "token server sent no token")
        return str(token)

    async def _error(self, resp: Any, url: str) -> RegistryError:
        body = await resp.content()
        errs = _errors_of(body)
        cls = AuthenticationFailed if resp.code == 401 else RegistryError
        return cls(resp.code, errs, url, f"unexpected status {resp.code} from {url}")

    # -- operations --

    async def ping(self) -> list[Challenge]:
        """C{GET /v2/}: the challenges of an auth'd registry, [] when open.

        @raise RegistryError: anything but 200/401 (e.g. not a v2 registry).
        """
        url = f"{self.endpoint.base}/v2/"
        try:
            resp = await self._client.get(url, timeout=_TIMEOUT)
        except (ConnectError, DNSLookupError, TimeoutError, ConnectionLost, ResponseFailed) as e:
            raise TransportFailed(f'Get "{url}": {_describe(e, url)}') from e
        except SSL.Error as e:
            raise TransportFailed(f'Get "{url}": {_describe(e, url)}') from e
        body = await resp.content()
        if resp.code == 200:
            return []
        if resp.code == 401:
            return parse_challenges(resp.headers.getRawHeaders(b"www-authenticate", []))
        raise RegistryError(resp.code, _errors_of(body), url)

    async def login(self) -> None:
        """Check the credentials against the registry (ping, then Basic or the token realm).

        @raise AuthenticationFailed: refused, with dockerd's C{login attempt ...} text when the
            registry itself said 401.
        """
        challenges = await self.ping()
        if not challenges:
            return
        ch = challenges[0]
        url = f"{self.endpoint.base}/v2/"
        if ch.scheme == "bearer":
            await self.fetch_token(ch, [])
            return
        a = self.auth
        resp = await self._client.get(
            url, auth=(a.username, a.password) if a.username else None, timeout=_TIMEOUT
        )
        await _drain(resp)
        if resp.code != 200:
            phrase = resp.phrase.decode("latin-1") if resp.phrase else ""
            raise AuthenticationFailed(
                resp.code,
                [],
                url,
                f"login attempt to {url} failed with status: {resp.code} {phrase}".rstrip(),
            )

    async def get_manifest(
        self, reference: str, accept: Sequence[str] = MANIFEST_ACCEPT
    ) -> Manifest:
        """Fetch a manifest or index by tag or digest; verify it when asked by digest.

        @raise RegistryError: 404 (C{MANIFEST_UNKNOWN}, C{NAME_UNKNOWN}), 401, ...
        @raise DigestMismatch: content does not match the digest asked for.
        """
        url = self._url(f"manifests/{reference}")
        resp = await self._request("GET", url, {"Accept": ", ".join(accept)})
        if resp.code != 200:
            raise await self._error(resp, url)
        data = await resp.content()
        media_type = (resp.headers.getRawHeaders(b"content-type", [b""])[0]).decode().split(";")[0]
        digest = sha256_digest(data)
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatch(reference, digest)
        if not media_type or media_type in ("application/json", "text/plain"):
            try:
                media_type = str(json.loads(data).get("mediaType", "")) or media_type
            except (ValueError, AttributeError):
                pass
        return Manifest(media_type, data, digest)

    async def head_manifest(self, reference: str) -> str | None:
        """The digest of a manifest (None when it does not exist)."""
        url = self._url(f"manifests/{reference}")
        resp = await self._request("HEAD", url, {"Accept": ", ".join(MANIFEST_ACCEPT)})
        await _drain(resp)
        if resp.code == 404:
            return None
        if resp.code != 200:
            raise RegistryError(resp.code, [], url)
        vals = resp.headers.getRawHeaders(b"docker-content-digest", [])
        return vals[0].decode() if vals else None

    async def get_blob(
        self,
        digest: str,
        sink: BlobSink,
        size: int | None = None,
        progress: ProgressFn | None = None,
    ) -> int:
        """Stream a blob into C{sink} and verify it; return its size.

        @raise DigestMismatch: the bytes do not hash to C{digest} or are not C{size} long.
        @raise RegistryError: the registry refused (404 C{BLOB_UNKNOWN}...).
        @raise TransportFailed: the connection broke mid-way.
        """
        check_digest(digest)
        url = self._url(f"blobs/{digest}")
        resp = await self._request("GET", url, unbuffered=True)
        if resp.code != 200:
            raise await self._error(resp, url)
        done: Deferred[tuple[str, int]] = Deferred()
        resp.deliverBody(_StreamToSink(sink, self._blocking, progress, done))
        actual, n = await done
        if actual != digest:
            raise DigestMismatch(digest, actual)
        if size is not None and n != size:
            raise DigestMismatch(f"{digest} ({size} bytes)", f"{n} bytes")
        return n

    async def head_blob(self, digest: str) -> int | None:
        """The size of a blob in this repository, or None when the registry lacks it."""
        url = self._url(f"blobs/{digest}")
        resp = await self._request("HEAD", url)
        await _drain(resp)
        if resp.code == 404:
            return None
        if resp.code != 200:
            raise RegistryError(resp.code, [], url, f"HEAD {url}: status {resp.code}")
        vals = resp.headers.getRawHeaders(b"content-length", [b"0"])
        return int(vals[0])

    async def mount_blob(self, digest: str, from_repository: str) -> bool:
        """Ask the registry to link a blob from another repository; True when it did (201)."""
        url = self._url("blobs/uploads/?" + urlencode({"mount": digest, "from": from_repository}))
        resp = await self._request("POST", url, body=b"")
        await _drain(resp)
        if resp.code == 201:
            return True
        if resp.code == 202:  # it started an upload instead; cancel it
            loc = self._location(resp, url)
            cancel = await self._request("DELETE", loc)
            await _drain(cancel)
            return False
        raise await self._error(resp, url)

    def _location(self, resp: IResponse, base: str) -> str:
        vals = resp.headers.getRawHeaders(b"location", [])
        if not vals:
            raise RegistryError(resp.code, [], base, "registry sent no upload location")
        return str(urljoin(base, vals[0].decode()))

    async def _start_upload(self) -> str:
        url = self._url("blobs/uploads/")
        resp = await self._request("POST", url, body=b"")
        await _drain(resp)
        if resp.code != 202:
            raise await self._error(resp, url)
        return self._location(resp, url)

    async def _finish_upload(self, loc: str, digest: str, data: bytes = b"") -> None:
        sep = "&" if "?" in loc else "?"
        url = loc + sep + urlencode({"digest": digest})
        resp = await self._request(
            "PUT", url, {"Content-Type": "application/octet-stream"}, body=data
        )
        if resp.code not in (201, 204):
            raise await self._error(resp, url)
        await _drain(resp)

    async def put_blob(self, digest: str, data: bytes) -> None:
        """Monolithic upload of a small blob (POST, then PUT with the bytes)."""
        loc = await self._start_upload()
        await self._finish_upload(loc, digest, data)

    async def upload_blob(
        self, digest: str, path: str, size: int, progress: ProgressFn | None = None
    ) -> None:
        """Chunked upload of a file (POST, one streamed PATCH, PUT C{?digest=})."""
        loc = await self._start_upload()

        def producer() -> IBodyProducer:
            return _FileProducer(path, size, self._blocking, progress)

        resp = await self._request(
            "PATCH",
            loc,
            {"Content-Type": "application/octet-stream"},
            body=producer,
        )
        if resp.code != 202:
            raise await self._error(resp, loc)
        await _drain(resp)
        await self._finish_upload(self._location(resp, loc), digest)

    async def put_manifest(self, reference: str, media_type: str, data: bytes) -> str:
        """Store a manifest under a tag (or digest); return its digest."""
        url = self._url(f"manifests/{reference}")
        resp = await self._request("PUT", url, {"Content-Type": media_type}, body=data)
        if resp.code not in (200, 201):
            raise await self._error(resp, url)
        await _drain(resp)
        vals = resp.headers.getRawHeaders(b"docker-content-digest", [])
        return vals[0].decode() if vals else sha256_digest(data)

    async def list_tags(self) -> list[str]:
        """All tags of the repository (following C{Link} pagination)."""
        url: str | None = self._url("tags/list")
        tags: list[str] = []
        while url:
            resp = await self._request("GET", url)
            if resp.code != 200:
                raise await self._error(resp, url)
            doc = json.loads(await resp.content())
            tags += [str(t) for t in (doc.get("tags") or [])]
            link = resp.headers.getRawHeaders(b"link", [])
            url = None
            if link:
                m = re.match(r"\s*<([^>]+)>", link[0].decode())
                if m:
                    url = urljoin(self.endpoint.base, m.group(1))
        return tags


async def _drain(resp: Any) -> None:
    try:
        await resp.content()
    except (ResponseFailed, ConnectionLost, PotentialDataLoss):
        pass


def _describe(e: BaseException, url: str = "") -> str:
    """A transport failure in the words of Go's net/http (what dockerd's messages carry)."""
    parts = urlsplit(url) if url else None
    host = (parts.hostname or "") if parts else ""
    port = (parts.port or (443 if parts.scheme == "https" else 80)) if parts else 0
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if parts is not None:
        if isinstance(e, DNSLookupError):
            return f"dial tcp: lookup {host}: no such host"
        if isinstance(e, ConnectError) and "refused" in str(e).lower():
            return f"dial tcp {hostport}: connect: connection refused"
        if isinstance(e, TimeoutError):
            return f"dial tcp {hostport}: i/o timeout"
        if _plain_http_answer(e):
            return "http: server gave HTTP response to HTTPS client"
    if isinstance(e, ResponseFailed) and e.reasons:
        return "; ".join(str(r.value) for r in e.reasons)
    return str(e) or type(e).__name__


def _plain_http_answer(e: BaseException) -> bool:
    """Whether a TLS handshake failed because the server answered in plain HTTP."""
    reasons = [r.value for r in e.reasons] if isinstance(e, ResponseFailed) else [e]
    text = " ".join(str(r) for r in reasons).lower()
    return any(isinstance(r, SSL.Error) for r in reasons) and any(
        m in text for m in ("wrong version number", "packet length too long", "record layer")
    )


# --- the v1 search API of an index ----------------------------------------------------------------

INDEX_SERVER = "https://index.docker.io/v1/"


class IndexClient:
    """C{GET /v1/_ping} and C{GET /v1/search} of one index endpoint (C{docker search}).

    Like dockerd's v1 session: a standalone private index over HTTPS gets basic auth on every
    request; otherwise the search request carries C{X-Docker-Token: true} and basic auth when a
    user name is known.
    """

    def __init__(
        self,
        http: HTTPClients,
        endpoint: Endpoint,
        auth: RegistryAuth | None = None,
        official: bool = False,
    ) -> None:
        self._client = http.for_endpoint(endpoint)
        self.endpoint = endpoint
        self.auth = auth
        self.official = official
        self.always_basic = False

    @property
    def url(self) -> str:
        """The endpoint as dockerd names it in messages (C{scheme://host/v1/})."""
        return INDEX_SERVER if self.official else f"{self.endpoint.base}/v1/"

    async def _get(self, url: str, headers: dict[str, str]) -> Any:
        hdrs = {"User-Agent": "pyd", **headers}
        try:
            return await self._client.get(
                url, headers={k: [v] for k, v in hdrs.items()}, timeout=_TIMEOUT
            )
        except (
            ConnectError,
            DNSLookupError,
            TimeoutError,
            ConnectionLost,
            ResponseFailed,
            SSL.Error,
        ) as e:
            raise TransportFailed(f'Get "{url}": {_describe(e, url)}') from e

    def _basic(self) -> dict[str, str]:
        a = self.auth
        if a is None:
            return {}
        raw = f"{a.username}:{a.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    async def ping(self) -> bool:
        """C{GET /v1/_ping}; whether the index is standalone (a private registry).

        @raise TransportFailed: the endpoint cannot be reached.
        """
        if self.official:
            return False
        resp = await self._get(self.url + "_ping", {})
        body = await resp.content()
        header = str(resp.headers.getRawHeaders(b"x-docker-registry-standalone", [b""])[0].decode())
        if header:
            return header == "1" or header.lower() == "true"
        try:
            doc = json.loads(body)
        except ValueError:
            return True
        standalone = doc.get("standalone", True) if isinstance(doc, dict) else True
        return bool(standalone)

    async def authorize(self) -> None:
        """dockerd's authorizeClient: ping a private HTTPS index to decide on basic auth."""
        if not self.official and self.endpoint.scheme == "https":
            standalone = await self.ping()
            self.always_basic = standalone and self.auth is not None

    async def search(self, term: str, limit: int) -> tuple[int, bytes]:
        """C{GET /v1/search?q=&n=}: the status code and the body.

        @raise TransportFailed: the request failed.
        """
        url = self.url + "search?" + urlencode({"q": term, "n": str(limit)})
        headers = {"X-Docker-Token": "true"}
        if self.always_basic or (self.auth is not None and self.auth.username):
            headers.update(self._basic())
        resp = await self._get(url, headers)
        return resp.code, await resp.content()
