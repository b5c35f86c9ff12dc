"""C{docker search} and C{docker login} (layer: engine): the v1 index search with dockerd's
filters and limits, and credential checks against a registry.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from twisted.logger import Logger

from pyd.core.errors import (
    InvalidParameter,
    SystemError_,
    Unauthorized,
)
from pyd.core.ids import go_quote
from pyd.core.records import RegistryAuth
from pyd.core.reference import DEFAULT_DOMAIN, valid_domain
from pyd.drivers.registry import (
    AuthenticationFailed,
    Endpoint,
    IndexClient,
    RegistryClient,
    RegistryError,
    TransportFailed,
)
from pyd.engine.distribution.base import DistributionBase, _auth_text

log = Logger()


class IndexOps(DistributionBase):
    """Search and login."""

    # -- search --

    async def search(
        self,
        term: str,
        limit: int,
        filters: dict[str, list[str]],
        auth: RegistryAuth | None,
    ) -> list[SearchResult]:
        """C{docker search}: the v1 search API of the term's index, filtered like dockerd 28.

        @raise InvalidParameter: bad filters, term or limit, or an unreachable private index.
        @raise SystemError_: the search request failed, or its answer is not a search result.
        """
        for key in filters:
            if key not in SEARCH_FILTERS:
                raise InvalidParameter(f"invalid filter '{key}'")
        # is-automated is deprecated: nothing is automated any more (dockerd 28)
        if _bool_filter(filters, "is-automated"):
            return []
        official_only = _bool_filter(filters, "is-official")
        min_stars = 0
        for value in filters.get("stars", []):
            try:
                if not value.lstrip("+-").isascii():  # int() reads other scripts' digits
                    raise ValueError(value)
                min_stars = max(min_stars, int(value))
            except ValueError:
                raise InvalidParameter(
                    f"invalid filter 'stars={value}': strconv.Atoi: parsing {_go_quote(value)}: "
                    "invalid syntax"
                ) from None
        index = await self._index_client(term, auth)
        index_name, remote = split_search_term(term)
        if index.official:
            remote = remote.removeprefix("library/")
        if limit == 0:
            limit = DEFAULT_SEARCH_LIMIT
        if limit < 1 or limit > 100:
            raise InvalidParameter(f"limit {limit} is outside the range of [1, 100]")
        try:
            await index.authorize()
            status, body = await index.search(remote, limit)
        except TransportFailed as e:
            raise SystemError_(str(e)) from e
        if status != 200:
            raise SystemError_(f"Unexpected status code {status}")
        try:
            doc = json.loads(body)
            rows = doc.get("results") or [] if isinstance(doc, dict) else None
            if not isinstance(rows, list):
                raise ValueError("results is not a list")
            results = [_search_result(r) for r in rows]
        except (ValueError, TypeError, AttributeError) as e:
            raise SystemError_(f"error decoding registry search results: {e}") from e
        _ = index_name
        out = []
        for r in results:
            if "is-official" in filters and r.is_official != official_only:
                continue
            if "stars" in filters and r.star_count < min_stars:
                continue
            out.append(r)
        return out

    async def _index_client(self, term: str, auth: RegistryAuth | None) -> IndexClient:
        """dockerd's newV1Endpoint: the index of C{term}, pinged over HTTPS, then over plain
        HTTP when the index is insecure."""
        if term.startswith(("http://", "https://")):
            raise InvalidParameter(
                f"invalid repository name: repository name ({term}) should not have a scheme"
            )
        index_name, _ = split_search_term(term)
        if index_name.startswith("-") or index_name.endswith("-"):
            raise InvalidParameter(
                f"invalid index name ({index_name}). Cannot begin or end with a hyphen"
            )
        if not valid_domain(index_name):
            # dockerd would send it to the resolver; no host has such a name (".." or other
            # scripts' letters that the URL encoder refuses)
            raise InvalidParameter(f"invalid index name ({index_name})")
        if index_name in ("docker.io", "index.docker.io"):
            return IndexClient(self.http, Endpoint("index.docker.io", "https"), auth, True)
        hosts = self._hosts()
        insecure = hosts.is_insecure(index_name)
        secure = IndexClient(
            self.http, Endpoint(index_name, "https", verify_tls=not insecure), auth
        )
        try:
            await secure.ping()
            return secure
        except TransportFailed as e:
            first = e
        if not insecure:
            raise InvalidParameter(
                f"invalid registry endpoint {secure.url}: {first}. If this private registry "
                f"supports only HTTP or HTTPS with an unknown CA certificate, please add "
                f"`--insecure-registry {index_name}` to the daemon's arguments. In the case of "
                f"HTTPS, if you have access to the registry's CA certificate, no need for the "
                f"flag; simply place the CA certificate at "
                f"/etc/docker/certs.d/{index_name}/ca.crt"
            )
        plain = IndexClient(self.http, Endpoint(index_name, "http"), auth)
        try:
            await plain.ping()
        except TransportFailed as e:
            raise InvalidParameter(
                f'invalid registry endpoint "{plain.url}". HTTPS attempt: {first}. '
                f"HTTP attempt: {e}"
            ) from e
        return plain

    # -- login --

    async def login(self, auth: RegistryAuth) -> str:
        """Check credentials against the registry; return dockerd's status text.

        @raise Unauthorized: the registry refused them.
        """
        host = _login_host(auth.server_address)
        last: Exception | None = None
        for ep in self._hosts().endpoints(host, push=True):
            c = RegistryClient(self.http, self.blocking, ep, "", auth, ())
            c.scopes = []
            try:
                await c.login()
                return "Login Succeeded"
            except TransportFailed as e:
                last = e
                continue
            except AuthenticationFailed as e:
                raise Unauthorized(str(e) if not e.errors else _auth_text(e)) from e
            except RegistryError as e:
                raise SystemError_(f"login attempt to {ep.base}/v2/ failed: {e}") from e
        raise SystemError_(str(last) if last else f'Get "https://{host}/v2/": unreachable')


SEARCH_FILTERS = ("is-automated", "is-official", "stars")


DEFAULT_SEARCH_LIMIT = 25


@attrs.frozen
class SearchResult:
    """One C{docker search} row."""

    name: str
    description: str = ""
    star_count: int = 0
    is_official: bool = False
    is_automated: bool = False


def split_search_term(term: str) -> tuple[str, str]:
    """dockerd's splitReposSearchTerm + normalizeIndexName: (index name, remote name)."""
    first, sep, rest = term.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"):
        return "docker.io", term
    return ("docker.io" if first == "index.docker.io" else first), rest


