"""Interfaces the engine's areas need from each other (layer: engine).

They are defined here, on the consumers' side, and implemented by the area services
(L{pyd.engine.images}, L{pyd.engine.networks}, L{pyd.engine.volumes}). Each consumer receives
its providers by constructor injection; tests pass small fakes (tests/fakes/), which mypy checks
against these protocols.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

import attrs

from pyd.core.records import Change, Image, MountSpec, NetworkSetup
from pyd.core.reference import Reference
from pyd.engine.spec.records import MountRequest, NetworkRequest

# --- the image store ---------------------------------------------------------------------------
# One seam, L{ImageStore}, implemented by L{pyd.engine.images.ImageService}. Each consumer types its
# dependency as the slice it uses (declared here, once): containers L{ContainerImages}, the
# archive service L{RootfsAccess}, the builder L{BuildImages}, commit L{CommitImages}, pull/push
# L{RegistryImages}.


@attrs.frozen
class CommitMeta:
    """What a commit records besides the new image's C{config} section.

    C{created_by}, C{author} and C{comment} go into the image's history entry (C{author} also
    at the top); C{container} is the committed container (C{{"id", "config"}}, C{docker
    commit}); C{top} adds more top-level keys (the builder's C{container_config},
    C{docker_version}); with C{empty_layer_ok} an empty diff adds no layer (the history entry is
    marked C{empty_layer}), as dockerd's builder does.
    """

    created_by: str = ""
    author: str = ""
    comment: str = ""
    container: Mapping[str, Any] | None = None
    top: Mapping[str, Any] | None = None
    empty_layer_ok: bool = False


class LayerStream(Protocol):
    """A stored layer's uncompressed tar, byte for byte, being read (close it)."""

    size: int

    def read(self, n: int = -1) -> bytes:
        """Up to C{n} bytes (all the rest for -1); b"" at the end."""
        ...

    def close(self) -> None:
        """Release what it holds open."""
        ...


@attrs.frozen
class PushLayer:
    """One layer of a local image, as push needs it."""

    diff_id: str
    open_tar: Callable[[], LayerStream]  # its uncompressed tar, as the store gives it back
    compressed_digest: str | None = None  # the blob digest it was pulled as, if known


@attrs.frozen
class PushImage:
    """A local image ready to push."""

    image: Image
    config: bytes  # the config blob, byte for byte (its sha256 is the image id)
    layers: tuple[PushLayer, ...]


class ImageLookup(Protocol):
    """Finding a local image."""

    async def resolve(self, ref: str) -> Image:
        """The image named by a reference, id or id prefix.

        @raise NotFound: C{No such image: <ref>} (the CLI pulls on this 404 during run).
        """
        ...


class RootfsAccess(Protocol):
    """A container's root filesystem as the archive service (cp, export, diff) reaches it."""

    async def mount_rw_layer(self, container_id: str) -> str:
        """Mount the container's root filesystem (overlay); return the merged directory."""
        ...

    async def unmount_rw_layer(self, container_id: str) -> None:
        """Unmount it (idempotent)."""
        ...

    async def changes(self, container_id: str) -> list[Change]:
        """C{docker diff}: what the writable layer changed."""
        ...


class RwLayers(RootfsAccess, Protocol):
    """Writable layers: a container's (its id is the layer id) or a build step's."""

    async def create_rw_layer(self, container_id: str, image_id: str | None) -> None:
        """Make the writable layer on top of the image's layers (None: empty)."""
        ...

    async def remove_rw_layer(self, container_id: str) -> None:
        """Unmount and delete the writable layer (idempotent)."""
        ...


class LayerCommit(Protocol):
    """A writable layer becomes an image."""

    async def commit(
        self,
        container_id: str,
        image_config: dict[str, Any],
        meta: CommitMeta,
        repo_tag: str | None = None,
        parent_id: str | None = None,
        cache_key: str | None = None,
    ) -> Image:
        """Store the writable layer's changes as a new image on top of the layer's image:
        C{image_config} is the new image's C{config} section; C{parent_id} None: the layer's
        image. @raise NotFound: no such writable layer."""
        ...


class CommitImages(LayerCommit, Protocol):
    """What C{docker commit} (L{pyd.engine.commit}) needs from the image store."""

    async def rw_image(self, container_id: str) -> Image | None:
        """The image a writable layer was made from (None: none, or it is gone)."""
        ...


