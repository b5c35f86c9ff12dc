"""Pull, push and login against registries (layer: engine).

The rules dockerd applies around the Distribution protocol: reference to endpoints (mirrors,
insecure registries), manifest and platform selection, which layers to fetch, parallel downloads
limited by C{max-concurrent-downloads}, verification before anything reaches the store, the
progress messages (as L{Progress} records; the API renders them as JSON lines), the error texts.

The image store is reached through L{DistributionStore}, implemented by the images area. A pull
downloads and verifies every missing blob into a private staging directory first and only then
extracts layers and adds the image, so a failed or tampered download leaves the store unchanged.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform as _platform
import shutil
import tempfile
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred, DeferredSemaphore, FirstError, gatherResults
from twisted.internet.task import deferLater
from twisted.logger import Logger

from pyd.core.errors import (
    InvalidParameter,
    NotFound,
    PydError,
    SystemError_,
    Unauthorized,
    Unsupported,
)
from pyd.core.records import Image, RegistryAuth
from pyd.core.reference import DEFAULT_DOMAIN, Reference, parse_normalized
from pyd.core.seams import Blocking
from pyd.drivers.registry import (
    MT_DOCKER_CONFIG,
    MT_DOCKER_LAYER,
    MT_DOCKER_LIST,
    MT_DOCKER_MANIFEST,
    MT_OCI_INDEX,
    MT_OCI_MANIFEST,
    MT_SCHEMA1,
    AuthenticationFailed,
    DigestMismatch,
    Endpoint,
    HTTPClients,
    IndexClient,
    Manifest,
    RegistryClient,
    RegistryError,
    RegistryHosts,
    TransportFailed,
)

log = Logger()


# --- what the image store provides ----------------------------------------------------------------


@attrs.frozen
class PushLayer:
    """One layer of a local image, as push needs it."""

    diff_id: str
    tar_path: str  # the uncompressed layer tar, kept by the store
    compressed_digest: str | None = None  # the blob digest it was pulled as, if known


@attrs.frozen
class PushImage:
    """A local image ready to push."""

    image: Image
    config: bytes  # the config blob, byte for byte (its sha256 is the image id)
    layers: tuple[PushLayer, ...]


class DistributionStore(Protocol):
    """What pull and push need from the image store (implemented by the images area)."""

    async def has_layer(self, chain_id: str) -> bool:
        """Whether the layer with this chain id is already extracted."""
        ...

    async def has_image(self, image_id: str) -> bool:
        """Whether the image with this id (the config digest) is already stored."""
        ...

    async def store_pulled_image(
        self,
        config: bytes,
        layer_files: Sequence[str],
        refs: Sequence[Reference],
        layer_done: Callable[[int], None],
    ) -> bool:
        """Add an image from its config and verified layer blobs, atomically, and point C{refs} at it.

        C{layer_files[i]} is the downloaded blob of layer i (bottom first), or "" for a layer
        whose chain the store already has. C{layer_done(i)} is called as each layer is in place.

        @return: whether a reference is new or moved (dockerd's "Downloaded newer image" versus
            "Image is up to date").
        @raise PydError: a blob is not a valid layer or does not match its diff id; the store is
            left as it was.
        """
        ...

    async def tags_in_repository(self, name: str) -> list[str]:
        """The tags the store has for a repository (C{name} fully normalised)."""
        ...

    async def image_for_push(self, ref: Reference) -> PushImage:
        """The image a reference names, with its config bytes and layer tars.

        @raise NotFound: no such reference.
        """
        ...

    async def add_reference(self, image_id: str, ref: Reference, pushed: Reference) -> None:
        """After pushing C{pushed} (C{name:tag}): point C{ref} (C{name@digest}) at C{image_id}."""
        ...


# --- progress records -----------------------------------------------------------------------------


@attrs.frozen
class Progress:
    """One progress message of a pull or push (rendered by the API as one JSON line).

    C{detail} False: a plain message (C{{"status", "id"}}); True: an action with a
    C{progressDetail} (C{current}/C{total} when known). C{aux} carries a result object.
    """

    status: str = ""
    id: str = ""
    detail: bool = False
    current: int | None = None
    total: int | None = None
    aux: dict[str, Any] | None = None


ProgressSink = Callable[[Progress], None]


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12]


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """Chain ids of a layer stack: C{chain(0) = diff(0)}, C{chain(n) = sha256(chain(n-1) + " " + diff(n))}."""
    out: list[str] = []
    for d in diff_ids:
        if not out:
            out.append(d)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


def host_platform() -> tuple[str, str, str]:
    """(os, architecture, variant) of this host in OCI terms."""
    m = _platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(m, m)
    variant = "v8" if arch == "arm64" else ""
    if m.startswith("armv7"):
        arch, variant = "arm", "v7"
    return "linux", arch, variant


def parse_platform(value: str) -> tuple[str, str, str]:
    """C{os[/arch[/variant]]} -> (os, arch, variant); "" means the host's platform.

    @raise InvalidParameter: malformed.
    """
    if not value:
        return host_platform()
    parts = value.lower().split("/")
    if len(parts) > 3 or not all(parts):
        raise InvalidParameter(
            f'"{value}": unknown operating system or architecture: invalid argument'
        )
    os_ = parts[0]
    arch = parts[1] if len(parts) > 1 else host_platform()[1]
    variant = parts[2] if len(parts) > 2 else ""
    arch = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}.get(arch, arch)
    if arch == "arm64" and variant in ("", "8"):
        variant = "v8" if variant == "8" else variant
    return os_, arch, variant


def _format_platform(p: tuple[str, str, str]) -> str:
    return "/".join(x for x in p if x)


MAX_DOWNLOAD_ATTEMPTS = 3


class _FileSink:
    """A blob file in the staging directory (written in the io pool, in order)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._f: Any = None

    def write(self, data: bytes) -> None:
        if self._f is None:
            self._f = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self._f.write(data)

    def close(self) -> None:
        if self._f is None:
            open(self.path, "wb").close()
        else:
            self._f.close()
            self._f = None


