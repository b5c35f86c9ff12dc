"""Reading conmon's k8s-file logs for C{docker logs} (layer: engine).

conmon writes one line per chunk: C{<RFC3339Nano> <stdout|stderr> <F|P> <bytes>}; C{P} marks a
partial line continued by the next entry. These functions run in the io pool (they read files).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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


# --- rotation (json-file max-size/max-file over conmon's k8s-file) ----------------------------
#
# conmon (2.1.6) reopens its log on request: the control FIFO message C{2 0 0\n} makes it fsync
# and close the file, open C{ctr.log.tmp} with O_TRUNC|O_CREAT and rename it over C{ctr.log}
# (its C{--log-size-max} does the same by itself). Records are never split and nothing is
# written twice, but the replaced file is unlinked: alone, max-file is always 1.
#
# pyd keeps every file by giving each inode a second, permanent name *before* conmon drops
# C{ctr.log} from it, and it decides when conmon rotates:
#   ctr.log.<n>   every retained file, numbered in order (the current one has the highest n);
#   ctr.log.next  an empty file prepared in advance and also linked as C{ctr.log.tmp}: conmon's
#                 O_TRUNC open of C{ctr.log.tmp} opens it, and its rename makes it C{ctr.log}
#                 while it keeps its C{ctr.log.next} name, which pyd then renames to the next
#                 number; pyd prunes the oldest beyond max-file and prepares a new next file.
# pyd watches the log grow (inotify) and sends the reopen message once C{ctr.log} reached
# max-size, only when a next file is prepared and the previous reopen was carried out: so every
# record lands in a file that already has a permanent name; no line is lost or duplicated at a
# boundary, however late pyd is (a late pyd makes files larger than max-size instead).
# While pyd is down nothing asks for rotations: conmon's own C{--log-size-max}, set to
# max-size x max-file, bounds the current file (the prepared file takes its first rotation).
# L{rotate_log_files} (under an exclusive flock of the directory) is the only writer of these
# names; readers list them under a shared one.

REOPEN = b"2 0 0\n"  # conmon's REOPEN_LOGS_EVENT (it wants three numbers)
NEXT = ".next"
TMP = ".tmp"


@contextmanager
def _dir_lock(directory: str, exclusive: bool) -> Iterator[None]:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _numbered(log_path: str) -> dict[int, os.stat_result]:
    """C{ctr.log.<n>} files by number."""
    directory, base = os.path.split(log_path)
    out: dict[int, os.stat_result] = {}
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return out
    prefix = base + "."
    for name in names:
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            st = _stat(os.path.join(directory, name))
            if st is not None:
                out[int(name[len(prefix) :])] = st
    return out


def rotate_log_files(log_path: str, max_files: int, starting: bool = False) -> list[str]:
    """Name what conmon rotated, drop the oldest beyond C{max_files}, prepare the next file.

    Idempotent; call after every rotation (and once before conmon starts with
    C{starting=True}, which creates C{ctr.log} so that the first file is numbered too, and
    clears a C{ctr.log.tmp} left by a conmon that died mid-rotation). Blocking. Returns the
    paths removed.
    """
    directory = os.path.dirname(log_path)
    removed: list[str] = []
    with _dir_lock(directory, exclusive=True):
        nums = _numbered(log_path)
        inos = {st.st_ino for st in nums.values()}
        top = max(nums, default=0)
        tmp = _stat(log_path + TMP)
        if starting:
            if tmp is not None and tmp.st_nlink == 1:
                os.unlink(log_path + TMP)
                tmp = None
            # conmon opens an existing log with O_APPEND: create it now so it is numbered below
            os.close(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        nxt = _stat(log_path + NEXT)
        if nxt is not None and (tmp is None or tmp.st_ino != nxt.st_ino):
            # conmon took the prepared file: it is (or was) the current one, after the others
            if nxt.st_ino in inos:
                os.unlink(log_path + NEXT)
            else:
                top += 1
                os.rename(log_path + NEXT, f"{log_path}.{top}")
                nums[top] = nxt
                inos.add(nxt.st_ino)
            nxt = None
        cur = _stat(log_path)
        if cur is not None and cur.st_ino not in inos:
            # made by conmon when nothing was prepared (first start, or pyd was late/down)
            top += 1
            os.link(log_path, f"{log_path}.{top}")
            nums[top] = cur
        for n in sorted(nums)[: max(len(nums) - max(max_files, 1), 0)]:
            path = f"{log_path}.{n}"
            os.unlink(path)
            removed.append(path)
        if nxt is None and _stat(log_path + TMP) is None:
            fd = os.open(
                log_path + NEXT, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600
            )
            os.close(fd)
            try:
                os.link(log_path + NEXT, log_path + TMP)
            except FileExistsError:  # conmon is rotating right now: prepare after it
                os.unlink(log_path + NEXT)
    return removed


def request_rotation(
    log_path: str, max_size: int, ctl_path: str, requested: int = 0, resend: bool = False
) -> int:
    """Ask conmon to reopen the log once it reached C{max_size} (blocking).

    Call after L{rotate_log_files}. C{requested} is what the previous call returned: the inode
    conmon was asked to leave; while C{ctr.log} is still that file nothing is sent again unless
    C{resend} (a lost message). Returns the inode now asked about, 0 when nothing is pending.
    """
    cur = _stat(log_path)
    if cur is None:
        return 0
    if requested and cur.st_ino == requested and not resend:
        return requested
    if cur.st_size < max_size:
        return 0
    tmp, nxt = _stat(log_path + TMP), _stat(log_path + NEXT)
    if tmp is None or nxt is None or tmp.st_ino != nxt.st_ino:
        return 0  # nothing prepared: conmon would make an unnamed file; the next call sends
    try:
        fd = os.open(ctl_path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return 0  # conmon is gone (ENXIO: no reader)
    try:
        os.write(fd, REOPEN)
    except OSError:
        return 0
    finally:
        os.close(fd)
    return cur.st_ino


def rotation_step(
    log_path: str,
    max_files: int,
    max_size: int,
    ctl_path: str,
    requested: int,
    resend: bool,
    known: int = 0,
) -> tuple[int, int]:
    """What pyd does when the log changed: L{rotate_log_files} after a rotation, then
    L{request_rotation}.

    C{known} is the inode of C{ctr.log} seen by the previous step: while it is still the
    current file, below max-size and nothing is pending, only one stat is spent (conmon's
    writes are reported often). Returns (the pending request, the current inode).
    """
    try:
        cur = os.stat(log_path)
    except FileNotFoundError:
        return 0, 0
    if cur.st_ino == known and not requested and cur.st_size < max_size:
        return 0, known
    rotate_log_files(log_path, max_files)
    return request_rotation(log_path, max_size, ctl_path, requested, resend), cur.st_ino


class LogFile(NamedTuple):
    """One file of a container's log, in the order it was written."""

    path: str
    ino: int
    number: int  # 0: not numbered (yet)


