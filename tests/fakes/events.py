"""The one fake L{pyd.core.seams.EventSink} of the tests: it keeps every emitted event."""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed

from pyd.core.records import Event
from pyd.core.seams import EventSink


class FakeEvents:
    """An EventSink that keeps the events it was given, numbered from 1, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(
        self,
        type_: str,
        action: str,
        actor_id: str,
        attributes: dict[str, str] | None = None,
        scope: str = "local",
    ) -> Deferred[Event]:
        ev = Event(len(self.events) + 1, type_, action, actor_id, dict(attributes or {}), scope, 0)
        self.events.append(ev)
        return succeed(ev)

    def stage(
        self,
        type_: str,
        action: str,
        actor_id: str,
        attributes: dict[str, str] | None = None,
        scope: str = "local",
    ) -> _FakeStaged:
        """An event kept when the caller's transaction writes it."""
        return _FakeStaged(self, type_, action, actor_id, dict(attributes or {}), scope)

    def actions(self, actor_id: str) -> list[str]:
        """The actions emitted for C{actor_id}, in order."""
        return [e.action for e in self.events if e.actor_id == actor_id]

    def rows(self) -> list[tuple[str, str, str, dict[str, str]]]:
        """(type, action, actor id, attributes) of every event, in order."""
        return [(e.type, e.action, e.actor_id, e.attributes) for e in self.events]


class _FakeStaged:
    """L{FakeEvents.stage}'s event: kept, in order, when written."""

    def __init__(self, sink: FakeEvents, *fields: object) -> None:
        self._sink = sink
        self._fields = fields

    def write(self, conn: object) -> None:
        self._sink.emit(*self._fields)  # type: ignore[arg-type]  # the fields stage() was given

    def publish(self) -> None:
        """Nothing to fan out."""


# mypy checks the fake against the seam it stands in for
_IS_EVENT_SINK: type[EventSink] = FakeEvents
