"""The image service (layer: engine): one object over the image area's parts.

Implements L{pyd.engine.contracts.ImageStore} for containers, builds and distribution (resolve,
writable layers, diff, commit, the build cache, pulled images) and the local image operations of
the API: list, inspect, tag, delete with dockerd's conflict rules, history, prune, load, save,
import; each lives in its own module of this package (store, layers, commit, catalog, archive). This module adds the system counts and the
registry's view of the store: pull/push live with the registry code, which stores what it fetches
through L{ImageService.store_pulled_image}.
"""

from __future__ import annotations

import functools
import hashlib
from collections import Counter
from collections.abc import Callable, Sequence

from twisted.logger import Logger

from pyd.core import reference as refs
from pyd.core.errors import (
    NotFound,
)
from pyd.core.records import Image
from pyd.engine.contracts import PushImage, PushLayer
from pyd.engine.images.archive import ImageArchives
from pyd.engine.images.catalog import ImageCatalog
from pyd.engine.images.commit import ImageCommit

log = Logger()


class ImageService(ImageCommit, ImageCatalog, ImageArchives):
    """Local image operations and the image provider of containers and builds."""

    # --- system ------------------------------------------------------------------------------

    async def count(self) -> int:
        """How many images there are (C{/info}'s Images)."""
        return await self._repo.count_images()

    async def usage(self) -> tuple[list[tuple[Image, int]], int]:
        """Every image with how many containers use it, and the size of all layers (df).

        The users are counted as L{_users} finds them (the containers made from the image, and
        the writable layers made from it), for all images at once: one read of the writable
        layers instead of one per image, and one pass over the containers."""
        owner = dict(self.container_image_ids())
        for rw in await self._repo.all_rw():
            if rw.image_id is not None:
                owner.setdefault(rw.container_id, rw.image_id)
        users = Counter(owner.values())
        images = await self.list_images(all_=True)
        return [(img, users[img.id]) for img in images], await self._repo.layers_total_size()

    # === distribution section (owned by the registry area) =====================================
    # The image store as pull and push see it: pyd.engine.contracts.RegistryImages.

    async def has_image(self, image_id: str) -> bool:
        """Whether an image with this id is stored (L{RegistryImages.has_image})."""
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
                    layer.diff_id,
                    functools.partial(self._store.open_layer_tar, layer.cache_id),
                    layer.compressed_digest,
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
