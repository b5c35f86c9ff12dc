"""Fakes and builders for image-store unit tests."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock

from pyd.core.seams import InlineBlocking
from pyd.drivers.storage.layers import InProcessExtractor, LayerStore
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


def run(coro: Any) -> Any:
    """Drive an engine coroutine that completes synchronously (inline blocking); return its result
    or raise its exception."""
    d = ensureDeferred(coro)
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "coroutine did not complete synchronously"
    r = results[0]
    from twisted.python.failure import Failure

    if isinstance(r, Failure):
        r.raiseException()
    return r
