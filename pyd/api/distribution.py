"""Registry endpoints: C{POST /auth}, and the pull/push handlers the images router mounts (layer: api).

C{POST /images/create?fromImage=} (pull) and C{POST /images/{name}/push} (push) live under the
C{images} prefix, which the images router owns: it calls L{pull_handler} and L{push_handler}.
Both stream dockerd's JSON progress lines; an error before the first line is an ordinary HTTP
error (the CLI shows C{Error response from daemon: ...}), a later one ends the stream with an
in-band C{errorDetail}. Credentials arrive base64url-encoded in C{X-Registry-Auth}.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from pyd.api.base import make_app, role
from pyd.api.errors import public_message
from pyd.api.streams import PROGRESS_NEWLINE, JSONLines
from pyd.api.wire import json_body, parse_filters, qstr, read_json_object
from pyd.core.errors import InvalidParameter, PydError
from pyd.core.records import RegistryAuth
from pyd.engine.spec import schema
from pyd.engine.spec.gojson import decode

if TYPE_CHECKING:  # the service is built on first use (pyd.engine.distribution.lazy)
    from pyd.engine.distribution import Progress, ProgressSink, SearchResult

log = Logger()


class Distribution(Protocol):
    """What these handlers need from the engine (L{pyd.engine.distribution.DistributionService})."""

    async def pull(
        self, image: str, tag: str, platform: str, auth: RegistryAuth | None, progress: ProgressSink
    ) -> None:
        """Pull, reporting progress."""
        ...

    async def push(
        self, name: str, tag: str, auth: RegistryAuth | None, progress: ProgressSink
    ) -> None:
        """Push, reporting progress."""
        ...

    async def login(self, auth: RegistryAuth) -> str:
        """Check credentials; the status text."""
        ...

    async def search(
        self, term: str, limit: int, filters: dict[str, list[str]], auth: RegistryAuth | None
    ) -> list[SearchResult]:
        """Search the term's index."""
        ...

    async def inspect(
        self, image: str, auth: RegistryAuth | None
    ) -> tuple[str, str, int, list[dict[str, str]]]:
        """Media type, digest, size and platforms of a remote reference."""
        ...


# --- wire helpers -----------------------------------------------------------------------------


def _b64decode_lenient(value: str) -> bytes:
    s = "".join(value.split())
    s = s.rstrip("=")
    s += "=" * (-len(s) % 4)
    try:
        return base64.urlsafe_b64decode(s)
    except (binascii.Error, ValueError):
        return base64.b64decode(s)


def auth_from_json(doc: dict[str, Any]) -> RegistryAuth:
    """An AuthConfig object (C{/auth} body or decoded header) as a record."""

    def s(key: str) -> str:
        v = doc.get(key, doc.get(key.capitalize(), ""))
        return v if isinstance(v, str) else ""

    user, password = s("username"), s("password")
    if not user and s("auth"):
        try:
            user, _, password = _b64decode_lenient(s("auth")).decode().partition(":")
        except (
            binascii.Error,
            ValueError,
            UnicodeDecodeError,
        ):  # an undecodable auth field: the credentials stay empty, as in dockerd
            pass
    return RegistryAuth(
        username=user,
        password=password,
        server_address=s("serveraddress") or doc.get("ServerAddress", "") or "",
        identity_token=s("identitytoken") or doc.get("IdentityToken", "") or "",
        registry_token=s("registrytoken") or doc.get("RegistryToken", "") or "",
    )


