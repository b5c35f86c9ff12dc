"""C{docker pull} (layer: engine): manifest and platform selection, parallel verified downloads
into staging (limited and retried), then one store of the image.
"""

from __future__ import annotations

import io
import json
import os
import platform as _platform
import shutil
import tempfile
import time
from typing import Any

from twisted.internet.defer import Deferred, DeferredSemaphore, FirstError, gatherResults
from twisted.logger import Logger

from pyd.core.errors import (
    InvalidParameter,
    NotFound,
)
from pyd.core.records import RegistryAuth
from pyd.core.reference import Reference, parse_normalized
from pyd.drivers.registry import (
    MT_DOCKER_LIST,
    MT_DOCKER_MANIFEST,
    MT_OCI_INDEX,
    MT_OCI_MANIFEST,
    MT_SCHEMA1,
    AuthenticationFailed,
    DigestMismatch,
    Manifest,
    RegistryClient,
    RegistryError,
    TransportFailed,
)
from pyd.engine.distribution.base import (
    DistributionBase,
    Progress,
    ProgressSink,
    _Candidates,
    _pull_error,
    _short,
    chain_ids,
)
from pyd.engine.spec import rules

log = Logger()


def host_platform() -> tuple[str, str, str]:
    """(os, architecture, variant) of this host in OCI terms."""
    m = _platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(m, m)
    variant = "v8" if arch == "arm64" else ""
    if m.startswith("armv7"):
        arch, variant = "arm", "v7"
    return "linux", arch, variant


def parse_platform(value: str) -> tuple[str, str, str]:
    """C{os[/arch[/variant]]} -> (os, arch, variant) as containerd's C{platforms.Parse}, which
    dockerd runs on the C{platform} parameter before it pulls (an unknown OS such as
    C{foobar} is refused); "" means the host's platform.

    @raise InvalidParameter: containerd's texts.
    """
    if not value:
        return host_platform()
    return rules.parse_platform(value, host_platform()[1])


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


class Pulls(DistributionBase):
    """Pull and inspect (C{/distribution/{name}/json})."""

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
        started = time.monotonic()
        try:
            await self._pull(image, tag, platform, auth, progress)
        finally:
            # dockerd times every pull, failed or not (ImageService.PullImage)
            if self.on_action is not None:
                self.on_action("pull", time.monotonic() - started)

    async def _pull(
        self,
        image: str,
        tag: str,
        platform: str,
        auth: RegistryAuth | None,
        progress: ProgressSink,
    ) -> None:
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
        except NotFound as e:
            # dockerd's distribution route answers the registry's own error, without the pull's
            # "manifest for X not found: " (moby api/server/router/distribution)
            prefix = f"manifest for {ref.familiar()} not found: "
            raise NotFound(e.message.removeprefix(prefix)) from None
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
