"""What a writable layer changed: C{docker diff} entries and the layer tar for commit (layer: drivers).

The overlayfs upper directory holds exactly the changes: new and copied-up entries, 0:0 character
devices for deletions and C{trusted.overlay.opaque=y} on directories whose lower content is hidden.
L{write_layer_tar} turns it back into an OCI/Docker layer tar with AUFS-style whiteouts
(C{.wh.name}, C{.wh..wh..opq}), numeric owners, xattrs (except overlayfs' own) and hardlinks.
Blocking: run in the io pool.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator, Sequence
from typing import IO

OPAQUE_XATTR = "trusted.overlay.opaque"
MODIFIED, ADDED, DELETED = 0, 1, 2


def is_whiteout(st: os.stat_result) -> bool:
    """An overlayfs whiteout: a character device 0:0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    """Whether a directory hides its lower content."""
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _walk(top: str, rel: str = "") -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative path, absolute path, lstat) of everything under C{top}, parents first, sorted."""
    base = os.path.join(top, rel) if rel else top
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        return
    for name in names:
        r = f"{rel}/{name}" if rel else name
        p = os.path.join(top, r)
        st = os.lstat(p)
        yield r, p, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(top, r)


def _in_lowers(rel: str, lowers: Sequence[str]) -> bool:
    """Whether C{rel} exists in the merged view of the lower layers (C{lowers} top first)."""
    parts = rel.split("/")
    for lower in lowers:
        p = os.path.join(lower, rel)
        try:
            st = os.lstat(p)
        except (FileNotFoundError, NotADirectoryError):
            # an opaque parent or a whiteout in this layer stops the search
            for i in range(1, len(parts)):
                parent = os.path.join(lower, *parts[:i])
                try:
                    pst = os.lstat(parent)
                except (FileNotFoundError, NotADirectoryError):
                    break
                if is_whiteout(pst) or not stat.S_ISDIR(pst.st_mode):
                    return False
                if is_opaque(parent):
                    return False
            continue
        return not is_whiteout(st)
    return False


def changes(upper: str, lowers: Sequence[str]) -> list[tuple[str, int]]:
    """C{docker diff} for an upper dir over C{lowers}: sorted (C{/path}, kind) pairs."""
    out: list[tuple[str, int]] = []
    skip: list[str] = []
    for rel, path, st in _walk(upper):
        if any(rel.startswith(s + "/") for s in skip):
            continue
        if is_whiteout(st):
            if _in_lowers(rel, lowers):
                out.append(("/" + rel, DELETED))
            continue
        if stat.S_ISDIR(st.st_mode):
            exists = _in_lowers(rel, lowers)
            if exists and is_opaque(path):
                out.append(("/" + rel, MODIFIED))
            elif exists:
                # a copied-up directory: report it only if its own metadata may have changed
                out.append(("/" + rel, MODIFIED))
            else:
                out.append(("/" + rel, ADDED))
            continue
        out.append(("/" + rel, MODIFIED if _in_lowers(rel, lowers) else ADDED))
    out.sort()
    return out


def _xattrs(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for name in names:
        if name.startswith("trusted.overlay."):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        out["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return out


def _tarinfo(name: str, st: os.stat_result, path: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.uname = ti.gname = ""
    ti.mtime = int(st.st_mtime)
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        ti.type = tarfile.DIRTYPE
    elif stat.S_ISREG(mode):
        ti.type = tarfile.REGTYPE
        ti.size = st.st_size
    elif stat.S_ISLNK(mode):
        ti.type = tarfile.SYMTYPE
        ti.linkname = os.readlink(path)
    elif stat.S_ISCHR(mode):
        ti.type = tarfile.CHRTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISBLK(mode):
        ti.type = tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        ti.type = tarfile.FIFOTYPE
    else:
        raise ValueError(f"cannot archive {path}: unsupported file type")
    ti.pax_headers = _xattrs(path)
    return ti


def _marker(name: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mode = 0o600
    ti.uname = ti.gname = ""
    ti.mtime = 0
    return ti


def write_layer_tar(upper: str, out: IO[bytes], lowers: Sequence[str] = ()) -> int:
    """Write the changes of C{upper} as a layer tar to C{out} (a seekable file).

    Whiteouts for paths that exist in no lower layer are dropped (nothing to delete there).
    Like Go's archive/tar the archive ends right after its two zero blocks (no record padding),
    so an empty diff hashes to the well-known empty-layer digest.
    @return: the number of entries written.
    """
    links: dict[tuple[int, int], str] = {}
    count = 0
    start = out.tell()
    tf = tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
    try:
        for rel, path, st in _walk(upper):
            if is_whiteout(st):
                if lowers and not _in_lowers(rel, lowers):
                    continue
                parent, base = os.path.split(rel)
                tf.addfile(_marker(os.path.join(parent, ".wh." + base)))
                count += 1
                continue
            ti = _tarinfo(rel + ("/" if stat.S_ISDIR(st.st_mode) else ""), st, path)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in links:
                    ti.type = tarfile.LNKTYPE
                    ti.linkname = links[key]
                    ti.size = 0
                    tf.addfile(ti)
                    count += 1
                    continue
                links[key] = rel
            if ti.type == tarfile.REGTYPE:
                with open(path, "rb") as f:
                    tf.addfile(ti, f)
            else:
                tf.addfile(ti)
            count += 1
            if stat.S_ISDIR(st.st_mode) and is_opaque(path):
                tf.addfile(_marker(f"{rel}/.wh..wh..opq"))
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
    for _rel, _p, st in _walk(path):
        if stat.S_ISLNK(st.st_mode):
            total += st.st_size
        elif stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += st.st_size
    return total
