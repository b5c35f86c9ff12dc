"""Commit (layer: engine): a container's writable layer becomes an image (C{docker commit}, the
builder's steps), with dockerd's config merge and the container paused meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.logger import Logger

from pyd.core import reference as refs
from pyd.core.errors import (
    NotFound,
    PydError,
    no_such_image,
)
from pyd.core.records import CommitSource, Image, Layer
from pyd.engine.contracts import CommitMeta
from pyd.engine.imagechanges import apply_changes
from pyd.engine.images.layers import WritableLayers
from pyd.state.images import StoredImage

log = Logger()


class ImageCommit(WritableLayers):
    """C{docker commit} and the builder's commit: a writable layer becomes an image."""

    async def commit(
        self,
        container_id: str,
        image_config: dict[str, Any],
        meta: CommitMeta,
        repo_tag: str | None = None,
        parent_id: str | None = None,
        cache_key: str | None = None,
    ) -> Image:
        """Turn the writable layer into a new layer on top of the container's image.

        C{image_config} is the new image's C{config} section; C{meta} the history entry and
        more top-level keys (L{CommitMeta}).

        @raise NotFound: C{No such container: <id>} (no such writable layer).
        """
        rw = await self._repo.get_rw(container_id)
        if rw is None:
            raise NotFound(f"No such container: {container_id}")
        base_cfg: dict[str, Any] = {}
        base_layers: list[Layer] = await self._repo.chain(rw.top_layer)
        base_image: StoredImage | None = None
        if rw.image_id:
            base_image = await self._repo.get_image(rw.image_id)
            if base_image is not None:
                base_cfg = base_image.config
        lowers = [layer.cache_id for layer in reversed(base_layers)]
        tar_path, entries = await self._io.run(self._store.export_rw, container_id, lowers)
        try:
            return await self._create_image_from_layer(
                None if (entries == 0 and meta.empty_layer_ok) else tar_path,
                parent_top=rw.top_layer,
                base_cfg=base_cfg,
                config=image_config,
                created_by=meta.created_by,
                comment=meta.comment,
                author=meta.author,
                container=dict(meta.container) if meta.container is not None else None,
                parent_id=parent_id if parent_id is not None else (rw.image_id or None),
                cache_key=cache_key,
                repo_tag=repo_tag,
                event="commit",
                extra_top=dict(meta.top) if meta.top is not None else None,
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

    async def find_child(self, parent_id: str | None, cache_key: str) -> Image | None:
        """The image the build cache has for C{cache_key}, if it was built on C{parent_id} (the
        key already covers the parent; this guards a stale row)."""
        image_id = await self._repo.by_cache_key(cache_key)
        if image_id is None:
            return None
        img = await self.get(image_id)
        if img is None or (img.parent_id or None) != parent_id:
            return None
        return img

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
        meta = CommitMeta(
            created_by=" ".join(cmd) if isinstance(cmd, list) else str(cmd),
            author=author,
            comment=comment,
            container={"id": source.container_id, "config": container_config},
        )
        paused = False
        if pause and source.running and self.pause_container is not None:
            try:
                await self.pause_container(source.container_id)
                paused = True
            except PydError:
                paused = False  # already paused, or stopped meanwhile: commit as it is
        try:
            img = await self.commit(source.container_id, config, meta, repo_tag)
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
