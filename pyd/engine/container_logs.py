"""Reading conmon's k8s-file logs for C{docker logs} (layer: engine).

conmon writes one line per chunk: C{<RFC3339Nano> <stdout|stderr> <F|P> <bytes>}; C{P} marks a
partial line continued by the next entry. These functions run in the io pool (they read files).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime

import attrs


@attrs.frozen
class LogEntry:
    """One chunk of output: which stream, when, the bytes (a full line ends with a newline)."""

    stream: str  # "stdout" | "stderr"
    time_nano: int
    data: bytes


def parse_time(ts: bytes) -> int:
    """C{2026-11-28T12:30:03.148746858+00:00} -> ns since the epoch."""
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
    if tag.startswith(b"F"):
        data += b"\n"
    return LogEntry(stream.decode("ascii", "replace"), parse_time(ts), data)


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
    entries = []
    for line in raw[:end].split(b"\n"):
        e = parse_line(line)
        if e is not None:
            entries.append(e)
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
    out = [
        e
        for e in entries
        if ((e.stream == "stdout" and stdout) or (e.stream == "stderr" and stderr))
        and e.time_nano >= since_nano
        and (until_nano is None or e.time_nano <= until_nano)
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
