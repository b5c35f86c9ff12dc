"""C{/volumes} endpoints and the volume rows of C{/system/df} (layer: api)."""

from __future__ import annotations

import functools
import time
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from pyd.api.base import api_version, lean, make_app, role
from pyd.api.rendering import UNREADABLE, render_all, render_one
from pyd.api.wire import json_body, no_content, parse_filters, qbool, read_json_object
from pyd.core.errors import InvalidParameter, Unavailable
from pyd.core.records import Volume
from pyd.engine.spec import schema
from pyd.engine.spec.gojson import decode
from pyd.engine.volumes import VolumeService

_SWARM_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to '
    "connect this node to swarm and try again."
)


@functools.lru_cache(maxsize=1024)
def rfc3339(seconds: int) -> str:
    """Go's C{time.RFC3339} in UTC (dockerd prints the daemon's local time; pyd runs in UTC).
    Remembered: a volume's creation time is formatted at every inspect and list."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def volume_json(v: Volume) -> dict[str, Any]:
    """dockerd's C{Volume} object."""
    return {
        "CreatedAt": rfc3339(v.created),
        "Driver": v.driver,
        "Labels": v.labels,
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": v.options,
        "Scope": "local",
    }


def _unreadable_volume(v: Volume) -> dict[str, Any]:
    """A volume whose record cannot be rendered: its name and driver, so that it lists and can
    be removed."""
    return {
        "CreatedAt": "",
        "Driver": str(v.driver),
        "Labels": None,
        "Mountpoint": "",
        "Name": v.name,
        "Options": None,
        "Scope": "local",
        "Status": {"Error": UNREADABLE},
    }


def _str_map(value: Any, field: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidParameter(f"invalid JSON: {field} must be an object of strings")
    return dict(value)


class VolumesRouter:
    """C{GET /volumes}, C{POST /volumes/create}, C{GET|DELETE|PUT /volumes/NAME},
    C{POST /volumes/prune}."""

    app = make_app()
    prefixes = ("volumes",)

    def __init__(self, volumes: VolumeService) -> None:
        self._volumes = volumes

    def resource(self) -> IResource:
        """The Klein resource."""
        return self.app.resource()  # type: ignore[no-any-return]  # Klein's resource() is untyped

    @app.route("/volumes", methods=["GET"])
    @role("viewer")
    @lean
    async def list_volumes(self, request: IRequest) -> bytes:
        """Every volume matching C{filters} (dangling, driver, label, name)."""
        vols = await self._volumes.list_volumes(parse_filters(request))
        rows = render_all("volume", vols, lambda v: v.name, volume_json, _unreadable_volume)
        return json_body(request, {"Volumes": rows, "Warnings": []})

    @app.route("/volumes/create", methods=["POST"])
    @role("operator")
    @lean
    async def create(self, request: IRequest) -> bytes:
        """Create a volume (or return the existing one of that name): 201."""
        raw = read_json_object(request)
        # Go's typed decoding (volume.CreateOptions): a mistyped field is dockerd's 400
        body = decode(raw, schema.VOLUME_CREATE_OPTIONS)
        if raw.get("ClusterVolumeSpec") is not None and api_version(request) >= (1, 42):
            raise Unavailable(_SWARM_MANAGER)
        name = body.get("Name") or ""
        driver = body.get("Driver") or ""
        if not isinstance(name, str) or not isinstance(driver, str):
            raise InvalidParameter("invalid JSON: Name and Driver must be strings")
        vol = await self._volumes.create(
            name,
            driver,
            _str_map(body.get("DriverOpts"), "DriverOpts"),
            _str_map(body.get("Labels"), "Labels"),
            # a non-admin's bind volume is confined beneath its allowed root (pyd.api.authz)
            getattr(request, "pyd_bind_roots", None),
        )
        return json_body(request, volume_json(vol), 201)

    @app.route("/volumes/prune", methods=["POST"])
    @role("operator")
    @lean
    async def prune(self, request: IRequest) -> bytes:
        """Remove unused volumes; before API 1.42 every unused one, since then anonymous ones
        unless C{all=true}."""
        filters = parse_filters(request)
        if api_version(request) < (1, 42):
            filters.setdefault("all", ["true"])
        deleted, reclaimed = await self._volumes.prune(filters)
        return json_body(request, {"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed})

    @app.route("/volumes/<string:name>", methods=["GET"])
    @role("viewer")
    @lean
    async def inspect(self, request: IRequest, name: str) -> bytes:
        """One volume."""
        vol = await self._volumes.inspect(name)
        return json_body(
            request, render_one("volume", vol.name, vol, volume_json, _unreadable_volume)
        )

    @app.route("/volumes/<string:name>", methods=["DELETE"])
    @role("operator")
    @lean
    async def remove(self, request: IRequest, name: str) -> bytes:
        """Remove a volume: 204; 409 while a container refers to it, even with C{force}."""
        await self._volumes.remove(name, force=qbool(request, "force"))
        return no_content(request)

    @app.route("/volumes/<string:name>", methods=["PUT"])
    @role("operator")
    @lean
    def update(self, request: IRequest, name: str) -> bytes:
        """Cluster volumes only: without swarm, dockerd answers 503."""
        raise Unavailable("volume update only valid for cluster volumes, but swarm is unavailable")


class VolumesDiskUsage:
    """The volume rows of C{GET /system/df} (a L{pyd.engine.system.SystemContributor})."""

    def __init__(self, volumes: VolumeService) -> None:
        self._volumes = volumes

    def info_counts(self) -> Deferred[dict[str, Any]]:
        """Volumes add nothing to C{/info}."""
        return succeed({})

    def disk_usage(self) -> Deferred[dict[str, Any]]:
        """Local volumes without mount options, with C{UsageData} (Size, RefCount)."""

        async def run() -> dict[str, Any]:
            rows = []
            for u in await self._volumes.usage():
                row = volume_json(u.volume)
                row["UsageData"] = {"Size": u.size, "RefCount": u.ref_count}
                rows.append(row)
            return {"volumes": rows}

        return Deferred.fromCoroutine(run())
