"""Safe, full-fidelity layer extraction; run as C{python -m pyd.drivers.storage.untar DEST} (layer: drivers).

The daemon spawns this helper (through L{pyd.drivers.process}) with the layer tar on stdin, plain or
gzip/bzip2/xz-compressed. The helper opens everything it needs, then C{chroot}s into C{DEST}, so no
member can reach outside the layer whatever its name, symlinks or hardlinks (Docker's
chrootarchive). Inside it extracts with full fidelity: numeric owners, modes incl. setuid/sticky,
symlinks, hardlinks, devices, FIFOs, mtimes and C{SCHILY.xattr.*} extended attributes. AUFS-style
whiteouts become overlayfs ones: C{.wh.X} a 0:0 character device C{X}, C{.wh..wh..opq} the
C{trusted.overlay.opaque=y} xattr on the directory. Names whose C{..} climbs out of the layer and
hardlinks that point out of it are refused, as dockerd refuses them.

Device nodes: an image is untrusted input and a device node in it names a host device (a block
device at C{/etc/passwd} would make anything that reads it read a host disk). Image layers may
only hold the character devices every container gets anyway (L{INERT_DEVICES}: null, zero, full,
random, urandom, tty, console, ptmx) and 0:0 (an overlay whiteout); any other device node refuses
the whole layer, naming the entry. C{docker cp} into a container (which may C{mknod} itself)
passes C{devices=True} and keeps dockerd's behaviour. Whatever device is in a root, the daemon
never opens it (L{pyd.drivers.inroot}).

In the same pass it hashes the raw input (the compressed digest) and the uncompressed stream (the
diff id), optionally writes C{--split DIR}/layer.split: the tar without the contents of the files it
extracted (L{pyd.drivers.storage.tarsplit}), from which save and push give the exact layer tar back,
and prints one JSON line:
C{{"digest": "sha256:...", "diff_id": "sha256:...", "size": N, "compressed_size": M}}.
On failure it prints the reason on stderr and exits 1; the caller deletes C{DEST}.
"""

from __future__ import annotations

import bz2
import ctypes
import errno
import gzip
import hashlib
import json
import lzma
import os
import posixpath
import stat
import sys
import tarfile
from typing import Any

from pyd.core.ids import go_quote
from pyd.drivers import sealed
from pyd.drivers.storage.tarsplit import SPLIT_NAME, SplitError, SplitWriter, write_all

CHUNK = 1 << 20
OPAQUE_XATTR = "trusted.overlay.opaque"
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
# (major, minor) of the character devices an image layer may hold: those the runtime puts in every
# container's /dev (old images carry copies, e.g. from debootstrap), and 0:0, overlay's whiteout.
INERT_DEVICES = {
    (1, 3): "null",
    (1, 5): "zero",
    (1, 7): "full",
    (1, 8): "random",
    (1, 9): "urandom",
    (5, 0): "tty",
    (5, 1): "console",
    (5, 2): "ptmx",
    (0, 0): "whiteout",
}


class UntarError(Exception):
    """The layer cannot be extracted (malformed or hostile)."""


class DirNonDir(UntarError):
    """An entry would replace a directory with a non-directory or the reverse (go-archive's
    C{NoOverwriteDirNonDir}); the message is dockerd's."""


class _FileTar(tarfile.TarFile):
    """A tar read from a seekable regular file whose members' contents are copied by the
    kernel (C{sendfile}): no copy through this process, and none of tarfile's 16 KiB reads."""

    def makefile(self, tarinfo: tarfile.TarInfo, targetpath: Any) -> None:
        if tarinfo.sparse is not None:
            super().makefile(tarinfo, targetpath)
            return
        src = self.fileobj.fileno()  # type: ignore[union-attr,attr-defined]  # a real file here
        offset, left = tarinfo.offset_data, tarinfo.size
        with open(targetpath, "wb") as target:
            out = target.fileno()
            while left:
                n = os.sendfile(out, src, offset, min(left, 1 << 30))
                if n == 0:
                    raise tarfile.ReadError("unexpected end of data")
                offset += n
                left -= n


