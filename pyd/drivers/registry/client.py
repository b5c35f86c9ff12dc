"""One registry repository's API (layer: drivers): the C{/v2/} ping and Basic/Bearer
authentication, manifests, blob HEAD and GET, monolithic and chunked uploads, cross-repository
mounts, tags list.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectError, ConnectionLost, DNSLookupError, TimeoutError
from twisted.logger import Logger
from twisted.web._newclient import ResponseFailed  # twisted.web.client's, without its TLS imports
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer, IResponse

from pyd.core import tlsstack
from pyd.core.records import RegistryAuth
from pyd.core.seams import Blocking
from pyd.drivers.registry.hosts import Endpoint, HTTPClients
from pyd.drivers.registry.tlsprobe import speaks_tls
from pyd.drivers.registry.transfer import BlobSink, ProgressFn, _FileProducer, _StreamToSink
from pyd.drivers.registry.wire import (
    _TIMEOUT,
    MANIFEST_ACCEPT,
    AuthenticationFailed,
    Challenge,
    DigestMismatch,
    Manifest,
    RegistryError,
    TransportFailed,
    _describe,
    _errors_of,
    check_digest,
    parse_challenges,
    sha256_digest,
)

log = Logger()


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
        streamed: bool = False,  # a body streamed by the caller: no deadline for the head
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
                    allow_redirects=allow_redirects,
                    timeout=None if streamed or callable(body) else _TIMEOUT,
                )
            except tlsstack.with_tls_errors(
                ConnectError, DNSLookupError, TimeoutError, ConnectionLost, ResponseFailed
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
        if await self._plain_http_only():
            # what the HTTPS attempt would have failed with (Go's text, as dockerd logs it)
            raise TransportFailed(f'Get "{url}": http: server gave HTTP response to HTTPS client')
        try:
            resp = await self._client.get(url, timeout=_TIMEOUT)
        except (ConnectError, DNSLookupError, TimeoutError, ConnectionLost, ResponseFailed) as e:
            raise TransportFailed(f'Get "{url}": {_describe(e, url)}') from e
        except tlsstack.tls_errors() as e:
            raise TransportFailed(f'Get "{url}": {_describe(e, url)}') from e
        body = await resp.content()
        if resp.code == 200:
            return []
        if resp.code == 401:
            return parse_challenges(resp.headers.getRawHeaders(b"www-authenticate", []))
        raise RegistryError(resp.code, _errors_of(body), url)

    async def _plain_http_only(self) -> bool:
        """For an insecure registry's HTTPS endpoint while the TLS stack is not loaded: whether
        the host answers a ClientHello with something other than TLS (L{speaks_tls}), so that
        its HTTPS attempt need not load the stack to fail. False when it may speak TLS, when
        the stack is loaded already, or when the connection would go through a proxy."""
        ep = self.endpoint
        if ep.scheme != "https" or ep.verify_tls or tlsstack.is_loaded():
            return False
        try:
            parts = urlsplit(ep.base)
            host, port = parts.hostname, parts.port or 443
        except ValueError:
            return False
        if not host or self.http.proxies.for_url("https", host, port) is not None:
            return False
        return await speaks_tls(self.http.reactor, host, port) is False

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
            except (
                ValueError,
                AttributeError,
            ):  # not a JSON object: the header's media type stands
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
        resp = await self._request("GET", url, streamed=True)
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
    except (
        ResponseFailed,
        ConnectionLost,
        PotentialDataLoss,
    ):  # draining a body only to reuse the connection: a broken one is dropped anyway
        pass
