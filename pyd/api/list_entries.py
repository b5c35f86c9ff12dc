"""The entries of C{GET /containers/json}, each encoded once per container record (layer: api).

A listing renders every container: the command line, ports, labels, networks and mounts of each
turned into a dict and encoded, ~25 µs a container, most of a `docker ps -a` of a thousand. A
container's record is immutable (every change makes a new one), so its entry is a function of
the record, the names it is listed under (links add some) and the clock (its C{Status}, "Up 5
minutes"): the entry is encoded once per record with a marker for the status, and each listing
joins the two halves around the status of the moment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyd.api.container_views import list_json, status_text
from pyd.api.wire import encode_json
from pyd.core.records import Container

# Stands for the status in an encoded entry: no status text holds it (they are ASCII words,
# digits and parentheses), and encoded it is one run of bytes the split finds once.
_MARK = "\x00status\x00"
_MARK_BYTES = encode_json(_MARK)

# Entries kept beyond the containers of the last whole listing (a listing of some only adds).
SPARE = 256


class ListEntries:
    """Encoded listing entries by container id, for the record they were made from."""

    def __init__(self) -> None:
        self._by_id: dict[str, tuple[Container, tuple[str, ...], bytes, bytes]] = {}

    def encoded(self, c: Container, names: Sequence[str], now_nano: int) -> bytes:
        """C{c}'s entry (as L{list_json} with C{Names} set to C{names}), encoded."""
        key = tuple(names)
        hit = self._by_id.get(c.id)
        if hit is None or hit[0] is not c or hit[1] != key:
            item: dict[str, Any] = list_json(c, now_nano)
            item["Names"] = list(key)
            item["Status"] = _MARK
            before, mark, after = encode_json(item).partition(_MARK_BYTES)
            if not mark:  # cannot happen; never a wrong entry if it did
                return encode_json({**item, "Status": status_text(c, now_nano)})
            hit = (c, key, before, after)
            self._by_id[c.id] = hit
        return hit[2] + encode_json(status_text(c, now_nano)) + hit[3]

    def keep_only(self, ids: set[str]) -> None:
        """After a listing of every container (C{ids}): drop the entries of the others
        (removed containers)."""
        for cid in [cid for cid in self._by_id if cid not in ids]:
            del self._by_id[cid]

    def bound(self, listed: int) -> None:
        """After a partial listing: forget everything when far more is kept than listed."""
        if len(self._by_id) > 2 * listed + SPARE:
            self._by_id.clear()
