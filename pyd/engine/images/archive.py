"""Image archives (layer: engine): C{docker load} of docker-archive and OCI layouts (verified
blobs), C{docker save} in both formats, C{docker import} from a file, a stream or a URL.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import urllib.parse
from collections.abc import Callable, Sequence
from typing import IO, Any

import attrs
from twisted.logger import Logger

from pyd.core import reference as refs
from pyd.core.errors import (
    InvalidParameter,
    SystemError_,
    Unsupported,
    no_such_image,
)
from pyd.core.records import Image, Layer
from pyd.drivers.storage.archive import (
    ArchiveContent,
    ArchiveError,
    StagedArchive,
    sha256_source,
    stage_archive,
    write_archive,
)
from pyd.drivers.storage.fetch import FetchFailed
from pyd.drivers.storage.layers import LayerSource
from pyd.drivers.storage.tarsplit import SplitError
from pyd.engine.images.platform import Platform, image_platform, matches
from pyd.engine.images.store import (
    DOCKER_MANIFEST_LIST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    ImageStoreBase,
    _canonical_json,
    _is_id_prefix,
)
from pyd.state.images import StoredImage

log = Logger()


def check_import_url(url: str) -> None:
    """C{docker import <url>} fetches http and https only; anything else (C{file:}, a host path,
    C{ftp:}, a malformed address) is the client's mistake, refused before any fetch.

    @raise InvalidParameter: with the reason.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as e:
        raise InvalidParameter(f"invalid import URL {url!r}: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidParameter(
            f"unsupported import source {url!r}: only http:// and https:// URLs can be imported"
        )


