"""The systemd journal's native protocol, decoded, for tests of the journald log driver."""

from __future__ import annotations

import struct


def journal_fields(datagram: bytes) -> dict[str, bytes]:
    """Decode one native-protocol datagram: C{KEY=value} lines and the binary-safe form
    (C{KEY}, newline, a little-endian 64-bit length, the value, newline)."""
    out: dict[str, bytes] = {}
    i = 0
    while i < len(datagram):
        nl = datagram.index(b"\n", i)
        line = datagram[i:nl]
        if b"=" in line:
            k, _, v = line.partition(b"=")
            out[k.decode()] = v
            i = nl + 1
        else:
            (n,) = struct.unpack("<Q", datagram[nl + 1 : nl + 9])
            out[line.decode()] = datagram[nl + 9 : nl + 9 + n]
            i = nl + 9 + n + 1
    return out
