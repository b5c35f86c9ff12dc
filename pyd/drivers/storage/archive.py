"""Image archives (docker save / load tars) as plain files (layer: drivers).

L{stage_archive} reads an archive stream (plain or compressed) once and copies every regular member
to its own file in a staging directory; member names are only dictionary keys, never paths, so a
hostile archive cannot write anywhere. L{write_archive} writes a tar from (name, bytes or layer
tar) entries. Blocking: run in the io pool. The image formats themselves are the engine's business.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
from collections.abc import Callable, Iterable
from typing import IO, Any

import attrs

from pyd.drivers.storage.layers import FileRange, LayerSource
from pyd.drivers.storage.tarsplit import LayerTar

CHUNK = 1 << 20
# members at least this big stay inside a seekable, uncompressed upload instead of being copied
IN_PLACE_MIN = 256 << 10
MAX_MEMBERS = 100_000


class ArchiveError(Exception):
    """The archive cannot be read."""


@attrs.frozen
class StagedArchive:
    """Members of an archive, each copied to its own file."""

    directory: str
    files: dict[str, LayerSource]  # normalised member name -> staged file, or range of the upload
    links: dict[str, str]  # normalised member name -> normalised target member name

    def resolve(self, name: str) -> LayerSource | None:
        """The staged file for member C{name}, following in-archive links."""
        n = normalize(name)
        for _ in range(32):
            if n in self.files:
                return self.files[n]
            if n not in self.links:
                return None
            n = self.links[n]
        return None

    def read(self, name: str, limit: int = 64 << 20) -> bytes | None:
        """The bytes of a (small) member, or None when absent."""
        path = self.resolve(name)
        if path is None:
            return None
        if isinstance(path, FileRange):
            if path.length > limit:
                raise ArchiveError(f"{name} is too large")
            return read_range(path)
        with open(path, "rb") as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise ArchiveError(f"{name} is too large")
        return data


def read_range(r: FileRange) -> bytes:
    """The bytes of a range (small ones: configs, manifests)."""
    out = bytearray()
    pos, left = r.offset, r.length
    while left > 0:
        chunk = os.pread(r.fd, min(left, CHUNK), pos)
        if not chunk:
            raise ArchiveError("archive is truncated")
        out += chunk
        pos += len(chunk)
        left -= len(chunk)
    return bytes(out)


def sha256_source(src: LayerSource) -> str:
    """The digest of a staged file or range."""
    import hashlib

    h = hashlib.sha256()
    if isinstance(src, FileRange):
        pos, left = src.offset, src.length
        while left > 0:
            chunk = os.pread(src.fd, min(left, CHUNK), pos)
            if not chunk:
                raise ArchiveError("archive is truncated")
            h.update(chunk)
            pos += len(chunk)
            left -= len(chunk)
    else:
        with open(src, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
    return "sha256:" + h.hexdigest()


def _in_place_fd(src: IO[bytes]) -> int | None:
    """The fd of C{src} when it is a seekable regular file holding an uncompressed tar."""
    try:
        fd = src.fileno()
        pos = src.tell()
        head = src.read(512)
        src.seek(pos)
    except (OSError, AttributeError, ValueError):
        return None
    import stat

    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
    except OSError:
        return None
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        return None
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return None
    return fd if pos == 0 else None


def normalize(name: str) -> str:
    """A member name without C{./}, leading slashes or C{..} segments."""
    n = posixpath.normpath("/" + name).lstrip("/")
    return n


def stage_archive(src: IO[bytes], directory: str) -> StagedArchive:
    """Copy each regular member of the archive C{src} into C{directory}.

    @raise ArchiveError: not a (complete) tar archive.
    """
    files: dict[str, LayerSource] = {}
    links: dict[str, str] = {}
    count = 0
    fd = _in_place_fd(src)
    size = os.fstat(fd).st_size if fd is not None else 0
    counting = _Counting(src)
    if fd is not None:
        counting.read_any = size > 0
    try:
        # a plain seekable upload is read with seeks over the big members; anything else streams
        reader: Any = src if fd is not None else counting  # a duck-typed reader
        with tarfile.open(fileobj=reader, mode="r:" if fd is not None else "r|*") as tf:
            for member in tf:
                count += 1
                if count > MAX_MEMBERS:
                    raise ArchiveError("too many entries in archive")
                name = normalize(member.name)
                if member.isreg() and fd is not None and member.size >= IN_PLACE_MIN:
                    if member.offset_data + member.size > size:
                        raise ArchiveError("archive is truncated")
                    files[name] = FileRange(fd, member.offset_data, member.size)
                elif member.isreg():
                    path = os.path.join(directory, f"m{count}")
                    fobj = tf.extractfile(member)
                    assert fobj is not None
                    # no fsync: staging is swept after a crash, and what is kept gets
                    # extracted (and synced) from these files
                    with open(path, "wb") as out:
                        shutil.copyfileobj(fobj, out, CHUNK)
                    files[name] = path
                elif member.issym():
                    links[name] = normalize(
                        posixpath.join(posixpath.dirname(name), member.linkname)
                    )
                elif member.islnk():
                    links[name] = normalize(member.linkname)
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        if isinstance(e, ArchiveError):
            raise
        raise ArchiveError(_read_failure(e, not counting.read_any and count == 0)) from e
    return StagedArchive(directory, files, links)


def _read_failure(e: BaseException, empty: bool) -> str:
    """A plain text for a tar that cannot be read: tarfile says C{empty file} for a compressed
    stream cut short before its first entry, which misleads; say it is truncated or corrupt."""
    text = str(e)
    if isinstance(e, EOFError) or text in ("empty file", "unexpected end of data"):
        return "the archive is empty" if empty else "the archive is truncated or corrupt"
    if text == "invalid compressed data" or text.startswith("zlib error"):
        return "the archive is corrupt (invalid compressed data)"
    return text or type(e).__name__


class _Counting:
    """A read-only stream that remembers whether anything was read (an empty upload)."""

    def __init__(self, src: IO[bytes]) -> None:
        self._src = src
        self.read_any = False

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        if data:
            self.read_any = True
        return data


# What an archive member holds: its bytes, or a layer's tar to open
ArchiveContent = bytes | Callable[[], LayerTar]


def write_archive(
    out: IO[bytes], entries: Iterable[tuple[str, ArchiveContent]], mtime: int = 0
) -> None:
    """Write a tar of C{entries}: (name, bytes) or (name, a function that opens a layer's tar,
    see L{LayerTar}), as tarfile writes one (PAX headers,
    end blocks padded to a 10 KiB record). Contents are copied by the kernel when C{out} is a
    file (C{docker save} writes to a staging file): no copy of a layer through this process."""
    dirs: set[str] = set()
    written = 0

    def put(data: bytes) -> None:
        nonlocal written
        out.write(data)
        written += len(data)

    def header(ti: tarfile.TarInfo) -> None:
        put(ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    for name, content in entries:
        parent = posixpath.dirname(name)
        parts = parent.split("/") if parent else []
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.add(d)
                ti = tarfile.TarInfo(d + "/")
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
                ti.mtime = mtime
                header(ti)
        ti = tarfile.TarInfo(name)
        ti.mode = 0o644
        ti.mtime = mtime
        if isinstance(content, bytes):
            ti.size = len(content)
            header(ti)
            put(content)
        else:
            with content() as layer:
                ti.size = layer.size
                header(ti)
                out.flush()
                written += _copy_out(layer, out)
        put(b"\0" * (-ti.size % tarfile.BLOCKSIZE))
    put(b"\0" * (2 * tarfile.BLOCKSIZE))
    put(b"\0" * (-written % tarfile.RECORDSIZE))


def _copy_out(src: LayerTar, out: IO[bytes]) -> int:
    """Copy all of C{src} to C{out}: by the kernel into a file, else read and written."""
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (an in-memory buffer)
        fd = -1
    if fd >= 0:
        n = src.send_to(fd)
        out.seek(0, os.SEEK_END)  # sendfile moved the descriptor's offset, not the buffer's
        return n
    n = 0
    for chunk in src.chunks():
        out.write(chunk)
        n += len(chunk)
    return n
