"""Tar members written inside a root: the build context and ADD's local archives (layer: engine).

Every member is placed with L{pyd.drivers.inroot.InRoot}: its parent directory is resolved (and
created) inside the root by the kernel, and the member itself is made with a C{*at} call on that
directory's descriptor without following its last element. A symlink in the tree (one an earlier
member made, or one the image already holds) can therefore lead elsewhere *inside* the root, never
to a host path: no write, setuid file, removal, chmod or hard link can reach outside.

Blocking; the caller runs it in the io pool.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import tarfile
from collections.abc import Callable, Iterable

import attrs

from pyd.drivers.inroot import InRoot, fd_path, remove_at, split
from pyd.drivers.storage.untar import refuse_through_link, through_link

CHUNK = 1 << 20

# Plain texts for the errors a hostile or broken archive can cause (no errno or host path text).
_REASONS = {
    errno.ENOTDIR: "a path element is not a directory",
    errno.EISDIR: "is a directory",
    errno.ELOOP: "too many levels of symbolic links",
    errno.ENOENT: "no such file or directory",
    errno.EEXIST: "already exists",
    errno.EPERM: "operation not permitted",
    errno.EACCES: "permission denied",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EXDEV: "outside of the root",
    errno.ENAMETOOLONG: "file name too long",
    errno.EMLINK: "too many links",
}


def reason(err: OSError) -> str:
    """A short plain description of C{err} for a client (Go's wording, no host path)."""
    return _REASONS.get(err.errno or 0, "cannot be written")


class MemberError(Exception):
    """A member the archive cannot place (the message names the member, never a host path)."""


class LimitReached(MemberError):
    """The archive goes past a limit (its message names the limit, not a member)."""


SPACE_CHECK_EVERY = 16 << 20  # bytes written between two free-space checks


def check_free_space(path: str, keep_free: int) -> None:
    """Refuse to go on when the filesystem of C{path} has less than C{keep_free} bytes free.

    @raise LimitReached: below the reserve (the message names the rule, not the path)."""
    st = os.statvfs(path)
    if st.f_bavail * st.f_frsize < keep_free:
        raise LimitReached(
            f"not enough free space: the data root's filesystem keeps {keep_free} bytes free "
            "(min-free-space)"
        )


class Budget:
    """The bytes extractions wrote, against the policy's limit and free-space check: one per
    extraction, or one shared by the archives a single ADD step unpacks into its one layer."""

    def __init__(self, policy: Policy) -> None:
        self.max_bytes = policy.max_bytes
        self.space_check = policy.space_check
        self.total = 0
        self._next_check = SPACE_CHECK_EVERY

    def admit(self, size: int) -> None:
        """Before a member of C{size} bytes is written: refuse one that crosses the limit."""
        if self.max_bytes and self.total + size > self.max_bytes:
            raise LimitReached(
                "the archive expands to more than the maximum layer size of "
                f"{self.max_bytes} bytes (max-layer-size)"
            )

    def wrote(self, n: int) -> None:
        """C{n} more bytes written: check the free space every L{SPACE_CHECK_EVERY}."""
        self.total += n
        if self.space_check is not None and self.total >= self._next_check:
            self._next_check = self.total + SPACE_CHECK_EVERY
            self.space_check()


@attrs.frozen
class Policy:
    """How members are written.

    @ivar owner: the uid:gid for a member (from its header), or None to leave root's.
    @ivar specials: make FIFOs and device nodes (ADD: as dockerd's untar); else skip them.
    @ivar link_meta: chown symlinks too (lchown).
    @ivar max_bytes: a member whose data would take the total past it is refused before it is
        written (max-layer-size for ADD of an archive).
    @ivar space_check: raises below the free-space reserve (min-free-space); called at the
        start and every L{SPACE_CHECK_EVERY} bytes written.
    """

    owner: Callable[[tarfile.TarInfo], tuple[int, int]] | None = None
    specials: bool = False
    link_meta: bool = False
    max_bytes: int = 0  # regular files' bytes the extraction may write (0: no limit)
    space_check: Callable[[], None] | None = None  # called every SPACE_CHECK_EVERY bytes


def finish(fd: int, owner: tuple[int, int] | None, mode: int | None, mtime: float | None) -> None:
    """Set owner, then mode (chown clears setuid bits), then times, of what C{fd} names.

    C{fd} may be an C{O_PATH} descriptor: the change goes through its C{/proc/self/fd} link,
    which names this very inode (never a symlink's target: the descriptor was opened without
    following one).
    """
    path = fd_path(fd)
    if owner is not None:
        os.chown(path, *owner)
    if mode is not None:
        os.chmod(path, mode)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def open_entry(pfd: int, base: str) -> int:
    """An C{O_PATH} descriptor of C{base} in C{pfd}, the entry itself (a symlink is not followed)."""
    return os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)


