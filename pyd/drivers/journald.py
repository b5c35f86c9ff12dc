"""Container log lines to the systemd journal over its native protocol, as dockerd's journald log
driver sends them (layer: drivers).

Each line is one datagram to C{/run/systemd/journal/socket}: C{KEY=value} lines, or, for a value
holding a newline, C{KEY}, a newline, its length as 64-bit little endian, the bytes and a newline.
The container's fields (CONTAINER_ID, CONTAINER_ID_FULL, CONTAINER_NAME, CONTAINER_TAG,
IMAGE_NAME, SYSLOG_IDENTIFIER) go with every line, with MESSAGE, PRIORITY (6 stdout, 3 stderr) and
SYSLOG_TIMESTAMP. Sending blocks (a socket): call L{JournaldSender.send} from the io pool.
"""

from __future__ import annotations

import datetime
import socket
import struct
from collections.abc import Mapping

JOURNAL_SOCKET = "/run/systemd/journal/socket"


def encode(fields: Mapping[str, str | bytes]) -> bytes:
    """The native protocol's datagram for C{fields}."""
    out = bytearray()
    for key, value in fields.items():
        raw = value if isinstance(value, bytes) else value.encode()
        k = key.encode()
        if b"\n" in raw:
            out += k + b"\n" + struct.pack("<Q", len(raw)) + raw + b"\n"
        else:
            out += k + b"=" + raw + b"\n"
    return bytes(out)


class JournaldSender:
    """Sends one container's lines to the journal."""

    def __init__(self, fields: Mapping[str, str], path: str = JOURNAL_SOCKET) -> None:
        self.fields = dict(fields)
        self.path = path
        self._sock: socket.socket | None = None

    def send(
        self, stream: str, line: bytes, when: datetime.datetime, tag: str, stamp: bytes = b""
    ) -> None:
        """Send one log line (C{tag} is already among the fields; C{stamp}: the log's own
        RFC 3339 timestamp, nanoseconds kept). @raise OSError: no journal."""
        fields: dict[str, str | bytes] = {
            "MESSAGE": line.rstrip(b"\n"),
            "PRIORITY": "3" if stream == "stderr" else "6",
            **self.fields,
            "SYSLOG_TIMESTAMP": stamp or when.isoformat().replace("+00:00", "Z"),
        }
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.sendto(encode(fields), self.path)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
