"""Where a build's context is unpacked (layer: engine).

A small context goes to memory: the upload is a plain tar in a regular file of at most
L{MEMORY_CONTEXT_MAX} bytes (its files then take no more than that) and the host's C{/dev/shm}
is a tmpfs with room for it, so it is unpacked into a directory of this daemon's there
(L{memory_root}: one per data root, C{0700}). Anything else (a compressed or larger upload, no
tmpfs, too little room) is unpacked on the data root's disk, under the build's scratch directory,
as before. Why: creating and removing a context's files on a disk filesystem costs journal and
inode work (~0.1-0.2 s of CPU for the 500 small files of a 10 MB context, much more when the
disk is busy); on a tmpfs it is ~20 ms, and the context never touches the disk.

The memory directory holds nothing but contexts of builds in progress: it is emptied at start
(L{sweep}: a crash leaves nothing behind for long) and by C{builder prune}, and removed at stop
(L{release}).
Everything here blocks.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from typing import IO, Any

# the largest upload (a plain tar, bytes) unpacked in memory
MEMORY_CONTEXT_MAX = 64 << 20
# room the tmpfs must keep besides the context, as a multiple of its size
_ROOM_FACTOR = 4
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


def _is_tmpfs(path: str) -> bool:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 4 and fields[4] == path and " - tmpfs " in line:
                    return True
    except OSError:
        return False
    return False


def memory_root(data_root: str, shm: str = "/dev/shm") -> str:
    """This daemon's directory for in-memory contexts under C{shm}, or "" when C{shm} is not
    a tmpfs mount."""
    if not _is_tmpfs(shm):
        return ""
    tag = hashlib.sha256(os.path.abspath(data_root).encode()).hexdigest()[:16]
    return os.path.join(shm, f"pyd-build-{tag}")


def plain_upload_size(body: Any) -> int | None:
    """The size of C{body} when it is an uncompressed tar in a regular file, else None."""
    try:
        fd = body.fileno()
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        head = os.pread(fd, 6, 0)
    except (AttributeError, OSError, ValueError):
        return None
    return None if head.startswith(_COMPRESSED) else info.st_size


def context_dir(root: str, workdir: str, build_id: str, body: IO[bytes] | None) -> str:
    """Make the (empty) directory the context of build C{build_id} is unpacked into: in
    C{root} (memory, see the module docstring) when the upload fits, else C{workdir/context}."""
    size = plain_upload_size(body) if root else None
    if size is not None and size <= MEMORY_CONTEXT_MAX:
        try:
            os.makedirs(root, mode=0o700, exist_ok=True)
            st = os.statvfs(root)
            if st.f_bavail * st.f_frsize >= _ROOM_FACTOR * size + (1 << 20):
                path = os.path.join(root, build_id)
                os.mkdir(path, 0o700)
                return path
        except OSError:  # no room or no tmpfs after all: the disk, as for a large context
            pass
    path = os.path.join(workdir, "context")
    os.makedirs(path, 0o700)
    return path


def in_memory(root: str, context: str) -> bool:
    """Whether C{context} is one of C{root}'s."""
    return bool(root) and os.path.dirname(context) == root


def remove(path: str) -> None:
    """Remove a tree, never following a link (Python's descriptor-based rmtree); a missing
    one is not an error."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:  # already removed: the goal is reached
        pass


def release(root: str) -> None:
    """At daemon stop: remove C{root} itself when no context is left in it."""
    if root:
        try:
            os.rmdir(root)
        except OSError:  # gone, or a build still finishing: the next start sweeps it
            pass


def sweep(root: str, keep: frozenset[str] = frozenset()) -> tuple[list[str], int]:
    """Remove the in-memory contexts but those of the builds in C{keep}: (ids, bytes)."""
    if not root:
        return [], 0
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return [], 0
    removed: list[str] = []
    total = 0
    for name in names:
        if name in keep:
            continue
        path = os.path.join(root, name)
        for dirpath, _d, files in os.walk(path):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:  # removed while walking: it takes no space
                    pass
        remove(path)
        removed.append(name)
    return removed, total
