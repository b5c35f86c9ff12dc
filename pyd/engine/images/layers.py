"""Containers' writable layers (layer: engine): create, mount, unmount, remove, size, paths and
C{docker diff} over the overlay directories of the L{LayerStore}.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence

from twisted.logger import Logger

from pyd.core.errors import (
    NotFound,
    no_such_image,
)
from pyd.core.records import Change, Image
from pyd.engine.images.store import ImageStoreBase

log = Logger()


class WritableLayers(ImageStoreBase):
    """Containers' writable layers over an image's layers (L{pyd.engine.contracts.RwLayers})."""

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

    async def rw_layers_mounted(self, container_ids: Collection[str]) -> set[str]:
        """Which of these containers' root filesystems are mounted (one io-pool job)."""
        ids = list(container_ids)
        return await self._io.run(lambda: {cid for cid in ids if self._store.is_mounted(cid)})

    async def unmount_rw_layer(self, container_id: str) -> None:
        """Unmount the container's root filesystem (idempotent)."""
        await self._io.run(self._store.unmount_rw, container_id)

    async def remove_rw_layer(self, container_id: str) -> None:
        """Unmount and delete the writable layer; release layers nobody uses any more."""
        await self._io.run(self._store.remove_rw, container_id)
        released = await self._repo.delete_rw(container_id)
        await self._remove_layer_dirs(released)

    async def rw_layer_sizes(self, container_ids: Sequence[str]) -> list[int]:
        """Bytes each container wrote (C{SizeRw}), in one io call; 0 for a layer that cannot
        be measured (gone meanwhile, say)."""

        def measure() -> list[int]:
            out = []
            for cid in container_ids:
                try:
                    out.append(self._store.rw_size(cid))
                except OSError:
                    out.append(0)
            return out

        return await self._io.run(measure)

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

    async def rw_image(self, container_id: str) -> Image | None:
        """The image a writable layer was made from."""
        rw = await self._repo.get_rw(container_id)
        if rw is None or rw.image_id is None:
            return None
        return await self.get(rw.image_id)
