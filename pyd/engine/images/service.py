"""The image service: local image store rules (layer: engine).

Implements L{pyd.engine.contracts.ImageProvider} for containers and builds (resolve, writable
layers, diff, commit) and the local image operations of the API: list, inspect, tag, delete with
dockerd's conflict rules, history, prune, load, save, import. Layers are shared by chain id and
deleted only when no image, writable layer or child layer uses them. Pull/push live with the
registry code, which stores what it fetches through L{ImageService.store_image}.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import IO, Any

import attrs
from twisted.internet.defer import DeferredLock
from twisted.logger import Logger

from pyd.core import reference as refs
from pyd.core.errors import (
    Conflict,
    InvalidParameter,
    NotFound,
    PydError,
    SystemError_,
    Unsupported,
    no_such_image,
)
from pyd.core.ids import new_id, short_id
from pyd.core.records import Change, Image, Layer
from pyd.core.seams import Blocking, EventSink
from pyd.drivers.storage.archive import (
    ArchiveError,
    StagedArchive,
    sha256_source,
    stage_archive,
    write_archive,
)
from pyd.drivers.storage.fetch import FetchFailed
from pyd.drivers.storage.layers import ExtractFailed, LayerSource, LayerStore
from pyd.engine.distribution import PushImage, PushLayer
from pyd.engine.imagechanges import apply_changes
from pyd.state.images import ImageRepository, StoredImage

log = Logger()

# (container id, running) for every container whose image is the given image id
ContainersUsing = Callable[[str], Awaitable[Sequence[tuple[str, bool]]]]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
EMPTY_LAYER_DIFF = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"

_HEX_PREFIX = re.compile(r"^(sha256:)?[a-f0-9]{1,64}$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")


async def _no_containers(_image_id: str) -> Sequence[tuple[str, bool]]:
    return []


@attrs.frozen
class CommitSource:
    """What C{docker commit} needs of a container (given by the container service)."""

    container_id: str
    config: dict[str, Any]
    running: bool
    name: str = ""


# name -> the container to commit (anything with container_id/config/running attributes);
# raises NotFound ("No such container: x")
CommitSources = Callable[[str], Awaitable[Any]]


@attrs.frozen
class HistoryItem:
    """One C{docker history} row."""

    id: str  # image id or "<missing>"
    created: int
    created_by: str
    tags: tuple[str, ...]
    size: int
    comment: str


@attrs.frozen
class DeleteItem:
    """One entry of C{DELETE /images/{name}}: C{kind} is "Untagged" or "Deleted"."""

    kind: str
    value: str


@attrs.frozen
class PruneReport:
    """What C{/images/prune} removed."""

    deleted: tuple[DeleteItem, ...]
    space_reclaimed: int


def chain_id(parent: str | None, diff_id: str) -> str:
    """The chain id of a layer: its diff id at the bottom, else sha256("<parent> <diff_id>")."""
    if parent is None:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


def parse_created(value: Any) -> int:
    """RFC 3339 (with optional fractional seconds) to unix seconds; 0 when absent or odd."""
    if not isinstance(value, str) or not value:
        return 0
    from datetime import datetime

    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", value)
    if not m:
        return 0
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        return int(datetime.fromisoformat(m.group(1) + tz).timestamp())
    except ValueError:
        return 0


def rfc3339(seconds: float) -> str:
    """Unix seconds as RFC 3339 with nanoseconds, like Go's time.RFC3339Nano in UTC."""
    whole = int(seconds)
    frac = round((seconds - whole) * 1e9)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    if frac:
        return base + ("." + f"{frac:09d}".rstrip("0")) + "Z"
    return base + "Z"


