"""Commit (layer: engine): a writable layer becomes an image (L{pyd.engine.commit} for C{docker
commit}, the builder's steps), a config becomes an image (the builder's metadata-only steps), and
the build cache's lookup.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from pyd.core.errors import (
    NotFound,
    no_such_image,
)
from pyd.core.records import Image, Layer
from pyd.engine.contracts import CommitMeta
from pyd.engine.images.layers import WritableLayers
from pyd.state.images import StoredImage

log = Logger()


class ImageCommit(WritableLayers):
    """The store's side of a commit: a writable layer becomes an image."""

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
