"""Interfaces the container and build services need from the other areas (layer: engine).

They are defined here, next to their consumers, and implemented by the area services
(L{pyd.engine.images}, L{pyd.engine.networks}, L{pyd.engine.volumes}). Each consumer receives
its providers by constructor injection; tests pass small fakes (tests/fakes/).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from pyd.core.records import Change, Image, MountSpec, NetworkSetup
from pyd.engine.spec.records import MountRequest, NetworkRequest


class ImageProvider(Protocol):
    """What containers and builds need from the image store."""

    async def resolve(self, ref: str) -> Image:
        """The image named by a reference, id or id prefix.

        @raise NotFound: C{No such image: <ref>} (the CLI pulls on this 404 during run).
        """
        ...

    async def create_rw_layer(self, container_id: str, image_id: str | None) -> None:
        """Make the container's writable layer on top of the image's layers (None: empty)."""
        ...

    async def mount_rw_layer(self, container_id: str) -> str:
        """Mount the container's root filesystem (overlay); return the merged directory."""
        ...

    async def unmount_rw_layer(self, container_id: str) -> None:
        """Unmount it (idempotent)."""
        ...

    async def remove_rw_layer(self, container_id: str) -> None:
        """Unmount and delete the writable layer (idempotent)."""
        ...

    async def changes(self, container_id: str) -> list[Change]:
        """C{docker diff}: what the writable layer changed."""
        ...

    async def commit(
        self,
        container_id: str,
        image_config: dict[str, Any],
        repo_tag: str | None = None,
        parent_id: str | None = None,
        cache_key: str | None = None,
    ) -> Image:
        """Turn the writable layer into a new image layer and store the image."""
        ...


class NetworkProvider(Protocol):
    """What containers need from networking."""

    def canonical_mode(self, network_mode: str) -> str:
        """C{host} or C{none} when C{network_mode} names those networks by id or id prefix;
        otherwise C{network_mode} unchanged (an unknown name is left for L{validate})."""
        ...

    async def validate(
        self,
        container_id: str,
        network_mode: str,
        endpoints_config: dict[str, Any],
        network: NetworkRequest,
    ) -> None:
        """Check a create request (network exists, --ip inside its subnet, ports well formed).

        @raise NotFound: unknown network (C{network X not found}).
        @raise InvalidParameter: bad combination.
        """
        ...

    async def setup(
        self,
        container_id: str,
        name: str,
        hostname: str,
        network_mode: str,
        endpoints_config: dict[str, Any],
        network: NetworkRequest,
        exposed_ports: Sequence[str],
    ) -> NetworkSetup:
        """Before start: namespace, interfaces, addresses, published ports, DNS."""
        ...

    async def teardown(self, container_id: str) -> None:
        """After the container stopped: release ports, interfaces and the namespace."""
        ...

    async def release(self, container_id: str) -> None:
        """On removal: drop the container's endpoints (addresses go back to the pool)."""
        ...


class VolumeProvider(Protocol):
    """What containers need from volumes and mounts (implemented by L{pyd.engine.volumes}).

    Call order for the container service: insert the container's row, then C{resolve_mounts}
    (it records the container's use of each volume in C{container_volumes}, which references the
    container row); C{prepare} before every start; C{release} on removal I{before} the container
    row is deleted (the use rows cascade away with it). On a failed create after
    C{resolve_mounts}, call C{release(container_id, True)}. The volume service learns that a
    container stopped from its C{die} event (wired in pyd/daemon/wiring.py) to unmount volumes.
    """

    async def resolve_mounts(
        self,
        container_id: str,
        mounts: MountRequest,
        image_volumes: Sequence[str],
        volumes_from: Sequence[Sequence[MountSpec]] = (),
    ) -> list[MountSpec]:
        """At create: parse Binds/Mounts/Tmpfs/anonymous volumes, create named and anonymous
        volumes as needed, record that the container uses them.

        @param image_volumes: the image's C{config.Volumes} keys plus the request's
            C{Config.Volumes} keys (the CLI sends C{-v /path} there); each becomes an anonymous
            volume unless something else is mounted there.
        @param volumes_from: for each entry of C{HostConfig.VolumesFrom}, in order, the stored
            MountSpecs of that container (this service parses the C{:ro}/C{:rw} suffix).
        @return: the mounts sorted so parents come before children; persist them with the
            container and pass them back to C{prepare}. C{listed=False} ones (C{--tmpfs}) are not
            shown in inspect's C{Mounts}, as with dockerd.
        @raise InvalidParameter: malformed spec (dockerd's message).
        """
        ...

    async def prepare(
        self, container_id: str, mounts: Sequence[MountSpec], rootfs: str
    ) -> list[MountSpec]:
        """Before start: copy image content into empty volumes (first use), create bind sources,
        mount volumes that have mount options (tmpfs, bind, nfs...), mount volume subpaths by
        descriptor on private staging points.

        @return: the mounts to give the runtime (a subpath's source is its staging point)."""
        ...

    async def unstage(self, container_id: str) -> None:
        """The runtime created the container (it holds its own copies of the mounts) or the start
        failed: drop the staging points C{prepare} made. Idempotent."""
        ...

    async def release(self, container_id: str, remove_anonymous: bool) -> None:
        """On removal: forget the container's uses; delete its anonymous volumes if asked
        (C{docker rm -v} and AutoRemove containers)."""
        ...
