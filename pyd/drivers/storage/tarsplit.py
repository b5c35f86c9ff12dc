"""A layer's exact tar, kept as its headers plus references to its extracted files (layer: drivers).

A layer is stored extracted (the overlay lowerdir) and must also be given back byte for byte as the
tar it came from: C{docker save} and push hand out the tar whose sha256 is the layer's diff id.
Keeping a second copy of the whole tar doubles the disk space a layer takes and the work of
deleting it (C{docker rmi}). Instead, as dockerd keeps a I{tar-split} stream beside each layer,
the extraction (L{pyd.drivers.storage.untar}) writes, through a L{SplitWriter}, everything of the
tar except the contents of the regular files it extracts: headers, padding, the end blocks and the
contents of anything it did not write as a plain file. Each extracted file's content is recorded
as a reference (its path in the layer and its size), and L{SplitTar} puts the tar back together
from the record and the files.

A file the same tar later overwrites or removes (a name given twice, a directory replaced) is
first hard-linked into the staging directory's C{keep/} (named by its reference's number), so its
old content stays reachable without a copy. Paths are the files' real paths in the layer (no
symlink on the way), and the reader opens them with C{RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS}, checks
that each is a regular file of the recorded size and refuses anything else: nothing in a layer
can make the daemon read outside it.

File format (C{layer.split})::

    MAGIC
    zlib stream of records:
        b"I" u32 n, n bytes           bytes of the tar given as they are
        b"F" u64 size, u16 n, n bytes the next size bytes are the content of this file
    u64 the tar's size                (the last 8 bytes; big-endian)

Standard library only: the untar helper imports it without site-packages. Everything blocks.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import zlib
from collections.abc import Generator, Iterator
from typing import IO

from pyd.drivers.inroot import (
    RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    openat2,
)

MAGIC = b"pyd-tar-split/1\n"
SPLIT_NAME = "layer.split"
KEEP_DIR = "keep"
_INLINE_MAX = 1 << 20  # an inline record holds at most this much (bounded reader buffers)
_SEND_MAX = 1 << 30


class SplitError(Exception):
    """A stored layer cannot be given back as its tar (damaged or changed on disk)."""


class SplitWriter:
    """Receives the plain tar's bytes in order (L{write}) and, from the extraction, which ranges
    are the contents of files it wrote (L{payload}); writes the record to C{out}.

    Bytes nobody classified yet wait in a buffer; L{inline} and L{payload} say what they are, so
    the buffer holds at most what the tar reader read ahead (one read) plus headers of members
    the extraction has not reached yet.
    """

    def __init__(self, out: IO[bytes], staging_fd: int | None = None) -> None:
        self._out = out
        self._z = zlib.compressobj(1)
        self._pending = bytearray()
        self._pos = 0  # tar offset of the first pending byte
        self._inline_to = 0  # bytes before this offset are inline
        self._skip_from = 0  # [skip_from, skip_to): a referenced file's content, dropped
        self._skip_to = 0
        self._refs = 0  # references written (the next one's number)
        self._by_path: dict[str, int] = {}  # path in the layer -> its latest reference's number
        self._staging_fd = staging_fd  # where keep/ is made (None: files are never preserved)
        self._keep_fd: int | None = None
        self._size = 0
        out.write(MAGIC)

    # --- the stream -------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """The next bytes of the plain tar."""
        self._size += len(data)
        if (
            not self._pending
            and self._skip_from <= self._pos < self._pos + len(data) <= self._skip_to
        ):
            self._pos += len(data)  # all of it a file's content (most of a layer): not copied
            return
        self._pending += data
        self._drain()

    def inline(self, end: int) -> None:
        """Everything before tar offset C{end} that is not a referenced file's content is kept as
        it is."""
        if end > self._inline_to:
            self._inline_to = end
        self._drain()

    def payload(self, start: int, size: int, path: str) -> None:
        """The C{size} bytes at C{start} are the content of the file at C{path} (its real path in
        the layer, relative): recorded as a reference, not kept."""
        if start < self._inline_to or start < self._skip_to:
            raise SplitError("file contents out of order")
        self.inline(start)
        if self._pos != start:  # the header before the contents has not come through
            raise SplitError("file contents before their header")
        raw = os.fsencode(path)
        if len(raw) > 0xFFFF:  # no file system takes such a path; the record cannot hold it
            raise SplitError("a file name in the layer is too long")
        self._emit(b"F" + struct.pack(">QH", size, len(raw)) + raw)
        self._by_path[path] = self._refs
        self._refs += 1
        self._skip_from, self._skip_to = start, start + size
        self._drain()

    def finish(self) -> int:
        """Everything left is inline; close the record. @return: the tar's size."""
        self.inline(self._size)
        self._drain()
        if self._pending or self._pos != self._size:
            raise SplitError("the tar ended inside a file's contents")
        self._out.write(self._z.flush())
        self._out.write(struct.pack(">Q", self._size))
        self._out.flush()
        if self._keep_fd is not None:
            os.close(self._keep_fd)
            self._keep_fd = None
        return self._size

    def _drain(self) -> None:
        while self._pending:
            pos = self._pos
            if self._skip_from <= pos < self._skip_to:
                n = min(len(self._pending), self._skip_to - pos)  # a file's content: dropped
            elif pos < self._inline_to:
                end = self._inline_to
                if pos < self._skip_from:
                    end = min(end, self._skip_from)
                n = min(len(self._pending), end - pos, _INLINE_MAX)
                self._emit(b"I" + struct.pack(">I", n) + bytes(self._pending[:n]))
            else:
                return  # not classified yet
            del self._pending[:n]
            self._pos += n

    def _emit(self, record: bytes) -> None:
        self._out.write(self._z.compress(record))

    # --- files the same tar replaces --------------------------------------------------------

    def removing(self, root: str, rel: str) -> None:
        """The extraction is about to remove C{rel} (a file, or a directory and all below it):
        referenced files there are hard-linked into C{keep/} first, their content intact."""
        if not self._by_path:
            return
        prefix = rel.rstrip("/") + "/"
        hit = [p for p in self._by_path if p == rel or p.startswith(prefix)]
        for p in hit:
            number = self._by_path.pop(p)
            if self._staging_fd is None:
                raise SplitError(f"{p!r} is replaced by the same tar and there is no keep/")
            if self._keep_fd is None:
                try:
                    os.mkdir(KEEP_DIR, 0o700, dir_fd=self._staging_fd)
                except FileExistsError:
                    pass
                self._keep_fd = os.open(
                    KEEP_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self._staging_fd
                )
            os.link(
                os.path.join(root, p), str(number), dst_dir_fd=self._keep_fd, follow_symlinks=False
            )


