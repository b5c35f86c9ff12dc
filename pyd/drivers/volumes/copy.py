"""Copy-up of image content into a fresh volume, and volume sizes (layer: drivers).

Blocking code: run it through a L{pyd.core.seams.Blocking}. The copy (L{copy_up}, through
L{pyd.drivers.inroot}) keeps everything a layer can hold: owners, modes (setuid/setgid/sticky),
timestamps, xattrs (including C{security.capability}), symlinks, hardlinks, device nodes and
fifos. It never follows a symlink out of the source root or out of the volume.
"""

from __future__ import annotations

import errno
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


def _copy_xattrs(src: str, dst: str) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return
        raise
    for name in names:
        try:
            value = os.getxattr(src, name, follow_symlinks=False)
            os.setxattr(dst, name, value, follow_symlinks=False)
        except OSError as e:
            # Like dockerd's ignoreUnsupportedXAttrs: a target without the namespace is fine.
            if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.ENODATA):
                raise


def _apply_meta(src_st: os.stat_result, src: str, dst: str, is_link: bool) -> None:
    # chown first: it clears setuid/setgid bits and file capabilities, which come after.
    os.chown(dst, src_st.st_uid, src_st.st_gid, follow_symlinks=False)
    if not is_link:
        os.chmod(dst, stat.S_IMODE(src_st.st_mode))
    _copy_xattrs(src, dst)


def copy_meta(src: str, dst: str) -> None:
    """Give directory C{dst} the owner, mode, xattrs and times of C{src}."""
    st = os.lstat(src)
    _apply_meta(st, src, dst, False)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


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
