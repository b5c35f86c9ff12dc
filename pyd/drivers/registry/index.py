"""The v1 search API of an index (layer: drivers): C{docker search}."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

from twisted.internet.error import ConnectError, ConnectionLost, DNSLookupError, TimeoutError
from twisted.logger import Logger
from twisted.web._newclient import ResponseFailed  # twisted.web.client's, without its TLS imports

from pyd.core import tlsstack
from pyd.core.records import RegistryAuth
from pyd.drivers.registry.hosts import Endpoint, HTTPClients
from pyd.drivers.registry.wire import _TIMEOUT, TransportFailed, _describe

log = Logger()


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
        except tlsstack.with_tls_errors(
            ConnectError, DNSLookupError, TimeoutError, ConnectionLost, ResponseFailed
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