def _canonical_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class ImageService:
    """Local image operations and the image provider of containers and builds."""

    def __init__(
        self,
        repo: ImageRepository,
        store: LayerStore,
        io: Blocking,
        events: EventSink | None,
        clock: Any,
        containers_using: ContainersUsing | None = None,
        *,
        fetcher: Callable[[str, str], Awaitable[None]] | None = None,
        commit_sources: CommitSources | None = None,
        pause_container: Callable[[str], Awaitable[None]] | None = None,
        unpause_container: Callable[[str], Awaitable[None]] | None = None,
        docker_version: str = "",
    ) -> None:
        self._repo = repo
        self._store = store
        self._io = io
        self._events = events
        self._clock = clock
        self.containers_using: ContainersUsing = containers_using or _no_containers
        # downloads a URL to a file (docker import <url>)
        self.fetcher = fetcher
        # the container service's view of a container to commit; without it commit takes a raw id
        self.commit_sources = commit_sources
        # docker commit pauses a running container (raise Conflict when it is not running or
        # already paused)
        self.pause_container = pause_container
        self.unpause_container = unpause_container
        # the engine version recorded as docker_version in committed/imported images
        self.docker_version = docker_version
        self._lock = DeferredLock()  # serialises store mutations (load/delete/commit/tag)

    # --- start-up ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the layout; drop unused layer rows, staging leftovers and orphan directories."""
        await self._io.run(self._store.ensure_dirs)
        orphans = await self._repo.release_orphans()
        known = await self._repo.all_cache_ids()
        known_rw = {r.container_id for r in await self._repo.all_rw()}
        removed = await self._io.run(self._store.sweep, known, known_rw)
        for layer in orphans:
            await self._io.run(self._store.remove_layer, layer.cache_id)
        if removed or orphans:
            log.info(
                "image store: swept {n} leftovers, {m} unused layers",
                n=len(removed),
                m=len(orphans),
            )

    # --- helpers -----------------------------------------------------------------------------

    def _now_nano(self) -> int:
        return int(self._clock.seconds() * 1e9)

    def _emit(
        self, action: str, image_id: str, name: str, labels: dict[str, str] | None = None
    ) -> None:
        if self._events is None:
            return
        attributes = {"name": name}
        if labels:
            attributes.update({k: str(v) for k, v in labels.items()})
        self._events.emit("image", action, image_id, attributes)

    def to_image(self, s: StoredImage) -> Image:
        """The engine record for a stored image (familiar references)."""
        cfg = s.config
        return Image(
            id=s.id,
            config=cfg,
            repo_tags=tuple(refs.familiar(t) for t in s.tags),
            repo_digests=tuple(refs.familiar(d) for d in s.digests),
            size=s.size,
            created=s.created,
            parent_id=s.parent_id,
            diff_ids=tuple((cfg.get("rootfs") or {}).get("diff_ids") or ()),
            last_tag_time=s.last_tag_time,
            comment=str(cfg.get("comment") or ""),
        )

    async def _lookup(self, ref: str) -> StoredImage:
        """dockerd's GetImage: a name (tag/digest), a full id, or a unique id prefix."""
        image_id = await self._lookup_id(ref)
        s = await self._repo.get_image(image_id)
        if s is None:
            raise _no_such(ref)
        return s

    async def _lookup_id(self, ref: str) -> str:
        if not ref:
            raise _no_such(ref)
        if refs.is_digest(ref):
            if await self._repo.get_image(ref):
                return ref
            raise _no_such(ref)
        parsed: refs.Reference | None = None
        try:
            parsed = refs.parse_normalized(ref)
        except InvalidParameter:
            parsed = None
        if parsed is not None:
            if parsed.digest is not None:
                hit = await self._repo.find_repo_digest(parsed.name, parsed.digest)
                if hit:
                    return hit
            else:
                hit = await self._repo.find_ref(str(parsed.with_default_tag()))
                if hit:
                    return hit
        if _HEX_PREFIX.match(ref):
            prefix = ref[7:] if ref.startswith("sha256:") else ref
            ids = await self._repo.find_prefix(prefix)
            if len(ids) == 1:
                return ids[0]
            if len(ids) > 1:
                raise NotFound(f"No such image: {ref}")
            raise _no_such(ref)  # a 64-hex id is an id (ParseAnyReference), not a bad name
        if parsed is None:
            refs.parse_normalized(ref)  # re-raise the format error
        raise _no_such(ref)

    async def _chain_dirs(self, top: str | None) -> list[str]:
        """Cache ids of a chain, top-most first (overlay lowerdir order)."""
        layers = await self._repo.chain(top)
        return [layer.cache_id for layer in reversed(layers)]

    # --- ImageProvider -----------------------------------------------------------------------

    async def resolve(self, ref: str) -> Image:
        """The image named by a reference, id or id prefix."""
        return self.to_image(await self._lookup(ref))

    async def get(self, image_id: str) -> Image | None:
        """The image with exactly this id, or None."""
        s = await self._repo.get_image(image_id)
        return self.to_image(s) if s else None

    async def create_rw_layer(self, container_id: str, image_id: str | None) -> None:
        """Record and create the container's writable layer over the image's layers."""
        top: str | None = None
        if image_id is not None:
            s = await self._repo.get_image(image_id)
            if s is None:
                raise no_such_image(image_id)
            top = s.top_layer
        await self._repo.add_rw(container_id, image_id, top, int(self._clock.seconds()))
        await self._io.run(self._store.create_rw, container_id)

    async def _rw_lowers(self, container_id: str) -> list[str]:
        rw = await self._repo.get_rw(container_id)
        if rw is None:
            raise NotFound(f"no writable layer for container {container_id}")
        return await self._chain_dirs(rw.top_layer)

    async def mount_rw_layer(self, container_id: str) -> str:
        """Mount the container's root filesystem; return the merged directory."""
        lowers = await self._rw_lowers(container_id)
        await self._io.run(self._store.create_rw, container_id)
        if self._store.use_fsconfig:
            return await self._io.run(self._store.mount_rw, container_id, lowers)
        return await self._store.mount_rw_legacy(self._io, container_id, lowers)

    async def unmount_rw_layer(self, container_id: str) -> None:
        """Unmount the container's root filesystem (idempotent)."""
        await self._io.run(self._store.unmount_rw, container_id)

    async def remove_rw_layer(self, container_id: str) -> None:
        """Unmount and delete the writable layer; release layers nobody uses any more."""
        await self._io.run(self._store.remove_rw, container_id)
        released = await self._repo.delete_rw(container_id)
        for layer in released:
            await self._io.run(self._store.remove_layer, layer.cache_id)

    async def rw_layer_size(self, container_id: str) -> int:
        """Bytes the container wrote (C{SizeRw})."""
        return await self._io.run(self._store.rw_size, container_id)

    async def rw_layer_paths(self, container_id: str) -> dict[str, str]:
        """The overlay directories of a container (C{GraphDriver.Data} of container inspect)."""
        lowers = await self._rw_lowers(container_id)
        base = self._store.rw_dir(container_id)
        data = {
            "MergedDir": os.path.join(base, "merged"),
            "UpperDir": os.path.join(base, "diff"),
            "WorkDir": os.path.join(base, "work"),
        }
        if lowers:
            data["LowerDir"] = ":".join(self._store.diff_dir(c) for c in lowers)
        return data

    async def changes(self, container_id: str) -> list[Change]:
        """C{docker diff}: what the writable layer changed."""
        lowers = await self._rw_lowers(container_id)
        pairs = await self._io.run(self._store.rw_changes, container_id, lowers)
        return [Change(path, kind) for path, kind in pairs]

    async def commit(
        self,
        container_id: str,
        image_config: dict[str, Any],
        repo_tag: str | None = None,
        parent_id: str | None = None,
        cache_key: str | None = None,
    ) -> Image:
        """Turn the writable layer into a new layer on top of the container's image.

        C{image_config} is the new image's C{config} section plus optional top-level keys
        C{author}, C{comment}, C{created_by} (history) given under C{"_commit"}.
        """
        rw = await self._repo.get_rw(container_id)
        if rw is None:
            raise NotFound(f"No such container: {container_id}")
        meta = dict(image_config.pop("_commit", {}) or {})
        base_cfg: dict[str, Any] = {}
        base_layers: list[Layer] = await self._repo.chain(rw.top_layer)
        base_image: StoredImage | None = None
        if rw.image_id:
            base_image = await self._repo.get_image(rw.image_id)
            if base_image is not None:
                base_cfg = base_image.config
        lowers = [layer.cache_id for layer in reversed(base_layers)]
        tar_path, entries = await self._io.run(self._store.export_rw, container_id, lowers)
        empty_layer_ok = bool(meta.get("empty_layer_ok", False))
        try:
            return await self._create_image_from_layer(
                None if (entries == 0 and empty_layer_ok) else tar_path,
                parent_top=rw.top_layer,
                base_cfg=base_cfg,
                config=image_config,
                created_by=str(meta.get("created_by", "")),
                comment=str(meta.get("comment", "")),
                author=str(meta.get("author", "")),
                container=meta.get("container"),
                parent_id=parent_id if parent_id is not None else (rw.image_id or None),
                cache_key=cache_key,
                repo_tag=repo_tag,
                event="commit",
                extra_top=meta.get("top"),
            )
        finally:
            await self._io.run(self._store.discard, tar_path)

    async def commit_config(
        self,
        parent_id: str | None,
        image_config: dict[str, Any],
        created_by: str,
        author: str = "",
        cache_key: str | None = None,
        extra_top: dict[str, Any] | None = None,
    ) -> Image:
        """A new image with C{parent_id}'s layers (None: none) and a new C{config} section: an
        C{empty_layer} history entry and no writable layer to diff (the classic builder's
        metadata-only steps)."""
        parent_top: str | None = None
        base_cfg: dict[str, Any] = {}
        if parent_id:
            parent = await self._repo.get_image(parent_id)
            if parent is None:
                raise no_such_image(parent_id)
            parent_top, base_cfg = parent.top_layer, parent.config
        return await self._create_image_from_layer(
            None,
            parent_top=parent_top,
            base_cfg=base_cfg,
            config=image_config,
            created_by=created_by,
            comment="",
            author=author,
            parent_id=parent_id,
            cache_key=cache_key,
            repo_tag=None,
            event="commit",
            extra_top=extra_top,
        )

    async def commit_container(
        self,
        ref: str,
        repo_tag: str | None,
        override: dict[str, Any],
        changes: Sequence[str] = (),
        author: str = "",
        comment: str = "",
        pause: bool = True,
    ) -> Image:
        """C{docker commit}: the container's config (overridden by C{override}, then
        C{changes}) on top of its image's, and its writable layer as a new layer. Like
        dockerd, a running container is paused meanwhile unless C{pause} is false; the image
        records the container (id, config), its command as history, and the engine version.

        @raise NotFound: C{No such container: <ref>}.
        """
        source = await self._commit_source(ref)
        base: dict[str, Any] = {}
        rw_image = await self.rw_image(source.container_id)
        if rw_image is not None:
            base = dict(rw_image.container_config)
        container_config = dict(source.config or {})
        config = merge_commit_config(base, container_config, override)
        config = apply_changes(config, changes)
        cmd = container_config.get("Cmd") or []
        config["_commit"] = {
            "comment": comment,
            "author": author,
            "created_by": " ".join(cmd) if isinstance(cmd, list) else str(cmd),
            "container": {"id": source.container_id, "config": container_config},
        }
        paused = False
        if pause and source.running and self.pause_container is not None:
            try:
                await self.pause_container(source.container_id)
                paused = True
            except PydError:
                paused = False  # already paused, or stopped meanwhile: commit as it is
        try:
            img = await self.commit(source.container_id, config, repo_tag)
            if self._events is not None:
                # dockerd's container "commit" event (after the image's create/tag)
                attrs_ = {k: str(v) for k, v in (container_config.get("Labels") or {}).items()}
                attrs_.update(
                    {
                        "comment": comment,
                        "image": str(container_config.get("Image") or ""),
                        "imageID": img.id,
                        "imageRef": refs.familiar(str(refs.parse_with_tag(repo_tag)))
                        if repo_tag
                        else "",
                        "name": source.name,
                    }
                )
                self._events.emit("container", "commit", source.container_id, attrs_)
            return img
        finally:
            if paused and self.unpause_container is not None:
                try:
                    await self.unpause_container(source.container_id)
                except PydError:
                    pass  # unpaused or gone meanwhile

    async def _commit_source(self, ref: str) -> CommitSource:
        if self.commit_sources is not None:
            src = await self.commit_sources(ref)
            return CommitSource(
                src.container_id,
                dict(src.config or {}),
                bool(src.running),
                str(getattr(src, "name", "") or "").lstrip("/"),
            )
        cid = await self.rw_container(ref)
        if cid is None:
            raise NotFound(f"No such container: {ref}")
        return CommitSource(cid, {}, False)

    async def _create_image_from_layer(
        self,
        tar_path: str | None,
        *,
        parent_top: str | None,
        base_cfg: dict[str, Any],
        config: dict[str, Any],
        created_by: str,
        comment: str,
        author: str,
        parent_id: str | None,
        cache_key: str | None,
        repo_tag: str | None,
        event: str,
        os_arch: tuple[str, str] | None = None,
        extra_top: dict[str, Any] | None = None,
        container: dict[str, Any] | None = None,
    ) -> Image:
        """Extract C{tar_path} as a new top layer (None: no layer) and store the image
        (C{extra_top}: more top-level config keys, e.g. the classic builder's C{container_config})."""
        now = self._clock.seconds()
        async with self._lock:
            top = parent_top
            new_layer: Layer | None = None
            if tar_path is not None:
                new_layer, _ = await self._add_layer_file(tar_path, parent_top)
                top = new_layer.chain_id
            try:
                diff_ids = list((base_cfg.get("rootfs") or {}).get("diff_ids") or [])
                history = list(base_cfg.get("history") or [])
                layer_added = new_layer is not None
                if new_layer is not None:
                    diff_ids.append(new_layer.diff_id)
                entry: dict[str, Any] = {"created": rfc3339(now)}
                if author:
                    entry["author"] = author
                if created_by:
                    entry["created_by"] = created_by
                if comment:
                    entry["comment"] = comment
                if not layer_added:
                    entry["empty_layer"] = True
                history.append(entry)
                cfg: dict[str, Any] = {
                    "architecture": (os_arch or (None, None))[1]
                    or base_cfg.get("architecture", "amd64"),
                    "config": config,
                    "created": rfc3339(now),
                    "history": history,
                    "os": (os_arch or (None, None))[0] or base_cfg.get("os", "linux"),
                    "rootfs": {"type": "layers", "diff_ids": diff_ids},
                }
                if author:
                    cfg["author"] = author
                if comment:
                    cfg["comment"] = comment
                if container is not None:
                    # V1Image's container / container_config (docker commit)
                    cfg["container"] = container["id"]
                    cfg["container_config"] = container["config"]
                if self.docker_version and event in ("commit", "import"):
                    cfg["docker_version"] = self.docker_version
                for key in ("variant", "os.version"):
                    if key in base_cfg:
                        cfg[key] = base_cfg[key]
                if extra_top:
                    cfg.update(extra_top)
                config_bytes = _canonical_json(cfg)
                image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
                size = sum(layer.size for layer in await self._repo.chain(top))
                await self._repo.add_image(
                    image_id,
                    config_bytes,
                    top,
                    size,
                    int(now),
                    parent_id=parent_id,
                    cache_key=cache_key,
                )
            finally:
                if new_layer is not None:
                    for layer in await self._repo.release_layer(new_layer.chain_id):
                        await self._io.run(self._store.remove_layer, layer.cache_id)
            if repo_tag:
                parsed = refs.parse_with_tag(repo_tag)
                await self._repo.set_ref(str(parsed), "tag", image_id, self._now_nano())
        labels = (config or {}).get("Labels") or {}
        familiar = refs.familiar(str(refs.parse_with_tag(repo_tag))) if repo_tag else ""
        if event == "commit":
            # dockerd 28's CommitImage: the new image is created, then tagged
            self._emit("create", image_id, image_id, labels)
            if familiar:
                self._emit("tag", image_id, familiar, labels)
        else:
            # ImportImage: tagged, then the import event under the id
            if familiar:
                self._emit("tag", image_id, familiar, labels)
            self._emit(event, image_id, image_id, labels)
        img = await self.get(image_id)
        assert img is not None
        return img

    async def _add_layer_file(
        self, tar_path: LayerSource, parent: str | None, expected_diff_id: str | None = None
    ) -> tuple[Layer, bool]:
        """Extract a layer file on top of C{parent} unless its chain exists; record it.

        @return: the layer and whether its tar was empty of entries.
        @raise InvalidParameter: the layer does not match C{expected_diff_id} or is unreadable.
        """
        if expected_diff_id is not None:
            existing = await self._repo.get_layer(chain_id(parent, expected_diff_id))
            if existing is not None:
                return existing, False
        try:
            ex = await self._store.extract(tar_path)
        except ExtractFailed as e:
            raise InvalidParameter(f"failed to extract layer: {e}") from e
        if expected_diff_id is not None and ex.diff_id != expected_diff_id:
            await self._io.run(self._store.discard, ex.staging)
            raise InvalidParameter(
                f"layer digest mismatch: expected {expected_diff_id}, got {ex.diff_id}"
            )
        cid = chain_id(parent, ex.diff_id)
        existing = await self._repo.get_layer(cid)
        if existing is not None:
            await self._io.run(self._store.discard, ex.staging)
            return existing, ex.diff_id == EMPTY_LAYER_DIFF
        cache_id = new_id()
        await self._io.run(self._store.commit_layer, ex.staging, cache_id)
        layer = Layer(
            chain_id=cid,
            diff_id=ex.diff_id,
            parent=parent,
            cache_id=cache_id,
            size=ex.size,
            compressed_digest=ex.digest if ex.digest != ex.diff_id else None,
            created=int(self._clock.seconds()),
        )
        stored = await self._repo.add_layer(layer)
        if stored.cache_id != cache_id:
            await self._io.run(self._store.remove_layer, cache_id)
        return stored, ex.diff_id == EMPTY_LAYER_DIFF

    async def store_image(
        self,
        config_bytes: bytes,
        layer_files: Sequence[LayerSource],
        tags: Iterable[str] = (),
        digests: Iterable[str] = (),
        progress: Callable[[int, Layer], None] | None = None,
    ) -> tuple[str, bool]:
        """Store an image from its config and its layer files (bottom first; plain or
        compressed; verified against the config's diff ids). For load and pull.

        C{tags}/C{digests} are references to point at it (any form; normalised here).
        @return: (image id, whether the image was new).
        @raise InvalidParameter: malformed config, or a layer that does not match it; the
            store is left as it was.
        """
        image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        try:
            cfg = json.loads(config_bytes)
            diff_ids = list(cfg["rootfs"]["diff_ids"])
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidParameter(f"invalid image config {image_id}: {e}") from e
        if not isinstance(cfg, dict) or len(diff_ids) != len(layer_files):
            raise InvalidParameter(
                f"invalid manifest, layers length mismatch: expected {len(diff_ids)}, "
                f"got {len(layer_files)}"
            )
        async with self._lock:
            parent: str | None = None
            added: list[Layer] = []
            new = False
            try:
                for i, (diff_id, path) in enumerate(zip(diff_ids, layer_files, strict=True)):
                    layer, _ = await self._add_layer_file(path, parent, diff_id)
                    added.append(layer)
                    parent = layer.chain_id
                    if progress is not None:
                        progress(i, layer)
                size = sum(layer.size for layer in added)
                new = await self._repo.add_image(
                    image_id,
                    config_bytes,
                    parent,
                    size,
                    parse_created(cfg.get("created")),
                )
            finally:
                if added:
                    # releases only what no image uses (i.e. everything on failure)
                    for layer in await self._repo.release_layer(added[-1].chain_id):
                        await self._io.run(self._store.remove_layer, layer.cache_id)
            now = self._now_nano()
            for t in tags:
                parsed = refs.parse_with_tag(t) if not isinstance(t, refs.Reference) else t
                await self._repo.set_ref(str(parsed), "tag", image_id, now, touch=False)
            for d in digests:
                parsed = refs.parse_normalized(d)
                await self._repo.set_ref(str(parsed), "digest", image_id, now)
        return image_id, new

    # --- list / inspect / history -------------------------------------------------------------

    async def list_images(
        self,
        all_: bool = False,
        filters: dict[str, list[str]] | None = None,
        with_digests: bool = True,
    ) -> list[Image]:
        """C{GET /images/json}: newest first; intermediate images only with C{all_}."""
        filters = filters or {}
        stored = await self._repo.list_images()
        by_id = {s.id: s for s in stored}
        parents = {s.parent_id for s in stored if s.parent_id}
        before = await self._time_filter(filters.get("before"), by_id)
        since = await self._time_filter(filters.get("since"), by_id)
        until = (
            _parse_until(filters["until"][-1], self._clock.seconds())
            if filters.get("until")
            else None
        )
        dangling = filters.get("dangling")
        want_dangling: bool | None = None
        if dangling:
            v = dangling[-1].lower()
            if v in ("true", "1"):
                want_dangling = True
            elif v in ("false", "0"):
                want_dangling = False
            else:
                raise InvalidParameter(f"Invalid filter 'dangling={dangling[-1]}'")
        out: list[Image] = []
        for s in stored:
            is_dangling = not s.refs
            if want_dangling is True and not is_dangling:
                continue
            if want_dangling is False and is_dangling:
                continue
            if not all_ and want_dangling is None and is_dangling and s.id in parents:
                continue  # intermediate (build) image
            if before is not None and s.created >= before:
                continue
            if since is not None and s.created <= since:
                continue
            if until is not None and s.created >= until:
                continue
            img = self.to_image(s)
            if "label" in filters and not _labels_match(
                (img.container_config.get("Labels") or {}), filters["label"]
            ):
                continue
            if "reference" in filters:
                matched = _reference_matches(s, filters["reference"])
                if matched is None:
                    continue
                img = attrs.evolve(
                    img,
                    repo_tags=tuple(refs.familiar(t) for t in matched if "@" not in t),
                    repo_digests=tuple(refs.familiar(t) for t in matched if "@" in t)
                    or img.repo_digests,
                )
            out.append(img)
        out.sort(key=lambda i: (i.created, i.id), reverse=True)
        return out

    async def _time_filter(
        self, values: list[str] | None, by_id: dict[str, StoredImage]
    ) -> int | None:
        if not values:
            return None
        image_id = await self._lookup_id(values[-1])
        s = by_id.get(image_id)
        if s is None:
            raise _no_such(values[-1])
        return s.created

    async def inspect(self, ref: str) -> Image:
        """C{GET /images/{name}/json}."""
        return await self.resolve(ref)

    async def image_layer_dirs(self, image_id: str) -> list[str]:
        """The layer directories of an image, top-most first (C{GraphDriver.Data})."""
        s = await self._repo.get_image(image_id)
        if s is None:
            return []
        return [self._store.diff_dir(c) for c in await self._chain_dirs(s.top_layer)]

    async def history(self, ref: str) -> list[HistoryItem]:
        """C{docker history}: newest first; the image's own id on the top row."""
        s = await self._lookup(ref)
        cfg = s.config
        layers = await self._repo.chain(s.top_layer)
        hist = list(cfg.get("history") or [])
        if not hist:
            hist = [{"created": cfg.get("created", ""), "created_by": ""} for _ in layers]
        rows: list[HistoryItem] = []
        li = 0
        for h in hist:
            size = 0
            if not h.get("empty_layer"):
                if li < len(layers):
                    size = layers[li].size
                li += 1
            rows.append(
                HistoryItem(
                    id="<missing>",
                    created=parse_created(h.get("created")),
                    created_by=str(h.get("created_by", "")),
                    tags=(),
                    size=size,
                    comment=str(h.get("comment", "")),
                )
            )
        rows.reverse()
        if rows:
            img = self.to_image(s)
            rows[0] = attrs.evolve(rows[0], id=s.id, tags=img.repo_tags)
        # ancestors known locally (parent chain) get their ids, like dockerd
        parent = s.parent_id
        idx = 1
        while parent and idx < len(rows):
            p = await self._repo.get_image(parent)
            if p is None:
                break
            phist = len(p.config.get("history") or [])
            pos = len(rows) - phist
            if 0 <= pos < len(rows):
                pimg = self.to_image(p)
                rows[pos] = attrs.evolve(rows[pos], id=p.id, tags=pimg.repo_tags)
            parent = p.parent_id
            idx += 1
        return rows

    # --- tag / delete / prune -----------------------------------------------------------------

    async def tag(self, source: str, repo: str, tag: str | None) -> str:
        """Point C{repo:tag} at the image C{source}; return the familiar new reference."""
        target = refs.parse_repository(repo, tag)
        if target.digest is not None:
            raise InvalidParameter("refusing to create a tag with a digest reference")
        if target.path.startswith("library/") is False and target.domain == refs.DEFAULT_DOMAIN:
            pass
        s = await self._lookup(source)
        async with self._lock:
            await self._repo.set_ref(str(target), "tag", s.id, self._now_nano())
        self._emit("tag", s.id, target.familiar(), s.config.get("config", {}).get("Labels"))
        return target.familiar()

    async def _users(self, image_id: str) -> list[tuple[str, bool]]:
        """Containers using an image: the container service's view plus writable layers."""
        users = {cid: running for cid, running in await self.containers_using(image_id)}
        for cid in await self._repo.rw_users(image_id):
            users.setdefault(cid, False)
        return sorted(users.items(), key=lambda x: (not x[1], x[0]))

    async def delete(self, ref: str, force: bool = False, prune: bool = True) -> list[DeleteItem]:
        """C{docker rmi}: untag, or delete the image, with dockerd's conflict rules."""
        async with self._lock:
            return await self._delete(ref, force, prune)

    async def _delete(self, ref: str, force: bool, prune: bool) -> list[DeleteItem]:
        s = await self._lookup(ref)
        image_id = s.id
        records: list[DeleteItem] = []
        repo_refs = [refs.parse_normalized(r) for r, _ in s.refs]
        users = await self._users(image_id)
        by_id = _is_id_prefix(image_id, ref)
        removed_repo_ref = False
        if not by_id:
            if not force and _is_single_reference(repo_refs) and users:
                raise Conflict(
                    f'conflict: unable to remove repository reference "{ref}" (must force) - '
                    f"container {short_id(users[0][0])} is using its referenced image "
                    f"{short_id(image_id)}"
                )
            parsed = refs.parse_normalized(ref)
            if parsed.digest is None:
                parsed = parsed.with_default_tag()
            if not await self._repo.remove_ref(str(parsed)):
                # the name resolved by another form (e.g. repo@digest matched by config id)
                raise _no_such(ref)
            records.append(DeleteItem("Untagged", parsed.familiar()))
            self._emit("untag", image_id, image_id)
            if parsed.digest is None and not any(
                r.digest is None and r.name == parsed.name and str(r) != str(parsed)
                for r in repo_refs
            ):
                for r in repo_refs:
                    if r.digest is not None and r.name == parsed.name:
                        await self._repo.remove_ref(str(r))
                        records.append(DeleteItem("Untagged", r.familiar()))
            remaining = await self._repo.get_image(image_id)
            if remaining is not None and remaining.refs:
                return records
            removed_repo_ref = True
        elif _is_single_reference(repo_refs):
            conflict = await self._conflict(
                image_id, hard=True, soft=not force, active=False, users=users
            )
            if conflict:
                raise conflict
            for r in repo_refs:
                await self._repo.remove_ref(str(r))
                records.append(DeleteItem("Untagged", r.familiar()))
                self._emit("untag", image_id, image_id)
        await self._delete_helper(
            image_id, records, force, prune, quiet=removed_repo_ref, users=users
        )
        return records

    async def _conflict(
        self,
        image_id: str,
        hard: bool,
        soft: bool,
        active: bool = True,
        users: list[tuple[str, bool]] | None = None,
    ) -> Conflict | None:
        if users is None:
            users = await self._users(image_id)
        if hard:
            if await self._repo.children(image_id):
                return _delete_conflict(image_id, True, "image has dependent child images")
            running = [c for c, r in users if r]
            if running:
                return _delete_conflict(
                    image_id,
                    True,
                    f"image is being used by running container {short_id(running[0])}",
                    used=True,
                )
        if soft:
            s = await self._repo.get_image(image_id)
            if active and s is not None and s.refs:
                return _delete_conflict(
                    image_id, False, "image is referenced in multiple repositories"
                )
            stopped = [c for c, r in users if not r]
            if stopped:
                return _delete_conflict(
                    image_id,
                    False,
                    f"image is being used by stopped container {short_id(stopped[0])}",
                    used=True,
                )
        return None

    async def _delete_helper(
        self,
        image_id: str,
        records: list[DeleteItem],
        force: bool,
        prune: bool,
        quiet: bool,
        users: list[tuple[str, bool]] | None = None,
    ) -> None:
        conflict = await self._conflict(image_id, hard=True, soft=not force, users=users)
        if conflict is not None:
            s = await self._repo.get_image(image_id)
            dangling = s is not None and not s.refs
            if quiet and (not dangling or getattr(conflict, "used", False)):
                return
            raise conflict
        s = await self._repo.get_image(image_id)
        if s is None:
            return
        for r, _kind in s.refs:
            await self._repo.remove_ref(r)
            records.append(DeleteItem("Untagged", refs.familiar(r)))
        released = await self._repo.delete_image(image_id)
        records.append(DeleteItem("Deleted", image_id))
        for layer in released:
            await self._io.run(self._store.remove_layer, layer.cache_id)
            records.append(DeleteItem("Deleted", layer.chain_id))
        self._emit("delete", image_id, image_id)
        if prune and s.parent_id:
            await self._delete_helper(s.parent_id, records, False, True, True)

    async def prune(self, filters: dict[str, list[str]]) -> PruneReport:
        """C{docker image prune}: dangling images (or every unused one with dangling=false)."""
        dangling_only = True
        d = filters.get("dangling")
        if d:
            v = d[-1].lower()
            if v in ("false", "0"):
                dangling_only = False
            elif v not in ("true", "1"):
                raise InvalidParameter(f"Invalid filter 'dangling={d[-1]}'")
        until: int | None = None
        if filters.get("until"):
            until = _parse_until(filters["until"][-1], self._clock.seconds())
        records: list[DeleteItem] = []
        reclaimed = 0
        before_size = await self._repo.layers_total_size()
        async with self._lock:
            stored = await self._repo.list_images()
            parents = {s.parent_id for s in stored if s.parent_id}
            for s in sorted(stored, key=lambda x: x.created, reverse=True):
                if dangling_only and s.refs:
                    continue
                if until is not None and s.created >= until:
                    continue
                labels = (s.config.get("config") or {}).get("Labels") or {}
                if "label" in filters and not _labels_match(labels, filters["label"]):
                    continue
                if "label!" in filters and _labels_match(labels, filters["label!"], any_=True):
                    continue
                if s.id in parents and dangling_only:
                    continue  # intermediate images go with their children
                if await self._users(s.id):
                    continue
                if await self._repo.get_image(s.id) is None:
                    continue
                if await self._repo.children(s.id):
                    continue
                try:
                    await self._delete_helper(s.id, records, force=True, prune=True, quiet=True)
                except Conflict:
                    continue
        reclaimed = max(0, before_size - await self._repo.layers_total_size())
        return PruneReport(tuple(records), reclaimed)

    # --- load / save / import -----------------------------------------------------------------

    async def load(self, src: IO[bytes], progress: Callable[[str], None]) -> list[str]:
        """C{docker load}: a docker-archive or OCI-layout tar (maybe compressed) from C{src}.

        Calls C{progress} with each "Loaded image: ..." line; returns the loaded references/ids.
        @raise InvalidParameter: the archive is malformed or a blob does not match its digest;
            images already loaded from the same archive stay, nothing half-made is visible.
        """
        staging = await self._io.run(self._store.staging_dir)
        try:
            try:
                archive = await self._io.run(stage_archive, src, staging)
            except ArchiveError as e:
                raise InvalidParameter(f"failed to read archive: {e}") from e
            entries = await self._io.run(_archive_images, archive)
            loaded: list[str] = []
            for entry in entries:
                image_id, _ = await self.store_image(entry.config_bytes, entry.layers)
                for t in entry.tags:
                    parsed = refs.parse_with_tag(t)
                    async with self._lock:
                        old = await self._repo.set_ref(
                            str(parsed), "tag", image_id, self._now_nano(), touch=False
                        )
                    if old and old != image_id:
                        progress(
                            f"The image {parsed.familiar()} already exists, renaming the old one "
                            f"with ID {old} to empty string\n"
                        )
                    progress(f"Loaded image: {parsed.familiar()}\n")
                    loaded.append(parsed.familiar())
                    self._emit("tag", image_id, parsed.familiar())
                if not entry.tags:
                    progress(f"Loaded image ID: {image_id}\n")
                    loaded.append(image_id)
                self._emit("load", image_id, image_id)
            return loaded
        finally:
            await self._io.run(self._store.discard, staging)

    async def save(self, names: Sequence[str], out: IO[bytes]) -> None:
        """C{docker save}: write a tar with both the docker-archive and the OCI layout.

        @raise NotFound: one of C{names} does not exist (nothing written).
        """
        order: list[str] = []
        tags_of: dict[str, list[str]] = {}

        def add(image_id: str, tag: str | None) -> None:
            if image_id not in tags_of:
                order.append(image_id)
                tags_of[image_id] = []
            if tag is not None and tag not in tags_of[image_id]:
                tags_of[image_id].append(tag)

        for name in names:
            s = await self._lookup(name)
            if _is_id_prefix(s.id, name) or refs.is_digest(name):
                add(s.id, None)  # by id: no tags, like dockerd
                continue
            parsed = refs.parse_normalized(name)
            if parsed.tag is None and parsed.digest is None:
                # a repository name: every tag of that repository (dockerd's ReferencesByName)
                found = False
                for img in await self._repo.list_images():
                    for t in img.tags:
                        if refs.parse_normalized(t).name == parsed.name:
                            add(img.id, t)
                            found = True
                if not found:
                    add(s.id, None)
            else:
                add(s.id, str(parsed) if parsed.tag is not None else None)
        plan: list[tuple[StoredImage, list[str] | None, list[Layer]]] = []
        for image_id in order:
            stored = await self._repo.get_image(image_id)
            if stored is None:
                raise no_such_image(image_id)
            plan.append((stored, tags_of[image_id], await self._repo.chain(stored.top_layer)))
        await self._io.run(self._write_save, plan, out)
        for s, _t, _l in plan:
            self._emit("save", s.id, s.id)

    def _write_save(
        self, plan: list[tuple[StoredImage, list[str] | None, list[Layer]]], out: IO[bytes]
    ) -> None:
        entries: list[tuple[str, str | bytes]] = []
        written: set[str] = set()
        manifest_json: list[dict[str, Any]] = []
        index_descs: list[dict[str, Any]] = []
        repositories: dict[str, dict[str, str]] = {}
        for s, wanted_tags, layers in plan:
            tags = wanted_tags
            layer_names = []
            layer_descs = []
            for layer in layers:
                name = "blobs/sha256/" + layer.diff_id[7:]
                path = self._store.layer_tar(layer.cache_id)
                size = os.path.getsize(path)
                if name not in written:
                    written.add(name)
                    entries.append((name, path))
                layer_names.append(name)
                layer_descs.append({"mediaType": OCI_LAYER, "digest": layer.diff_id, "size": size})
            cfg_name = "blobs/sha256/" + s.id[7:]
            if cfg_name not in written:
                written.add(cfg_name)
                entries.append((cfg_name, s.config_bytes))
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": s.id, "size": len(s.config_bytes)},
                "layers": layer_descs,
            }
            mbytes = _canonical_json(manifest)
            mdigest = "sha256:" + hashlib.sha256(mbytes).hexdigest()
            mname = "blobs/sha256/" + mdigest[7:]
            if mname not in written:
                written.add(mname)
                entries.append((mname, mbytes))
            if tags is None:
                tags = list(s.tags)
            familiar_tags = [refs.familiar(t) for t in tags]
            for t in tags:
                parsed = refs.parse_normalized(t)
                index_descs.append(
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": mdigest,
                        "size": len(mbytes),
                        "annotations": {
                            "io.containerd.image.name": str(parsed),
                            "org.opencontainers.image.ref.name": parsed.tag or "latest",
                        },
                    }
                )
                if layers:
                    # dockerd 25+: the top layer's diff id (no more v1 layer ids)
                    repositories.setdefault(parsed.familiar_name, {})[parsed.tag or "latest"] = (
                        layers[-1].diff_id[7:]
                    )
            if not tags:
                index_descs.append(
                    {"mediaType": OCI_MANIFEST, "digest": mdigest, "size": len(mbytes)}
                )
            manifest_json.append(
                {"Config": cfg_name, "RepoTags": familiar_tags or None, "Layers": layer_names}
            )
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_descs}
        entries.append(("index.json", _canonical_json(index)))
        # json.Encoder output, as dockerd writes both: newline-terminated
        entries.append(("manifest.json", _canonical_json(manifest_json) + b"\n"))
        entries.append(("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'))
        if repositories:
            entries.append(("repositories", _canonical_json(repositories) + b"\n"))
        write_archive(out, entries)

    async def save_to_file(self, names: Sequence[str]) -> str:
        """Write the save tar of C{names} to a staging file; return its path (see L{discard})."""
        path = await self._io.run(self._store.staging_file)
        try:
            f = await self._io.run(open, path, "wb")
            try:
                await self.save(names, f)
            finally:
                await self._io.run(f.close)
        except BaseException:
            await self._io.run(self._store.discard, path)
            raise
        return path

    async def open_file(self, path: str) -> IO[bytes]:
        """Open a staging file for reading (off the reactor thread)."""
        return await self._io.run(open, path, "rb")

    async def read_chunk(self, f: IO[bytes], size: int = 1 << 20) -> bytes:
        """Read the next chunk of an open staging file."""
        return await self._io.run(f.read, size)

    async def close_file(self, f: IO[bytes]) -> None:
        """Close it."""
        await self._io.run(f.close)

    async def new_staging_file(self) -> str:
        """An empty file under the store's tmp/ (for uploads and downloads)."""
        return await self._io.run(self._store.staging_file)

    async def discard(self, path: str) -> None:
        """Delete a staging file made by this service."""
        await self._io.run(self._store.discard, path)

    async def import_stream(
        self,
        src: IO[bytes],
        repo_tag: str | None,
        config: dict[str, Any],
        message: str = "",
        platform: tuple[str, str] | None = None,
    ) -> Image:
        """C{docker import -}: stage the stream, then import it."""
        path = await self.new_staging_file()
        try:

            def copy() -> None:
                with open(path, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)

            await self._io.run(copy)
            return await self.import_file(path, repo_tag, config, message or "", platform)
        finally:
            await self.discard(path)

    async def import_url(
        self,
        url: str,
        repo_tag: str | None,
        config: dict[str, Any],
        message: str = "",
        platform: tuple[str, str] | None = None,
    ) -> Image:
        """C{docker import <url>}: download, then import.

        @raise SystemError_: the download failed (dockerd answers 500 too).
        """
        if self.fetcher is None:
            raise Unsupported("import from a URL is not available")
        path = await self.new_staging_file()
        try:
            try:
                await self.fetcher(url, path)
            except FetchFailed as e:
                raise SystemError_(str(e)) from e
            return await self.import_file(
                path, repo_tag, config, message or f"Imported from {url}", platform
            )
        finally:
            await self.discard(path)

    async def rw_image(self, container_id: str) -> Image | None:
        """The image a writable layer was made from."""
        rw = await self._repo.get_rw(container_id)
        if rw is None or rw.image_id is None:
            return None
        return await self.get(rw.image_id)

    async def rw_container(self, ref: str) -> str | None:
        """A container id (full or unique prefix) that has a writable layer."""
        rws = [r.container_id for r in await self._repo.all_rw() if r.container_id.startswith(ref)]
        return rws[0] if len(rws) == 1 else None

    async def import_file(
        self,
        src_path: str,
        repo_tag: str | None,
        config: dict[str, Any],
        message: str = "",
        platform: tuple[str, str] | None = None,
    ) -> Image:
        """C{docker import}: a root filesystem tar (maybe compressed) as a one-layer image."""
        return await self._create_image_from_layer(
            src_path,
            parent_top=None,
            base_cfg={},
            config=config,
            created_by="",
            comment=message,
            author="",
            parent_id=None,
            cache_key=None,
            repo_tag=repo_tag,
            event="import",
            os_arch=platform,
        )

    # --- system ------------------------------------------------------------------------------

    async def count(self) -> int:
        """How many images there are (C{/info}'s Images)."""
        return await self._repo.count_images()

    async def usage(self) -> tuple[list[tuple[Image, int]], int]:
        """Every image with how many containers use it, and the size of all layers (df)."""
        out = []
        for img in await self.list_images(all_=True):
            out.append((img, len(await self._users(img.id))))
        return out, await self._repo.layers_total_size()

    # === distribution section (owned by the registry area) =====================================
    # The image store as pull and push see it: pyd.engine.distribution.DistributionStore.

    async def has_image(self, image_id: str) -> bool:
        """Whether an image with this id is stored (L{DistributionStore.has_image})."""
        return await self._repo.get_image(image_id) is not None

    async def has_layer(self, chain_id: str) -> bool:
        """Whether a layer with this chain id is extracted (pull does not download it again)."""
        return await self._repo.get_layer(chain_id) is not None

    async def store_pulled_image(
        self,
        config: bytes,
        layer_files: Sequence[str],
        refs_: Sequence[refs.Reference],
        layer_done: Callable[[int], None],
    ) -> bool:
        """Store a pulled image (blobs downloaded and verified; "" for layers already here).

        @return: whether a reference is new or moved ("Downloaded newer image").
        """
        image_id = "sha256:" + hashlib.sha256(config).hexdigest()
        before = [await self._repo.find_ref(str(r)) for r in refs_]
        await self.store_image(
            config,
            layer_files,
            [str(r) for r in refs_ if r.digest is None],
            [str(r) for r in refs_ if r.digest is not None],
            progress=lambda i, _layer: layer_done(i),
        )
        if refs_:
            self._emit("pull", refs_[0].familiar(), refs_[0].familiar())
        return any(b != image_id for b in before)

    async def tags_in_repository(self, name: str) -> list[str]:
        """The local tags of repository C{name} (fully normalised, e.g. C{docker.io/library/x})."""
        out: set[str] = set()
        for s in await self._repo.list_images():
            for t in s.tags:
                p = refs.parse_normalized(t)
                if p.name == name and p.tag:
                    out.add(p.tag)
        return sorted(out)

    async def image_for_push(self, ref: refs.Reference) -> PushImage:
        """The image C{name:tag} names, with its config bytes and layer tars (bottom first).

        @raise NotFound: C{tag does not exist: <ref>} (dockerd's text).
        """
        image_id = await self._repo.find_ref(str(ref))
        s = await self._repo.get_image(image_id) if image_id else None
        if s is None:
            raise NotFound(f"tag does not exist: {ref.familiar()}")
        layers = await self._repo.chain(s.top_layer)
        return PushImage(
            self.to_image(s),
            s.config_bytes,
            tuple(
                PushLayer(
                    layer.diff_id, self._store.layer_tar(layer.cache_id), layer.compressed_digest
                )
                for layer in layers
            ),
        )

    async def add_reference(
        self, image_id: str, ref: refs.Reference, pushed: refs.Reference
    ) -> None:
        """After a push: C{name@digest} points at the image (RepoDigests); a C{push} event."""
        await self._repo.set_ref(str(ref), "digest", image_id, self._now_nano())
        self._emit("push", pushed.familiar(), pushed.familiar())

    # === end of distribution section ===========================================================


@attrs.frozen
class _ArchiveImage:
    config_bytes: bytes
    layers: list[LayerSource]
    tags: list[str]


def _archive_images(archive: StagedArchive) -> list[_ArchiveImage]:
    """The images of a staged docker-archive (manifest.json) or OCI layout (index.json)."""
    mf = archive.read("manifest.json")
    if mf is not None:
        return _docker_archive_images(archive, mf)
    idx = archive.read("index.json")
    if idx is not None:
        return _oci_images(archive, idx)
    if archive.read("repositories") is not None:
        raise InvalidParameter("legacy (v1) image archives are not supported")
    raise InvalidParameter("invalid archive: does not contain a manifest.json or an index.json")


def _verify_blob(archive: StagedArchive, name: str, data: bytes | None = None) -> None:
    """Blob paths name their digest: check it (a tampered archive is refused)."""
    m = re.match(r"^blobs/sha256/([a-f0-9]{64})$", name)
    if not m:
        return
    path = archive.resolve(name)
    if path is None:
        raise InvalidParameter(f"invalid archive: {name} is missing")
    digest, _ = (
        (sha256_source(path), 0)
        if data is None
        else ("sha256:" + hashlib.sha256(data).hexdigest(), 0)
    )
    if digest[7:] != m.group(1):
        raise InvalidParameter(f"invalid archive: {name} has digest {digest}")


def _docker_archive_images(archive: StagedArchive, raw: bytes) -> list[_ArchiveImage]:
    try:
        items = json.loads(raw)
    except ValueError as e:
        raise InvalidParameter(f"invalid manifest.json: {e}") from e
    if not isinstance(items, list):
        raise InvalidParameter("invalid manifest.json: expected a list")
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str):
            raise InvalidParameter("invalid manifest.json: bad entry")
        cfg = archive.read(item["Config"])
        if cfg is None:
            raise InvalidParameter(f"invalid archive: config {item['Config']} is missing")
        _verify_blob(archive, item["Config"], cfg)
        layers = []
        for name in item.get("Layers") or []:
            path = archive.resolve(str(name))
            if path is None:
                raise InvalidParameter(f"invalid archive: layer {name} is missing")
            layers.append(path)
        tags = [str(t) for t in (item.get("RepoTags") or [])]
        for t in tags:
            refs.parse_normalized(t)
        out.append(_ArchiveImage(cfg, layers, tags))
    return out


def _oci_images(archive: StagedArchive, raw: bytes) -> list[_ArchiveImage]:
    try:
        index = json.loads(raw)
    except ValueError as e:
        raise InvalidParameter(f"invalid index.json: {e}") from e
    by_manifest: dict[str, _ArchiveImage] = {}
    order: list[str] = []

    def blob(digest: str) -> bytes:
        if not refs.is_digest(digest):
            raise InvalidParameter(f"invalid archive: bad digest {digest!r}")
        name = "blobs/sha256/" + digest[7:]
        data = archive.read(name)
        if data is None:
            raise InvalidParameter(f"invalid archive: blob {digest} is missing")
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise InvalidParameter(f"invalid archive: blob {digest} does not match its digest")
        return data

    def manifest_of(desc: dict[str, Any], depth: int = 0) -> tuple[str, dict[str, Any]] | None:
        data = blob(str(desc.get("digest")))
        m = json.loads(data)
        mt = m.get("mediaType") or desc.get("mediaType")
        if mt in (OCI_INDEX, DOCKER_MANIFEST_LIST) or "manifests" in m:
            if depth > 2:
                return None
            chosen = None
            for sub in m.get("manifests") or []:
                plat = sub.get("platform") or {}
                if (
                    plat.get("os", "linux") == "linux"
                    and plat.get("architecture", "amd64") == "amd64"
                ):
                    chosen = sub
                    break
            if chosen is None:
                return None
            return manifest_of(chosen, depth + 1)
        return str(desc.get("digest")), m

    for desc in index.get("manifests") or []:
        found = manifest_of(desc)
        if found is None:
            continue
        mdigest, m = found
        if mdigest not in by_manifest:
            cfg_digest = str((m.get("config") or {}).get("digest"))
            cfg = blob(cfg_digest)
            layers = []
            for ld in m.get("layers") or []:
                d = str(ld.get("digest"))
                if not refs.is_digest(d):
                    raise InvalidParameter(f"invalid archive: bad digest {d!r}")
                path = archive.resolve("blobs/sha256/" + d[7:])
                if path is None:
                    raise InvalidParameter(f"invalid archive: layer {d} is missing")
                digest = sha256_source(path)
                if digest != d:
                    raise InvalidParameter(f"invalid archive: layer {d} does not match its digest")
                layers.append(path)
            by_manifest[mdigest] = _ArchiveImage(cfg, layers, [])
            order.append(mdigest)
        ann = desc.get("annotations") or {}
        name = ann.get("io.containerd.image.name")
        if name:
            by_manifest[mdigest].tags.append(str(name))
    return [by_manifest[d] for d in order]


_COMMIT_KEYS = (
    "User",
    "ExposedPorts",
    "Env",
    "Cmd",
    "Healthcheck",
    "ArgsEscaped",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "OnBuild",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "Shell",
)


def merge_commit_config(
    image: dict[str, Any], container: dict[str, Any], override: dict[str, Any]
) -> dict[str, Any]:
    """dockerd's commit config: the image's, then the container's, then the request body's."""
    out = {k: v for k, v in image.items() if k in _COMMIT_KEYS}
    for src in (container, override):
        for key in _COMMIT_KEYS:
            if key in src and src[key] not in (None, "", [], {}):
                out[key] = src[key]
    return out


def _no_such(ref: str) -> NotFound:
    """dockerd 28's ErrImageDoesNotExist text: a name shows with its default tag
    (C{nope:latest}), a bare 64-hex id as the digest it is parsed as (C{sha256:<hex>})."""
    if _HEX64.match(ref):
        return no_such_image("sha256:" + ref)
    try:
        parsed = refs.parse_normalized(ref)
    except InvalidParameter:
        return no_such_image(ref)
    if parsed.digest is None:
        parsed = parsed.with_default_tag()
    return no_such_image(parsed.familiar())


def _is_id_prefix(image_id: str, ref: str) -> bool:
    r = ref[7:] if ref.startswith("sha256:") else ref
    return bool(r) and image_id[7:].startswith(r) and bool(_HEX_PREFIX.match(ref))


def _is_single_reference(repo_refs: Sequence[refs.Reference]) -> bool:
    """dockerd's isSingleReference: one tag (plus digests of the same repository) at most."""
    if len(repo_refs) <= 1:
        return len(repo_refs) == 1
    single: refs.Reference | None = None
    canonical: set[str] = set()
    for r in repo_refs:
        if r.digest is not None:
            canonical.add(r.name)
        elif single is None:
            single = r
        else:
            return False
    if single is None:
        single = repo_refs[0]
    return len(canonical) == 1 and single.name in canonical


class _DeleteConflict(Conflict):
    def __init__(self, message: str, used: bool) -> None:
        super().__init__(message)
        self.used = used


def _delete_conflict(image_id: str, hard: bool, message: str, used: bool = False) -> Conflict:
    force = "cannot be forced" if hard else "must be forced"
    return _DeleteConflict(
        f"conflict: unable to delete {short_id(image_id)} ({force}) - {message}", used
    )


def _labels_match(labels: dict[str, Any], wanted: list[str], any_: bool = False) -> bool:
    results = []
    for w in wanted:
        k, sep, v = w.partition("=")
        if k not in labels or (sep and str(labels[k]) != v):
            results.append(False)
        else:
            results.append(True)
    return any(results) if any_ else all(results)


def _reference_matches(s: StoredImage, patterns: list[str]) -> list[str] | None:
    """The image's references matching any C{reference=} pattern (None: no match)."""
    import fnmatch

    matched: list[str] = []
    for r, _k in s.refs:
        fam = refs.familiar(r)
        for p in patterns:
            target_full = fam
            name_only = fam.rsplit("@", 1)[0]
            if ":" in p.rsplit("/", 1)[-1] or "@" in p:
                candidates = [target_full]
            else:
                candidates = [
                    name_only.rsplit(":", 1)[0]
                    if ":" in name_only.rsplit("/", 1)[-1]
                    else name_only
                ]
            try:
                full = str(refs.parse_normalized(r))
            except InvalidParameter:
                full = r
            if any(fnmatch.fnmatchcase(c, p) for c in candidates) or fnmatch.fnmatchcase(full, p):
                matched.append(r)
                break
    return matched or None


def _parse_until(value: str, now: float) -> int:
    from pyd.core.errors import InvalidParameter as _IP

    v = value.strip()
    m = re.match(r"^(\d+)(\.\d+)?$", v)
    if m:
        return int(m.group(1))
    m = re.match(r"^(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)$", v)
    if m:
        mult = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[m.group(2)]
        return int(now - float(m.group(1)) * mult)
    t = parse_created(v)
    if t:
        return t
    raise _IP(f"invalid filter 'until={value}'")


__all__ = [
    "ContainersUsing",
    "DeleteItem",
    "HistoryItem",
    "ImageService",
    "PruneReport",
    "chain_id",
]