def decode_registry_auth(header: str | None) -> RegistryAuth | None:
    """Decode C{X-Registry-Auth} leniently (URL-safe or standard alphabet, padding optional).

    Like dockerd, an undecodable header means anonymous access, not an error. Never logged.
    """
    if not header or not header.strip():
        return None
    try:
        doc = json.loads(_b64decode_lenient(header.strip()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    auth = auth_from_json(doc)
    if auth == RegistryAuth(server_address=auth.server_address):
        return None
    return auth


def _human_size(n: float) -> str:
    """Go's C{units.HumanSize}: 4 significant digits, decimal units."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.4g}{units[i]}"


def progress_bar(current: int, total: int) -> str:
    """dockerd's progress string (JSONProgress.String at width 200, no time estimate)."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{_human_size(current):>8}"
    pct = int(current / total * 100) // 2
    pct = min(pct, 50)
    bar = "[" + "=" * pct + ">" + " " * max(50 - pct, 0) + "] "
    cur = _human_size(current)
    if current > total:
        return bar + f"{cur:>8}"
    return bar + f"{cur:>8}/{_human_size(total)}"


def progress_json(p: Progress) -> dict[str, Any]:
    """One progress record as dockerd's JSONMessage (field order as Go marshals it)."""
    out: dict[str, Any] = {}
    if p.status:
        out["status"] = p.status
    if p.detail:
        detail: dict[str, int] = {}
        if p.current:
            detail["current"] = p.current
        if p.total:
            detail["total"] = p.total
        out["progressDetail"] = detail
        bar = progress_bar(p.current or 0, p.total or 0) if p.current or p.total else ""
        if bar:
            out["progress"] = bar
    if p.id:
        out["id"] = p.id
    if p.aux is not None:
        out["aux"] = p.aux
    return out


class _LazyStream:
    """Starts the 200 JSON stream at the first progress line, so early errors keep their status."""

    def __init__(self, request: IRequest) -> None:
        self._request = request
        self.lines: JSONLines | None = None

    def __call__(self, p: Progress) -> None:
        if self.lines is None:
            self.lines = JSONLines(self._request, newline=PROGRESS_NEWLINE)
        self.lines.write(progress_json(p))


async def _stream(request: Any, run: Any) -> bytes | None:
    """Run an engine operation with a lazily started progress stream; errors as dockerd does."""
    stream = _LazyStream(request)
    d: Deferred[None] = Deferred.fromCoroutine(run(stream))
    request.notifyFinish().addErrback(lambda _: d.cancel())
    try:
        await d
    except CancelledError:
        return None
    except Exception as e:
        if stream.lines is None:
            raise
        if not isinstance(e, PydError):
            log.failure("registry operation failed", None)
        message = public_message(e)
        stream.lines.error(message)
        stream.lines.finish()
        return None
    if stream.lines is None:
        stream.lines = JSONLines(request, newline=PROGRESS_NEWLINE)
    stream.lines.finish()
    return None


# --- handlers -------------------------------------------------------------------------------------


async def pull_handler(request: IRequest, dist: Distribution) -> bytes | None:
    """C{POST /images/create?fromImage=&tag=&platform=} (the images router calls this)."""
    image = qstr(request, "fromImage") or ""
    if not image:
        raise InvalidParameter("fromImage or fromSrc is required")
    tag = qstr(request, "tag") or ""
    platform = qstr(request, "platform") or ""
    auth = decode_registry_auth(request.getHeader("x-registry-auth"))
    return await _stream(request, lambda sink: dist.pull(image, tag, platform, auth, sink))


async def push_handler(request: IRequest, name: str, dist: Distribution) -> bytes | None:
    """C{POST /images/{name}/push?tag=} (the images router calls this; C{name} may hold / and :)."""
    tag = qstr(request, "tag") or ""
    auth = decode_registry_auth(request.getHeader("x-registry-auth"))
    return await _stream(request, lambda sink: dist.push(name, tag, auth, sink))


class DistributionHandlers:
    """The registry section of the images router (C{pyd.api.images.Distribution}).

    The images router owns the C{images} and C{auth} prefixes and hands C{POST /images/create}
    with C{fromImage}, C{POST /images/{name}/push} and C{POST /auth} to this object.
    """

    def __init__(self, dist: Distribution) -> None:
        self._dist = dist

    async def pull(self, request: IRequest, from_image: str, tag: str | None) -> bytes | None:
        """C{POST /images/create?fromImage=}: stream the pull."""
        return await pull_handler(request, self._dist)

    async def push(self, request: IRequest, name: str) -> bytes | None:
        """C{POST /images/{name}/push}: stream the push."""
        return await push_handler(request, name, self._dist)

    async def search(self, request: IRequest) -> bytes:
        """C{GET /images/search}: the term's index, searched and filtered."""
        return await search_handler(request, self._dist)

    async def login(self, request: IRequest) -> bytes:
        """C{POST /auth}: really contact the registry; C{{"Status":"Login Succeeded","IdentityToken":""}}."""
        try:  # Go's typed decoding (registry.AuthConfig), without ReadJSON's prefix
            body = decode(read_json_object(request), schema.AUTH_CONFIG)
        except InvalidParameter as e:
            raise InvalidParameter(e.message.removeprefix("invalid JSON: ")) from None
        status = await self._dist.login(auth_from_json(body))
        return json_body(request, {"Status": status, "IdentityToken": ""})


def search_json(r: SearchResult) -> dict[str, Any]:
    """One C{GET /images/search} entry (field order as Go marshals registry.SearchResult)."""
    return {
        "star_count": r.star_count,
        "is_official": r.is_official,
        "name": r.name,
        "is_automated": r.is_automated,
        "description": r.description,
    }


async def search_handler(request: IRequest, dist: Distribution) -> bytes:
    """C{GET /images/search?term=&limit=&filters=} with optional C{X-Registry-Auth}."""
    limit = 0
    raw = qstr(request, "limit") or ""
    if raw:
        try:
            limit = int(raw, 10)
        except ValueError:
            raise InvalidParameter(
                f'invalid limit specified: strconv.Atoi: parsing "{raw}": invalid syntax'
            ) from None
    filters = parse_filters(request)
    # an undecodable header is no error for a search (dockerd ignores it)
    auth = decode_registry_auth(request.getHeader("x-registry-auth"))
    results = await dist.search(qstr(request, "term") or "", limit, filters, auth)
    return json_body(request, [search_json(r) for r in results])


class DistributionRouter:
    """C{GET /distribution/{name}/json}: what a reference points at in its registry."""

    app = make_app()
    prefixes = ("distribution",)

    def __init__(self, dist: Distribution) -> None:
        self._dist = dist

    def resource(self) -> IResource:
        """The Klein resource."""
        return self.app.resource()  # type: ignore[no-any-return]  # Klein's resource() is untyped

    @app.route("/distribution/<path:name>/json", methods=["GET"])
    @role("viewer")
    async def inspect(self, request: IRequest, name: str) -> bytes:
        """C{{"Descriptor": {mediaType, digest, size}, "Platforms": [...]}}."""
        auth = decode_registry_auth(request.getHeader("x-registry-auth"))
        media_type, digest, size, platforms = await self._dist.inspect(name, auth)
        return json_body(
            request,
            {
                "Descriptor": {"mediaType": media_type, "digest": digest, "size": size},
                "Platforms": platforms,
            },
        )
