"""Copy-up of image content into a fresh volume, and volume sizes (layer: drivers).

Blocking code: run it through a L{pyd.core.seams.Blocking}. The copy (L{copy_up}, through
L{pyd.drivers.inroot}) keeps everything a layer can hold: owners, modes (setuid/setgid/sticky),
timestamps, xattrs (including C{security.capability}), symlinks, hardlinks, device nodes and
fifos. It never follows a symlink out of the source root or out of the volume.
"""

from __future__ import annotations

import os
import stat

from pyd.drivers import inroot


def is_empty_dir(path: str) -> bool:
    """Whether C{path} is a directory with no entries (a missing path counts as not empty)."""
    try:
        with os.scandir(path) as it:
            return next(it, None) is None
    except (FileNotFoundError, NotADirectoryError):
        return False


def copy_meta(src: str, dst: str) -> None:
    """Give directory C{dst} the owner, mode, xattrs and times of directory C{src} (both the
    daemon's own paths; neither is followed if it is a link)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    s = os.open(src, flags)
    try:
        d = os.open(dst, flags)
        try:
            info = os.fstat(s)
            # chown first: it clears setuid/setgid bits and file capabilities
            os.fchown(d, info.st_uid, info.st_gid)
            os.fchmod(d, stat.S_IMODE(info.st_mode))
            inroot.copy_xattrs(s, d)
            os.utime(d, ns=(info.st_atime_ns, info.st_mtime_ns))
        finally:
            os.close(d)
    finally:
        os.close(s)


def copy_up(src: inroot.InRoot, path: str, target: str) -> int:
    """Copy the image's directory C{path} (resolved inside C{src}, the container's root) into
    the existing directory C{target} (a volume's C{_data} or its stage), which takes the
    source's owner, mode, xattrs and times too (dockerd's C{fs.CopyDir}).

    Everything is walked and written through descriptors (L{inroot.copy_tree} with
    C{preserve}): the source's links are copied as links, and every write is resolved inside
    C{target}, so a container that shares the volume and plants links during the copy cannot
    send a write, a chmod or a chown out of it. Returns the bytes copied.
    """
    with inroot.InRoot(target) as dst:
        return inroot.copy_tree(src, path, dst, "/", specials=True, preserve=True)


def tree_size(path: str) -> int:
    """Bytes used by the files under C{path} (hardlinks counted once), like dockerd's
    C{directory.Size}; -1 when C{path} is missing.

    Walked by descriptors (one open per level of depth), each directory opened relative to its
    parent without following a link: a container renaming a directory into a link meanwhile
    cannot make it list the host.
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        top = os.open(path, flags)
    except FileNotFoundError:
        return -1
    except OSError:
        return 0
    total = 0
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[int, list[str]]] = []

    def enter(fd: int) -> None:
        try:
            names = os.listdir(fd)
        except OSError:
            names = []
        stack.append((fd, names))

    enter(top)
    while stack:
        dfd, names = stack[-1]
        if not names:
            os.close(dfd)
            stack.pop()
            continue
        name = names.pop()
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            try:
                enter(os.open(name, flags, dir_fd=dfd))
            except OSError:
                pass  # gone or replaced since the stat, or too deep for our descriptors
            continue
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
        total += st.st_size
    return total
