"""A small honest image store for distribution tests (implements
L{pyd.engine.contracts.RegistryImages}; mypy checks it at the end of this module)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence

from pyd.core.errors import InvalidParameter, NotFound
from pyd.core.records import Image
from pyd.core.reference import Reference
from pyd.drivers.storage.tarsplit import PlainTar
from pyd.engine.contracts import PushImage, PushLayer, RegistryImages
from pyd.engine.distribution import chain_ids


class FakeRegistryImages:
    """Layers as uncompressed tars in a directory; images and refs in dicts."""

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.layers: dict[
            str, tuple[str, str, str | None]
        ] = {}  # chain -> (diff_id, tar, blob digest)
        self.images: dict[str, bytes] = {}  # id -> config
        self.refs: dict[str, str] = {}  # str(ref) -> id

    def snapshot(self) -> tuple[object, ...]:
        """Everything observable, to check a failed pull changed nothing."""
        return (
            dict(self.layers),
            dict(self.images),
            dict(self.refs),
            sorted(os.listdir(self.root)),
        )

    async def has_layer(self, chain_id: str) -> bool:
        return chain_id in self.layers

    async def has_image(self, image_id: str) -> bool:
        return image_id in self.images

    async def store_pulled_image(
        self,
        config: bytes,
        layer_files: Sequence[str],
        refs_: Sequence[Reference],
        layer_done: Callable[[int], None],
    ) -> bool:
        diff_ids = json.loads(config)["rootfs"]["diff_ids"]
        staged: dict[str, tuple[str, bytes, str | None]] = {}
        for i, (path, diff_id, chain) in enumerate(
            zip(layer_files, diff_ids, chain_ids(diff_ids), strict=True)
        ):
            if chain not in self.layers:
                with open(path, "rb") as f:
                    raw = f.read()
                data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
                actual = "sha256:" + hashlib.sha256(data).hexdigest()
                if actual != diff_id:
                    raise InvalidParameter(
                        f"layer digest mismatch: expected {diff_id}, got {actual}"
                    )
                staged[chain] = (diff_id, data, "sha256:" + hashlib.sha256(raw).hexdigest())
            layer_done(i)
        for chain, (staged_diff, staged_data, blob) in staged.items():
            tar = os.path.join(self.root, chain.partition(":")[2] + ".tar")
            with open(tar, "wb") as f:
                f.write(staged_data)
            self.layers[chain] = (staged_diff, tar, blob)
        iid = "sha256:" + hashlib.sha256(config).hexdigest()
        self.images[iid] = config
        updated = False
        for r in refs_:
            if self.refs.get(str(r)) != iid:
                updated = True
            self.refs[str(r)] = iid
        return updated

    def _image(self, iid: str) -> Image:
        tags = tuple(r for r, i in self.refs.items() if i == iid and "@" not in r)
        digests = tuple(r for r, i in self.refs.items() if i == iid and "@" in r)
        return Image(iid, json.loads(self.images[iid]), tags, digests, 0, 0)

    async def tags_in_repository(self, name: str) -> list[str]:
        return [
            r.rpartition(":")[2] for r in self.refs if "@" not in r and r.rpartition(":")[0] == name
        ]

    async def image_for_push(self, ref: Reference) -> PushImage:
        iid = self.refs.get(str(ref))
        if iid is None:
            raise NotFound(f"tag does not exist: {ref.familiar()}")
        config = self.images[iid]
        diff_ids = json.loads(config)["rootfs"]["diff_ids"]
        layers = []
        for d, c in zip(diff_ids, chain_ids(diff_ids), strict=True):
            _, tar, blob = self.layers[c]
            layers.append(PushLayer(d, functools.partial(PlainTar, tar), blob))
        return PushImage(self._image(iid), config, tuple(layers))

    async def add_reference(self, image_id: str, ref: Reference, pushed: Reference) -> None:
        self.refs[str(ref)] = image_id

    def add_local_image(self, layer_tars: Sequence[bytes], tags: Sequence[Reference]) -> str:
        """Seed an image (as `docker load` would) from uncompressed layer tars."""
        diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in layer_tars]
        for t, c, d in zip(layer_tars, chain_ids(diff_ids), diff_ids, strict=True):
            path = os.path.join(self.root, c.partition(":")[2] + ".tar")
            with open(path, "wb") as f:
                f.write(t)
            self.layers[c] = (d, path, None)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["sh"]},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
        ).encode()
        iid = "sha256:" + hashlib.sha256(config).hexdigest()
        self.images[iid] = config
        for tag in tags:
            self.refs[str(tag)] = iid
        return iid

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        os.makedirs(self.root)
        self.layers.clear()
        self.images.clear()
        self.refs.clear()


# mypy checks the fake against the seam it stands in for
_IS_REGISTRY_IMAGES: type[RegistryImages] = FakeRegistryImages