LEGACY_TAR = "layer.tar"  # the whole tar, as stores of pyd before 2026-12 keep it


def layer_tar_size(layer_dir: str) -> int:
    """The size of the tar a stored layer gives back (L{open_layer_tar})."""
    try:
        with open(os.path.join(layer_dir, SPLIT_NAME), "rb") as f:
            f.seek(-8, os.SEEK_END)
            (size,) = struct.unpack(">Q", f.read(8))
        return int(size)
    except FileNotFoundError:
        return os.path.getsize(os.path.join(layer_dir, LEGACY_TAR))


def open_layer_tar(layer_dir: str) -> LayerTar:
    """A stored layer's tar as a stream: rebuilt from its record, or an older store's whole tar."""
    try:
        return SplitTar(layer_dir)
    except FileNotFoundError:
        if not os.path.exists(os.path.join(layer_dir, LEGACY_TAR)):
            raise
        return PlainTar(os.path.join(layer_dir, LEGACY_TAR))


class PlainTar:
    """A whole tar in a file, with L{SplitTar}'s interface."""

    def __init__(self, path: str) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 - closed in close()
        self.size = os.fstat(self._f.fileno()).st_size

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> PlainTar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)

    def chunks(self) -> Iterator[memoryview]:
        while data := self._f.read(_INLINE_MAX):
            yield memoryview(data)

    def send_to(self, out: int) -> int:
        send_file(out, self._f.fileno(), self.size, "the layer's tar")
        return self.size