class PipeReader:
    """A tar arriving on a pipe (a C{docker cp} body still coming in), read as a forward-only
    file: tarfile reads the headers, and L{_PipeTar} moves the members' contents from the pipe
    to their files with C{splice} (no copy through this process, as L{_FileTar}'s
    C{sendfile}). What L{peek} looked at is read again first."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._head = b""  # peeked, not yet read
        self._pos = 0

    def fileno(self) -> int:
        return self._fd

    def peek(self, n: int) -> bytes:
        """The next C{n} bytes (fewer at the end), not consumed."""
        while len(self._head) < n:
            data = os.read(self._fd, n - len(self._head))
            if not data:
                break
            self._head += data
        return self._head[:n]

    def plain(self) -> bool:
        """Whether what comes is an uncompressed tar (no compressor's magic)."""
        magic = self.peek(6)
        return not magic.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd"))

    def read(self, n: int = -1) -> bytes:
        out = [self._head[:n] if n >= 0 else self._head]
        self._head = self._head[len(out[0]) :]
        got = len(out[0])
        while n < 0 or got < n:
            data = os.read(self._fd, CHUNK if n < 0 else min(n - got, CHUNK))
            if not data:
                break
            out.append(data)
            got += len(data)
        self._pos += got
        return b"".join(out)

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        """Forward only (tarfile skips padding and the members it does not extract)."""
        if whence == 1:
            offset += self._pos
        elif whence != 0:
            raise tarfile.StreamError("seeking from the end is not allowed")
        if offset < self._pos:
            raise tarfile.StreamError("seeking backwards is not allowed")
        while self._pos < offset:
            if not self.read(min(offset - self._pos, CHUNK)):
                break  # the end: the next read says so
        return self._pos

    def splice_to(self, out: int, n: int) -> None:
        """Move the next C{n} bytes to the file C{out}.

        @raise tarfile.ReadError: the body ended first."""
        if self._head:
            part = self.read(min(n, len(self._head)))
            write_all(out, part)
            n -= len(part)
        while n:
            try:
                moved = os.splice(self._fd, out, min(n, 1 << 30))
                self._pos += moved
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                data = self.read(min(n, CHUNK))  # a filesystem without splice: copied
                write_all(out, data)
                moved = len(data)
            if moved == 0:
                raise tarfile.ReadError("unexpected end of data")
            n -= moved


class _PipeTar(tarfile.TarFile):
    """A tar read from a L{PipeReader}: the members' contents are spliced to their files."""

    def makefile(self, tarinfo: tarfile.TarInfo, targetpath: Any) -> None:
        if tarinfo.sparse is not None:
            super().makefile(tarinfo, targetpath)
            return
        src: Any = self.fileobj
        src.seek(tarinfo.offset_data)
        with open(targetpath, "wb") as target:
            src.splice_to(target.fileno(), tarinfo.size)


def plain_file(src: Any) -> bool:
    """Whether C{src} is a regular file (seekable: its members can be skipped and sent by the
    kernel) holding an uncompressed tar from its current offset 0."""
    try:
        fd = src.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode) or src.tell() != 0:
            return False
        magic = os.pread(fd, 6, 0)
    except (AttributeError, OSError, ValueError):
        return False
    return not magic.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd"))


SPACE_CHECK_EVERY = 16 << 20  # bytes of plain tar between two free-space checks


def check_free_space(root: str, keep_free: int) -> None:
    """Refuse to go on when the filesystem of C{root} has less than C{keep_free} bytes free.

    @raise UntarError: below the reserve (the message names the rule, not the path)."""
    st = os.statvfs(root)
    if st.f_bavail * st.f_frsize < keep_free:
        raise UntarError(
            f"not enough free space: the data root's filesystem keeps {keep_free} bytes free "
            "(min-free-space)"
        )


