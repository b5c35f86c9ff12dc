"""Container log lines to the systemd journal over its native protocol, as dockerd's journald log
driver sends them (layer: drivers).

Each line is one datagram to C{/run/systemd/journal/socket}: C{KEY=value} lines, or, for a value
holding a newline, C{KEY}, a newline, its length as 64-bit little endian, the bytes and a newline.
The container's fields (CONTAINER_ID, CONTAINER_ID_FULL, CONTAINER_NAME, CONTAINER_TAG,
IMAGE_NAME, SYSLOG_IDENTIFIER) go with every line, with MESSAGE, PRIORITY (6 stdout, 3 stderr) and
SYSLOG_TIMESTAMP. Sending blocks (a socket): call L{JournaldSender.send} from the io pool.

A line longer than dockerd's 16 KiB log buffer goes out as dockerd 28 sends it: 16 KiB pieces
with C{CONTAINER_PARTIAL_MESSAGE=true}, C{CONTAINER_PARTIAL_ID} (one random id per line),
C{CONTAINER_PARTIAL_ORDINAL} (1, 2, ...) and C{CONTAINER_PARTIAL_LAST=false}, then the rest with
C{CONTAINER_PARTIAL_LAST=true} and no C{CONTAINER_PARTIAL_MESSAGE}. The log file's own partial
chunks (conmon's) are gathered into those pieces; a line the container left without a newline
goes out when the sender closes (as the last piece of a split line, or as a plain message). As
dockerd 28's, every message carries C{CONTAINER_LOG_EPOCH} (random, one per run of the
container) and C{CONTAINER_LOG_ORDINAL} (1, 2, ... within that run).
"""

from __future__ import annotations

import datetime
import os
import socket
import struct
from collections.abc import Mapping

import attrs

JOURNAL_SOCKET = "/run/systemd/journal/socket"
PIECE = 16 * 1024  # dockerd's log buffer: a longer line is split into pieces this long


@attrs.define
class _Pending:
    """A stream's line not finished yet."""

    data: bytearray = attrs.field(factory=bytearray)
    id: str = ""
    ordinal: int = 0
    stamp: bytes = b""
    when: datetime.datetime | None = None


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
        # dockerd 28 numbers every message of one logger instance (a container's run):
        # CONTAINER_LOG_EPOCH names the instance, CONTAINER_LOG_ORDINAL counts from 1
        self.fields = {**fields, "CONTAINER_LOG_EPOCH": os.urandom(32).hex()}
        self.ordinal = 0
        self.path = path
        self._sock: socket.socket | None = None
        self._pending: dict[str, _Pending] = {}

    def send(
        self, stream: str, line: bytes, when: datetime.datetime, tag: str, stamp: bytes = b""
    ) -> None:
        """Send one chunk of the log (a line when it ends with a newline; C{tag} is already
        among the fields; C{stamp}: the log's own RFC 3339 timestamp, nanoseconds kept).

        @raise OSError: no journal.
        """
        complete = line.endswith(b"\n")
        p = self._pending.setdefault(stream, _Pending())
        if not p.data and not p.ordinal:
            p.stamp, p.when = stamp, when  # a piece carries the time its line began
        p.data += line[:-1] if complete else line
        while len(p.data) >= PIECE:
            p.id = p.id or os.urandom(32).hex()
            p.ordinal += 1
            piece = bytes(p.data[:PIECE])
            del p.data[:PIECE]
            self._send(stream, piece, p, last=False)
            p.stamp, p.when = stamp, when
        if complete:
            self._finish(stream, p)

    def _finish(self, stream: str, p: _Pending) -> None:
        del self._pending[stream]  # first: a failed send must not glue the next line to this one
        if p.ordinal:
            p.ordinal += 1
            self._send(stream, bytes(p.data), p, last=True)
        else:
            self._send(stream, bytes(p.data), p, last=None)

    def _send(self, stream: str, message: bytes, p: _Pending, last: bool | None) -> None:
        when = p.when or datetime.datetime.now(datetime.UTC)
        fields: dict[str, str | bytes] = {
            "MESSAGE": message,
            "PRIORITY": "3" if stream == "stderr" else "6",
            **self.fields,
            "SYSLOG_TIMESTAMP": p.stamp or when.isoformat().replace("+00:00", "Z"),
        }
        if last is not None:
            if not last:
                fields["CONTAINER_PARTIAL_MESSAGE"] = "true"
            fields["CONTAINER_PARTIAL_ID"] = p.id
            fields["CONTAINER_PARTIAL_ORDINAL"] = str(p.ordinal)
            fields["CONTAINER_PARTIAL_LAST"] = "true" if last else "false"
        self.ordinal += 1  # counted before the send, as dockerd's (a failed one keeps its number)
        fields["CONTAINER_LOG_ORDINAL"] = str(self.ordinal)
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.sendto(encode(fields), self.path)

    def close(self) -> None:
        """Send what a stream left without a newline (as the last piece of its line, as dockerd
        at the end of the output), then close the socket (idempotent)."""
        for stream, p in list(self._pending.items()):
            if p.data or p.ordinal:
                try:
                    self._finish(stream, p)
                except OSError:
                    break  # no journal any more: what is left has no reader
        self._pending.clear()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
