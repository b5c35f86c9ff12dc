"""What pull, push and search share (layer: engine): progress records, settings, the candidate
endpoints of a reference, and the common error texts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

from pyd.core.errors import (
    NotFound,
    PydError,
    SystemError_,
)
from pyd.core.records import RegistryAuth
from pyd.core.reference import Reference
from pyd.core.seams import Blocking
from pyd.drivers.registry import (
    AuthenticationFailed,
    Endpoint,
    HTTPClients,
    RegistryClient,
    RegistryError,
    RegistryHosts,
    TransportFailed,
)
from pyd.engine.contracts import RegistryImages
from pyd.engine.distribution.lazy import clean_staging_dir

log = Logger()


# --- progress records -----------------------------------------------------------------------------


@attrs.frozen
class Progress:
    """One progress message of a pull or push (rendered by the API as one JSON line).

    C{detail} False: a plain message (C{{"status", "id"}}); True: an action with a
    C{progressDetail} (C{current}/C{total} when known). C{aux} carries a result object.
    """

    status: str = ""
    id: str = ""
    detail: bool = False
    current: int | None = None
    total: int | None = None
    aux: dict[str, Any] | None = None


ProgressSink = Callable[[Progress], None]


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12]


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """Chain ids of a layer stack: C{chain(0) = diff(0)}, C{chain(n) = sha256(chain(n-1) + " " + diff(n))}."""
    out: list[str] = []
    for d in diff_ids:
        if not out:
            out.append(d)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


# --- the service ----------------------------------------------------------------------------------


@attrs.frozen
class DistributionSettings:
    """The daemon options distribution uses (re-read at each operation: they are reloadable)."""

    insecure_registries: tuple[str, ...] = ()
    registry_mirrors: tuple[str, ...] = ()
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5


class DistributionBase:
    """The dependencies and endpoint helpers of L{pyd.engine.distribution.DistributionService}."""

    def __init__(
        self,
        store: RegistryImages,
        http: HTTPClients,
        blocking: Blocking,
        staging_dir: str,
        settings: Callable[[], DistributionSettings],
        clock: IReactorTime | None = None,
        on_pull_bytes: Callable[[int], None] | None = None,
        on_action: Callable[[str, float], None] | None = None,
    ) -> None:
        self.store = store
        self.http = http
        self.blocking = blocking
        self.staging_dir = staging_dir
        self.settings = settings
        self.clock = clock
        # Told the size of every layer downloaded (metrics: image pull bytes).
        self.on_pull_bytes = on_pull_bytes
        # Told how long each pull took (dockerd's engine_daemon_image_actions_seconds{pull}).
        self.on_action = on_action

    async def _countdown(self, progress: ProgressSink, lid: str, seconds: int) -> None:
        """dockerd's "Retrying in N seconds" lines, one a second (no wait without a clock)."""
        for left in range(seconds, 0, -1):
            progress(Progress(f"Retrying in {left} second{'s' if left > 1 else ''}", lid, True))
            if self.clock is not None:
                await deferLater(self.clock, 1, lambda: None)

    def _hosts(self) -> RegistryHosts:
        s = self.settings()
        return RegistryHosts(s.insecure_registries, s.registry_mirrors)

    async def clean_staging(self) -> None:
        """Delete what an interrupted pull or push left (at daemon start)."""
        await clean_staging_dir(self.blocking, self.staging_dir)

    # -- connection --

    def _candidates(
        self, ref: Reference, auth: RegistryAuth | None, actions: Sequence[str], push: bool = False
    ) -> _Candidates:
        return _Candidates(self, ref, auth, actions, self._hosts().endpoints(ref.domain, push=push))


class _Candidates:
    """The endpoints of one registry for one operation, pinged lazily, in preference order.

    An endpoint that cannot be reached (or is not a registry) is skipped; a mirror that fails
    an operation falls back to the next endpoint; the registry itself does not.
    """

    def __init__(
        self,
        svc: DistributionBase,
        ref: Reference,
        auth: RegistryAuth | None,
        actions: Sequence[str],
        endpoints: Sequence[Endpoint],
    ) -> None:
        self._svc = svc
        self.ref = ref
        self._auth = auth
        self._actions = tuple(actions)
        self.endpoints = list(endpoints)
        self._clients: dict[int, RegistryClient | Exception] = {}

    async def _client(self, i: int) -> RegistryClient | Exception:
        if i not in self._clients:
            ep = self.endpoints[i]
            c = RegistryClient(
                self._svc.http, self._svc.blocking, ep, self.ref.path, self._auth, self._actions
            )
            try:
                await c.ping()
                self._clients[i] = c
            except (TransportFailed, RegistryError) as e:
                log.debug("registry endpoint {url} failed: {err}", url=ep.base, err=e)
                self._clients[i] = e
        return self._clients[i]

    async def first(
        self, fn: Callable[[RegistryClient], Any], ref: Reference | None = None
    ) -> tuple[RegistryClient, Any]:
        """Run C{fn} on the first endpoint that answers (falling back past failing mirrors)."""
        last: Exception | None = None
        for i, ep in enumerate(self.endpoints):
            c = await self._client(i)
            if isinstance(c, Exception):
                last = c
                continue
            try:
                return c, await fn(c)
            except (RegistryError, TransportFailed) as e:
                last = e
                if not ep.mirror:
                    break
        raise _unreachable(ref or self.ref, last)


async def _nothing(_: RegistryClient) -> None:
    return None


def _auth_text(e: RegistryError) -> str:
    return e.render()


def _pull_error(ref: Reference, e: Exception) -> PydError:
    if isinstance(e, PydError):
        return e
    if isinstance(e, RegistryError):
        codes = e.codes
        first = e.errors[0] if e.errors else {}
        cause = RegistryError(e.status, [first], e.url).render() if first else str(e)
        if codes and codes[0] == "MANIFEST_UNKNOWN":
            return NotFound(f"manifest for {ref.familiar()} not found: {cause}")
        if codes and codes[0] == "NAME_UNKNOWN":
            return NotFound(f"repository {ref.familiar_name} not found: {cause}")
        if codes and codes[0] == "DENIED":
            return NotFound(
                f"pull access denied for {ref.familiar_name}, repository does not exist or "
                f"may require 'docker login': {cause}"
            )
        if e.status == 404:
            return NotFound(f"manifest for {ref.familiar()} not found: {cause}")
        if isinstance(e, AuthenticationFailed):
            return SystemError_(cause if first else "unauthorized: authentication required")
        return SystemError_(cause)
    if isinstance(e, TransportFailed):
        return SystemError_(str(e))
    return SystemError_(str(e))


def _unreachable(ref: Reference, e: Exception | None) -> PydError:
    if isinstance(e, (RegistryError, PydError)):
        return _pull_error(ref, e)
    if isinstance(e, TransportFailed):
        return SystemError_(str(e))
    return SystemError_(f'Get "https://{ref.domain}/v2/": {e}')