def _go_quote(value: str) -> str:
    return json.dumps(value)


def _bool_filter(filters: dict[str, list[str]], key: str) -> bool:
    """Go's filters.Args.GetBoolOrDefault (false when absent)."""
    if key not in filters:
        return False
    values = set(filters[key])
    is_false = bool(values & {"0", "false"})
    is_true = bool(values & {"1", "true"})
    if is_false == is_true:
        shown = "[" + " ".join(sorted(values)) + "]"
        raise InvalidParameter(f"invalid filter '{key}={shown}'")
    return is_true


def _search_result(row: Any) -> SearchResult:
    if not isinstance(row, dict):
        raise TypeError("a search result is not an object")
    stars = row.get("star_count", 0)
    if not isinstance(stars, int) or isinstance(stars, bool):
        raise TypeError("star_count is not a number")
    return SearchResult(
        name=str(row.get("name") or ""),
        description=str(row.get("description") or ""),
        star_count=stars,
        is_official=bool(row.get("is_official", False)),
        is_automated=False,  # deprecated: always false (dockerd 28)
    )


def _login_host(server: str) -> str:
    """The registry host of a login's server address.

    @raise InvalidParameter: the address names no host a registry can have (dockerd's
        C{unable to parse server address} prefix); before anything is sent.
    """
    s = server.strip()
    if not s or "index.docker.io" in s or s in ("docker.io", "registry-1.docker.io"):
        return DEFAULT_DOMAIN
    if "://" in s:
        s = s.split("://", 1)[1]
    host = s.split("/", 1)[0]
    if not valid_domain(host):
        raise InvalidParameter(
            f"unable to parse server address: invalid registry host {go_quote(host)}"
        )
    return host
