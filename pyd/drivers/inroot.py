"""Files inside a root, reached only through descriptors: the one path-safety layer (layer: drivers).

Every host-side operation the daemon does on behalf of a container, an image or a build input (build
COPY/ADD, cp and archive, export, commit and diff, copy-up, volume subpaths, user and group lookup)
names its files *inside a root* and goes through L{InRoot}. The kernel resolves each path with
C{openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)} relative to a descriptor of the root, so:

  - an absolute symlink restarts at the root and C{..} stops at it (moby's C{FollowSymlinkInScope},
    but done by the kernel in one step, not by a user-space walk that a racing container can beat);
  - C{/proc/<pid>/root}-style magic links are refused;
  - what was checked is what is used: callers keep the descriptor, never the host path, and name
    the next file relative to it.

Host paths built from container data must never be passed to C{os.path.*}, C{open()}, C{shutil} or
C{tarfile}; take a descriptor here and work on it (C{os.fstat}, C{os.read}, C{*at} calls with
C{dir_fd=}). Reading a small file (C{/etc/passwd}) goes through L{InRoot.read_small}: regular files
only, opened non-blocking (a FIFO cannot hang the daemon), size-capped (a device cannot be read).

Mount sources are opened once and mounted by descriptor: L{clone_tree} makes a detached copy of the
mount at a descriptor (C{open_tree(OPEN_TREE_CLONE)}), L{attach_tree} attaches it
(C{move_mount}); nothing is looked up by name between the check and the mount.

Standard library only: helper processes import it without site-packages. Everything here blocks.
"""

from __future__ import annotations

import ctypes
import errno
import os
import posixpath
import stat as st
from collections.abc import Iterator
from contextlib import contextmanager

# linux/openat2.h
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

# Syscall numbers: the same on x86_64 and aarch64 (the generic table) for these.
SYS_OPENAT2 = 437
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_MOUNT_SETATTR = 442

OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
AT_SYMLINK_NOFOLLOW = 0x100
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

# How often openat2 is retried when the kernel answers EAGAIN (a rename raced a RESOLVE_IN_ROOT
# lookup of ".."): the kernel refuses rather than risk an escape, and a retry is safe.
_EAGAIN_TRIES = 64