class _HashingReader:
    """A read-only file object that hashes (and optionally copies) what passes through it."""

    def __init__(
        self, src: Any, tee: SplitWriter | None = None, limit: int = 0, digest: bool = True
    ) -> None:
        self._src = src
        self.tee = tee
        self.digest = digest  # False: counted, not hashed (nothing reads the digest)
        self.hash = hashlib.sha256()
        self.count = 0
        # Most bytes that may pass (0: no limit): the plain tar of a layer, so a small
        # compressed blob cannot expand without bound (max-layer-size).
        self.limit = limit
        # Called every SPACE_CHECK_EVERY bytes (the free-space reserve, min-free-space).
        self.space_check: Any = None
        self._next_check = 0
        self._peeked = b""

    def peek(self, n: int) -> bytes:
        """The first C{n} bytes, without consuming them."""
        while len(self._peeked) < n:
            chunk = self._src.read(n - len(self._peeked))
            if not chunk:
                break
            self._peeked += chunk
        return self._peeked[:n]

    def read(self, n: int = -1) -> bytes:
        if self._peeked:
            if n < 0 or n >= len(self._peeked):
                data, self._peeked = self._peeked, b""
                if n < 0:
                    data += self._src.read()
                elif n > len(data):
                    data += self._src.read(n - len(data))
            else:
                data, self._peeked = self._peeked[:n], self._peeked[n:]
        else:
            data = self._src.read(n)
        if data:
            if self.digest:
                self.hash.update(data)
            self.count += len(data)
            if self.space_check is not None and self.count >= self._next_check:
                self._next_check = self.count + SPACE_CHECK_EVERY
                self.space_check()
            if self.limit and self.count > self.limit:
                raise UntarError(
                    f"layer expands to more than the maximum layer size of {self.limit} bytes "
                    "(max-layer-size)"
                )
            if self.tee is not None:
                self.tee.write(data)
        return bytes(data)

    def drain(self) -> None:
        """Read to the end (tar padding after the end-of-archive blocks counts in the hash)."""
        while self.read(CHUNK):
            pass


