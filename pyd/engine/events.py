"""The event bus: persist, then fan out to C{/events} subscribers (layer: engine)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from pyd.core.records import Event
from pyd.core.seams import Clock
from pyd.state.events import EventRepository

log = Logger()

# Which attribute carries the object's name, per event type, for the name-or-id filters.
_FILTER_KEYS = {
    "container": "container",
    "image": "image",
    "network": "network",
    "volume": "volume",
    "daemon": "daemon",
    "plugin": "plugin",
    "node": "node",
    "service": "service",
    "secret": "secret",
    "config": "config",
}


@attrs.frozen
class EventFilter:
    """dockerd's C{/events} filters: a list of accepted values per key (empty = any)."""

    values: dict[str, list[str]] = attrs.field(factory=dict)

    def matches(self, ev: Event) -> bool:
        """Whether C{ev} passes every filter key."""
        f = self.values
        if f.get("type") and ev.type not in f["type"]:
            return False
        if (
            f.get("event")
            and ev.action not in f["event"]
            and ev.action.split(":")[0] not in f["event"]
        ):
            return False
        if f.get("scope") and ev.scope not in f["scope"]:
            return False
        for key in ("container", "image", "network", "volume", "daemon"):
            wanted = f.get(key)
            if not wanted:
                continue
            if ev.type != key and not (key == "image" and ev.type == "container"):
                return False
            if key == "image" and ev.type == "container":
                candidates = {ev.attributes.get("image", "")}
            else:
                candidates = {ev.actor_id, ev.attributes.get("name", "")}
            if not any(_name_or_id_match(w, c) for w in wanted for c in candidates if c):
                return False
        for label in f.get("label", []):
            k, _, v = label.partition("=")
            if k not in ev.attributes or ("=" in label and ev.attributes[k] != v):
                return False
        return True


def _name_or_id_match(wanted: str, candidate: str) -> bool:
    return candidate == wanted or (
        len(wanted) >= 1
        and candidate.startswith(wanted)
        and all(ch in "0123456789abcdef" for ch in wanted)
        and len(candidate) == 64
    )


class EventService:
    """Implements L{pyd.core.seams.EventSink}; C{subscribe} feeds live events to a callback."""

    def __init__(self, repo: EventRepository, clock: Clock) -> None:
        self._repo = repo
        self._clock = clock
        self._subscribers: list[Callable[[Event], None]] = []

    @property
    def subscriber_count(self) -> int:
        """How many live subscribers are connected (a metric)."""
        return len(self._subscribers)

    def now_nano(self) -> int:
        """The clock's time in nanoseconds."""
        return int(self._clock.seconds() * 1e9)

    def emit(
        self,
        type_: str,
        action: str,
        actor_id: str,
        attributes: dict[str, str] | None = None,
        scope: str = "local",
    ) -> Deferred[Event]:
        """Store the event, then hand it to every live subscriber."""
        d = self._repo.add(type_, action, actor_id, dict(attributes or {}), scope, self.now_nano())
        return d.addCallback(self._fan_out)

    def stage(
        self,
        type_: str,
        action: str,
        actor_id: str,
        attributes: dict[str, str] | None = None,
        scope: str = "local",
    ) -> _StagedEvent:
        """L{pyd.core.seams.EventSink.stage}: stored by the caller's transaction, published
        by the caller once it committed; emitted then instead (after them) while events
        emitted before wait for their batch."""
        attrs_ = dict(attributes or {})
        write = self._repo.writer(type_, action, actor_id, attrs_, scope, self.now_nano())

        def later() -> None:
            self.emit(type_, action, actor_id, attrs_, scope).addErrback(
                lambda f: log.failure(
                    "{type} event {action} not stored", f, type=type_, action=action
                )
            )

        return _StagedEvent(write, self._fan_out, later)

    def _fan_out(self, ev: Event) -> Event:
        for cb in list(self._subscribers):
            try:
                cb(ev)
            except Exception:  # noqa: BLE001 - one bad subscriber must not stop the others
                log.failure("event subscriber failed")
        return ev

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Register C{callback} for live events; returns the function that unsubscribes it."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def history(
        self,
        since_nano: int,
        until_nano: int | None,
        after_id: int = 0,
        limit: int | None = None,
    ) -> Deferred[list[Event]]:
        """Stored events in a time window, oldest first (a page: C{limit} after C{after_id})."""
        return self._repo.between(since_nano, until_nano, after_id, limit)


class _StagedEvent:
    """L{pyd.core.seams.StagedEvent} of the event bus: written on the DB thread by another
    repository's transaction, fanned out on the reactor once that committed (or, when the
    repository could not take it into that transaction, emitted then)."""

    def __init__(
        self,
        write: Callable[[Any], Event] | None,
        fan_out: Callable[[Event], object],
        later: Callable[[], None],
    ) -> None:
        self._write = write
        self._fan_out = fan_out
        self._later = later
        self._event: Event | None = None

    def write(self, conn: Any) -> None:
        """Store the event in the caller's transaction (nothing if it is emitted later)."""
        if self._write is not None:
            self._event = self._write(conn)

    def publish(self) -> None:
        """Fan the stored event out, or emit it now."""
        if self._write is None:
            self._later()
        elif self._event is not None:
            self._fan_out(self._event)
