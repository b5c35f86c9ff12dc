"""Layers, images, image references and writable layers in SQLite (layer: state).

Layers form chains through C{parent}; an image points at its top layer and a container's writable
layer at the top layer of its image. A layer row is released (and reported back so the caller can
delete its directory) only when no image, no writable layer and no child layer uses it.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import attrs
from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    select,
    update,
)
from twisted.internet.defer import Deferred, succeed

from pyd.core.records import Layer
from pyd.state.db import Database
from pyd.state.models import ContainerRow, ImageRefRow, ImageRow, LayerRow, RwLayerRow

T = TypeVar("T")


@attrs.frozen
class StoredImage:
    """An image row with its references (normalised strings)."""

    id: str
    config_bytes: bytes
    top_layer: str | None
    parent_id: str | None
    size: int
    created: int
    last_tag_time: int
    refs: tuple[tuple[str, str], ...]  # (ref, kind) kind = "tag" | "digest"
    extra: dict[str, Any] = attrs.field(factory=dict)

    @property
    def config(self) -> dict[str, Any]:
        """The parsed config JSON."""
        value: dict[str, Any] = json.loads(self.config_bytes)
        return value

    @property
    def tags(self) -> tuple[str, ...]:
        """Normalised C{name:tag} references."""
        return tuple(r for r, k in self.refs if k == "tag")

    @property
    def digests(self) -> tuple[str, ...]:
        """Normalised C{name@sha256:...} references."""
        return tuple(r for r, k in self.refs if k == "digest")


@attrs.frozen
class RwLayer:
    """A container's writable layer as recorded."""

    container_id: str
    image_id: str | None
    top_layer: str | None
    created: int


# Hot statements (every container create/start), built once: the per-call construction and
# cache-key work of SQLAlchemy cost more than SQLite's own.
_LAYER_BY_CHAIN = select(LayerRow).where(LayerRow.chain_id == bindparam("b_chain"))
_IMAGE_BY_ID = select(ImageRow).where(ImageRow.id == bindparam("b_id"))
_REFS_OF_ONE = select(
    ImageRefRow.image_id, ImageRefRow.ref, ImageRefRow.kind, ImageRefRow.created
).where(ImageRefRow.image_id == bindparam("b_id"))
_REF_TARGET = select(ImageRefRow.image_id).where(ImageRefRow.ref == bindparam("b_ref"))
_RW_BY_CONTAINER = select(RwLayerRow).where(RwLayerRow.container_id == bindparam("b_cid"))
_ALL_IMAGES = select(ImageRow)
_ALL_REFS = select(ImageRefRow.image_id, ImageRefRow.ref, ImageRefRow.kind, ImageRefRow.created)

# What a write changes, for the read cache: the images and their references, or the layers and
# the writable layers.
IMAGES = "images"
LAYERS = "layers"
# Entries kept per domain at most (an image record holds its config, a few KiB).
CACHE_LIMIT = 4096


# The reads read again after a write of the images (L{ImageRepository._rewarm}): the list, a
# reference's image, an image, a chain; not the writable layers (one per container).
_REWARMED = frozenset({"list", "ref", "image", "chain"})
_HOT_LIMIT = 32


def _copy(value: T) -> T:
    """A list as a new list (a caller may change what it got); anything else as it is."""
    return cast(T, list(value)) if isinstance(value, list) else value


class _ReadCache:
    """Answers to reads of one domain, valid while no write of that domain runs or ran since
    they were read: every write of these tables is in L{ImageRepository}, which empties the
    cache when a write starts and again when it ends, and keeps a read's answer only when no
    write started or ended while it ran (the one DB thread answers reads and writes in order,
    so a read never sees less than the writes that ended before it was asked)."""

    def __init__(self) -> None:
        self.generation = 0
        self.writing = 0
        self.entries: dict[tuple[str, str | None], Any] = {}

    def begin(self) -> None:
        self.generation += 1
        self.writing += 1
        self.entries.clear()

    def end(self) -> None:
        self.generation += 1
        self.writing -= 1
        self.entries.clear()