class ImageWrites(LayerCommit, Protocol):
    """New images from writable layers or configs, the build cache, tags."""

    async def commit_config(
        self,
        parent_id: str | None,
        image_config: dict[str, Any],
        created_by: str,
        author: str = "",
        cache_key: str | None = None,
        extra_top: dict[str, Any] | None = None,
    ) -> Image:
        """A new image with C{parent_id}'s layers and C{image_config} (an C{empty_layer}
        history entry), without a writable layer: what a metadata-only build step commits."""
        ...

    async def find_child(self, parent_id: str | None, cache_key: str) -> Image | None:
        """The image built from C{parent_id} with C{cache_key} (the build cache), if any."""
        ...

    async def tag(self, source: str, repo: str, tag: str | None) -> str:
        """Point C{repo:tag} at the image C{source} names; return the familiar name.

        @raise NotFound: no such image.
        @raise InvalidParameter: a malformed reference.
        """
        ...


class RegistryImages(Protocol):
    """What pull and push need from the image store."""

    async def has_layer(self, chain_id: str) -> bool:
        """Whether the layer with this chain id is already extracted."""
        ...

    async def has_image(self, image_id: str) -> bool:
        """Whether the image with this id (the config digest) is already stored."""
        ...

    async def store_pulled_image(
        self,
        config: bytes,
        layer_files: Sequence[str],
        refs_: Sequence[Reference],
        layer_done: Callable[[int], None],
    ) -> bool:
        """Add an image from its config and verified layer blobs, atomically, and point
        C{refs_} at it.

        C{layer_files[i]} is the downloaded blob of layer i (bottom first), or "" for a layer
        whose chain the store already has. C{layer_done(i)} is called as each layer is in place.

        @return: whether a reference is new or moved (dockerd's "Downloaded newer image" versus
            "Image is up to date").
        @raise PydError: a blob is not a valid layer or does not match its diff id; the store is
            left as it was.
        """
        ...

    async def tags_in_repository(self, name: str) -> list[str]:
        """The tags the store has for a repository (C{name} fully normalised)."""
        ...

    async def image_for_push(self, ref: Reference) -> PushImage:
        """The image a reference names, with its config bytes and layer tars.

        @raise NotFound: no such reference.
        """
        ...

    async def add_reference(self, image_id: str, ref: Reference, pushed: Reference) -> None:
        """After pushing C{pushed} (C{name:tag}): point C{ref} (C{name@digest}) at C{image_id}."""
        ...


class ContainerImages(ImageLookup, RwLayers, Protocol):
    """What the container service needs from the image store."""

    async def image_sizes(self) -> Mapping[str, int]:
        """The size of every local image by id, in one read (C{system df}, C{ps -s}: one
        lookup per container would be a database round trip each)."""
        ...

    async def rw_layers_mounted(self, container_ids: Collection[str]) -> set[str]:
        """Which of these containers have their root filesystem mounted, in one look (the
        daemon's start asks it of every stopped container)."""
        ...


class BuildImages(ImageLookup, RwLayers, ImageWrites, Protocol):
    """What the builder needs from the image store."""


class ImageStore(ContainerImages, BuildImages, CommitImages, RegistryImages, Protocol):
    """The image store seam, whole: every slice above (L{pyd.engine.images.ImageService})."""


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
        network: NetworkRequest,
        exposed_ports: Sequence[str],
    ) -> NetworkSetup:
        """Before start: namespace, interfaces, addresses, published ports, DNS. The
        interfaces may still be being plugged when it returns (L{plugged})."""
        ...

    async def plugged(self, container_id: str) -> None:
        """Wait until the interfaces L{setup} began plugging are plugged and up (raises what
        plugging failed with); the container's process must not start before. A tear-down
        waits for them too."""
        ...

    async def teardown(self, container_id: str) -> None:
        """After the container stopped: release ports, interfaces and the namespace."""
        ...

    async def allow_links(
        self, container_id: str, children: Sequence[tuple[str, Sequence[str]]]
    ) -> None:
        """Legacy links of a started container on the default bridge: with C{icc} off, open
        the exposed ports of each child (its address, its C{ExposedPorts} keys) to it, as
        dockerd's link rules do; they go with the container's endpoint."""
        ...

    async def release(self, container_id: str) -> None:
        """On removal: drop the container's endpoints (addresses go back to the pool)."""
        ...

    async def release_stale(self, running: Collection[str]) -> None:
        """At daemon start, once containers are restored: tear down what containers that do not
        run still hold (a start the daemon died in: namespace, interfaces, addresses)."""
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

    async def release(
        self,
        container_id: str,
        remove_anonymous: bool,
        mounts: Sequence[MountSpec] | None = None,
    ) -> None:
        """On removal: forget the container's uses; delete its anonymous volumes if asked
        (C{docker rm -v} and AutoRemove containers). C{mounts}: the container's saved mounts
        when they are final (not a create cut short); without a volume among them there are no
        uses to read and forget."""
        ...