class _MemorySink:
    def __init__(self) -> None:
        self.buf = io.BytesIO()

    def write(self, data: bytes) -> None:
        self.buf.write(data)


def _gzip_level(sample: bytes) -> int:
    """Level 1, or 0 (stored blocks) for data that does not compress (saves CPU, same size).

    Decided from the layer's first MiB, so the same layer always gives the same blob digest.
    """
    if len(sample) < 4096:
        return 1
    packed = len(zlib.compress(sample, 1))
    return 0 if packed > 0.95 * len(sample) else 1


def _gzip_file(src: str, dst: str) -> tuple[str, int]:
    """Compress a layer tar reproducibly (no name, mtime 0); return (digest, size)."""
    h = hashlib.sha256()
    n = 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
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


class _Throttle:
    """Emits a byte-progress record at most every 1/50th of the total (and at the end)."""

    def __init__(self, emit: ProgressSink, status: str, lid: str, total: int) -> None:
        self._emit = emit
        self._status = status
        self._id = lid
        self.total = total
        self.current = 0
        self._last = -1
        self._step = max(total // 50, 1 << 16)

    def __call__(self, n: int) -> None:
        self.current += n
        if self.current - self._last >= self._step or self.current >= self.total:
            self._last = self.current
            self._emit(Progress(self._status, self._id, True, self.current, self.total))


# --- the service ----------------------------------------------------------------------------------


@attrs.frozen
class DistributionSettings:
    """The daemon options distribution uses (re-read at each operation: they are reloadable)."""

    insecure_registries: tuple[str, ...] = ()
    registry_mirrors: tuple[str, ...] = ()
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5


class DistributionService:
    """C{docker pull}, C{docker push} and C{docker login} (POST /images/create, /push, /auth)."""

    def __init__(
        self,
        store: DistributionStore | None,
        http: HTTPClients,
        blocking: Blocking,
        staging_dir: str,
        settings: Callable[[], DistributionSettings],
        clock: Any = None,
        on_pull_bytes: Callable[[int], None] | None = None,
    ) -> None:
        self._store = store
        self.http = http
        self.blocking = blocking
        self.staging_dir = staging_dir
        self.settings = settings
        self.clock = clock
        # Told the size of every layer downloaded (metrics: image pull bytes).
        self.on_pull_bytes = on_pull_bytes

    @property
    def store(self) -> DistributionStore:
        """The image store (set by the composition root).

        @raise Unsupported: no image store is wired in.
        """
        if self._store is None:
            raise Unsupported("pulling and pushing images needs the image store")
        return self._store

    @store.setter
    def store(self, store: DistributionStore) -> None:
        self._store = store

    async def _countdown(self, progress: ProgressSink, lid: str, seconds: int) -> None:
        """dockerd's "Retrying in N seconds" lines, one a second (no wait without a clock)."""
        for left in range(seconds, 0, -1):
            progress(Progress(f"Retrying in {left} second{'s' if left > 1 else ''}", lid, True))
            if self.clock is not None:
                await deferLater(self.clock, 1, lambda: None)

    def _hosts(self) -> RegistryHosts:
        s = self.settings()
        return RegistryHosts(s.insecure_registries, s.registry_mirrors)

    async def clean_staging(self) -> None:
        """Delete what an interrupted pull or push left (at daemon start)."""
        await self.blocking.run(shutil.rmtree, self.staging_dir, True)
        await self.blocking.run(os.makedirs, self.staging_dir, 0o700, True)

    # -- connection --

    def _candidates(
        self, ref: Reference, auth: RegistryAuth | None, actions: Sequence[str], push: bool = False
    ) -> _Candidates:
        return _Candidates(self, ref, auth, actions, self._hosts().endpoints(ref.domain, push=push))

    # -- pull --

    async def pull(
        self,
        image: str,
        tag: str,
        platform: str,
        auth: RegistryAuth | None,
        progress: ProgressSink,
    ) -> None:
        """Pull C{image} (C{fromImage}) at C{tag} (a tag, a digest, or "" for all tags).

        @raise PydError: before any progress was sent, the request fails with it; the API turns
            a later one into an in-band C{errorDetail}.
        """
        ref = parse_normalized(image)
        all_tags = False
        if tag and ref.tag is None and ref.digest is None:
            if tag.startswith("sha256:"):
                ref = parse_normalized(f"{ref.name}@{tag}")
            else:
                ref = parse_normalized(f"{ref.name}:{tag}")
        elif not tag and ref.tag is None and ref.digest is None:
            all_tags = True
        want = parse_platform(platform)
        cands = self._candidates(ref, auth, ("pull",))
        if not all_tags:
            updated = await self._pull_one(cands, ref, want, progress)
            what = "Downloaded newer image" if updated else "Image is up to date"
            progress(Progress(f"Status: {what} for {ref.familiar()}"))
            return
        _, tags = await cands.first(lambda c: c.list_tags())
        any_updated = False
        for t in tags:
            one = parse_normalized(f"{ref.name}:{t}")
            any_updated = await self._pull_one(cands, one, want, progress) or any_updated
        what = "Downloaded newer image" if any_updated else "Image is up to date"
        progress(Progress(f"Status: {what} for {ref.familiar_name}"))

    async def _pull_one(
        self,
        cands: _Candidates,
        ref: Reference,
        want: tuple[str, str, str],
        progress: ProgressSink,
    ) -> bool:
        tag_or_digest = ref.digest or ref.tag or "latest"
        try:
            client, top = await cands.first(lambda c: c.get_manifest(tag_or_digest), ref)
        except DigestMismatch as e:
            raise InvalidParameter(f"manifest verification failed for digest {e.expected}") from e
        try:
            return await self._pull_manifest(client, ref, top, want, progress)
        except AuthenticationFailed as e:
            raise _pull_error(ref, e) from e

    async def _pull_manifest(
        self,
        client: RegistryClient,
        ref: Reference,
        top: Manifest,
        want: tuple[str, str, str],
        progress: ProgressSink,
    ) -> bool:
        manifest = top
        if manifest.media_type in MT_SCHEMA1:
            raise InvalidParameter(
                f"[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, "
                f"schema 1 support is disabled by default. Please upgrade the image "
                f"{ref.familiar()} to Docker Image manifest version 2, schema 2."
            )
        doc = manifest.json()
        if manifest.media_type in (MT_DOCKER_LIST, MT_OCI_INDEX) or "manifests" in doc:
            child = _select_platform(doc, want)
            if child is None:
                raise NotFound(
                    f"no matching manifest for {_format_platform(want)} in the manifest list entries"
                )
            try:
                manifest = await client.get_manifest(child)
            except DigestMismatch as e:
                raise InvalidParameter(
                    f"manifest verification failed for digest {e.expected}"
                ) from e
            doc = manifest.json()
        if manifest.media_type not in (MT_DOCKER_MANIFEST, MT_OCI_MANIFEST) and "config" not in doc:
            raise InvalidParameter(f"unsupported manifest media type {manifest.media_type}")
        layers = list(doc.get("layers") or [])
        config_desc = doc.get("config") or {}
        # dockerd: a digest pull is announced by the whole canonical reference
        progress(
            Progress(f"Pulling from {ref.path}", str(ref) if ref.digest else ref.tag or "latest")
        )

        staging = await self.blocking.run(tempfile.mkdtemp, "", "pull-", self.staging_dir)
        try:
            return await self._pull_layers(
                client, ref, top, config_desc, layers, want, staging, progress
            )
        finally:
            await self.blocking.run(shutil.rmtree, staging, True)

    async def _pull_layers(
        self,
        client: RegistryClient,
        ref: Reference,
        top: Manifest,
        config_desc: dict[str, Any],
        layers: list[dict[str, Any]],
        want: tuple[str, str, str],
        staging: str,
        progress: ProgressSink,
    ) -> bool:
        sink = _MemorySink()
        cdigest = str(config_desc.get("digest", ""))
        try:
            await client.get_blob(cdigest, sink, config_desc.get("size"))
        except DigestMismatch as e:
            raise InvalidParameter(f"image config verification failed for digest {cdigest}") from e
        config = sink.buf.getvalue()
        try:
            cfg = json.loads(config)
            diff_ids = [str(d) for d in cfg["rootfs"]["diff_ids"]]
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidParameter("invalid image config: no rootfs.diff_ids") from e
        if len(diff_ids) != len(layers):
            raise InvalidParameter("layers from manifest don't match image configuration")
        chains = chain_ids(diff_ids)
        present = [await self.store.has_layer(c) for c in chains]
        # dockerd skips the layers (and their progress lines) of an image it already has
        known = all(present) and await self.store.has_image(cdigest)
        to_fetch: dict[str, dict[str, Any]] = {}
        for desc, have in zip(layers, present, strict=True):
            lid = _short(str(desc.get("digest", "")))
            if known:
                continue
            if have:
                progress(Progress("Already exists", lid, True))
            elif desc["digest"] not in to_fetch:
                to_fetch[str(desc["digest"])] = desc
                progress(Progress("Pulling fs layer", lid, True))
        limit = max(1, self.settings().max_concurrent_downloads)
        for i, digest in enumerate(to_fetch):
            if i >= limit:
                progress(Progress("Waiting", _short(digest), True))
        sem = DeferredSemaphore(limit)
        paths: dict[str, str] = {}

        async def fetch(digest: str, desc: dict[str, Any]) -> None:
            lid = _short(digest)
            size = int(desc.get("size") or 0)
            path = os.path.join(staging, digest.partition(":")[2])
            attempt = 1
            while True:
                fsink = _FileSink(path)
                throttle = _Throttle(progress, "Downloading", lid, size)
                try:
                    await client.get_blob(digest, fsink, size or None, throttle)
                    break
                except (TransportFailed, RegistryError) as e:
                    # dockerd retries broken downloads (not verification failures or 4xx)
                    if attempt >= MAX_DOWNLOAD_ATTEMPTS or (
                        isinstance(e, RegistryError) and e.status < 500
                    ):
                        raise
                    log.info("download of {digest} failed ({err}); retrying", digest=digest, err=e)
                    await self._countdown(progress, lid, attempt)
                    attempt += 1
                finally:
                    await self.blocking.run(fsink.close)
            progress(Progress("Verifying Checksum", lid, True))
            progress(Progress("Download complete", lid, True))
            if self.on_pull_bytes is not None:
                self.on_pull_bytes(throttle.current)
            paths[digest] = path

        async def limited(digest: str, desc: dict[str, Any]) -> None:
            await sem.acquire()
            try:
                await fetch(digest, desc)
            finally:
                sem.release()

        ds = [Deferred.fromCoroutine(limited(d, desc)) for d, desc in to_fetch.items()]
        if ds:
            try:
                await gatherResults(ds, consumeErrors=True)
            except FirstError as e:
                err = e.subFailure.value or e
                if isinstance(err, DigestMismatch):
                    raise InvalidParameter(
                        f"filesystem layer verification failed for digest {err.expected.split()[0]}"
                    ) from err
                if isinstance(err, (RegistryError, TransportFailed)):
                    raise _pull_error(ref, err) from err
                raise err from None

        files = [
            "" if have else paths[str(desc["digest"])]
            for desc, have in zip(layers, present, strict=True)
        ]
        missing = [i for i, f in enumerate(files) if f]

        def extracting(i: int) -> None:
            size = int(layers[i].get("size") or 0)
            progress(Progress("Extracting", _short(str(layers[i]["digest"])), True, size, size))

        def layer_done(i: int) -> None:
            if i in missing:
                progress(Progress("Pull complete", _short(str(layers[i]["digest"])), True))
                later = [j for j in missing if j > i]
                if later:
                    extracting(later[0])

        if missing:
            extracting(missing[0])
        refs = [r for r in (ref,) if r.tag is not None and r.digest is None]
        refs.append(Reference(ref.domain, ref.path, None, top.digest))
        updated = await self.store.store_pulled_image(config, files, refs, layer_done)
        progress(Progress(f"Digest: {top.digest}"))
        return updated

    # -- distribution inspect --

    async def inspect(
        self, image: str, auth: RegistryAuth | None
    ) -> tuple[str, str, int, list[dict[str, str]]]:
        """C{GET /distribution/{name}/json}: (media type, digest, size, platforms) of a reference.

        @raise NotFound: unknown repository or tag.
        """
        ref = parse_normalized(image).with_default_tag()
        cands = self._candidates(ref, auth, ("pull",))
        try:
            client, top = await cands.first(
                lambda c: c.get_manifest(ref.digest or ref.tag or "latest"), ref
            )
        except DigestMismatch as e:
            raise InvalidParameter(f"manifest verification failed for digest {e.expected}") from e
        doc = top.json()
        platforms: list[dict[str, str]] = []
        if "manifests" in doc:
            for m in doc.get("manifests") or []:
                p = m.get("platform") or {}
                if p:
                    platforms.append({k: str(v) for k, v in p.items() if isinstance(v, str)})
        else:
            sink = _MemorySink()
            cdesc = doc.get("config") or {}
            try:
                await client.get_blob(str(cdesc.get("digest", "")), sink, cdesc.get("size"))
                cfg = json.loads(sink.buf.getvalue())
            except (RegistryError, TransportFailed, DigestMismatch, ValueError) as e:
                raise _pull_error(ref, e) from e
            p = {"architecture": str(cfg.get("architecture", "")), "os": str(cfg.get("os", ""))}
            if cfg.get("variant"):
                p["variant"] = str(cfg["variant"])
            platforms.append(p)
        return top.media_type, top.digest, len(top.data), platforms

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
        digest, size = await self.blocking.run(_gzip_file, layer.tar_path, path)
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

    # -- search --

    async def search(
        self,
        term: str,
        limit: int,
        filters: dict[str, list[str]],
        auth: RegistryAuth | None,
    ) -> list[SearchResult]:
        """C{docker search}: the v1 search API of the term's index, filtered like dockerd 28.

        @raise InvalidParameter: bad filters, term or limit, or an unreachable private index.
        @raise SystemError_: the search request failed, or its answer is not a search result.
        """
        for key in filters:
            if key not in SEARCH_FILTERS:
                raise InvalidParameter(f"invalid filter '{key}'")
        # is-automated is deprecated: nothing is automated any more (dockerd 28)
        if _bool_filter(filters, "is-automated"):
            return []
        official_only = _bool_filter(filters, "is-official")
        min_stars = 0
        for value in filters.get("stars", []):
            try:
                min_stars = max(min_stars, int(value))
            except ValueError:
                raise InvalidParameter(
                    f"invalid filter 'stars={value}': strconv.Atoi: parsing {_go_quote(value)}: "
                    "invalid syntax"
                ) from None
        index = await self._index_client(term, auth)
        index_name, remote = split_search_term(term)
        if index.official:
            remote = remote.removeprefix("library/")
        if limit == 0:
            limit = DEFAULT_SEARCH_LIMIT
        if limit < 1 or limit > 100:
            raise InvalidParameter(f"limit {limit} is outside the range of [1, 100]")
        try:
            await index.authorize()
            status, body = await index.search(remote, limit)
        except TransportFailed as e:
            raise SystemError_(str(e)) from e
        if status != 200:
            raise SystemError_(f"Unexpected status code {status}")
        try:
            doc = json.loads(body)
            rows = doc.get("results") or [] if isinstance(doc, dict) else None
            if not isinstance(rows, list):
                raise ValueError("results is not a list")
            results = [_search_result(r) for r in rows]
        except (ValueError, TypeError, AttributeError) as e:
            raise SystemError_(f"error decoding registry search results: {e}") from e
        _ = index_name
        out = []
        for r in results:
            if "is-official" in filters and r.is_official != official_only:
                continue
            if "stars" in filters and r.star_count < min_stars:
                continue
            out.append(r)
        return out

    async def _index_client(self, term: str, auth: RegistryAuth | None) -> IndexClient:
        """dockerd's newV1Endpoint: the index of C{term}, pinged over HTTPS, then over plain
        HTTP when the index is insecure."""
        if term.startswith(("http://", "https://")):
            raise InvalidParameter(
                f"invalid repository name: repository name ({term}) should not have a scheme"
            )
        index_name, _ = split_search_term(term)
        if index_name in ("docker.io", "index.docker.io"):
            return IndexClient(self.http, Endpoint("index.docker.io", "https"), auth, True)
        hosts = self._hosts()
        insecure = hosts.is_insecure(index_name)
        secure = IndexClient(
            self.http, Endpoint(index_name, "https", verify_tls=not insecure), auth
        )
        try:
            await secure.ping()
            return secure
        except TransportFailed as e:
            first = e
        if not insecure:
            raise InvalidParameter(
                f"invalid registry endpoint {secure.url}: {first}. If this private registry "
                f"supports only HTTP or HTTPS with an unknown CA certificate, please add "
                f"`--insecure-registry {index_name}` to the daemon's arguments. In the case of "
                f"HTTPS, if you have access to the registry's CA certificate, no need for the "
                f"flag; simply place the CA certificate at "
                f"/etc/docker/certs.d/{index_name}/ca.crt"
            )
        plain = IndexClient(self.http, Endpoint(index_name, "http"), auth)
        try:
            await plain.ping()
        except TransportFailed as e:
            raise InvalidParameter(
                f'invalid registry endpoint "{plain.url}". HTTPS attempt: {first}. '
                f"HTTP attempt: {e}"
            ) from e
        return plain

    # -- login --

    async def login(self, auth: RegistryAuth) -> str:
        """Check credentials against the registry; return dockerd's status text.

        @raise Unauthorized: the registry refused them.
        """
        host = _login_host(auth.server_address)
        last: Exception | None = None
        for ep in self._hosts().endpoints(host, push=True):
            c = RegistryClient(self.http, self.blocking, ep, "", auth, ())
            c.scopes = []
            try:
                await c.login()
                return "Login Succeeded"
            except TransportFailed as e:
                last = e
                continue
            except AuthenticationFailed as e:
                raise Unauthorized(str(e) if not e.errors else _auth_text(e)) from e
            except RegistryError as e:
                raise SystemError_(f"login attempt to {ep.base}/v2/ failed: {e}") from e
        raise SystemError_(str(last) if last else f'Get "https://{host}/v2/": unreachable')


class _Candidates:
    """The endpoints of one registry for one operation, pinged lazily, in preference order.

    An endpoint that cannot be reached (or is not a registry) is skipped; a mirror that fails
    an operation falls back to the next endpoint; the registry itself does not.
    """

    def __init__(
        self,
        svc: DistributionService,
        ref: Reference,
        auth: RegistryAuth | None,
        actions: Sequence[str],
        endpoints: Sequence[Endpoint],
    ) -> None:
        self._svc = svc
        self.ref = ref
        self._auth = auth
        self._actions = tuple(actions)
        self.endpoints = list(endpoints)
        self._clients: dict[int, RegistryClient | Exception] = {}

    async def _client(self, i: int) -> RegistryClient | Exception:
        if i not in self._clients:
            ep = self.endpoints[i]
            c = RegistryClient(
                self._svc.http, self._svc.blocking, ep, self.ref.path, self._auth, self._actions
            )
            try:
                await c.ping()
                self._clients[i] = c
            except (TransportFailed, RegistryError) as e:
                log.debug("registry endpoint {url} failed: {err}", url=ep.base, err=e)
                self._clients[i] = e
        return self._clients[i]

    async def first(
        self, fn: Callable[[RegistryClient], Any], ref: Reference | None = None
    ) -> tuple[RegistryClient, Any]:
        """Run C{fn} on the first endpoint that answers (falling back past failing mirrors)."""
        last: Exception | None = None
        for i, ep in enumerate(self.endpoints):
            c = await self._client(i)
            if isinstance(c, Exception):
                last = c
                continue
            try:
                return c, await fn(c)
            except (RegistryError, TransportFailed) as e:
                last = e
                if not ep.mirror:
                    break
        raise _unreachable(ref or self.ref, last)


async def _nothing(_: RegistryClient) -> None:
    return None


SEARCH_FILTERS = ("is-automated", "is-official", "stars")
DEFAULT_SEARCH_LIMIT = 25


@attrs.frozen
class SearchResult:
    """One C{docker search} row."""

    name: str
    description: str = ""
    star_count: int = 0
    is_official: bool = False
    is_automated: bool = False


def split_search_term(term: str) -> tuple[str, str]:
    """dockerd's splitReposSearchTerm + normalizeIndexName: (index name, remote name)."""
    first, sep, rest = term.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"):
        return "docker.io", term
    return ("docker.io" if first == "index.docker.io" else first), rest


def _go_quote(value: str) -> str:
    return json.dumps(value)


def _bool_filter(filters: dict[str, list[str]], key: str) -> bool:
    """Go's filters.Args.GetBoolOrDefault (false when absent)."""
    if key not in filters:
        return False
    values = set(filters[key])
    is_false = bool(values & {"0", "false"})
    is_true = bool(values & {"1", "true"})
    if is_false == is_true:
        shown = "[" + " ".join(sorted(values)) + "]"
        raise InvalidParameter(f"invalid filter '{key}={shown}'")
    return is_true


def _search_result(row: Any) -> SearchResult:
    if not isinstance(row, dict):
        raise TypeError("a search result is not an object")
    stars = row.get("star_count", 0)
    if not isinstance(stars, int) or isinstance(stars, bool):
        raise TypeError("star_count is not a number")
    return SearchResult(
        name=str(row.get("name") or ""),
        description=str(row.get("description") or ""),
        star_count=stars,
        is_official=bool(row.get("is_official", False)),
        is_automated=False,  # deprecated: always false (dockerd 28)
    )


def _auth_text(e: RegistryError) -> str:
    return e.render()


def _login_host(server: str) -> str:
    s = server.strip()
    if not s or "index.docker.io" in s or s in ("docker.io", "registry-1.docker.io"):
        return DEFAULT_DOMAIN
    if "://" in s:
        s = s.split("://", 1)[1]
    return s.split("/", 1)[0]


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


def _select_platform(index: dict[str, Any], want: tuple[str, str, str]) -> str | None:
    os_, arch, variant = want
    best: str | None = None
    for m in index.get("manifests") or []:
        p = m.get("platform") or {}
        if p.get("os") != os_ or p.get("architecture") != arch:
            continue
        v = p.get("variant", "")
        if variant and v and v != variant:
            continue
        if variant and not v and arch != "arm64":
            continue
        if best is None or (variant and v == variant):
            best = str(m.get("digest"))
            if not variant or v == variant:
                return best
    return best


def _pull_error(ref: Reference, e: Exception) -> PydError:
    if isinstance(e, PydError):
        return e
    if isinstance(e, RegistryError):
        codes = e.codes
        first = e.errors[0] if e.errors else {}
        cause = RegistryError(e.status, [first], e.url).render() if first else str(e)
        if codes and codes[0] == "MANIFEST_UNKNOWN":
            return NotFound(f"manifest for {ref.familiar()} not found: {cause}")
        if codes and codes[0] == "NAME_UNKNOWN":
            return NotFound(f"repository {ref.familiar_name} not found: {cause}")
        if codes and codes[0] == "DENIED":
            return NotFound(
                f"pull access denied for {ref.familiar_name}, repository does not exist or "
                f"may require 'docker login': {cause}"
            )
        if e.status == 404:
            return NotFound(f"manifest for {ref.familiar()} not found: {cause}")
        if isinstance(e, AuthenticationFailed):
            return SystemError_(cause if first else "unauthorized: authentication required")
        return SystemError_(cause)
    if isinstance(e, TransportFailed):
        return SystemError_(str(e))
    return SystemError_(str(e))


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


def _unreachable(ref: Reference, e: Exception | None) -> PydError:
    if isinstance(e, (RegistryError, PydError)):
        return _pull_error(ref, e)
    if isinstance(e, TransportFailed):
        return SystemError_(str(e))
    return SystemError_(f'Get "https://{ref.domain}/v2/": {e}')
