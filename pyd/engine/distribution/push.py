"""C{docker push} (layer: engine): layers compressed as dockerd does, cross-repository mounts,
uploads limited by C{max-concurrent-uploads}, the manifest last.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredSemaphore, FirstError, gatherResults
from twisted.logger import Logger

from pyd.core.errors import (
    NotFound,
    PydError,
    SystemError_,
)
from pyd.core.records import Image, RegistryAuth
from pyd.core.reference import Reference, parse_normalized
from pyd.drivers.registry import (
    MT_DOCKER_CONFIG,
    MT_DOCKER_LAYER,
    MT_DOCKER_MANIFEST,
    AuthenticationFailed,
    RegistryClient,
    RegistryError,
    TransportFailed,
)
from pyd.drivers.storage.tarsplit import SplitError
from pyd.engine.contracts import LayerStream, PushLayer
from pyd.engine.distribution.base import (
    DistributionBase,
    Progress,
    ProgressSink,
    _nothing,
    _short,
)
from pyd.engine.distribution.pull import _Throttle

log = Logger()


def _gzip_level(sample: bytes) -> int:
    """Level 1, or 0 (stored blocks) for data that does not compress (saves CPU, same size).

    Decided from the layer's first MiB, so the same layer always gives the same blob digest.
    """
    if len(sample) < 4096:
        return 1
    packed = len(zlib.compress(sample, 1))
    return 0 if packed > 0.95 * len(sample) else 1


def _gzip_file(open_tar: Callable[[], LayerStream], dst: str) -> tuple[str, int]:
    """Compress a layer tar reproducibly (no name, mtime 0); return (digest, size)."""
    h = hashlib.sha256()
    n = 0
    with contextlib.closing(open_tar()) as fin, open(dst, "wb") as fout:
        first = fin.read(_GZ_CHUNK)
        z = zlib.compressobj(_gzip_level(first), zlib.DEFLATED, 31)  # 31: gzip header, mtime 0

        def out(data: bytes) -> None:
            nonlocal n
            if data:
                h.update(data)
                n += len(data)
                fout.write(data)

        chunk = first
        while chunk:
            out(z.compress(chunk))
            chunk = fin.read(_GZ_CHUNK)
        out(z.flush())
        fout.flush()
    return "sha256:" + h.hexdigest(), n


_GZ_CHUNK = 1 << 20


class Pushes(DistributionBase):
    """Push."""

    # -- push --

    async def push(
        self, name: str, tag: str, auth: RegistryAuth | None, progress: ProgressSink
    ) -> None:
        """Push the local tags of C{name} (one tag, or all when C{tag} is empty).

        @raise NotFound: nothing local to push; like dockerd, after the first progress line
            (the CLI prints it, then the error as the stream's end).
        """
        ref = parse_normalized(name)
        if ref.tag is not None or ref.digest is not None:
            tag = tag or ref.tag or ""
            ref = ref.name_only()
        progress(Progress(f"The push refers to repository [{ref.name}]"))
        tags = await self.store.tags_in_repository(ref.name)
        if not tags:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
        if tag:
            targets = [Reference(ref.domain, ref.path, tag)]
            await self.store.image_for_push(targets[0])  # tag does not exist: ...
        else:
            targets = [Reference(ref.domain, ref.path, t) for t in sorted(tags)]
        client, _ = await self._candidates(ref, auth, ("pull", "push"), push=True).first(_nothing)
        for target in targets:
            await self._push_one(client, target, progress)

    async def _push_one(
        self, client: RegistryClient, ref: Reference, progress: ProgressSink
    ) -> None:
        img = await self.store.image_for_push(ref)
        # dockerd walks the layers from the top down: that is the order of its progress lines
        # and of the uploads
        top_down = list(reversed(img.layers))
        for layer in top_down:
            progress(Progress("Preparing", _short(layer.diff_id), True))
        limit = max(1, self.settings().max_concurrent_uploads)
        for i, layer in enumerate(top_down):
            if i >= limit:
                progress(Progress("Waiting", _short(layer.diff_id), True))
        sem = DeferredSemaphore(limit)
        mount_from = _mount_candidates(img.image, ref)
        staging = await self.blocking.run(tempfile.mkdtemp, "", "push-", self.staging_dir)
        descriptors: list[dict[str, Any]] = []

        async def one(layer: PushLayer) -> dict[str, Any]:
            await sem.acquire()
            try:
                return await self._push_layer(client, layer, mount_from, staging, progress)
            finally:
                sem.release()

        # a layer that occurs twice (same diff id) is compressed and uploaded once
        unique: dict[str, PushLayer] = {}
        for layer in top_down:
            unique.setdefault(layer.diff_id, layer)
        try:
            ds = [Deferred.fromCoroutine(one(layer)) for layer in unique.values()]
            if ds:
                try:
                    results = await gatherResults(ds, consumeErrors=True)
                except FirstError as e:
                    err = e.subFailure.value or e
                    raise _push_error(err) from err
                by_diff = dict(zip(unique, results, strict=True))
                descriptors = [by_diff[layer.diff_id] for layer in img.layers]
        finally:
            await self.blocking.run(shutil.rmtree, staging, True)
        try:
            cdigest = "sha256:" + hashlib.sha256(img.config).hexdigest()
            if await client.head_blob(cdigest) is None:
                await client.put_blob(cdigest, img.config)
            manifest = {
                "schemaVersion": 2,
                "mediaType": MT_DOCKER_MANIFEST,
                "config": {
                    "mediaType": MT_DOCKER_CONFIG,
                    "size": len(img.config),
                    "digest": cdigest,
                },
                "layers": descriptors,
            }
            data = json.dumps(manifest, indent=3).encode()
            digest = await client.put_manifest(ref.tag or "latest", MT_DOCKER_MANIFEST, data)
        except (RegistryError, TransportFailed) as e:
            raise _push_error(e) from e
        tag = ref.tag or "latest"
        progress(Progress(f"{tag}: digest: {digest} size: {len(data)}"))
        progress(Progress(detail=True, aux={"Tag": tag, "Digest": digest, "Size": len(data)}))
        await self.store.add_reference(
            img.image.id, Reference(ref.domain, ref.path, None, digest), ref
        )

    async def _push_layer(
        self,
        client: RegistryClient,
        layer: PushLayer,
        mount_from: list[str],
        staging: str,
        progress: ProgressSink,
    ) -> dict[str, Any]:
        lid = _short(layer.diff_id)
        if layer.compressed_digest:
            known = await client.head_blob(layer.compressed_digest)
            if known is not None:
                progress(Progress("Layer already exists", lid, True))
                return _layer_desc(layer.compressed_digest, known)
        path = os.path.join(staging, layer.diff_id.partition(":")[2])
        try:
            digest, size = await self.blocking.run(_gzip_file, layer.open_tar, path)
        except SplitError as e:
            # a layer's files changed on disk since it was stored: it is not pushed
            raise SystemError_(f"failed to read a stored layer: {e}") from None
        have = await client.head_blob(digest)
        if have is not None:
            progress(Progress("Layer already exists", lid, True))
            return _layer_desc(digest, have)
        for repo in mount_from:
            mounter = RegistryClient(
                client.http,
                self.blocking,
                client.endpoint,
                client.repository,
                client.auth,
                ("pull", "push"),
                (f"repository:{repo}:pull",),
            )
            if await mounter.mount_blob(digest, repo):
                progress(Progress(f"Mounted from {repo}", lid, True))
                return _layer_desc(digest, size)
        throttle = _Throttle(progress, "Pushing", lid, size)
        await client.upload_blob(digest, path, size, throttle)
        progress(Progress("Pushed", lid, True))
        return _layer_desc(digest, size)


def _layer_desc(digest: str, size: int) -> dict[str, Any]:
    return {"mediaType": MT_DOCKER_LAYER, "size": size, "digest": digest}


def _mount_candidates(image: Image, target: Reference) -> list[str]:
    """Other repositories on the same registry this image is known in (for blob mounts)."""
    out: list[str] = []
    for r in (*image.repo_digests, *image.repo_tags):
        try:
            p = parse_normalized(r)
        except PydError:
            continue
        if p.domain == target.domain and p.path != target.path and p.path not in out:
            out.append(p.path)
    return out


def _push_error(e: BaseException) -> PydError:
    if isinstance(e, PydError):
        return e
    if isinstance(e, RegistryError):
        first = e.errors[0] if e.errors else {}
        if first:
            return SystemError_(RegistryError(e.status, [first], e.url).render())
        if isinstance(e, AuthenticationFailed):
            return SystemError_("unauthorized: authentication required")
        return SystemError_(str(e))
    return SystemError_(str(e))