class _OpenHow(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


def _raise(what: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, os.strerror(err), what)


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """The raw C{openat2(2)}; C{O_CLOEXEC} is always added. Raises C{OSError} with the errno."""
    creating = flags & os.O_CREAT or flags & os.O_TMPFILE == os.O_TMPFILE
    how = _OpenHow(flags | os.O_CLOEXEC, mode if creating else 0, resolve)
    raw = os.fsencode(path)
    for _ in range(_EAGAIN_TRIES):
        fd = _libc.syscall(
            SYS_OPENAT2,
            ctypes.c_int(dirfd),
            raw,
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        if ctypes.get_errno() != errno.EAGAIN:
            _raise(path)
    _raise(path)
    raise AssertionError("unreachable")


def split(path: str) -> tuple[str, str]:
    """A container path as (cleaned parent, last element); the root is C{("/", "")}.

    C{..} is collapsed lexically first (as moby cleans paths): C{/a/../b} is C{/b}; resolution of
    what remains happens in the kernel.
    """
    clean = posixpath.normpath("/" + path)
    if clean == "/" or clean == "//":
        return "/", ""
    parent, base = posixpath.split(clean)
    return parent, base


class InRoot:
    """A directory tree that paths are resolved inside of: a container root, an image layer, a
    volume, a build context.

    @param root: the host path of the root (opened once, here) or an open directory descriptor
        (duplicated; the caller keeps its own).
    @param xdev: also refuse to cross a mount point (C{RESOLVE_NO_XDEV}).
    @param beneath: refuse what would leave the root instead of keeping it in: an absolute
        symlink, or a C{..} (in the path or in a link) that climbs above the root, fails with
        C{EXDEV} (C{RESOLVE_BENEATH}) where the default restarts at the root. dockerd's rule for
        a volume subpath: links that stay inside are followed, one that leaves is an error.
    """

    def __init__(self, root: str | int, *, xdev: bool = False, beneath: bool = False) -> None:
        if isinstance(root, int):
            self.fd = os.dup(root)
        else:
            self.fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        scope = RESOLVE_BENEATH if beneath else RESOLVE_IN_ROOT
        self.resolve = scope | RESOLVE_NO_MAGICLINKS | (RESOLVE_NO_XDEV if xdev else 0)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> InRoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- opening -------------------------------------------------------------------------------

    def open(
        self, path: str, flags: int = os.O_RDONLY, mode: int = 0o644, *, follow: bool = True
    ) -> int:
        """A descriptor for C{path} (a container path) resolved inside the root.

        @param follow: follow a symlink in the last element (inside the root). With C{follow=False}
            a symlink there is opened itself when C{flags} has C{O_PATH}, else C{ELOOP}.
        """
        rel = posixpath.normpath("/" + path).lstrip("/") or "."
        if not follow:
            flags |= os.O_NOFOLLOW
        if not flags & os.O_PATH:  # openat2 refuses any other flag beside O_PATH
            flags |= os.O_NOCTTY
        return openat2(self.fd, rel, flags, mode, self.resolve)

    def open_dir(self, path: str) -> int:
        """An C{O_PATH} descriptor of the directory C{path} (symlinks followed in scope)."""
        return self.open(path, os.O_PATH | os.O_DIRECTORY)

    def parent(self, path: str) -> tuple[int, str]:
        """The directory holding C{path}'s last element, opened in scope, and that element.

        The caller creates, removes, renames or C{lstat}s the element with C{dir_fd=} and closes
        the descriptor. The root itself has no parent: C{(fd of the root, "")}.
        """
        parent, base = split(path)
        return self.open_dir(parent), base

    @contextmanager
    def at(self, path: str) -> Iterator[tuple[int, str]]:
        """L{parent} as a context manager that closes the descriptor."""
        fd, base = self.parent(path)
        try:
            yield fd, base
        finally:
            os.close(fd)

    # -- looking ---------------------------------------------------------------------------------

    def lstat(self, path: str) -> os.stat_result:
        """C{lstat} of C{path}: the last element is not followed, the directories are, in scope."""
        with self.at(path) as (fd, base):
            if not base:
                return os.fstat(fd)
            return os.stat(base, dir_fd=fd, follow_symlinks=False)

    def stat(self, path: str) -> os.stat_result:
        """C{stat} of C{path}, every symlink followed inside the root."""
        fd = self.open(path, os.O_PATH)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def exists(self, path: str, *, follow: bool = True) -> bool:
        try:
            self.stat(path) if follow else self.lstat(path)
        except OSError:
            return False
        return True

    def readlink(self, path: str) -> str:
        with self.at(path) as (fd, base):
            return os.readlink(base, dir_fd=fd)

    def realpath(self, path: str) -> str:
        """C{path} with every symlink resolved in scope, as a container path (absolute, clean).

        The kernel does the resolution; the answer is read back from the descriptor, so it is
        what the kernel opened (the path must exist).
        """
        fd = self.open(path, os.O_PATH)
        try:
            return self.container_path(fd)
        finally:
            os.close(fd)

    def container_path(self, fd: int) -> str:
        """The container path of a descriptor opened inside this root."""
        root = os.readlink(f"/proc/self/fd/{self.fd}")
        target = os.readlink(f"/proc/self/fd/{fd}")
        if target == root:
            return "/"
        if root == "/":
            return target
        if not target.startswith(root + "/"):
            raise OSError(errno.EXDEV, "outside the root", target)
        return target[len(root) :]

    def read_small(self, path: str, limit: int = 1 << 20) -> bytes | None:
        """The content of a small regular file, or None when it is missing or not a regular file.

        Resolved to an C{O_PATH} descriptor and checked to be a regular file first, so a device
        node or a FIFO is never opened (opening a device can have effects of its own; a FIFO
        would block); only then is that same inode reopened for reading, non-blocking. More
        than C{limit} bytes is refused.

        @raise OSError: C{EFBIG} when the file is larger than C{limit}; C{ELOOP}/C{EXDEV} from the
            resolution are passed through.
        """
        try:
            pfd = self.open(path, os.O_PATH)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        try:
            if not st.S_ISREG(os.fstat(pfd).st_mode):
                return None
            # the inode just checked, not a name: nothing can be swapped in between
            fd = os.open(fd_path(pfd), os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        finally:
            os.close(pfd)
        try:
            info = os.fstat(fd)
            if not st.S_ISREG(info.st_mode):
                return None
            if info.st_size > limit:
                raise OSError(errno.EFBIG, "file too large", path)
            chunks = []
            total = 0
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                total += len(chunk)
                if total > limit:
                    raise OSError(errno.EFBIG, "file too large", path)
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    # -- making ----------------------------------------------------------------------------------

    def makedirs(
        self, path: str, mode: int = 0o755, uid: int | None = None, gid: int | None = None
    ) -> int:
        """C{mkdir -p} inside the root; returns an C{O_PATH} descriptor of the directory.

        Existing elements are followed in scope; a dangling symlink is followed to where it points
        (inside the root) and that is created, as moby's in-scope C{MkdirAll} does. Each missing
        element is created in its resolved parent with C{mkdirat}, owned by C{uid}:C{gid} when
        given (only the created ones).
        """
        pending = [p for p in posixpath.normpath("/" + path).split("/") if p]
        fd = os.dup(self.fd)
        done = "/"
        hops = 0
        try:
            while pending:
                part = pending.pop(0)
                nxt = posixpath.join(done, part)
                try:
                    new = self.open_dir(nxt)
                except FileNotFoundError:
                    try:
                        info = os.stat(part, dir_fd=fd, follow_symlinks=False)
                    except FileNotFoundError:
                        try:
                            os.mkdir(part, mode, dir_fd=fd)
                        except FileExistsError:
                            pending.insert(0, part)  # a racer made it: look again
                            continue
                        if uid is not None or gid is not None:
                            own = (-1 if uid is None else uid, -1 if gid is None else gid)
                            os.chown(part, *own, dir_fd=fd, follow_symlinks=False)
                        new = self.open_dir(nxt)
                    else:
                        if not st.S_ISLNK(info.st_mode):
                            raise
                        hops += 1
                        if hops > 255:
                            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path) from None
                        target = os.readlink(part, dir_fd=fd)
                        pending = [p for p in target.split("/") if p] + pending
                        if target.startswith("/"):
                            os.close(fd)
                            fd = os.dup(self.fd)
                            done = "/"
                        continue
                os.close(fd)
                fd = new
                # where the kernel landed: a symlink element moves us elsewhere in the root
                done = self.container_path(fd)
            return fd
        except BaseException:
            os.close(fd)
            raise

    def create(self, path: str, mode: int = 0o644, *, replace: bool = True) -> int:
        """A new regular file at C{path}, open for writing (C{O_WRONLY}).

        The last element is never followed: an existing symlink or file there is removed first
        when C{replace} (as a copy over it does), else C{FileExistsError}.
        """
        with self.at(path) as (pfd, base):
            if not base:
                raise IsADirectoryError(errno.EISDIR, "is the root", path)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                return os.open(base, flags, mode, dir_fd=pfd)
            except FileExistsError:
                if not replace:
                    raise
                info = os.stat(base, dir_fd=pfd, follow_symlinks=False)
                if st.S_ISDIR(info.st_mode):
                    raise IsADirectoryError(errno.EISDIR, "is a directory", path) from None
                os.unlink(base, dir_fd=pfd)
                return os.open(base, flags, mode, dir_fd=pfd)

    def remove(self, path: str) -> None:
        """Remove the last element of C{path} (not followed); a directory with its content."""
        with self.at(path) as (pfd, base):
            if not base:
                raise PermissionError(errno.EPERM, "cannot remove the root", path)
            remove_at(pfd, base)


def remove_at(dirfd: int, name: str) -> None:
    """C{rm -rf name} relative to a directory descriptor, never following a symlink."""
    try:
        info = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not st.S_ISDIR(info.st_mode):
        os.unlink(name, dir_fd=dirfd)
        return
    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
    try:
        for entry in os.scandir(sub):
            remove_at(sub, entry.name)
    finally:
        os.close(sub)
    os.rmdir(name, dir_fd=dirfd)


def fd_path(fd: int) -> str:
    """A path the daemon's own children can open for C{fd} (C{/proc/self/fd/N} of this process).

    Only for handing a descriptor this process already resolved to a program it runs (the
    program opens the descriptor, not a name a container controls).
    """
    return f"/proc/{os.getpid()}/fd/{fd}"


# -- mounts by descriptor --------------------------------------------------------------------------


def clone_tree(
    fd: int, *, recursive: bool = True, readonly: bool = False, attr_set: int = 0
) -> int:
    """A detached copy of the mount at C{fd} (C{open_tree(OPEN_TREE_CLONE)} on the descriptor
    itself: C{AT_EMPTY_PATH}), made read-only when asked, with the C{MOUNT_ATTR_*} flags of
    C{attr_set} (e.g. C{MOUNT_ATTR_NOSUID}). The caller attaches it with L{attach_tree} and
    closes it.
    """
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    tree = _libc.syscall(SYS_OPEN_TREE, ctypes.c_int(fd), b"", ctypes.c_uint(flags))
    if tree < 0:
        _raise("open_tree")
    if readonly:
        attr_set |= MOUNT_ATTR_RDONLY
    if attr_set:
        attr = _MountAttr(attr_set=attr_set)
        rc = _libc.syscall(
            SYS_MOUNT_SETATTR,
            ctypes.c_int(tree),
            b"",
            ctypes.c_uint(AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)),
            ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)),
        )
        if rc < 0:
            os.close(tree)
            _raise("mount_setattr")
    return int(tree)