class RangeReader:
    """Reads C{length} bytes of file descriptor C{fd} from C{offset} (pread: no shared offset)."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self._fd = fd
        self._pos = offset
        self._left = length

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if n < 0 else min(n, self._left)
        data = os.pread(self._fd, min(want, CHUNK * 4), self._pos)
        self._pos += len(data)
        self._left -= len(data)
        if not data:
            raise UntarError("unexpected end of input")
        return data


def open_decompressed(raw: _HashingReader) -> Any:
    """Wrap C{raw} in the right decompressor for its magic bytes."""
    magic = raw.peek(6)
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[call-overload]  # duck-typed reader
    if magic[:3] == b"BZh":
        return bz2.BZ2File(raw, "rb")  # type: ignore[call-overload]  # duck-typed reader
    if magic[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(raw, "rb")  # type: ignore[arg-type]  # duck-typed reader
    if magic[:4] == b"\x28\xb5\x2f\xfd":
        raise UntarError("unsupported compression: zstd")
    return raw


def _clean(name: str, what: str, into: str = "the layer") -> str:
    """The member's path relative to the root; refuse a C{..} that climbs out of it (C{into}
    names the root in the refusal)."""
    rel = posixpath.normpath(name.lstrip("/")) if name.strip("/") else "."
    if rel == ".." or rel.startswith("../"):
        raise UntarError(f"{what} {name!r} is outside of {into}")
    return rel


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        for entry in os.scandir(path):
            _remove(entry.path)
        os.rmdir(path)
    else:
        os.unlink(path)


def _set_xattrs(path: str, member: tarfile.TarInfo) -> None:
    for key, value in member.pax_headers.items():
        if not key.startswith("SCHILY.xattr."):
            continue
        name = key[len("SCHILY.xattr.") :]
        try:
            os.setxattr(path, name, value.encode("utf-8", "surrogateescape"), follow_symlinks=False)
        except OSError as e:
            # as dockerd: a file system without xattrs, or one we may not set (trusted.* when
            # extracting into a container), is not a failure
            if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
                raise


def through_link(rel: str, links: dict[str, str]) -> str | None:
    """The first parent of C{rel} that is a symlink this same archive made and that leads out
    (L{link_escapes}), if any.

    A tar written from a file system never holds an entry below a symlink (tar does not follow
    links), so an archive that makes a link and then writes through it is an escape attempt
    (C{l -> /etc} then C{l/cron.d/x}), refused rather than resolved inside the root. Links that
    were already there (a container's C{/lib -> usr/lib} under C{docker cp}) are not concerned."""
    if not links:
        return None
    parts = rel.strip("/").split("/")
    for i in range(1, len(parts)):
        prefix = "/".join(parts[:i])
        if prefix in links and link_escapes(prefix, links[prefix], links):
            return prefix
    return None


def link_escapes(rel: str, target: str, links: dict[str, str]) -> bool:
    """Whether the link C{rel} (relative to the root) to C{target} leads out of the root when
    used as a parent: an absolute target, one that climbs above the root, or one that leads back
    to itself or to another link of the same archive (a loop or a chain, not followed). A
    relative link to a place inside (C{d -> sub}, then C{d/f}) is what dockerd follows, and
    stays allowed."""
    if target.startswith("/"):
        return True
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if resolved == ".." or resolved.startswith("../"):
        return True
    if resolved == rel or resolved.startswith(rel + "/"):
        return True
    return through_any(resolved, links)


def through_any(rel: str, links: dict[str, str]) -> bool:
    """Whether C{rel} or one of its parents is a link of the same archive."""
    parts = rel.split("/")
    return any("/".join(parts[:i]) in links for i in range(1, len(parts) + 1))


def refuse_through_link(what: str, name: str, link: str, links: dict[str, str]) -> UntarError:
    """The refusal of an entry written through a link of the same archive (L{through_link})."""
    return UntarError(
        f"{what} {name!r} is refused: its parent {link!r} is a symbolic link to "
        f"{links[link]!r} made by the same archive that leads out of its root, and an archive "
        "may not write through such a link"
    )


def check_device(member: tarfile.TarInfo) -> None:
    """Refuse a device node an image layer may not hold (see the module docstring).

    @raise UntarError: naming the entry and the device.
    """
    if not (member.ischr() or member.isblk()):
        return
    if member.ischr() and (member.devmajor, member.devminor) in INERT_DEVICES:
        return
    kind = "character" if member.ischr() else "block"
    raise UntarError(
        f"{kind} device {member.devmajor}:{member.devminor} at {member.name!r} is refused: "
        "image layers may only hold the character devices null, zero, full, random, urandom, "
        "tty, console and ptmx"
    )


def extract(
    stream: Any,
    root: str,
    devices: bool = False,
    into: str = "the layer",
    seekable: bool = False,
    no_dir_non_dir: str | None = None,
    split: SplitWriter | None = None,
) -> int:
    """Extract the uncompressed tar C{stream} under C{root} (C{/} inside the chroot).

    @param devices: create any device node (C{docker cp} into a container); otherwise only
        L{INERT_DEVICES} (an image layer).
    @param into: what the root is, as refusals name it.
    @param seekable: C{stream} is a regular file at its start (L{plain_file}): read as one,
        contents copied by the kernel (L{_FileTar}). A L{PipeReader} (a plain tar on a pipe) is
        read forward, contents spliced by the kernel (L{_PipeTar}).
    @param no_dir_non_dir: refuse an entry that would replace a directory with a
        non-directory or the reverse, naming the root so (L{DirNonDir}, as go-archive's
        C{NoOverwriteDirNonDir}: the entries before it stay).
    @param split: told which bytes of the stream are the contents of the files written (and
        which files are about to be removed), to record the layer's tar (L{SplitWriter}).
    @return: the size of the file content written (regular files plus symlink targets, like
        dockerd's directory size).
    @raise UntarError: a hostile or malformed member, or a device node an image may not hold.
    """
    size = 0
    dirs: list[tuple[str, float]] = []
    links: dict[str, str] = {}  # symlinks this archive made: relative path -> target
    try:
        if seekable:
            tf: tarfile.TarFile = _FileTar.open(fileobj=stream, mode="r:", errorlevel=2)
        elif isinstance(stream, PipeReader):
            tf = _PipeTar.open(fileobj=stream, mode="r:", errorlevel=2)  # type: ignore[call-overload]  # a forward-only file, not an IO
        else:
            # large reads: tarfile reads a stream 10 KiB and copies a member 16 KiB at a time
            tf = tarfile.open(fileobj=stream, mode="r|", errorlevel=2, bufsize=CHUNK)  # noqa: SIM115 - with below
            tf.copybufsize = CHUNK  # type: ignore[attr-defined]  # tarfile's attribute, not in typeshed
    except tarfile.ReadError as e:
        raise UntarError(f"not a tar archive: {_plain(e)}") from e
    with tf:
        for member in tf:
            if split is not None:
                split.inline(member.offset)  # all before this member's headers is classified
            rel = _clean(member.name, "file", into)
            if not devices:
                check_device(member)
            if rel == ".":
                if member.isdir():
                    continue
                raise UntarError(f"invalid member {member.name!r}")
            link = through_link(rel, links)
            if link is not None:
                raise refuse_through_link("entry", member.name, link, links)
            path = os.path.join(root, rel)
            parent, base = os.path.split(path)
            if base.startswith(WHITEOUT_PREFIX):
                os.makedirs(parent, exist_ok=True)
                if base == OPAQUE_MARKER:
                    os.setxattr(parent, OPAQUE_XATTR, b"y", follow_symlinks=False)
                else:
                    target = os.path.join(parent, base[len(WHITEOUT_PREFIX) :])
                    if split is not None:
                        gone = posixpath.join(posixpath.dirname(rel), base[len(WHITEOUT_PREFIX) :])
                        split.removing(root, _real_rel(root, gone, links))
                    _remove(target)
                    os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(0, 0))
                if split is not None:
                    split.inline(tf.offset)  # a whiteout's bytes are kept as they are
                continue
            if member.islnk():
                target_rel = _clean(member.linkname, "hardlink target", into)
                link = through_link(target_rel, links)
                if link is not None:
                    raise refuse_through_link("hard link target", member.linkname, link, links)
                member.linkname = target_rel
            existing = None
            try:
                existing = os.lstat(path)
            except FileNotFoundError:  # nothing there yet: no conflict to resolve
                pass
            except OSError as e:  # a parent that is not a directory
                raise UntarError(f"cannot extract {member.name!r}: {_reason(e)}") from e
            if no_dir_non_dir is not None and existing is not None:
                on_disk, shown = stat.S_ISDIR(existing.st_mode), posixpath.join(no_dir_non_dir, rel)
                if on_disk and not member.isdir():
                    raise DirNonDir(f"cannot overwrite directory {go_quote(shown)} with "
                                    f"non-directory {go_quote(no_dir_non_dir)}")  # fmt: skip
                if member.isdir() and not on_disk:
                    raise DirNonDir(f"cannot overwrite non-directory {go_quote(shown)} with "
                                    f"directory {go_quote(no_dir_non_dir)}")  # fmt: skip
            real = rel if split is None else _real_rel(root, rel, links)
            if existing is not None and not (member.isdir() and stat.S_ISDIR(existing.st_mode)):
                # Never write through what is already there (a symlink could point anywhere).
                if split is not None:
                    split.removing(root, real)
                _remove(path)
            if split is not None:
                if member.isreg() and member.sparse is None:
                    split.payload(member.offset_data, member.size, real)  # given back from the file
                else:
                    # up to the next header, kept as it is (and passed on as it arrives: a big
                    # sparse member never waits whole in memory)
                    split.inline(tf.offset)
            member.name = rel
            try:
                tf.extract(member, root, set_attrs=True, numeric_owner=True, filter="fully_trusted")
            except (tarfile.ExtractError, tarfile.StreamError) as e:
                raise UntarError(f"cannot extract {member.name!r}: {e}") from e
            except KeyError:
                # a hard link to a name that is neither on disk nor earlier in the archive
                raise UntarError(
                    f"hard link {member.name!r} points to {member.linkname!r}, which does not exist"
                ) from None
            except OSError as e:
                # the path as the archive names it and the reason, never Python's errno form
                raise UntarError(f"cannot extract {member.name!r}: {_reason(e)}") from e
            if member.issym():
                links[rel] = member.linkname
            else:
                links.pop(rel, None)
            _set_xattrs(path, member)
            if member.isdir():
                dirs.append((path, member.mtime))
            elif member.isreg():
                size += member.size
            elif member.issym():
                # dockerd's layer size is its directory size: symlinks count their lstat size
                size += len(os.fsencode(member.linkname))
    # Writing into a directory changes its mtime: restore them last, deepest first.
    for path, mtime in reversed(dirs):
        try:
            os.utime(path, (mtime, mtime), follow_symlinks=False)
        except OSError:  # a directory gone or replaced by a later member: no mtime to restore
            pass
    return size


