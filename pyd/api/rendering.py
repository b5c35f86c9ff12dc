"""One bad record never fails a listing or an inspect (layer: api).

A record that cannot be rendered (mistyped data stored by an older pyd, a row edited by hand) is
logged with its traceback and shown as a stub carrying its id, so every other object still
lists and the bad one can be seen and removed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from twisted.logger import Logger

log = Logger()

_R = TypeVar("_R")

UNREADABLE = "unreadable record (see the daemon's log)"


def render_one(
    kind: str,
    key: str,
    record: _R,
    render: Callable[[_R], dict[str, Any]],
    stub: Callable[[_R], dict[str, Any]],
) -> dict[str, Any]:
    """C{render(record)}, or C{stub(record)} when rendering raises (logged as C{kind} C{key})."""
    try:
        return render(record)
    except Exception:  # noqa: BLE001 - one bad record must not fail the request
        log.failure("{kind} {key} cannot be rendered", kind=kind, key=key)
        return stub(record)


def render_all(
    kind: str,
    records: Iterable[_R],
    key: Callable[[_R], str],
    render: Callable[[_R], dict[str, Any]],
    stub: Callable[[_R], dict[str, Any]],
) -> list[dict[str, Any]]:
    """L{render_one} for each record, in order."""
    return [render_one(kind, key(r), r, render, stub) for r in records]
