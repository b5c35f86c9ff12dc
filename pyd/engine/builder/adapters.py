"""Adapters from the container and distribution services to the builder's seams (layer: engine).

The builder takes the image service as it is (L{pyd.engine.contracts.BuildImages}); running a step
container and pulling a base image go through these, so the builder does not depend on the other
areas' modules beyond these calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pyd.core.errors import NotFound
from pyd.core.records import Image, RegistryAuth
from pyd.engine.builder.base import split_tag
from pyd.engine.containers.logfiles import LogEntry


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