def _layer(row: Any) -> Layer:
    return Layer(
        chain_id=row.chain_id,
        diff_id=row.diff_id,
        parent=row.parent,
        cache_id=row.cache_id,
        size=row.size,
        compressed_digest=row.compressed_digest,
        created=row.created,
    )


def _images(conn: Connection, rows: Sequence[Any], every: bool = False) -> list[StoredImage]:
    ids = [r.id for r in rows]
    refs: dict[str, list[tuple[str, str, int]]] = {i: [] for i in ids}
    if every:  # all the images: all the references, without an IN list of every id
        for rr in conn.execute(_ALL_REFS):
            if rr.image_id in refs:
                refs[rr.image_id].append((rr.ref, rr.kind, rr.created))
    elif len(ids) == 1:
        for rr in conn.execute(_REFS_OF_ONE, {"b_id": ids[0]}):
            refs[rr.image_id].append((rr.ref, rr.kind, rr.created))
    elif ids:
        for rr in conn.execute(
            select(
                ImageRefRow.image_id, ImageRefRow.ref, ImageRefRow.kind, ImageRefRow.created
            ).where(ImageRefRow.image_id.in_(ids))
        ):
            refs[rr.image_id].append((rr.ref, rr.kind, rr.created))
    out = []
    for r in rows:
        rs = sorted(refs[r.id], key=lambda x: (x[2], x[0]))
        out.append(
            StoredImage(
                id=r.id,
                config_bytes=r.config.encode("utf-8", "surrogateescape"),
                top_layer=r.top_layer,
                parent_id=r.parent_id,
                size=r.size,
                created=r.created,
                last_tag_time=r.last_tag_time or 0,
                refs=tuple((x[0], x[1]) for x in rs),
                extra=dict(r.extra or {}),
            )
        )
    return out


def _chain_statement() -> Any:
    layers = LayerRow.__table__
    start = (
        select(layers, literal(0).label("depth"))
        .where(layers.c.chain_id == bindparam("b_chain"))
        .cte("chain", recursive=True)
    )
    below = layers.alias("below")
    walk = start.union_all(
        select(below, (start.c.depth + 1).label("depth")).where(
            below.c.chain_id == start.c.parent, start.c.depth < _MAX_CHAIN
        )
    )
    return select(walk).order_by(walk.c.depth.desc())


# Deeper than any image can be (dockerd allows 125 layers): a corrupt parent loop ends here.
_MAX_CHAIN = 4096
# The whole chain in one statement (a recursive CTE from the top down) instead of one per layer.
_CHAIN = _chain_statement()


def chain(conn: Connection, top: str | None) -> list[Layer]:
    """The layers of a chain, bottom first."""
    if top is None:
        return []
    rows = conn.execute(_CHAIN, {"b_chain": top}).all()
    if not rows:
        raise LookupError(f"layer {top} is missing")
    if rows[0].parent is not None:
        raise LookupError(f"layer {rows[0].parent} is missing")
    return [_layer(r) for r in rows]


_B_LAYER: Any = bindparam("b_layer")
# Whether an image, a writable layer or a child layer still uses a layer (one statement).
_LAYER_USED = select(
    exists().where(ImageRow.top_layer == _B_LAYER)
    | exists().where(RwLayerRow.top_layer == _B_LAYER)
    | exists().where(LayerRow.parent == _B_LAYER)
)
_DELETE_LAYER = (
    delete(LayerRow).where(LayerRow.chain_id == _B_LAYER).returning(*LayerRow.__table__.c)
)


# One statement where a read and a delete were: the row goes and says which chain it held.
_DELETE_RW = (
    delete(RwLayerRow)
    .where(RwLayerRow.container_id == bindparam("b_cid"))
    .returning(RwLayerRow.top_layer)
)