def _real_rel(root: str, rel: str, links: dict[str, str]) -> str:
    """Where C{rel} really is in the root: its parents resolved when one of them is a symlink
    this archive made (a relative one inside, the only kind L{through_link} lets through)."""
    parent, base = posixpath.split(rel)
    if not parent or not through_any(parent, links):
        return rel
    top = os.path.realpath(root)
    real = os.path.relpath(os.path.realpath(os.path.join(root, parent)), top)
    if real == ".." or real.startswith("../"):
        raise UntarError(f"file {rel!r} is outside of the layer")
    return base if real == "." else posixpath.join(real, base)


def _reason(e: OSError) -> str:
    """An OS error's reason alone, lower-cased as Go prints it (no errno, no path)."""
    text = e.strerror or "cannot be written"
    return text[0].lower() + text[1:]


def _plain(e: BaseException) -> str:
    """A user-facing text for a failure: an OS error as Go prints one (C{PATH: reason}, the path
    as the layer or container names it), never Python's C{[Errno N]} form."""
    if isinstance(e, OSError) and e.strerror:
        reason = e.strerror[0].lower() + e.strerror[1:]
        return f"{e.filename}: {reason}" if e.filename else reason
    if isinstance(e, EOFError):
        return "unexpected end of archive"
    if isinstance(e, tarfile.ReadError) and str(e).startswith("zlib error"):
        # tarfile passes zlib's own text on ("Error -3 while decompressing data: ...")
        return "invalid gzip data"
    return str(e) or type(e).__name__