def attach_tree(tree: int, target_dirfd: int, name: str = "") -> None:
    """Attach a detached mount (from L{clone_tree}) at C{name} in the directory C{target_dirfd}
    (C{""}: on the directory itself). C{move_mount} never follows a symlink in C{name}.
    """
    flags = MOVE_MOUNT_F_EMPTY_PATH
    to_flags = 0 if name else 0x40  # MOVE_MOUNT_T_EMPTY_PATH
    rc = _libc.syscall(
        SYS_MOVE_MOUNT,
        ctypes.c_int(tree),
        b"",
        ctypes.c_int(target_dirfd),
        os.fsencode(name),
        ctypes.c_uint(flags | to_flags),
    )
    if rc < 0:
        _raise("move_mount")


# -- copying between roots ------------------------------------------------------------------------


class SpecialFile(OSError):
    """A device node, FIFO or socket where only files, directories and links are copied."""


def copy_tree(
    src: InRoot,
    src_path: str,
    dst: InRoot,
    dst_path: str,
    *,
    owner: tuple[int, int] | None = None,
    specials: bool = False,
    follow_top: bool = True,
    preserve: bool = False,
) -> int:
    """Copy C{src_path} (a file, link or directory of C{src}) to C{dst_path} in C{dst}.

    The source is walked by descriptors and never followed below its top (links are copied as
    links, their targets untouched); the destination is resolved inside C{dst} element by element,
    and an existing link at a file's place is replaced, not written through. A directory's content
    is merged into an existing directory. Ownership is C{owner} when given, else the source's
    (numeric ids only: no name is looked up). Modes, and times of files, are kept.

    @param specials: copy device nodes, FIFOs and sockets (C{mknod}); when False they raise
        L{SpecialFile} naming the source path (builds never read or create devices).
    @param follow_top: follow a symlink at C{src_path} itself (inside C{src}), as COPY does.
    @param preserve: an exact copy (a volume's copy-up, as dockerd's C{CopyDir}): extended
        attributes too (C{security.capability} after the owner), hard links kept as links,
        directory times, the modes of device nodes and FIFOs, and an existing directory (the
        top) takes the source's owner, mode and times.
    @return: the number of bytes copied.
    """
    flags = os.O_PATH | (0 if follow_top else os.O_NOFOLLOW)
    fd = src.open(src_path, flags)
    try:
        return _copy_fd(
            fd, None, src_path, dst, posixpath.normpath("/" + dst_path), owner, specials,
            {} if preserve else None,
        )  # fmt: skip
    finally:
        os.close(fd)


