"""What a writable layer changed: C{docker diff} entries and the layer tar for commit (layer: drivers).

The overlayfs upper directory holds exactly the changes: new and copied-up entries, 0:0 character
devices for deletions and C{trusted.overlay.opaque=y} on directories whose lower content is hidden.
L{write_layer_tar} turns it back into an OCI/Docker layer tar with AUFS-style whiteouts
(C{.wh.name}, C{.wh..wh..opq}), numeric owners, xattrs (except overlayfs' own) and hardlinks.

A running container changes its upper directory while the daemon reads it (C{docker diff}, C{docker
commit --pause=false}); it can swap a directory with a symlink to a host path in one step. The
upper and the lower layers are therefore read through descriptors only, never by a host path
built from their names: L{pyd.drivers.fdtree} walks and archives, lower lookups go element by
element without following a symlink (as overlayfs merges layers).
Blocking: run in the io pool.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator, Sequence
from typing import IO

from pyd.drivers import fdtree

OPAQUE_XATTR = "trusted.overlay.opaque"
MODIFIED, ADDED, DELETED = 0, 1, 2
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def is_whiteout(st: os.stat_result) -> bool:
    """An overlayfs whiteout: a character device 0:0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _at(parent: int, name: str) -> str:
    """A path naming C{name} in the directory descriptor C{parent} for the calls that take no
    C{dir_fd} (the xattr ones): the magic link pins the directory, C{name} is one element."""
    return f"/proc/self/fd/{parent}/{name}"


def _opaque(parent: int, name: str) -> bool:
    """Whether the directory C{name} in C{parent} hides its lower content."""
    try:
        return os.getxattr(_at(parent, name), OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _opaque_fd(fd: int) -> bool:
    try:
        return os.getxattr(fd, OPAQUE_XATTR) == b"y"
    except OSError:
        return False


def _walk(top: str) -> Iterator[fdtree.Entry]:
    """Everything under the directory C{top}, parents first, names sorted, through descriptors
    (L{fdtree.walk}): a running container that swaps a directory with a symlink cannot send the
    walk onto a host path."""
    try:
        fd = os.open(top, _DIR | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    try:
        yield from fdtree.walk(fd)
    finally:
        os.close(fd)


class _Lowers:
    """The lower layers (top first), opened once; paths are looked up element by element
    without following a symlink, as overlayfs merges them."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.fds: list[int] = []
        try:
            for p in paths:
                self.fds.append(os.open(p, _DIR | os.O_NOFOLLOW))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def __enter__(self) -> _Lowers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __bool__(self) -> bool:
        return bool(self.fds)

    def exists(self, rel: str) -> bool:
        """Whether C{rel} exists in the merged view of the lower layers."""
        parts = rel.split("/")
        for fd in self.fds:
            found = _lookup(fd, parts)
            if found is not None:
                return found
        return False


def _lookup(layer: int, parts: list[str]) -> bool | None:
    """C{parts} in one layer: True (there), False (a whiteout, or hidden by a non-directory or
    an opaque directory on the way: lower layers do not count), None (not in this layer)."""
    cur = os.dup(layer)
    hidden = False
    try:
        for i, part in enumerate(parts):
            try:
                st = os.stat(part, dir_fd=cur, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                return False if hidden else None
            if i == len(parts) - 1:
                return not is_whiteout(st)
            if not stat.S_ISDIR(st.st_mode):
                return False  # a whiteout or a file hides whatever lower layers hold below it
            nxt = os.open(part, _DIR | os.O_NOFOLLOW, dir_fd=cur)
            os.close(cur)
            cur = nxt
            hidden = hidden or _opaque_fd(cur)
        return None
    finally:
        os.close(cur)


def changes(upper: str, lowers: Sequence[str]) -> list[tuple[str, int]]:
    """C{docker diff} for an upper dir over C{lowers}: sorted (C{/path}, kind) pairs."""
    out: list[tuple[str, int]] = []
    with _Lowers(lowers) as lower:
        for e in _walk(upper):
            if is_whiteout(e.st):
                if lower.exists(e.rel):
                    out.append(("/" + e.rel, DELETED))
                continue
            # a copied-up directory is reported whether or not its own metadata changed
            out.append(("/" + e.rel, MODIFIED if lower.exists(e.rel) else ADDED))
    out.sort()
    return out


def _xattrs(parent: int, name: str, fd: int | None, st: os.stat_result) -> dict[str, str]:
    """The entry's extended attributes as PAX records (overlayfs' own left out)."""
    target: int | str = fd if fd is not None else _at(parent, name)
    follow = fd is not None
    out: dict[str, str] = {}
    try:
        names = os.listxattr(target, follow_symlinks=follow)
    except OSError:
        return out
    for key in names:
        if key.startswith("trusted.overlay."):
            continue
        try:
            value = os.getxattr(target, key, follow_symlinks=follow)
        except OSError:
            continue
        out["SCHILY.xattr." + key] = value.decode("utf-8", "surrogateescape")
    return out


def _marker(name: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mode = 0o600
    ti.uname = ti.gname = ""
    ti.mtime = 0
    return ti


def write_layer_tar(upper: str, out: IO[bytes], lowers: Sequence[str] = ()) -> int:
    """Write the changes of C{upper} as a layer tar to C{out} (a seekable file).

    Read through descriptors (L{fdtree}), so C{docker commit --pause=false} of a container that
    renames its files meanwhile archives only the container's files. Whiteouts for paths that
    exist in no lower layer are dropped (nothing to delete there). Like Go's archive/tar the
    archive ends right after its two zero blocks (no record padding), so an empty diff hashes to
    the well-known empty-layer digest.
    @return: the number of entries written.
    """
    count = 0
    start = out.tell()
    tf = tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
    try:
        writer = fdtree.TarWriter(tf, pax=_xattrs)
        with _Lowers(lowers) as lower:
            for e in _walk(upper):
                if is_whiteout(e.st):
                    if lower and not lower.exists(e.rel):
                        continue
                    parent, base = os.path.split(e.rel)
                    tf.addfile(_marker(os.path.join(parent, ".wh." + base)))
                    count += 1
                    continue
                if not writer.add(e.parent, e.name, e.st, e.rel):
                    continue
                count += 1
                if stat.S_ISDIR(e.st.st_mode) and _opaque(e.parent, e.name):
                    tf.addfile(_marker(f"{e.rel}/.wh..wh..opq"))
                    count += 1
        end = start + tf.offset + 2 * tarfile.BLOCKSIZE
    finally:
        tf.close()
    out.truncate(end)
    return count


def dir_size(path: str) -> int:
    """Bytes under C{path} as dockerd counts a layer: regular files (hardlinks once) plus the
    lstat size of symlinks."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for e in _walk(path):
        st = e.st
        if stat.S_ISLNK(st.st_mode):
            total += st.st_size
        elif stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += st.st_size
    return total
