"""C{docker commit} (layer: engine): a container's writable layer and config become an image.

It sits over the container and image areas and is given both at construction, each as the narrow
interface it uses (L{CommitContainers}, L{pyd.engine.contracts.CommitImages}): neither area
needs the other for a commit. dockerd's rules live here: the container's config (overridden by
the request body, then the C{changes}) on top of its image's, the running container paused
meanwhile unless asked not to, the container recorded in the image, the container C{commit}
event after the image's C{create}/C{tag}.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from pyd.core import reference as refs
from pyd.core.errors import PydError
from pyd.core.records import CommitSource, Image
from pyd.core.seams import EventSink
from pyd.engine.containers.runconfig import merge_user_env
from pyd.engine.contracts import CommitImages, CommitMeta
from pyd.engine.imagechanges import apply_changes


class CommitContainers(Protocol):
    """What a commit needs from the container service."""

    async def commit_source(self, ref: str) -> CommitSource:
        """The container C{ref} names. @raise NotFound: C{No such container: <ref>}."""
        ...

    async def pause(self, ref: str, for_commit: bool = False) -> None:
        """Freeze it (C{for_commit}: marked as the commit's own, so that a restart after a
        crash mid-commit unpauses it). @raise Conflict: not running or already paused."""
        ...

    async def unpause(self, ref: str) -> None:
        """Thaw it. @raise Conflict: not paused."""
        ...


class CommitService:
    """C{POST /commit}."""

    def __init__(
        self, containers: CommitContainers, images: CommitImages, events: EventSink | None
    ) -> None:
        self._containers = containers
        self._images = images
        self._events = events

    async def commit_container(
        self,
        ref: str,
        repo_tag: str | None,
        override: dict[str, Any],
        changes: Sequence[str] = (),
        author: str = "",
        comment: str = "",
        pause: bool = True,
    ) -> Image:
        """C{docker commit}: the container's config (overridden by C{override}, then
        C{changes}) on top of its image's, and its writable layer as a new layer. Like
        dockerd, a running container is paused meanwhile unless C{pause} is false; the image
        records the container (id, config), its command as history, and the engine version.

        @raise NotFound: C{No such container: <ref>}.
        """
        source = await self._containers.commit_source(ref)
        base: dict[str, Any] = {}
        rw_image = await self._images.rw_image(source.container_id)
        if rw_image is not None:
            base = dict(rw_image.container_config)
        container_config = dict(source.config or {})
        if override:
            # dockerd (daemon/commit.go) applies the changes to the request's config, then
            # merges the container's into it (the request's Env first)
            config = merge_commit_config(base, container_config, apply_changes(override, changes))
        else:  # without one the changes apply to the container's own config
            config = apply_changes(merge_commit_config(base, container_config, {}), changes)
        cmd = container_config.get("Cmd") or []
        meta = CommitMeta(
            created_by=" ".join(cmd) if isinstance(cmd, list) else str(cmd),
            author=author,
            comment=comment,
            container={"id": source.container_id, "config": container_config},
        )
        paused = False
        if pause and source.running:
            try:
                await self._containers.pause(source.container_id, for_commit=True)
                paused = True
            except PydError:
                paused = False  # already paused, or stopped meanwhile: commit as it is
        try:
            img = await self._images.commit(source.container_id, config, meta, repo_tag)
            if self._events is not None:
                # dockerd's container "commit" event (after the image's create/tag)
                attrs_ = {k: str(v) for k, v in (container_config.get("Labels") or {}).items()}
                attrs_.update(
                    {
                        "comment": comment,
                        "image": str(container_config.get("Image") or ""),
                        "imageID": img.id,
                        "imageRef": refs.familiar(str(refs.parse_with_tag(repo_tag)))
                        if repo_tag
                        else "",
                        "name": source.name.lstrip("/"),
                    }
                )
                self._events.emit("container", "commit", source.container_id, attrs_)
            return img
        finally:
            if paused:
                try:
                    await self._containers.unpause(source.container_id)
                except PydError:
                    pass  # unpaused or gone meanwhile


_COMMIT_KEYS = (
    "User",
    "ExposedPorts",
    "Env",
    "Cmd",
    "Healthcheck",
    "ArgsEscaped",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "OnBuild",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "Shell",
)


def merge_commit_config(
    image: dict[str, Any], container: dict[str, Any], override: dict[str, Any]
) -> dict[str, Any]:
    """dockerd's commit config: the image's, then the container's, then the request body's."""
    out = {k: v for k, v in image.items() if k in _COMMIT_KEYS}
    for src in (container, override):
        for key in _COMMIT_KEYS:
            if key in src and src[key] not in (None, "", [], {}):
                if key == "Env" and out.get("Env"):
                    # moby daemon/commit.go merge: the newer Env, then the older entries
                    # whose names it does not set
                    out[key] = merge_user_env(src[key], out["Env"])
                else:
                    out[key] = src[key]
    return out
