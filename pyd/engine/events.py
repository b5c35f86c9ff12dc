"""The event bus: persist, then fan out to C{/events} subscribers (layer: engine)."""

from __future__ import annotations

from collections.abc import Callable

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

        def fan_out(ev: Event) -> Event:
            for cb in list(self._subscribers):
                try:
                    cb(ev)
                except Exception:  # noqa: BLE001 - one bad subscriber must not stop the others
                    log.failure("event subscriber failed")
            return ev

        return d.addCallback(fan_out)

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