def _syncfs(path: str) -> None:
    """Write everything of C{path}'s filesystem to disk (the layer's files, its tar, their
    directories): the engine records the layer's row only after the helper returned, so a power
    loss after that record cannot find a listed layer with truncated files. One C{syncfs} per
    layer instead of an fsync per file and directory (thousands in a distribution's layer).

    @raise OSError: the kernel reported a write error (EIO, ENOSPC): the layer is not on disk.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _LIBC.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)


_LIBC = ctypes.CDLL(None, use_errno=True)  # the process's own libc (no file is loaded)


def run(
    dest: str,
    src: Any,
    split: SplitWriter | None,
    chroot: bool = True,
    devices: bool = False,
    caps: tuple[int, ...] = sealed.EXTRACT_CAPS,
    max_size: int = 0,
    keep_free: int = 0,
    into: str = "the layer",
    sync: bool = True,
) -> dict[str, Any]:
    """Extract C{src} (raw, maybe compressed) into C{dest}; return the hashes and sizes
    (C{devices}, C{into}: see L{extract}), recording the tar in C{split} (L{SplitWriter}, which
    gets the plain tar's bytes and what the extraction made of them). With C{chroot}, C{dest} is
    entered first, sealed, with
    only the capabilities C{caps} left. With C{sync} the filesystem is written to disk before
    returning (a layer, whose row follows; C{docker cp} into a container records nothing and,
    as dockerd's, does not sync)."""
    raw = _HashingReader(src)
    plain_src = open_decompressed(raw)
    if plain_src is raw:
        # not compressed: one reader hashes and copies (digest == diff id)
        raw.tee = split
        plain = raw
    else:
        plain = _HashingReader(plain_src, tee=split)
    plain.limit = max_size
    if chroot:
        # nothing is loaded from the layer or the container after this (see pyd.drivers.sealed)
        sealed.preload()
        sealed.enter(dest)
        sealed.drop_capabilities(caps)
        root = "/"
    else:
        root = dest
    if keep_free:
        check_free_space(root, keep_free)
        plain.space_check = lambda: check_free_space(root, keep_free)
    try:
        size = extract(plain, root, devices, into, split=split)
        plain.drain()
        raw.drain()
        if split is not None:
            split.finish()
    except (OSError, EOFError, tarfile.TarError, lzma.LZMAError, ValueError, SplitError) as e:
        if isinstance(e, UntarError):
            raise
        raise UntarError(_plain(e)) from e
    try:
        if sync:
            _syncfs(root)  # the record is in the same staging directory (tmp/<x>/layer.split)
    except OSError as e:
        raise UntarError(f"writing the layer to disk: {_plain(e)}") from e
    return {
        "digest": "sha256:" + raw.hash.hexdigest(),
        "diff_id": "sha256:" + plain.hash.hexdigest(),
        "size": size,
        "compressed_size": raw.count,
    }


def copy_in(dest: str, src: Any, caps: tuple[int, ...], no_dir_non_dir: str | None = None) -> None:
    """C{docker cp} into a container: extract C{src} (raw, maybe compressed) into C{dest} as
    L{run} does, with any device node allowed (see L{extract}), but without digests and
    without a C{syncfs}: dockerd neither hashes nor syncs a copy (the container's files are
    not the daemon's committed state). A plain tar in a regular file (L{plain_file}) is read
    in place, its contents copied by the kernel; one on a pipe (a body still arriving) is read
    once, its contents spliced by the kernel (L{PipeReader}). C{no_dir_non_dir}: see
    L{extract}."""
    seekable = plain_file(src)
    stream: Any = src
    if not seekable:
        piped = _pipe_of(src)
        if piped is not None and piped.plain():
            stream = piped  # contents spliced from the pipe to their files (L{_PipeTar})
        else:
            stream = open_decompressed(_HashingReader(piped or src, digest=False))
    # nothing is loaded from the container after this (see pyd.drivers.sealed)
    sealed.preload()
    sealed.enter(dest)
    sealed.drop_capabilities(caps)
    try:
        extract(stream, "/", devices=True, into="the destination directory", seekable=seekable,
                no_dir_non_dir=no_dir_non_dir)  # fmt: skip
    except (OSError, EOFError, tarfile.TarError, lzma.LZMAError, ValueError) as e:
        if isinstance(e, UntarError):
            raise
        raise UntarError(_plain(e)) from e


def _pipe_of(src: Any) -> PipeReader | None:
    """A L{PipeReader} of C{src} when it is a pipe at its start."""
    try:
        fd = src.fileno()
        return PipeReader(fd) if stat.S_ISFIFO(os.fstat(fd).st_mode) else None
    except (AttributeError, OSError, ValueError):
        return None


def main(argv: list[str]) -> int:
    """C{untar DEST [--split DIR] [--range OFFSET:LENGTH] [--max-size BYTES]
    [--keep-free BYTES]}: stdin is the layer (or holds it at OFFSET); the tar's record goes to
    C{DIR/layer.split} (L{pyd.drivers.storage.tarsplit})."""
    args = list(argv)
    split_dir = None
    if "--split" in args:
        i = args.index("--split")
        split_dir = args[i + 1]
        del args[i : i + 2]
    max_size = 0
    if "--max-size" in args:
        i = args.index("--max-size")
        max_size = int(args[i + 1])
        del args[i : i + 2]
    keep_free = 0
    if "--keep-free" in args:
        i = args.index("--keep-free")
        keep_free = int(args[i + 1])
        del args[i : i + 2]
    byte_range = None
    if "--range" in args:
        i = args.index("--range")
        off, _, length = args[i + 1].partition(":")
        byte_range = (int(off), int(length))
        del args[i : i + 2]
    if len(args) != 1:
        sys.stderr.write("usage: python -m pyd.drivers.storage.untar DEST [--split DIR]\n")
        return 2
    dest = args[0]
    sealed.close_inherited((0, 1, 2))
    # opened before the chroot: the record and keep/ are beside the layer, not in it
    staging_fd = os.open(split_dir, os.O_RDONLY | os.O_DIRECTORY) if split_dir else None
    tar_out = None
    if staging_fd is not None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        tar_out = open(os.open(SPLIT_NAME, flags, 0o600, dir_fd=staging_fd), "wb")  # noqa: SIM115 - closed below
    src: Any = (
        RangeReader(0, *byte_range)
        if byte_range is not None
        else open(0, "rb", buffering=0, closefd=False)  # noqa: SIM115 - stdin
    )
    try:
        split = SplitWriter(tar_out, staging_fd) if tar_out is not None else None
        result = run(dest, src, split, max_size=max_size, keep_free=keep_free)
    except UntarError as e:
        sys.stderr.write(f"{e}\n")
        return 1
    finally:
        if tar_out is not None:
            tar_out.close()
        if staging_fd is not None:
            os.close(staging_fd)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
