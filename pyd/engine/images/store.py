"""The image store (layer: engine): the core every image operation shares.

Images and layers live in the repository (rows) and the L{LayerStore} (directories); layers are
shared by chain id and deleted only when no image, writable layer or child layer uses them.
L{ImageStoreBase} holds the service's dependencies, reference lookup, events, and storing an
image from a config and its layer files (load, pull, import and commit all end there).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import attrs
from twisted.internet.defer import Deferred, DeferredList, DeferredLock, DeferredSemaphore
from twisted.logger import Logger
from twisted.python.failure import Failure

from pyd.core import reference as refs
from pyd.core.errors import (
    InvalidParameter,
    NotFound,
    no_such_image,
)
from pyd.core.ids import new_id
from pyd.core.records import Image, Layer
from pyd.core.seams import Blocking, Clock, EventSink
from pyd.drivers.storage.layers import Extracted, ExtractFailed, LayerSource, LayerStore
from pyd.state.images import ImageRepository, StoredImage

log = Logger()


# (container id, running) for every container whose image is the given image id
ContainersUsing = Callable[[str], Awaitable[Sequence[tuple[str, bool]]]]
# every container's image id, by container id (df counts all images' users in one pass)
ContainerImageIds = Callable[[], Mapping[str, str]]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
EMPTY_LAYER_DIFF = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
# layers of one image extracted at the same time (load, pull)
PARALLEL_EXTRACTIONS = 2

_HEX_PREFIX = re.compile(r"^(sha256:)?[a-f0-9]{1,64}$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")


async def _no_containers(_image_id: str) -> Sequence[tuple[str, bool]]:
    return []


def _no_container_images() -> Mapping[str, str]:
    return {}


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


class ImageStoreBase:
    """The dependencies and the storing core of L{pyd.engine.images.service.ImageService}."""

    def __init__(
        self,
        repo: ImageRepository,
        store: LayerStore,
        io: Blocking,
        events: EventSink | None,
        clock: Clock,
        containers_using: ContainersUsing | None = None,
        *,
        container_image_ids: ContainerImageIds | None = None,
        fetcher: Callable[[str, str], Awaitable[None]] | None = None,
        docker_version: str = "",
        on_action: Callable[[str, float], None] | None = None,
    ) -> None:
        self._repo = repo
        self._store = store
        self._io = io
        self._events = events
        self._clock = clock
        self.containers_using: ContainersUsing = containers_using or _no_containers
        self.container_image_ids: ContainerImageIds = container_image_ids or _no_container_images
        # downloads a URL to a file (docker import <url>)
        self.fetcher = fetcher
        # the engine version recorded as docker_version in committed/imported images
        self.docker_version = docker_version
        # told how long an image action took (dockerd's engine_daemon_image_actions_seconds)
        self.on_action = on_action
        self._lock = DeferredLock()  # serialises store mutations (load/delete/commit/tag)

    # --- start-up ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the layout; drop unused layer rows, staging leftovers and orphan directories."""
        await self._io.run(self._store.ensure_dirs)
        # Nothing builds before the daemon listens, so a writable layer without its container
        # is a leftover of a crash (still mounted, pinning its image's layers): drop it first.
        # (The layers it releases lose their rows here; the sweep below removes their directories.)
        for layer_id in await self._repo.rw_without_container():
            await self._io.run(self._store.remove_rw, layer_id)
            await self._repo.delete_rw(layer_id)
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

    async def _remove_layer_dirs(self, layers: Sequence[Layer]) -> None:
        """Delete the directories of released layers, all at once on the io pool (one after
        the other, a 7-layer rmi waited for 7 pool round trips of file deletion in a row)."""
        if len(layers) == 1:
            await self._io.run(self._store.remove_layer, layers[0].cache_id)
        elif layers:
            done = await DeferredList(
                [self._io.run(self._store.remove_layer, layer.cache_id) for layer in layers],
                consumeErrors=True,
            )
            for ok, outcome in done:
                if not ok:
                    cast(Failure, outcome).raiseException()

    async def _chain_dirs(self, top: str | None) -> list[str]:
        """Cache ids of a chain, top-most first (overlay lowerdir order)."""
        layers = await self._repo.chain(top)
        return [layer.cache_id for layer in reversed(layers)]

    # --- ImageLookup -------------------------------------------------------------------------

    async def resolve(self, ref: str) -> Image:
        """The image named by a reference, id or id prefix."""
        return self.to_image(await self._lookup(ref))

    async def image_sizes(self) -> dict[str, int]:
        """Every image's size by id, in one read (L{ContainerImages.image_sizes})."""
        return await self._repo.image_sizes()

    async def get(self, image_id: str) -> Image | None:
        """The image with exactly this id, or None."""
        s = await self._repo.get_image(image_id)
        return self.to_image(s) if s else None

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

    async def _start_extractions(
        self, diff_ids: Sequence[str], layer_files: Sequence[LayerSource]
    ) -> dict[int, Deferred[Extracted]]:
        """Start extracting every layer of an image whose chain is not stored yet,
        L{PARALLEL_EXTRACTIONS} at a time (each is a helper process: on a machine with more
        than one core, the next one's decompression and writing overlap). Recorded in order
        by L{store_image}; each result is awaited there, at its place."""
        sem = DeferredSemaphore(PARALLEL_EXTRACTIONS)
        pending: dict[int, Deferred[Extracted]] = {}
        parent: str | None = None
        for i, (diff_id, path) in enumerate(zip(diff_ids, layer_files, strict=True)):
            parent = chain_id(parent, diff_id)
            if await self._repo.get_layer(parent) is None:
                pending[i] = sem.run(self._extract_now, path)
        return pending

    def _discard_staging(self, ex: Extracted) -> Deferred[None]:
        d = self._io.run(self._store.discard, ex.staging)
        d.addErrback(lambda f: log.failure("discarding {path}", f, path=ex.staging))
        return d

    def _extract_now(self, path: LayerSource) -> Deferred[Extracted]:
        return Deferred.fromCoroutine(self._store.extract(path))

    async def _add_layer_file(
        self,
        tar_path: LayerSource,
        parent: str | None,
        expected_diff_id: str | None = None,
        extracted: Deferred[Extracted] | None = None,
    ) -> tuple[Layer, bool]:
        """Extract a layer file on top of C{parent} unless its chain exists; record it.

        @param extracted: the extraction of C{tar_path}, already started (L{store_image}).
        @return: the layer and whether its tar was empty of entries.
        @raise InvalidParameter: the layer does not match C{expected_diff_id} or is unreadable.
        """
        if expected_diff_id is not None and extracted is None:
            existing = await self._repo.get_layer(chain_id(parent, expected_diff_id))
            if existing is not None:
                return existing, False
        try:
            if extracted is not None:
                ex = await extracted
            else:
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
            pending = await self._start_extractions(diff_ids, layer_files)
            try:
                for i, (diff_id, path) in enumerate(zip(diff_ids, layer_files, strict=True)):
                    layer, _ = await self._add_layer_file(
                        path, parent, diff_id, pending.pop(i, None)
                    )
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
                for left in pending.values():
                    # not reached (an earlier layer failed): its staging goes
                    left.addCallbacks(self._discard_staging, _quiet)
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


def _quiet(_: object) -> None:
    """An extraction nobody waits for any more failed: the layer before it already did."""


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
