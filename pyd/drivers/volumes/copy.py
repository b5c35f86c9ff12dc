"""Copy-up of image content into a fresh volume, and paths scoped to a root (layer: drivers).

Blocking code: run it through a L{pyd.core.seams.Blocking}. The copy keeps everything a layer
can hold: owners, modes (setuid/setgid/sticky), timestamps, xattrs (including
C{security.capability}), symlinks, hardlinks, device nodes and fifos. It never follows a
symlink, in the source or in the destination.
"""

from __future__ import annotations

import errno
import os
import stat

_MAX_SYMLINKS = 40


def scoped_path(root: str, path: str) -> str:
    """Resolve C{path} inside C{root} as if C{root} were C{/}: symlinks are followed but can never
    lead outside C{root} (absolute targets restart at C{root}, C{..} stops at it).

    Missing components are kept as they are. Like Docker's C{GetResourcePath}/symlink scoping.
    """
    root = os.path.abspath(root)
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except OSError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > _MAX_SYMLINKS:
                raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


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


def _copy_file_data(src: str, dst: str, mode: int) -> None:
    fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode & 0o700)
        try:
            size = os.fstat(fd_in).st_size
            copied = 0
            while copied < size:
                try:
                    n = os.copy_file_range(fd_in, fd_out, size - copied)
                except OSError as e:
                    if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    n = os.sendfile(fd_out, fd_in, copied, size - copied)
                if n == 0:
                    break
                copied += n
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


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


def copy_tree(src: str, dst: str) -> int:
    """Copy the contents of directory C{src} into the existing directory C{dst}.

    The top directory's owner, mode and xattrs are copied onto C{dst} too (as dockerd's
    C{fs.CopyDir} does). Returns the number of entries copied.
    """
    count = 0
    links: dict[tuple[int, int], str] = {}
    dir_times: list[tuple[str, os.stat_result]] = []

    def walk(s_dir: str, d_dir: str) -> None:
        nonlocal count
        with os.scandir(s_dir) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            s = os.path.join(s_dir, entry.name)
            d = os.path.join(d_dir, entry.name)
            st = os.lstat(s)
            mode = st.st_mode
            count += 1
            if stat.S_ISDIR(mode):
                os.mkdir(d, 0o700)
                walk(s, d)
                _apply_meta(st, s, d, False)
                dir_times.append((d, st))
                continue
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                os.link(links[key], d)
                continue
            if stat.S_ISREG(mode):
                _copy_file_data(s, d, mode)
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(s), d)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                os.mknod(d, stat.S_IFMT(mode) | 0o600, st.st_rdev)
            elif stat.S_ISSOCK(mode):
                continue  # sockets are not copied (as with tar/docker)
            else:
                continue
            _apply_meta(st, s, d, stat.S_ISLNK(mode))
            os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            if st.st_nlink > 1:
                links[key] = d

    walk(src, dst)
    top = os.lstat(src)
    _apply_meta(top, src, dst, False)
    dir_times.append((dst, top))
    for d, st in dir_times:
        os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    return count


def tree_size(path: str) -> int:
    """Bytes used by the files under C{path} (hardlinks counted once), like dockerd's
    C{directory.Size}; -1 when C{path} is missing."""
    if not os.path.lexists(path):
        return -1
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [path]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
                    continue
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += st.st_size
    return total