class ImageArchives(ImageStoreBase):
    """C{docker load}, C{docker save} and C{docker import} (file, stream or URL)."""

    # --- load / save / import -----------------------------------------------------------------

    async def load(
        self,
        src: IO[bytes],
        progress: Callable[[str], None],
        platform: Platform | None = None,
    ) -> list[str]:
        """C{docker load}: a docker-archive or OCI-layout tar (maybe compressed) from C{src};
        with C{platform}, the images of another platform in it are skipped (as moby 28).

        Calls C{progress} with each "Loaded image: ..." line; returns the loaded references/ids.
        @raise InvalidParameter: the archive is malformed or a blob does not match its digest;
            images already loaded from the same archive stay, nothing half-made is visible.
        """
        staging = await self._io.run(self._store.staging_dir)
        try:
            try:
                archive = await self._io.run(stage_archive, src, staging)
            except ArchiveError as e:
                raise InvalidParameter(f"failed to read archive: {e}") from e
            entries = await self._io.run(_archive_images, archive)
            loaded: list[str] = []
            for entry in entries:
                if platform is not None and not matches(
                    platform, image_platform(json.loads(entry.config_bytes))
                ):
                    continue
                image_id, _ = await self.store_image(entry.config_bytes, entry.layers)
                for t in entry.tags:
                    parsed = refs.parse_with_tag(t)
                    async with self._lock:
                        old = await self._repo.set_ref(
                            str(parsed), "tag", image_id, self._now_nano(), touch=False
                        )
                    if old and old != image_id:
                        progress(
                            f"The image {parsed.familiar()} already exists, renaming the old one "
                            f"with ID {old} to empty string\n"
                        )
                    progress(f"Loaded image: {parsed.familiar()}\n")
                    loaded.append(parsed.familiar())
                    self._emit("tag", image_id, parsed.familiar())
                if not entry.tags:
                    progress(f"Loaded image ID: {image_id}\n")
                    loaded.append(image_id)
                self._emit("load", image_id, image_id)
            return loaded
        finally:
            await self._io.run(self._store.discard, staging)

    async def save(self, names: Sequence[str], out: IO[bytes]) -> None:
        """C{docker save}: write a tar with both the docker-archive and the OCI layout.

        @raise NotFound: one of C{names} does not exist (nothing written).
        """
        order: list[str] = []
        tags_of: dict[str, list[str]] = {}

        def add(image_id: str, tag: str | None) -> None:
            if image_id not in tags_of:
                order.append(image_id)
                tags_of[image_id] = []
            if tag is not None and tag not in tags_of[image_id]:
                tags_of[image_id].append(tag)

        for name in names:
            s = await self._lookup(name)
            if _is_id_prefix(s.id, name) or refs.is_digest(name):
                add(s.id, None)  # by id: no tags, like dockerd
                continue
            parsed = refs.parse_normalized(name)
            if parsed.tag is None and parsed.digest is None:
                # a repository name: every tag of that repository (dockerd's ReferencesByName)
                found = False
                for img in await self._repo.list_images():
                    for t in img.tags:
                        if refs.parse_normalized(t).name == parsed.name:
                            add(img.id, t)
                            found = True
                if not found:
                    add(s.id, None)
            else:
                add(s.id, str(parsed) if parsed.tag is not None else None)
        plan: list[tuple[StoredImage, list[str] | None, list[Layer]]] = []
        for image_id in order:
            stored = await self._repo.get_image(image_id)
            if stored is None:
                raise no_such_image(image_id)
            plan.append((stored, tags_of[image_id], await self._repo.chain(stored.top_layer)))
        try:
            await self._io.run(self._write_save, plan, out)
        except SplitError as e:
            # a layer's files changed on disk since it was stored: no tar is given for it
            raise SystemError_(f"failed to read a stored layer: {e}") from None
        for s, _t, _l in plan:
            self._emit("save", s.id, s.id)

    def _write_save(
        self, plan: list[tuple[StoredImage, list[str] | None, list[Layer]]], out: IO[bytes]
    ) -> None:
        entries: list[tuple[str, ArchiveContent]] = []
        written: set[str] = set()
        manifest_json: list[dict[str, Any]] = []
        index_descs: list[dict[str, Any]] = []
        repositories: dict[str, dict[str, str]] = {}
        for s, wanted_tags, layers in plan:
            tags = wanted_tags
            layer_names = []
            layer_descs = []
            for layer in layers:
                name = "blobs/sha256/" + layer.diff_id[7:]
                size = self._store.layer_tar_size(layer.cache_id)
                if name not in written:
                    written.add(name)
                    entries.append((name, functools.partial(self._store.open_layer_tar,
                                                            layer.cache_id)))  # fmt: skip
                layer_names.append(name)
                layer_descs.append({"mediaType": OCI_LAYER, "digest": layer.diff_id, "size": size})
            cfg_name = "blobs/sha256/" + s.id[7:]
            if cfg_name not in written:
                written.add(cfg_name)
                entries.append((cfg_name, s.config_bytes))
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": s.id, "size": len(s.config_bytes)},
                "layers": layer_descs,
            }
            mbytes = _canonical_json(manifest)
            mdigest = "sha256:" + hashlib.sha256(mbytes).hexdigest()
            mname = "blobs/sha256/" + mdigest[7:]
            if mname not in written:
                written.add(mname)
                entries.append((mname, mbytes))
            if tags is None:
                tags = list(s.tags)
            familiar_tags = [refs.familiar(t) for t in tags]
            for t in tags:
                parsed = refs.parse_normalized(t)
                index_descs.append(
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": mdigest,
                        "size": len(mbytes),
                        "annotations": {
                            "io.containerd.image.name": str(parsed),
                            "org.opencontainers.image.ref.name": parsed.tag or "latest",
                        },
                    }
                )
                if layers:
                    # dockerd 25+: the top layer's diff id (no more v1 layer ids)
                    repositories.setdefault(parsed.familiar_name, {})[parsed.tag or "latest"] = (
                        layers[-1].diff_id[7:]
                    )
            if not tags:
                index_descs.append(
                    {"mediaType": OCI_MANIFEST, "digest": mdigest, "size": len(mbytes)}
                )
            manifest_json.append(
                {"Config": cfg_name, "RepoTags": familiar_tags or None, "Layers": layer_names}
            )
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_descs}
        entries.append(("index.json", _canonical_json(index)))
        # json.Encoder output, as dockerd writes both: newline-terminated
        entries.append(("manifest.json", _canonical_json(manifest_json) + b"\n"))
        entries.append(("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'))
        if repositories:
            entries.append(("repositories", _canonical_json(repositories) + b"\n"))
        write_archive(out, entries)

    async def save_to_file(self, names: Sequence[str]) -> str:
        """Write the save tar of C{names} to a staging file; return its path (see L{discard})."""
        path = await self._io.run(self._store.staging_file)
        try:
            f = await self._io.run(open, path, "wb")
            try:
                await self.save(names, f)
            finally:
                await self._io.run(f.close)
        except BaseException:
            await self._io.run(self._store.discard, path)
            raise
        return path

    async def open_file(self, path: str) -> IO[bytes]:
        """Open a staging file for reading (off the reactor thread)."""
        return await self._io.run(open, path, "rb")

    async def read_chunk(self, f: IO[bytes], size: int = 1 << 20) -> bytes:
        """Read the next chunk of an open staging file."""
        return await self._io.run(f.read, size)

    async def close_file(self, f: IO[bytes]) -> None:
        """Close it."""
        await self._io.run(f.close)

    async def new_staging_file(self) -> str:
        """An empty file under the store's tmp/ (for uploads and downloads)."""
        return await self._io.run(self._store.staging_file)

    async def discard(self, path: str) -> None:
        """Delete a staging file made by this service."""
        await self._io.run(self._store.discard, path)

    async def import_stream(
        self,
        src: IO[bytes],
        repo_tag: str | None,
        config: dict[str, Any],
        message: str = "",
        platform: tuple[str, str] | None = None,
    ) -> Image:
        """C{docker import -}: stage the stream, then import it."""
        path = await self.new_staging_file()
        try:

            def copy() -> None:
                with open(path, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)

            await self._io.run(copy)
            return await self.import_file(path, repo_tag, config, message or "", platform)
        finally:
            await self.discard(path)

    async def import_url(
        self,
        url: str,
        repo_tag: str | None,
        config: dict[str, Any],
        message: str = "",
        platform: tuple[str, str] | None = None,
    ) -> Image:
        """C{docker import <url>}: download, then import.

        @raise InvalidParameter: not an http(s) URL (nothing is fetched).
        @raise SystemError_: the download failed (dockerd answers 500 too).
        """
        if self.fetcher is None:
            raise Unsupported("import from a URL is not available")
        check_import_url(url)
        path = await self.new_staging_file()
        try:
            try:
                await self.fetcher(url, path)
            except FetchFailed as e:
                raise SystemError_(str(e)) from e
            return await self.import_file(
                path, repo_tag, config, message or f"Imported from {url}", platform
            )
        finally:
            await self.discard(path)

    async def import_file(
        self,
        src_path: str,
        repo_tag: str | None,
        config: dict[str, Any],
        message: str = "",
        platform: tuple[str, str] | None = None,
    ) -> Image:
        """C{docker import}: a root filesystem tar (maybe compressed) as a one-layer image."""
        return await self._create_image_from_layer(
            src_path,
            parent_top=None,
            base_cfg={},
            config=config,
            created_by="",
            comment=message,
            author="",
            parent_id=None,
            cache_key=None,
            repo_tag=repo_tag,
            event="import",
            os_arch=platform,
        )


@attrs.frozen
class _ArchiveImage:
    config_bytes: bytes
    layers: list[LayerSource]
    tags: list[str]


def _archive_images(archive: StagedArchive) -> list[_ArchiveImage]:
    """The images of a staged docker-archive (manifest.json) or OCI layout (index.json)."""
    mf = archive.read("manifest.json")
    if mf is not None:
        return _docker_archive_images(archive, mf)
    idx = archive.read("index.json")
    if idx is not None:
        return _oci_images(archive, idx)
    if archive.read("repositories") is not None:
        raise InvalidParameter("legacy (v1) image archives are not supported")
    raise InvalidParameter("invalid archive: does not contain a manifest.json or an index.json")


def _verify_blob(archive: StagedArchive, name: str, data: bytes | None = None) -> None:
    """Blob paths name their digest: check it (a tampered archive is refused)."""
    m = re.match(r"^blobs/sha256/([a-f0-9]{64})$", name)
    if not m:
        return
    path = archive.resolve(name)
    if path is None:
        raise InvalidParameter(f"invalid archive: {name} is missing")
    digest, _ = (
        (sha256_source(path), 0)
        if data is None
        else ("sha256:" + hashlib.sha256(data).hexdigest(), 0)
    )
    if digest[7:] != m.group(1):
        raise InvalidParameter(f"invalid archive: {name} has digest {digest}")


def _docker_archive_images(archive: StagedArchive, raw: bytes) -> list[_ArchiveImage]:
    try:
        items = json.loads(raw)
    except ValueError as e:
        raise InvalidParameter(f"invalid manifest.json: {e}") from e
    if not isinstance(items, list):
        raise InvalidParameter("invalid manifest.json: expected a list")
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str):
            raise InvalidParameter("invalid manifest.json: bad entry")
        cfg = archive.read(item["Config"])
        if cfg is None:
            raise InvalidParameter(f"invalid archive: config {item['Config']} is missing")
        _verify_blob(archive, item["Config"], cfg)
        layers = []
        for name in item.get("Layers") or []:
            path = archive.resolve(str(name))
            if path is None:
                raise InvalidParameter(f"invalid archive: layer {name} is missing")
            layers.append(path)
        tags = [str(t) for t in (item.get("RepoTags") or [])]
        for t in tags:
            refs.parse_normalized(t)
        out.append(_ArchiveImage(cfg, layers, tags))
    return out


def _oci_images(archive: StagedArchive, raw: bytes) -> list[_ArchiveImage]:
    try:
        index = json.loads(raw)
    except ValueError as e:
        raise InvalidParameter(f"invalid index.json: {e}") from e
    by_manifest: dict[str, _ArchiveImage] = {}
    order: list[str] = []

    def blob(digest: str) -> bytes:
        if not refs.is_digest(digest):
            raise InvalidParameter(f"invalid archive: bad digest {digest!r}")
        name = "blobs/sha256/" + digest[7:]
        data = archive.read(name)
        if data is None:
            raise InvalidParameter(f"invalid archive: blob {digest} is missing")
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise InvalidParameter(f"invalid archive: blob {digest} does not match its digest")
        return data

    def manifest_of(desc: dict[str, Any], depth: int = 0) -> tuple[str, dict[str, Any]] | None:
        data = blob(str(desc.get("digest")))
        m = json.loads(data)
        mt = m.get("mediaType") or desc.get("mediaType")
        if mt in (OCI_INDEX, DOCKER_MANIFEST_LIST) or "manifests" in m:
            if depth > 2:
                return None
            chosen = None
            for sub in m.get("manifests") or []:
                plat = sub.get("platform") or {}
                if (
                    plat.get("os", "linux") == "linux"
                    and plat.get("architecture", "amd64") == "amd64"
                ):
                    chosen = sub
                    break
            if chosen is None:
                return None
            return manifest_of(chosen, depth + 1)
        return str(desc.get("digest")), m

    for desc in index.get("manifests") or []:
        found = manifest_of(desc)
        if found is None:
            continue
        mdigest, m = found
        if mdigest not in by_manifest:
            cfg_digest = str((m.get("config") or {}).get("digest"))
            cfg = blob(cfg_digest)
            layers = []
            for ld in m.get("layers") or []:
                d = str(ld.get("digest"))
                if not refs.is_digest(d):
                    raise InvalidParameter(f"invalid archive: bad digest {d!r}")
                path = archive.resolve("blobs/sha256/" + d[7:])
                if path is None:
                    raise InvalidParameter(f"invalid archive: layer {d} is missing")
                digest = sha256_source(path)
                if digest != d:
                    raise InvalidParameter(f"invalid archive: layer {d} does not match its digest")
                layers.append(path)
            by_manifest[mdigest] = _ArchiveImage(cfg, layers, [])
            order.append(mdigest)
        ann = desc.get("annotations") or {}
        name = ann.get("io.containerd.image.name")
        if name:
            by_manifest[mdigest].tags.append(str(name))
    return [by_manifest[d] for d in order]