class SplitTar:
    """A layer's tar put back together from C{layer.split} and its C{diff/}: a read-only stream
    (L{read}, L{chunks}, L{send_to}) of L{size} bytes. Close it (or use it as a context manager).

    @raise SplitError: (while reading) a referenced file is missing, not a regular file, or not
        of its recorded size; the record is damaged.
    """

    def __init__(self, layer_dir: str, diff: str = "diff") -> None:
        self._f = open(os.path.join(layer_dir, SPLIT_NAME), "rb")  # noqa: SIM115 - closed in close()
        try:
            if self._f.read(len(MAGIC)) != MAGIC:
                raise SplitError("not a tar-split record")
            end = self._f.seek(0, os.SEEK_END)
            self._f.seek(end - 8)
            (self.size,) = struct.unpack(">Q", self._f.read(8))
            self._body_end = end - 8
            self._diff_fd = os.open(
                os.path.join(layer_dir, diff), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
            )
        except BaseException:
            self._f.close()
            raise
        self._keep_fd: int | None = None
        try:
            self._keep_fd = os.open(
                os.path.join(layer_dir, KEEP_DIR), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
            )
        except FileNotFoundError:  # nothing was replaced: every reference is in diff/
            pass
        self._parts = self._records()
        self._buf = memoryview(b"")

    def close(self) -> None:
        self._parts.close()
        self._f.close()
        for fd in (self._diff_fd, self._keep_fd):
            if fd is not None:
                os.close(fd)
        self._keep_fd = None

    def __enter__(self) -> SplitTar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ----------------------------------------------------------------------------

    def read(self, n: int = -1) -> bytes:
        """Up to C{n} bytes (all the rest for -1); b"" at the end."""
        out: list[bytes] = []
        want = n if n >= 0 else 1 << 62
        while want > 0:
            if not self._buf:
                nxt = next(self._parts, None)
                if nxt is None:
                    break
                self._buf = nxt
            take = self._buf[:want]
            out.append(bytes(take))
            self._buf = self._buf[len(take) :]
            want -= len(take)
        return b"".join(out)

    def chunks(self) -> Iterator[memoryview]:
        """The rest of the tar, in pieces of at most 1 MiB."""
        if self._buf:
            buf, self._buf = self._buf, memoryview(b"")
            yield buf
        yield from self._parts

    def send_to(self, out: int) -> int:
        """Write the whole tar (from the start) to the file descriptor C{out}, file contents
        copied by the kernel. @return: bytes written."""
        written = 0
        for path, value in self._plan():
            if isinstance(value, bytes):
                write_all(out, value)
                written += len(value)
                continue
            fd, size = value
            try:
                send_file(out, fd, size, f"a file of the layer ({path!r})")
            finally:
                os.close(fd)
            written += size
        if written != self.size:
            raise SplitError("the layer's tar is not its recorded size")
        return written

    def _records(self) -> Generator[memoryview, None, None]:
        given = 0
        for path, value in self._plan():
            if isinstance(value, bytes):
                given += len(value)
                yield memoryview(value)
                continue
            fd, size = value
            try:
                left = size
                while left:
                    data = os.read(fd, min(left, _INLINE_MAX))
                    if not data:
                        raise SplitError(f"a file of the layer ({path!r}) is shorter than recorded")
                    left -= len(data)
                    given += len(data)
                    yield memoryview(data)
            finally:
                os.close(fd)
        if given != self.size:
            raise SplitError("the layer's tar is not its recorded size")

    def _plan(self) -> Iterator[tuple[str, bytes | tuple[int, int]]]:
        """The record's parts from its start: ("", bytes) or (path, (open fd, size))."""
        self._f.seek(len(MAGIC))
        d = zlib.decompressobj()
        data = bytearray()
        left = self._body_end - len(MAGIC)

        def need(n: int) -> bool:
            """Whether C{n} bytes of records are in C{data} (decompressed 1 MiB at a time: a
            small record cannot expand without bound in memory)."""
            nonlocal left
            try:
                while len(data) < n:
                    if d.unconsumed_tail:
                        data.extend(d.decompress(d.unconsumed_tail, _INLINE_MAX))
                    elif left:
                        raw = self._f.read(min(left, 1 << 16))
                        if not raw:
                            break
                        left -= len(raw)
                        data.extend(d.decompress(raw, _INLINE_MAX))
                    else:
                        data.extend(d.flush())
                        break
            except zlib.error:
                raise SplitError("the tar-split record is damaged") from None
            return len(data) >= n

        number = 0
        while need(1):
            kind = bytes(data[0:1])
            if kind == b"I" and need(5):
                (n,) = struct.unpack_from(">I", data, 1)
                if not need(5 + n):
                    break
                chunk = bytes(data[5 : 5 + n])
                del data[: 5 + n]
                yield "", chunk
            elif kind == b"F" and need(11):
                size, n = struct.unpack_from(">QH", data, 1)
                if not need(11 + n):
                    break
                path = os.fsdecode(bytes(data[11 : 11 + n]))
                del data[: 11 + n]
                yield path, (self._open(number, path, size), size)
                number += 1
            elif kind not in (b"I", b"F"):
                raise SplitError("the tar-split record is damaged")
            else:
                break
        if data or left:
            raise SplitError("the tar-split record is truncated")

    def _open(self, number: int, path: str, size: int) -> int:
        """The referenced file, opened inside the layer (or its kept copy), checked."""
        fd = -1
        if self._keep_fd is not None:
            try:
                fd = os.open(str(number), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=self._keep_fd)  # fmt: skip
            except FileNotFoundError:
                fd = -1
        if fd < 0:
            try:
                fd = openat2(
                    self._diff_fd,
                    path,
                    os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK,
                    resolve=RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
                )
            except OSError as e:
                reason = "missing" if e.errno == errno.ENOENT else "cannot be opened"
                raise SplitError(f"a file of the layer is {reason}: {path!r}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            os.close(fd)
            raise SplitError(f"a file of the layer changed on disk: {path!r}")
        return fd


LayerTar = SplitTar | PlainTar


def write_all(fd: int, data: bytes) -> None:
    """Write all of C{data} to C{fd} (a pipe or socket may take part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def send_file(out: int, fd: int, size: int, what: str) -> None:
    """Copy C{size} bytes of file C{fd} from its start to C{out}, by the kernel (C{sendfile}).

    @raise SplitError: the file is shorter (C{what} names it)."""
    offset = 0
    while offset < size:
        sent = os.sendfile(out, fd, offset, min(size - offset, _SEND_MAX))
        if sent == 0:
            raise SplitError(f"{what} is shorter than recorded")
        offset += sent
