"""The local image catalog (layer: engine): list with filters, inspect, history, tag, delete with
dockerd's conflict rules, prune.
"""

from __future__ import annotations

import re
import time

import attrs
from twisted.logger import Logger

from pyd.core import reference as refs
from pyd.core.errors import (
    Conflict,
    InvalidParameter,
)
from pyd.core.ids import short_id
from pyd.core.records import Image
from pyd.engine.filters import labels_match
from pyd.engine.images.store import (
    DeleteItem,
    HistoryItem,
    ImageStoreBase,
    PruneReport,
    _is_id_prefix,
    _is_single_reference,
    _no_such,
    parse_created,
)
from pyd.state.images import StoredImage

log = Logger()


class ImageCatalog(ImageStoreBase):
    """List, inspect, history, tag, delete (dockerd's conflict rules) and prune."""

    # --- list / inspect / history -------------------------------------------------------------

    async def list_images(
        self,
        all_: bool = False,
        filters: dict[str, list[str]] | None = None,
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
            if "label" in filters and not labels_match(
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
        started = time.monotonic()
        async with self._lock:
            items = await self._delete(ref, force, prune)
        # dockerd times a delete that removed the image, not one that only untagged it
        if self.on_action is not None and any(i.kind == "Deleted" for i in items):
            self.on_action("delete", time.monotonic() - started)
        return items

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

    async def _is_dangling(self, image_id: str) -> bool:
        """dockerd's C{imageIsDangling}: no reference and no child image. An untagged build
        step that later builds grew from (a shared cached prefix, an earlier stage) is not
        dangling, so the untag that left it so answers 200 and the image stays."""
        s = await self._repo.get_image(image_id)
        return s is not None and not s.refs and not await self._repo.children(image_id)

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
            if quiet and (
                getattr(conflict, "used", False) or not await self._is_dangling(image_id)
            ):
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
        await self._remove_layer_dirs(released)
        records.extend(DeleteItem("Deleted", layer.chain_id) for layer in released)
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
                if "label" in filters and not labels_match(labels, filters["label"]):
                    continue
                if "label!" in filters and labels_match(labels, filters["label!"], any_=True):
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


class _DeleteConflict(Conflict):
    def __init__(self, message: str, used: bool) -> None:
        super().__init__(message)
        self.used = used


def _delete_conflict(image_id: str, hard: bool, message: str, used: bool = False) -> Conflict:
    force = "cannot be forced" if hard else "must be forced"
    return _DeleteConflict(
        f"conflict: unable to delete {short_id(image_id)} ({force}) - {message}", used
    )


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