def _copy_fd(
    parent: int,
    name: str | None,
    label: str,
    dst: InRoot,
    dst_path: str,
    owner: tuple[int, int] | None,
    specials: bool,
    links: dict[tuple[int, int], str] | None = None,
) -> int:
    """Copy the entry C{name} of directory C{parent} (or C{parent} itself when C{name} is None).

    C{links} is None for a plain copy; with L{copy_tree}'s C{preserve} it maps the (device,
    inode) of each multiply-linked source file to where its first copy went.
    """
    info = os.fstat(parent) if name is None else os.stat(name, dir_fd=parent, follow_symlinks=False)
    uid, gid = owner if owner is not None else (info.st_uid, info.st_gid)
    mode = st.S_IMODE(info.st_mode)
    if st.S_ISDIR(info.st_mode):
        if name is None:
            dfd = _reopen_dir(parent)
        else:
            dfd = os.open(
                name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent
            )
        try:
            try:
                existing = dst.stat(dst_path)
            except FileNotFoundError:
                existing = None
            if existing is not None and not st.S_ISDIR(existing.st_mode):
                dst.remove(dst_path)
                existing = None
            out = dst.makedirs(dst_path)
            try:
                # the descriptor is the directory made or found in scope: chown/chmod through
                # it can only reach that directory, whatever a racer renames meanwhile
                if existing is None or owner is not None or links is not None:
                    os.chown(fd_path(out), uid, gid)
                if existing is None or links is not None:
                    os.chmod(fd_path(out), mode)
                if links is not None:
                    copy_xattrs(dfd, fd_path(out))
                total = 0
                for entry in sorted(os.listdir(dfd)):
                    total += _copy_fd(
                        dfd,
                        entry,
                        posixpath.join(label, entry),
                        dst,
                        posixpath.join(dst_path, entry),
                        owner,
                        specials,
                        links,
                    )
                if links is not None:
                    os.utime(fd_path(out), ns=(info.st_atime_ns, info.st_mtime_ns))
                return total
            finally:
                os.close(out)
        finally:
            os.close(dfd)
    if st.S_ISLNK(info.st_mode):
        assert name is not None  # a top that is a link was opened followed, or as O_PATH link
        target = os.readlink(name, dir_fd=parent)
        with dst.at(dst_path) as (pfd, base):
            if _is_nondir(pfd, base):
                remove_at(pfd, base)
            os.symlink(target, base, dir_fd=pfd)
            os.chown(base, uid, gid, dir_fd=pfd, follow_symlinks=False)
        return 0
    if st.S_ISREG(info.st_mode):
        key = (info.st_dev, info.st_ino)
        if (
            links is not None
            and info.st_nlink > 1
            and key in links
            and _link_in_scope(dst, links[key], dst_path)
        ):
            return 0
        if name is None:
            sfd = os.open(fd_path(parent), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        else:
            sfd = os.open(
                name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent
            )
        try:
            if not st.S_ISREG(os.fstat(sfd).st_mode):  # swapped since the stat
                raise SpecialFile(errno.EINVAL, "not a regular file", label)
            out = dst.create(dst_path, 0o600)
            try:
                total = _copy_bytes(sfd, out)
                os.fchown(out, uid, gid)
                os.fchmod(out, mode)
                if links is not None:
                    copy_xattrs(sfd, out)  # after the chown, which clears file capabilities
                    if info.st_nlink > 1:
                        links.setdefault(key, dst_path)
                os.utime(out, ns=(info.st_atime_ns, info.st_mtime_ns))
                return total
            finally:
                os.close(out)
        finally:
            os.close(sfd)
    if not specials:
        raise SpecialFile(errno.EPERM, "device, FIFO or socket", label)
    with dst.at(dst_path) as (pfd, base):
        if _is_nondir(pfd, base):
            remove_at(pfd, base)
        os.mknod(base, info.st_mode, info.st_rdev, dir_fd=pfd)
        os.chown(base, uid, gid, dir_fd=pfd, follow_symlinks=False)
        if links is not None:  # mknod's mode went through the umask
            node = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            try:
                if st.S_IFMT(os.fstat(node).st_mode) == st.S_IFMT(info.st_mode):
                    os.chmod(fd_path(node), mode)
            finally:
                os.close(node)
    return 0


def _link_in_scope(dst: InRoot, first: str, path: str) -> bool:
    """Hard-link C{path} to the earlier copy C{first}, both resolved inside C{dst}; False when
    that copy is gone (the caller copies the file again)."""
    try:
        with dst.at(first) as (p1, b1), dst.at(path) as (p2, b2):
            if _is_nondir(p2, b2):
                remove_at(p2, b2)
            # linkat without AT_SYMLINK_FOLLOW: a link planted at `first` is linked, not followed
            os.link(b1, b2, src_dir_fd=p1, dst_dir_fd=p2, follow_symlinks=False)
            return True
    except (FileNotFoundError, NotADirectoryError, FileExistsError):
        return False


def copy_xattrs(src_fd: int, dst: int | str) -> None:
    """Extended attributes of the open file C{src_fd} onto C{dst} (a descriptor, or a
    C{/proc/self/fd} path of one); namespaces the target refuses are skipped, as dockerd's
    copy-up ignores unsupported ones."""
    try:
        names = os.listxattr(src_fd)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return
        raise
    for key in names:
        try:
            os.setxattr(dst, key, os.getxattr(src_fd, key))
        except OSError as e:
            if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.ENODATA):
                raise


def _copy_bytes(src: int, dst: int) -> int:
    """Copy a file's bytes in the kernel where it can (copy_file_range), else by reads."""
    total = 0
    try:
        while n := os.copy_file_range(src, dst, 1 << 24):
            total += n
        return total
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
    while chunk := os.read(src, 1 << 20):
        os.write(dst, chunk)
        total += len(chunk)
    return total


def _reopen_dir(fd: int) -> int:
    """A readable descriptor of the directory an C{O_PATH} descriptor names."""
    return os.open(fd_path(fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _is_nondir(dirfd: int, name: str) -> bool:
    try:
        return not st.S_ISDIR(os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False