def lstat_at(pfd: int, base: str) -> os.stat_result | None:
    try:
        return os.stat(base, dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def ensure_dir(root: InRoot, pfd: int, base: str, path: str, mode: int = 0o755) -> int:
    """The directory C{path} (= C{base} in C{pfd}), made when missing; an C{O_PATH} descriptor.

    A directory there is kept; a symlink that leads (inside the root) to a directory is followed
    there, as a copy into the image's C{/lib -> usr/lib} must be; anything else there (a file,
    a dangling or non-directory link) is replaced by a new directory.
    """
    info = lstat_at(pfd, base)
    if info is not None and stat.S_ISLNK(info.st_mode):
        try:
            return root.open_dir(path)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                raise
            remove_at(pfd, base)
            info = None
    elif info is not None and not stat.S_ISDIR(info.st_mode):
        remove_at(pfd, base)
        info = None
    if info is None:
        os.mkdir(base, 0o755, dir_fd=pfd)
        fd = open_entry(pfd, base)
        os.chmod(fd_path(fd), mode)  # the daemon's umask does not decide
        return fd
    return os.open(base, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)


def extract(
    tf: tarfile.TarFile,
    members: Iterable[tarfile.TarInfo],
    root: InRoot,
    dest: str,
    policy: Policy,
    budget: Budget | None = None,
) -> int:
    """Write C{members} (read from C{tf}) under C{dest} (a path inside C{root}); return the
    bytes of regular files written (with a shared C{budget}: by every extraction counted on it).

    Member names and hardlink targets are taken relative to C{dest} (a leading C{/} too) and
    cleaned: C{..} cannot climb above the root. Directory modes and times are set last (writing into a directory
    changes its time).

    C{budget}, when given, carries the count over from earlier extractions into the same
    layer (its limit and check are the ones it was made with).

    @raise MemberError: a member that cannot be placed (truncated data, a hardlink to a
        missing name, a parent that is not a directory, ...).
    """
    budget = budget if budget is not None else Budget(policy)
    if policy.space_check is not None:
        policy.space_check()
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    # Symlinks this archive made (path -> target): a tar of a file system never holds an entry
    # below a link, so writing through one the same archive made is an escape attempt, refused
    # (the root still contains it, the second line of defence). Links already there are not
    # concerned.
    links: dict[str, str] = {}
    for m in members:
        path = posixpath.normpath(posixpath.join("/", dest, m.name.lstrip("/")))
        parent, base = split(path)
        if not base:
            continue  # the destination itself ("./")
        if links:
            _refuse_through_link(m.name, posixpath.dirname(path), links)
        if m.isreg():
            budget.admit(m.size)
        try:
            _place(tf, m, root, dest, parent, base, path, policy, dirs, budget)
        except OSError as e:
            raise MemberError(f"cannot extract {m.name!r}: {reason(e)}") from e
        if m.issym():
            links[path] = m.linkname
        else:
            links.pop(path, None)
    for path, m in reversed(dirs):
        try:
            fd = root.open_dir(path)
        except OSError:
            continue  # replaced by a later member
        try:
            owner = policy.owner(m) if policy.owner else None
            finish(fd, owner, (m.mode & 0o7777) or 0o755, m.mtime)
        finally:
            os.close(fd)
    return budget.total


def _refuse_through_link(name: str, parent: str, links: dict[str, str]) -> None:
    """Refuse entry C{name} when a parent of it (C{parent} or above) is a link in C{links} that
    leads out of the root (L{through_link}, the rule of image layers).

    @raise MemberError: naming the entry, the link and the rule."""
    rel_links = {k.lstrip("/"): v for k, v in links.items()}
    link = through_link(posixpath.join(parent, "x").lstrip("/"), rel_links)
    if link is not None:
        raise MemberError(str(refuse_through_link("entry", name, link, rel_links)))


def _place(
    tf: tarfile.TarFile,
    m: tarfile.TarInfo,
    root: InRoot,
    dest: str,
    parent: str,
    base: str,
    path: str,
    policy: Policy,
    dirs: list[tuple[str, tarfile.TarInfo]],
    budget: Budget,
) -> int:
    try:
        pfd = root.open_dir(parent)  # one lookup in the common case
    except FileNotFoundError:
        pfd = root.makedirs(parent)
    try:
        if m.isdir():
            os.close(ensure_dir(root, pfd, base, path))
            dirs.append((path, m))
            return 0
        if m.islnk():
            return _hardlink(m, root, dest, pfd, base)
        if (m.ischr() or m.isblk() or m.isfifo()) and not policy.specials:
            return 0  # not meaningful in a build context
        if not (m.isreg() or m.issym() or m.ischr() or m.isblk() or m.isfifo()):
            return 0
        # Never write through what is there (a symlink could lead anywhere in the root).
        remove_at(pfd, base)
        owner = policy.owner(m) if policy.owner else None
        if m.issym():
            os.symlink(m.linkname, base, dir_fd=pfd)
            if owner is not None and policy.link_meta:
                os.chown(base, *owner, dir_fd=pfd, follow_symlinks=False)
            return 0
        if m.isreg():
            return _regular(tf, m, pfd, base, owner, budget)
        if m.isfifo():
            os.mkfifo(base, 0o600, dir_fd=pfd)
        else:
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(base, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
        fd = open_entry(pfd, base)
        try:
            finish(fd, owner, m.mode & 0o7777, m.mtime)
        finally:
            os.close(fd)
        return 0
    finally:
        os.close(pfd)


def _regular(
    tf: tarfile.TarFile,
    m: tarfile.TarInfo,
    pfd: int,
    base: str,
    owner: tuple[int, int] | None,
    budget: Budget,
) -> int:
    src = tf.extractfile(m)
    assert src is not None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(base, flags, 0o600, dir_fd=pfd)
    try:
        written = 0
        while chunk := src.read(CHUNK):
            os.write(fd, chunk)
            written += len(chunk)
            budget.wrote(len(chunk))
        if written != m.size:
            raise MemberError(f"unexpected EOF in {m.name!r}")
        finish(fd, owner, m.mode & 0o7777, m.mtime)
        return written
    finally:
        os.close(fd)


def _hardlink(m: tarfile.TarInfo, root: InRoot, dest: str, pfd: int, base: str) -> int:
    # The link's source is named from the top of the extraction, resolved inside the root; its
    # last element is not followed (a hard link to a symlink links the symlink).
    target = posixpath.normpath(posixpath.join("/", dest, m.linkname.lstrip("/")))
    try:
        with root.at(target) as (sfd, sbase):
            if not sbase or lstat_at(sfd, sbase) is None:
                raise FileNotFoundError(errno.ENOENT, "missing")
            remove_at(pfd, base)
            os.link(sbase, base, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        raise MemberError(f"hardlink {m.name!r} to missing {m.linkname!r}") from None
    return 0