def _release_chain(conn: Connection, top: str | None) -> list[Layer]:
    """Delete the unused layers of a chain from the top down; return them."""
    released: list[Layer] = []
    cur = top
    while cur is not None:
        if conn.execute(_LAYER_USED, {"b_layer": cur}).scalar_one():
            break
        row = conn.execute(_DELETE_LAYER, {"b_layer": cur}).first()
        if row is None:
            break
        released.append(_layer(row))
        cur = row.parent
    return released


class ImageRepository:
    """Reads and writes the image store's rows; every method runs on the DB thread."""

    def __init__(
        self, db: Database, later: Callable[[Callable[[], None]], object] | None = None
    ) -> None:
        """@param later: runs a function in a later reactor turn (the daemon's
        C{reactor.callLater(0, ...)}); without it, nothing is read again after a write."""
        self._db = db
        self._later = later
        # Inspect, list, container create and start read the same few images and chains again
        # and again; a DB thread round trip costs more than the answer (issue 21).
        self._caches = {IMAGES: _ReadCache(), LAYERS: _ReadCache()}
        # The reads clients made of the images and their chains lately (key -> how to read it
        # again), read again together after a write of the images (a load, a tag, an rmi, a
        # pull) so that the next `docker images` or inspect finds them cached instead of paying
        # one to three DB round trips (issue 21: the bench's `docker images` and inspect follow
        # a load). Bounded, most recent last.
        self._hot: OrderedDict[tuple[str, tuple[str, str | None]], Callable[[Connection], Any]]
        self._hot = OrderedDict()
        self._rewarming = False

    def _write(self, domains: tuple[str, ...], fn: Callable[[Connection], T]) -> Deferred[T]:
        caches = [self._caches[d] for d in domains]
        for c in caches:
            c.begin()

        def ended(result: Any) -> Any:
            for c in caches:
                c.end()
            if IMAGES in domains and self._later is not None:
                # in a later turn: the write's own request answers first
                self._later(self._rewarm)
            return result

        return self._db.transaction(fn).addBoth(ended)

    def _rewarm(self) -> None:
        """Read the recent reads again, in one DB call, once no write runs; keep each answer
        under the same rule as any read (no write of its domain started or ended meanwhile)."""
        if self._rewarming or not self._hot:
            return
        if any(c.writing for c in self._caches.values()):
            return  # the last write to end asks again
        hot = list(self._hot.items())
        seen = {d: c.generation for d, c in self._caches.items()}
        self._rewarming = True

        def thd(conn: Connection) -> list[tuple[str, tuple[str, str | None], Any]]:
            # a read that fails fails them all: each is read on demand later, as without this
            return [(domain, key, fn(conn)) for (domain, key), fn in hot]

        def keep(answers: list[tuple[str, tuple[str, str | None], Any]]) -> None:
            for domain, key, value in answers:
                cache = self._caches[domain]
                fresh = cache.generation == seen[domain] and not cache.writing
                if fresh and len(cache.entries) < CACHE_LIMIT:
                    cache.entries.setdefault(key, _copy(value))

        def done(result: object) -> None:
            self._rewarming = False
            if any(c.generation != seen[d] for d, c in self._caches.items()):
                self._rewarm()  # a write ended meanwhile: what was read may be stale

        d = self._db.run(thd)
        d.addCallback(keep)
        d.addBoth(done)

    def _read(
        self, domain: str, key: tuple[str, str | None], fn: Callable[[Connection], T]
    ) -> Deferred[T]:
        cache = self._caches[domain]
        if key[0] in _REWARMED:
            hot = (domain, key)
            self._hot[hot] = fn
            self._hot.move_to_end(hot)
            if len(self._hot) > _HOT_LIMIT:
                self._hot.popitem(last=False)
        if key in cache.entries:
            return succeed(_copy(cache.entries[key]))
        seen = cache.generation

        def keep(value: T) -> T:
            if cache.generation == seen and not cache.writing:
                if len(cache.entries) >= CACHE_LIMIT:
                    cache.entries.clear()
                cache.entries[key] = _copy(value)
            return value

        return self._db.run(fn).addCallback(keep)

    # --- layers ---------------------------------------------------------------------------

    def get_layer(self, chain_id: str) -> Deferred[Layer | None]:
        """The layer with this chain id, or None."""

        def thd(conn: Connection) -> Layer | None:
            row = conn.execute(select(LayerRow).where(LayerRow.chain_id == chain_id)).first()
            return _layer(row) if row else None

        return self._db.run(thd)

    def add_layer(self, layer: Layer) -> Deferred[Layer]:
        """Record a layer; if another load recorded the same chain first, return that one."""

        def thd(conn: Connection) -> Layer:
            row = conn.execute(select(LayerRow).where(LayerRow.chain_id == layer.chain_id)).first()
            if row is not None:
                return _layer(row)
            conn.execute(insert(LayerRow).values(**attrs.asdict(layer)))
            return layer

        return self._write((LAYERS,), thd)

    def release_layer(self, chain_id: str) -> Deferred[list[Layer]]:
        """Drop an unused chain (e.g. layers of a load that failed before its image was stored)."""
        return self._write((LAYERS,), lambda conn: _release_chain(conn, chain_id))

    def release_orphans(self) -> Deferred[list[Layer]]:
        """Drop every layer that no image, writable layer or child layer uses (after a crash)."""

        def thd(conn: Connection) -> list[Layer]:
            out: list[Layer] = []
            while True:
                used_ids: set[str] = set()
                for col in (ImageRow.top_layer, RwLayerRow.top_layer, LayerRow.parent):
                    used_ids.update(r[0] for r in conn.execute(select(col)) if r[0] is not None)
                leaves = [
                    r[0] for r in conn.execute(select(LayerRow.chain_id)) if r[0] not in used_ids
                ]
                if not leaves:
                    return out
                for cid in leaves:
                    out.extend(_release_chain(conn, cid))

        return self._write((LAYERS,), thd)

    def chain(self, top: str | None) -> Deferred[list[Layer]]:
        """The layers of a chain, bottom first."""
        return self._read(LAYERS, ("chain", top), lambda conn: chain(conn, top))

    def all_cache_ids(self) -> Deferred[set[str]]:
        """Every layer directory name that has a row."""
        return self._db.run(lambda conn: {r[0] for r in conn.execute(select(LayerRow.cache_id))})

    def layers_total_size(self) -> Deferred[int]:
        """The size of all layers."""
        return self._db.run(
            lambda conn: int(
                conn.execute(select(func.coalesce(func.sum(LayerRow.size), 0))).scalar_one()
            )
        )

    # --- images ---------------------------------------------------------------------------

    def add_image(
        self,
        image_id: str,
        config_bytes: bytes,
        top_layer: str | None,
        size: int,
        created: int,
        parent_id: str | None = None,
        cache_key: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Deferred[bool]:
        """Store an image unless it exists; fires True when it was new."""

        def thd(conn: Connection) -> bool:
            if conn.execute(select(ImageRow.id).where(ImageRow.id == image_id)).first():
                if cache_key is not None:
                    conn.execute(
                        update(ImageRow).where(ImageRow.id == image_id).values(cache_key=cache_key)
                    )
                return False
            conn.execute(
                insert(ImageRow).values(
                    id=image_id,
                    config=config_bytes.decode("utf-8", "surrogateescape"),
                    top_layer=top_layer,
                    parent_id=parent_id,
                    cache_key=cache_key,
                    size=size,
                    created=created,
                    last_tag_time=None,
                    extra=extra or {},
                )
            )
            return True

        return self._write((IMAGES,), thd)

    def get_image(self, image_id: str) -> Deferred[StoredImage | None]:
        """The image with this full id."""

        def thd(conn: Connection) -> StoredImage | None:
            rows = conn.execute(_IMAGE_BY_ID, {"b_id": image_id}).all()
            return _images(conn, rows)[0] if rows else None

        return self._read(IMAGES, ("image", image_id), thd)

    def find_ref(self, ref: str) -> Deferred[str | None]:
        """The image id a normalised reference points at."""
        return self._read(
            IMAGES,
            ("ref", ref),
            lambda conn: conn.execute(_REF_TARGET, {"b_ref": ref}).scalar_one_or_none(),
        )

    def find_prefix(self, hex_prefix: str) -> Deferred[list[str]]:
        """Ids starting with C{sha256:<hex_prefix>} (at most two: enough to see ambiguity)."""
        pattern = "sha256:" + hex_prefix.replace("%", "").replace("_", "") + "%"
        return self._db.run(
            lambda conn: [
                r[0]
                for r in conn.execute(select(ImageRow.id).where(ImageRow.id.like(pattern)).limit(2))
            ]
        )

    def find_repo_digest(self, name: str, digest: str) -> Deferred[str | None]:
        """The image of repository C{name} whose config or manifest digest is C{digest}."""

        def thd(conn: Connection) -> str | None:
            hit = conn.execute(
                select(ImageRefRow.image_id).where(ImageRefRow.ref == f"{name}@{digest}")
            ).scalar_one_or_none()
            if hit:
                return str(hit)
            if conn.execute(select(ImageRow.id).where(ImageRow.id == digest)).first():
                named = conn.execute(
                    select(ImageRefRow.ref).where(
                        ImageRefRow.image_id == digest, ImageRefRow.ref.like(f"{name}:%")
                    )
                ).first()
                if named:
                    return digest
            return None

        return self._db.run(thd)

    def list_images(self) -> Deferred[list[StoredImage]]:
        """Every image with its references."""
        return self._read(
            IMAGES,
            ("list", None),
            lambda conn: _images(conn, conn.execute(_ALL_IMAGES).all(), True),
        )

    def children(self, image_id: str) -> Deferred[list[str]]:
        """Ids of images whose parent is C{image_id}."""
        return self._db.run(
            lambda conn: [
                r[0]
                for r in conn.execute(select(ImageRow.id).where(ImageRow.parent_id == image_id))
            ]
        )

    def by_cache_key(self, cache_key: str) -> Deferred[str | None]:
        """The image a build cache key points at: the newest, as dockerd's cache picks."""
        return self._db.run(
            lambda conn: conn.execute(
                select(ImageRow.id)
                .where(ImageRow.cache_key == cache_key)
                .order_by(ImageRow.created.desc(), literal_column("rowid").desc())
                .limit(1)
            ).scalar_one_or_none()
        )

    def set_ref(
        self, ref: str, kind: str, image_id: str, now_nano: int, touch: bool = True
    ) -> Deferred[str | None]:
        """Point C{ref} at C{image_id} (moving it from another image); fire with the old id.

        C{touch}: a tag sets the image's LastTagTime (dockerd's tag/commit/import/build do;
        load and pull do not).
        """

        def thd(conn: Connection) -> str | None:
            old = conn.execute(
                select(ImageRefRow.image_id).where(ImageRefRow.ref == ref)
            ).scalar_one_or_none()
            if old == image_id:
                if touch and kind == "tag":
                    conn.execute(
                        update(ImageRow)
                        .where(ImageRow.id == image_id)
                        .values(last_tag_time=now_nano)
                    )
                return str(old)
            if old is not None:
                conn.execute(delete(ImageRefRow).where(ImageRefRow.ref == ref))
            conn.execute(
                insert(ImageRefRow).values(ref=ref, image_id=image_id, kind=kind, created=now_nano)
            )
            if touch and kind == "tag":
                conn.execute(
                    update(ImageRow).where(ImageRow.id == image_id).values(last_tag_time=now_nano)
                )
            return str(old) if old is not None else None

        return self._write((IMAGES,), thd)

    def remove_ref(self, ref: str) -> Deferred[bool]:
        """Delete one reference; fire True when it existed."""

        def thd(conn: Connection) -> bool:
            return bool(conn.execute(delete(ImageRefRow).where(ImageRefRow.ref == ref)).rowcount)

        return self._write((IMAGES,), thd)

    def delete_image(self, image_id: str) -> Deferred[list[Layer]]:
        """Delete the image and its references; fire with the layers no longer used by anything."""

        def thd(conn: Connection) -> list[Layer]:
            row = conn.execute(select(ImageRow.top_layer).where(ImageRow.id == image_id)).first()
            if row is None:
                return []
            conn.execute(delete(ImageRefRow).where(ImageRefRow.image_id == image_id))
            conn.execute(delete(ImageRow).where(ImageRow.id == image_id))
            # Children keep their own parent link (dockerd drops it): clear it so they show up
            # as top-level images again.
            conn.execute(
                update(ImageRow).where(ImageRow.parent_id == image_id).values(parent_id=None)
            )
            return _release_chain(conn, row.top_layer)

        return self._write((IMAGES, LAYERS), thd)

    def image_sizes(self) -> Deferred[dict[str, int]]:
        """Every image's size by id (two columns, no config decoded)."""
        return self._db.run(
            lambda conn: {
                r[0]: int(r[1] or 0) for r in conn.execute(select(ImageRow.id, ImageRow.size))
            }
        )

    def count_images(self) -> Deferred[int]:
        """How many images there are."""
        return self._db.run(
            lambda conn: int(conn.execute(select(func.count()).select_from(ImageRow)).scalar_one())
        )

    # --- writable layers ------------------------------------------------------------------

    def add_rw(
        self, container_id: str, image_id: str | None, top_layer: str | None, created: int
    ) -> Deferred[None]:
        """Record a container's writable layer (idempotent)."""

        def thd(conn: Connection) -> None:
            if conn.execute(
                select(RwLayerRow.container_id).where(RwLayerRow.container_id == container_id)
            ).first():
                return
            conn.execute(
                insert(RwLayerRow).values(
                    container_id=container_id,
                    image_id=image_id,
                    top_layer=top_layer,
                    created=created,
                )
            )

        return self._write((LAYERS,), thd)

    def get_rw(self, container_id: str) -> Deferred[RwLayer | None]:
        """The writable layer of a container."""

        def thd(conn: Connection) -> RwLayer | None:
            row = conn.execute(_RW_BY_CONTAINER, {"b_cid": container_id}).first()
            if row is None:
                return None
            return RwLayer(row.container_id, row.image_id, row.top_layer, row.created)

        return self._read(LAYERS, ("rw", container_id), thd)

    def all_rw(self) -> Deferred[list[RwLayer]]:
        """Every writable layer."""
        return self._db.run(
            lambda conn: [
                RwLayer(r.container_id, r.image_id, r.top_layer, r.created)
                for r in conn.execute(select(RwLayerRow))
            ]
        )

    def rw_without_container(self) -> Deferred[list[str]]:
        """Writable layers no container row owns: a build's scratch layers (COPY, WORKDIR and
        C{--from} roots have none) and a create that a crash cut between the two writes."""
        owned = select(ContainerRow.id).where(ContainerRow.id == RwLayerRow.container_id)
        return self._db.run(
            lambda conn: [
                r[0] for r in conn.execute(select(RwLayerRow.container_id).where(~owned.exists()))
            ]
        )

    def delete_rw(self, container_id: str) -> Deferred[list[Layer]]:
        """Forget a writable layer; fire with the layers no longer used by anything."""

        def thd(conn: Connection) -> list[Layer]:
            row = conn.execute(_DELETE_RW, {"b_cid": container_id}).first()
            if row is None:
                return []
            return _release_chain(conn, row.top_layer)

        return self._write((LAYERS,), thd)

    def rw_users(self, image_id: str) -> Deferred[list[str]]:
        """Containers whose writable layer was made from C{image_id}."""
        return self._db.run(
            lambda conn: [
                r[0]
                for r in conn.execute(
                    select(RwLayerRow.container_id).where(RwLayerRow.image_id == image_id)
                )
            ]
        )