def log_chain(log_path: str) -> list[LogFile]:
    """Every retained file of the log, oldest first, each inode once (blocking).

    Without rotation this is just C{[ctr.log]} (or nothing before conmon created it).
    """
    directory = os.path.dirname(log_path)
    out: list[LogFile] = []
    seen: set[int] = set()
    try:
        lock = _dir_lock(directory, exclusive=False)
        lock.__enter__()
    except (FileNotFoundError, NotADirectoryError):
        return out
    try:
        nums = _numbered(log_path)
        for n in sorted(nums):
            st = nums[n]
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                out.append(LogFile(f"{log_path}.{n}", st.st_ino, n))
        tmp = _stat(log_path + TMP)
        nxt = _stat(log_path + NEXT)
        if nxt is not None and nxt.st_ino not in seen and (tmp is None or tmp.st_ino != nxt.st_ino):
            seen.add(nxt.st_ino)
            out.append(LogFile(log_path + NEXT, nxt.st_ino, 0))
        cur = _stat(log_path)
        if cur is not None and cur.st_ino not in seen:
            out.append(LogFile(log_path, cur.st_ino, 0))
    finally:
        lock.__exit__(None, None, None)
    return out


class LogTail:
    """A log read incrementally through one open descriptor (blocking: call in the io pool).

    It starts at the oldest retained file (L{log_chain}) and walks the chain to the current one.
    Holding the descriptor is what makes a follower safe: when the container is removed its
    bundle (and the log) is unlinked, but what conmon wrote is still read to the end. When conmon
    rotates the log (renames a fresh file over C{ctr.log}), the old descriptor is read to its end
    before the next file of the chain is opened (files rotated away meanwhile, by number, are
    skipped only when max-file already dropped them); a file truncated in place is read from 0
    again.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1
        self._ino = 0  # the file being read (or, once closed, the last one read)
        self._number = 0
        self._started = False
        self._offset = 0
        self.more = False  # the last bounded read stopped before the end

    def read(self, limit: int = 0) -> list[LogEntry]:
        """The complete lines written since the last call (a partial last line waits).

        With C{limit}, at most about that many bytes of the log are read (whole lines; a single
        longer line is read whole): call again while L{more} says so. That bounds what one
        reader holds, however large the log.
        """
        out: list[LogEntry] = []
        self.more = False
        if self._fd < 0 and not self._open_next():
            return out
        while True:
            out.extend(self._read_open(limit))
            if self.more:
                return out
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                return out  # removed: what the descriptor holds has been read
            if st.st_ino == self._ino:
                return out
            # rotated: the old file is drained, go on with the one after it
            os.close(self._fd)
            self._fd = -1
            if not self._open_next():
                return out
            if limit and out:
                self.more = True
                return out

    def seek_tail(self, lines: int, keep: Callable[[LogEntry], bool]) -> None:
        """Start reading so that only the last C{lines} whole lines C{keep} accepts (and the
        partial chunks that continue them) are read, scanning backwards from the end of the
        newest file in blocks: C{tail=N} costs N lines, not the whole log."""
        chain = log_chain(self.path)
        if lines <= 0:
            keep = _any_line  # nothing logged so far: start after the last line written
        need = max(lines, 0) + 1  # start just after the (N+1)-th kept whole line from the end
        for f in reversed(chain):
            try:
                fd = os.open(f.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                if os.fstat(fd).st_ino != f.ino:
                    continue
                found, need = _scan_back(fd, need, keep)
                if found >= 0:
                    self.close()
                    self._fd, self._ino, self._number = os.dup(fd), f.ino, f.number
                    self._started, self._offset = True, found
                    return
            finally:
                os.close(fd)
        # fewer lines than asked for: read everything, from the oldest file

    def _open_next(self) -> bool:
        """Open the first file of the chain, or the one after the last one read."""
        for _attempt in range(5):
            chain = log_chain(self.path)
            f = self._following(chain) if self._started else (chain[0] if chain else None)
            if f is None:
                return False
            try:
                fd = os.open(f.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # renamed (given its number) or pruned meanwhile: list again
            st = os.fstat(fd)
            if st.st_ino != f.ino:
                os.close(fd)
                continue
            self._fd, self._ino, self._number = fd, f.ino, f.number
            self._started = True
            self._offset = 0
            return True
        return False

    def _following(self, chain: list[LogFile]) -> LogFile | None:
        for i, f in enumerate(chain):
            if f.ino == self._ino:
                return chain[i + 1] if i + 1 < len(chain) else None
        if self._number:
            for f in chain:
                if f.number == 0 or f.number > self._number:
                    return f
        return chain[-1] if chain else None

    def _read_open(self, limit: int = 0) -> list[LogEntry]:
        size = os.fstat(self._fd).st_size
        if size < self._offset:
            self._offset = 0  # truncated in place
        if size == self._offset:
            return []
        parts: list[bytes] = []
        pos = self._offset
        got = 0
        while True:
            chunk = os.pread(self._fd, min(1 << 20, limit) if limit else 1 << 20, pos)
            if not chunk:
                break
            parts.append(chunk)
            pos += len(chunk)
            got += len(chunk)
            if limit and got >= limit and b"\n" in chunk:
                self.more = True
                break
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


def _any_line(_: LogEntry) -> bool:
    return True


def _scan_back(fd: int, need: int, keep: Callable[[LogEntry], bool]) -> tuple[int, int]:
    """Walk an open log file backwards; return (the offset just after the C{need}-th whole line
    C{keep} accepts, counted from the end, or -1 when the file holds fewer; what is still
    needed). Reads 64 KiB blocks; holds one block plus one line."""
    pos = os.fstat(fd).st_size
    carry = b""  # the start of the region already seen, up to its first newline
    trailing = True  # a last line still being written does not count (nor is it read yet)
    while pos > 0:
        n = min(64 << 10, pos)
        pos -= n
        data = os.pread(fd, n, pos) + carry
        if trailing:
            k = data.rfind(b"\n")
            if k < 0:
                carry = b""
                continue
            data, trailing = data[: k + 1], False
        # the first line of the block may be cut: it waits for the bytes before it
        cut = data.find(b"\n") if pos > 0 else -1
        if pos > 0 and cut < 0:
            carry = data
            continue
        carry, body = data[: cut + 1], data[cut + 1 :]
        end = pos + len(carry) + len(body)  # just after the last line of body
        for line in reversed(body[:-1].split(b"\n") if body else []):
            e = parse_line(line)
            if e is not None and (keep is _any_line or e.data.endswith(b"\n")) and keep(e):
                need -= 1
                if need == 0:
                    return end, 0
            end -= len(line) + 1
    return -1, need


def entry_filter(
    stdout: bool, stderr: bool, since_nano: int, until_nano: int | None
) -> Callable[[LogEntry], bool]:
    """The stream and time filters of L{select_entries} as one predicate."""

    def keep(e: LogEntry) -> bool:
        if not (stdout if e.stream == "stdout" else stderr):
            return False
        if since_nano > 0 or until_nano is not None:
            t = e.time_nano
            return t >= since_nano and (until_nano is None or t <= until_nano)
        return True

    return keep


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
