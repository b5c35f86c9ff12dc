"""Reading conmon's k8s-file logs for C{docker logs} (layer: engine).

conmon writes one line per chunk: C{<RFC3339Nano> <stdout|stderr> <F|P> <bytes>}; C{P} marks a
partial line continued by the next entry. These functions run in the io pool (they read files).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

import attrs


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


@attrs.frozen
class LogChunk:
    """Entries read from a log and where reading stopped."""

    entries: tuple[LogEntry, ...]
    offset: int
    inode: int


def read_from(path: str, offset: int, inode: int) -> LogChunk:
    """Complete lines of C{path} after C{offset} (from 0 if the file was replaced or truncated)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return LogChunk((), offset, inode)
    try:
        st = os.fstat(fd)
        if st.st_ino != inode or st.st_size < offset:
            offset = 0
        if st.st_size == offset:
            return LogChunk((), offset, st.st_ino)
        os.lseek(fd, offset, os.SEEK_SET)
        raw = b""
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            raw += chunk
    finally:
        os.close(fd)
    end = raw.rfind(b"\n")
    if end < 0:
        return LogChunk((), offset, st.st_ino)
    entries = [e for e in map(parse_line, raw[:end].split(b"\n")) if e is not None]
    return LogChunk(tuple(entries), offset + end + 1, st.st_ino)


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
