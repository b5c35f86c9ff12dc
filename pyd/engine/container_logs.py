"""Reading conmon's k8s-file logs for C{docker logs} (layer: engine).

conmon writes one line per chunk: C{<RFC3339Nano> <stdout|stderr> <F|P> <bytes>}; C{P} marks a
partial line continued by the next entry. These functions run in the io pool (they read files).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple


class LogEntry(NamedTuple):
    """One chunk of output: which stream, when, the bytes (a full line ends with a newline).

    A tuple, and the timestamp is parsed only when asked for: logs are read by the megabyte.
    """

    stream: str  # "stdout" | "stderr"
    ts: bytes  # conmon's RFC 3339 timestamp, as written
    data: bytes

    @property
    def time_nano(self) -> int:
        """The timestamp in ns since the epoch."""
        return parse_time(self.ts)


_SECONDS_CACHE: dict[bytes, int] = {}


def parse_time(ts: bytes) -> int:
    """C{2026-11-28T12:30:03.148746858+00:00} -> ns since the epoch.

    conmon always writes 9 fraction digits and an offset; consecutive lines share their
    second, so the calendar arithmetic is cached per (second, offset).
    """
    if len(ts) == 35 and ts[19:20] == b"." and ts[10:11] == b"T":
        key = ts[:19] + ts[29:]
        secs = _SECONDS_CACHE.get(key)
        if secs is None:
            try:
                secs = int(datetime.fromisoformat((ts[:19] + ts[29:]).decode("ascii")).timestamp())
            except ValueError:
                secs = None
            if secs is not None:
                if len(_SECONDS_CACHE) > 4096:
                    _SECONDS_CACHE.clear()
                _SECONDS_CACHE[key] = secs
        if secs is not None and ts[20:29].isdigit():
            return secs * 1_000_000_000 + int(ts[20:29])
    return _parse_time_slow(ts)


def _parse_time_slow(ts: bytes) -> int:
    s = ts.decode("ascii", "replace")
    frac = 0
    if "." in s:
        head, rest = s.split(".", 1)
        digits = ""
        for i, ch in enumerate(rest):
            if not ch.isdigit():
                tz = rest[i:]
                break
            digits += ch
        else:
            tz = ""
        frac = int((digits + "000000000")[:9]) if digits else 0
        s = head + tz
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    try:
        secs = int(datetime.fromisoformat(s).timestamp())
    except ValueError:
        return 0
    return secs * 1_000_000_000 + frac


def parse_line(line: bytes) -> LogEntry | None:
    """One k8s-file line (without its newline)."""
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return None
    ts, stream, tag = parts[0], parts[1], parts[2]
    data = parts[3] if len(parts) == 4 else b""
    if tag[:1] == b"F":
        data += b"\n"
    return LogEntry("stdout" if stream == b"stdout" else "stderr", ts, data)


class LogTail:
    """A log file read incrementally through one open descriptor (blocking: call in the io pool).

    Holding the descriptor is what makes a follower safe: when the container is removed its
    bundle (and the log) is unlinked, but what conmon wrote is still read to the end. When conmon
    rotates the log (C{--log-size-max} renames a fresh file over it), the old descriptor is read
    to its end before the new file is opened; a file truncated in place is read from 0 again.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1
        self._offset = 0

    def read(self) -> list[LogEntry]:
        """The complete lines written since the last call (a partial last line waits)."""
        out: list[LogEntry] = []
        if self._fd < 0 and not self._open():
            return out
        while True:
            out.extend(self._read_open())
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                return out  # removed: what the descriptor holds has been read
            if st.st_ino == os.fstat(self._fd).st_ino:
                return out
            os.close(self._fd)  # rotated: the old file is drained, go on with the new one
            self._fd = -1
            if not self._open():
                return out

    def _open(self) -> bool:
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        self._offset = 0
        return True

    def _read_open(self) -> list[LogEntry]:
        size = os.fstat(self._fd).st_size
        if size < self._offset:
            self._offset = 0  # truncated in place
        if size == self._offset:
            return []
        parts: list[bytes] = []
        pos = self._offset
        while True:
            chunk = os.pread(self._fd, 1 << 20, pos)
            if not chunk:
                break
            parts.append(chunk)
            pos += len(chunk)
        raw = b"".join(parts)
        end = raw.rfind(b"\n")
        if end < 0:
            return []
        self._offset += end + 1
        return [e for e in map(parse_line, raw[:end].split(b"\n")) if e is not None]

    def close(self) -> None:
        """Release the descriptor (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def select_entries(
    entries: Sequence[LogEntry],
    stdout: bool,
    stderr: bool,
    since_nano: int,
    until_nano: int | None,
    tail: int | None,
) -> list[LogEntry]:
    """Apply docker logs' stream, time and C{--tail} filters (tail counts whole lines)."""
    if stdout and stderr:
        out = list(entries)
    else:
        want = "stdout" if stdout else "stderr"
        out = [e for e in entries if e.stream == want]
    if since_nano > 0 or until_nano is not None:
        out = [
            e
            for e in out
            if e.time_nano >= since_nano and (until_nano is None or e.time_nano <= until_nano)
        ]
    if tail is not None and tail >= 0:
        if tail == 0:
            return []
        lines = 0
        for i in range(len(out) - 1, -1, -1):
            if out[i].data.endswith(b"\n"):
                lines += 1
                if lines > tail:
                    return out[i + 1 :]
        return out
    return out
