"""Fakes and builders for image-store unit tests."""

from __future__ import annotations

import os
from collections.abc import Sequence

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock

from pyd.core.errors import Conflict, NotFound
from pyd.core.records import CommitSource
from pyd.core.seams import InlineBlocking
from pyd.drivers.storage.layers import InProcessExtractor, LayerStore
from pyd.engine.commit import CommitContainers
from pyd.engine.contracts import ImageStore
from pyd.engine.images import ImageService
from pyd.state.images import ImageRepository
from tests.fakes.events import FakeEvents
from tests.helpers.memdb import memory_db


class FakeContainers:
    """The container area's view of which containers use which image."""

    def __init__(self) -> None:
        self.uses: dict[str, list[tuple[str, bool]]] = {}

    async def __call__(self, image_id: str) -> Sequence[tuple[str, bool]]:
        return list(self.uses.get(image_id, []))


class FakeCommitContainers:
    """L{pyd.engine.commit.CommitContainers}: the containers in C{sources}, by name or id;
    C{calls} records pause/unpause; C{pause_error} makes pause refuse (already paused)."""

    def __init__(self, *sources: CommitSource, pause_error: bool = False) -> None:
        self.sources = list(sources)
        self.pause_error = pause_error
        self.calls: list[str] = []

    async def commit_source(self, ref: str) -> CommitSource:
        for s in self.sources:
            if ref in (s.container_id, s.name):
                return s
        raise NotFound(f"No such container: {ref}")

    async def pause(self, ref: str, for_commit: bool = False) -> None:
        if self.pause_error:
            raise Conflict(f"Container {ref} is already paused")
        self.calls.append("pause for commit" if for_commit else "pause")

    async def unpause(self, ref: str) -> None:
        self.calls.append("unpause")


def make_image_service(
    root: str, clock: Clock | None = None
) -> tuple[ImageService, FakeEvents, FakeContainers, ImageRepository]:
    """An L{ImageService} on an in-memory DB, inline blocking and a store under C{root}."""
    blocking = InlineBlocking()
    db = memory_db()
    repo = ImageRepository(db)
    store = LayerStore(
        os.path.join(root, "storage"), InProcessExtractor(blocking), use_fsconfig=True
    )
    events = FakeEvents()
    containers = FakeContainers()
    clock = clock or Clock()
    clock.advance(1_800_000_000)
    svc = ImageService(repo, store, blocking, events, clock, containers)
    d = ensureDeferred(svc.start())
    assert d.called
    return svc, events, containers, repo


# mypy checks the fake, and the real image service, against the seams they stand in for
_IS_COMMIT_CONTAINERS: type[CommitContainers] = FakeCommitContainers
_IS_IMAGE_STORE: type[ImageStore] = ImageService
