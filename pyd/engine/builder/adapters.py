"""Adapters from the image and container services to the builder's seams (layer: engine).

They are typed against small protocols of what the builder uses, so the builder does not depend on
the other areas' modules beyond these calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from pyd.core.errors import NotFound
from pyd.core.records import Image, RegistryAuth
from pyd.engine.containers.logfiles import LogEntry


class _ImageService(Protocol):
    async def resolve(self, ref: str) -> Image: ...

    async def get(self, image_id: str) -> Image | None: ...

    async def create_rw_layer(self, container_id: str, image_id: str | None) -> None: ...

    async def mount_rw_layer(self, container_id: str) -> str: ...

    async def remove_rw_layer(self, container_id: str) -> None: ...

    async def commit(
        self,
        container_id: str,
        image_config: dict[str, Any],
        repo_tag: str | None = None,
        parent_id: str | None = None,
        cache_key: str | None = None,
    ) -> Image: ...

    async def commit_config(
        self,
        parent_id: str | None,
        image_config: dict[str, Any],
        created_by: str,
        author: str = "",
        cache_key: str | None = None,
        extra_top: dict[str, Any] | None = None,
    ) -> Image: ...

    async def tag(self, source: str, repo: str, tag: str | None) -> str: ...


class _CacheIndex(Protocol):
    def by_cache_key(self, cache_key: str) -> Deferred[str | None]: ...


def split_tag(ref: str) -> tuple[str, str | None]:
    """C{repo[:tag]} split at the tag's colon (not a registry port's)."""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, None


class ImageStoreAdapter:
    """L{pyd.engine.builder.builder.BuildImageStore} over the image service."""

    def __init__(self, images: _ImageService, index: _CacheIndex) -> None:
        self._images = images
        self._index = index

    async def resolve(self, ref: str) -> Image:
        """The local image."""
        return await self._images.resolve(ref)

    async def find_child(self, parent_id: str | None, cache_key: str) -> Image | None:
        """The cached image (the key already covers the parent)."""
        image_id = await self._index.by_cache_key(cache_key)
        if image_id is None:
            return None
        img = await self._images.get(image_id)
        if img is None or (img.parent_id or None) != parent_id:
            return None
        return img

    async def create_rw_layer(self, layer_id: str, image_id: str | None) -> None:
        """A writable layer over the image."""
        await self._images.create_rw_layer(layer_id, image_id)

    async def mount_rw_layer(self, layer_id: str) -> str:
        """Mount it."""
        return await self._images.mount_rw_layer(layer_id)

    async def remove_rw_layer(self, layer_id: str) -> None:
        """Drop it."""
        try:
            await self._images.remove_rw_layer(layer_id)
        except NotFound:  # the layer is already gone
            pass

    async def commit(
        self,
        layer_id: str,
        config: dict[str, Any],
        created_by: str,
        author: str,
        parent_id: str | None,
        cache_key: str | None,
        top: dict[str, Any] | None = None,
    ) -> Image:
        """Commit the layer; empty diffs add no layer."""
        cfg = dict(config)
        cfg["_commit"] = {"created_by": created_by, "author": author, "empty_layer_ok": True}
        if top:
            cfg["_commit"]["top"] = dict(top)
        return await self._images.commit(
            layer_id, cfg, repo_tag=None, parent_id=parent_id, cache_key=cache_key
        )

    async def commit_config(
        self,
        parent_id: str | None,
        config: dict[str, Any],
        created_by: str,
        author: str,
        cache_key: str | None,
        top: dict[str, Any] | None = None,
    ) -> Image:
        """A metadata-only step's image: the parent's layers, a new config."""
        return await self._images.commit_config(
            parent_id, dict(config), created_by, author, cache_key, top
        )

    async def tag(self, image_id: str, ref: str) -> str:
        """Tag; return the familiar name."""
        repo, tag = split_tag(ref)
        return await self._images.tag(image_id, repo, tag or "latest")


class ContainersAdapter:
    """L{pyd.engine.builder.builder.BuildContainers} over the container service.

    C{run} starts the container and streams its log until it exits (C{logs_request} must
    follow: the tail L{read_logs} opens is the one L{follow_logs} goes on reading).
    """

    def __init__(
        self,
        containers: Any,
        logs_request: Callable[[], Any],
    ) -> None:
        self._c = containers
        self._logs_request = logs_request

    async def create(
        self, image_id: str, config: dict[str, Any], host_config: dict[str, Any]
    ) -> str:
        """Create the step's container."""
        cfg = dict(config)
        cfg["Image"] = image_id
        cid, _warnings = await self._c.create(None, cfg, host_config, None)
        return str(cid)

    async def run(
        self,
        container_id: str,
        output: Callable[[bytes], None],
        cancelled: Callable[[], bool],
    ) -> int | None:
        """Start, stream the output, wait; return the exit code (None once cancelled)."""
        await self._c.start(container_id)
        req = self._logs_request()
        c, entries, tail = await self._c.read_logs(container_id, req)

        def write(batch: list[LogEntry]) -> None:
            for e in batch:
                # dockerd's build stream shows a RUN's stderr in red (streamformatter's
                # NewStderrWriter wraps each write in these codes).
                output(b"\033[91m" + e.data + b"\033[0m" if e.stream == "stderr" else e.data)

        write(entries)
        await self._c.follow_logs(c, req, tail, write, cancelled)
        if cancelled():
            return None
        result = await self._c.wait(container_id, "not-running")
        return int(getattr(result, "status_code", getattr(result, "exit_code", 0)) or 0)

    async def remove(self, container_id: str) -> None:
        """Force-remove with its writable layer."""
        await self._c.remove(container_id, force=True, volumes=True)

    def resolve_id(self, ref: str) -> str:
        """C{ContainerService.resolve}'s full id."""
        return str(self._c.resolve(ref).id)


class _Resolver(Protocol):
    async def resolve(self, ref: str) -> Image: ...


class DistributionPuller:
    """L{pyd.engine.builder.builder.ImagePuller} over the registry area's distribution service,
    looked up when a pull is needed (it may be wired after the builder, or not at all)."""

    def __init__(self, distribution: Callable[[], Any], images: _Resolver) -> None:
        self._distribution = distribution
        self._images = images

    async def pull(
        self, ref: str, progress: Any, auths: dict[str, RegistryAuth] | None = None
    ) -> Image:
        """Pull C{ref} (C{:latest} when it names no tag) with the matching credentials of
        C{auths}, then return the local image.

        @raise NotFound: no registry service is available.
        """
        dist = self._distribution()
        name = ref.split("@", 1)[0]
        repo, tag = split_tag(name)
        if dist is None:
            raise NotFound(
                f"pull access denied for {repo}, repository does not exist or may require "
                "'docker login': no registry service is configured"
            )
        auth = auth_for(repo, auths or {})
        if "@" in ref:
            await dist.pull(ref, "", "", auth, progress.pull_status)
        else:
            await dist.pull(repo, tag or "latest", "", auth, progress.pull_status)
        return await self._images.resolve(ref)


def _registry_of(repo: str) -> str:
    first, sep, _ = repo.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def _host_of(key: str) -> str:
    k = key.split("://", 1)[-1].split("/", 1)[0]
    return "docker.io" if k in ("index.docker.io", "registry-1.docker.io") else k


def auth_for(repo: str, auths: dict[str, RegistryAuth]) -> RegistryAuth | None:
    """The credentials of C{X-Registry-Config} for C{repo}'s registry, if any."""
    host = _registry_of(repo)
    for key, auth in auths.items():
        if _host_of(key) == host:
            return auth
    return None
