"""Volume subpaths opened once, in scope of the volume, and mounted by descriptor (layer: drivers).

A C{VolumeOptions.Subpath} names a directory (or file) inside a volume that containers write to:
any of them can turn C{sub} into C{sub -> /} at any moment. So the subpath is never handed on by
name. L{open_subpath} opens it once, relative to a descriptor of the volume's C{_data}, with
C{openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)} (dockerd's rule, moby's C{safepath.Join}:
links that stay inside the volume are followed, one that leaves it is an error). Then:

  - for the runtime, L{StagingArea.attach} clones that descriptor (C{open_tree(OPEN_TREE_CLONE)})
    and attaches the clone (C{move_mount}) at C{<exec-root>/mounts/<container>/<n>}, a path
    only root can reach and no container sees; crun gets that path as the bind source. The
    staging mounts go as soon as the runtime created the container (it holds its own copy of
    each mount) or the start failed (L{StagingArea.release}), and what a crash left at daemon
    start (L{StagingArea.sweep}) or container removal;
  - the C{docker cp} helper (L{pyd.drivers.streams.rootview}) clones the same descriptor and
    attaches it inside its private view.

Nothing is looked up by name between the check and the mount. Standard library only (the cp
helper imports it without site-packages); everything here blocks.
"""

from __future__ import annotations

import ctypes
import errno
import os
import posixpath
import stat as st
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from pyd.drivers import inroot

MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

_libc = ctypes.CDLL(None, use_errno=True)


class SubpathError(Exception):
    """The subpath cannot be used: C{kind} is C{"escape"} (it leaves the volume) or
    C{"notfound"} (missing, not a directory where one is needed, a link loop)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def clean_subpath(subpath: str) -> str:
    """The subpath as a clean relative path (C{"."} for the volume itself)."""
    return posixpath.normpath("/" + subpath).lstrip("/") or "."


def open_subpath(base: str, subpath: str) -> int:
    """An C{O_PATH} descriptor of C{subpath} inside the volume directory C{base}.

    C{base} is the daemon's own path (its last element is not followed); C{subpath} is resolved
    beneath it by the kernel in one step.

    @raise SubpathError: C{escape} when a link or C{..} leaves C{base}; C{notfound} otherwise.
    """
    with _beneath(base, subpath, "access", "volume") as scope:
        return scope.open(clean_subpath(subpath), os.O_PATH)


@contextmanager
def _beneath(base: str, subpath: str, verb: str, what: str) -> Iterator[inroot.InRoot]:
    """C{base} (its last element not followed) as a RESOLVE_BENEATH scope; what goes wrong in
    it, as L{SubpathError}: C{escape} for a link or C{..} out of C{base}, else C{notfound}."""
    try:
        root = os.open(base, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise SubpathError("notfound", f"cannot access {what}: {_reason(e)}") from None
    try:
        with inroot.InRoot(root, beneath=True) as scope:
            yield scope
    except OSError as e:
        if e.errno == errno.EXDEV:
            raise SubpathError(
                "escape", f"path concatenation escapes the base directory, subpath: {subpath}"
            ) from None
        raise SubpathError("notfound", f"cannot {verb} path {subpath}: {_reason(e)}") from None
    finally:
        os.close(root)


def confine(path: str, roots: Iterable[str]) -> tuple[str, str] | None:
    """The allowed root a host bind source was admitted under, and its path beneath that root.

    Both are taken with symlinks resolved (as the admission check compares them); of several
    roots holding the path, the outermost, so that no other allowed directory (one a container
    may write to) is on the way to the root itself. None: under none of C{roots}.
    """
    real = os.path.realpath(path)
    best: tuple[str, str] | None = None
    for base in roots:
        rb = os.path.realpath(base)
        prefix = rb.rstrip("/") + "/"
        if real == rb:
            rel = "."
        elif real.startswith(prefix):
            rel = real[len(prefix) :]
        else:
            continue
        if best is None or len(rb) < len(best[0]):
            best = (rb, rel)
    return best


def makedirs_beneath(root: str, subpath: str) -> None:
    """C{mkdir -p} of C{subpath} beneath the directory C{root} (mode 0755), never through a link
    that leaves it; an existing non-directory is left alone (it is bound as a file).

    @raise SubpathError: C{escape} when a link on the way leaves C{root}.
    """
    with _beneath(root, subpath, "create", "the allowed directory") as scope:
        try:
            os.close(scope.makedirs(clean_subpath(subpath)))
        except (
            FileExistsError,
            NotADirectoryError,
        ):  # already there (a file in the way is reported when the path is used)
            pass


def _reason(e: OSError) -> str:
    return (os.strerror(e.errno) if e.errno else "error").lower()


def clone_subpath(
    base: str, subpath: str, *, recursive: bool = True, readonly: bool = False
) -> tuple[int, bool]:
    """A detached mount of C{subpath} inside C{base} (L{open_subpath}, then
    L{inroot.clone_tree}) and whether it is a directory. The caller attaches and closes it."""
    fd = open_subpath(base, subpath)
    try:
        is_dir = st.S_ISDIR(os.fstat(fd).st_mode)
        return inroot.clone_tree(fd, recursive=recursive, readonly=readonly), is_dir
    finally:
        os.close(fd)


_MOUNT_ATTRS = {
    "ro": inroot.MOUNT_ATTR_RDONLY,
    "nosuid": inroot.MOUNT_ATTR_NOSUID,
    "nodev": inroot.MOUNT_ATTR_NODEV,
    "noexec": inroot.MOUNT_ATTR_NOEXEC,
}


def mount_beneath(
    root: str, subpath: str, target: str, *, recursive: bool, flags: frozenset[str]
) -> None:
    """Mount C{subpath}, opened beneath C{root}, on the directory C{target} by descriptor
    (a bind volume's device on its C{_data}); C{flags} from C{ro}, C{nosuid}, C{nodev}, C{noexec}.

    @raise SubpathError: it leaves C{root} or cannot be opened.
    """
    fd = open_subpath(root, subpath)
    try:
        attr = 0
        for f in flags:
            attr |= _MOUNT_ATTRS[f]
        tree = inroot.clone_tree(fd, recursive=recursive, attr_set=attr)
    finally:
        os.close(fd)
    try:
        dfd = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            inroot.attach_tree(tree, dfd)
        finally:
            os.close(dfd)
    finally:
        os.close(tree)


def detach(path: str) -> None:
    """C{umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW)} until nothing is mounted there."""
    raw = os.fsencode(path)
    for _ in range(64):
        if _libc.umount2(raw, MNT_DETACH | UMOUNT_NOFOLLOW) < 0:
            err = ctypes.get_errno()
            if err in (errno.EINVAL, errno.ENOENT):
                return  # not (or no longer) a mount point
            raise OSError(err, os.strerror(err), path)


class StagingArea:
    """C{<exec-root>/mounts}: per container, the subpath mounts the runtime binds from.

    @param root: the staging directory (created 0700, root only).
    """

    def __init__(self, root: str) -> None:
        self.root = root

    def container_dir(self, container_id: str) -> str:
        return os.path.join(self.root, container_id)

    def attach(
        self, container_id: str, index: int, base: str, subpath: str, *, recursive: bool = True
    ) -> str:
        """Mount C{subpath} of the volume at C{base} on a fresh staging point of the container;
        returns that path (the bind source to give the runtime).

        @raise SubpathError: the subpath leaves the volume or cannot be opened.
        """
        tree, is_dir = clone_subpath(base, subpath, recursive=recursive)
        try:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
            os.chmod(self.root, 0o700)
            cdir = self.container_dir(container_id)
            try:
                os.mkdir(cdir, 0o700)
            except FileExistsError:  # made by an earlier start of this container
                pass
            dfd = os.open(cdir, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                name = str(index)
                if is_dir:
                    os.mkdir(name, 0o700, dir_fd=dfd)
                else:
                    os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC,
                                     0o600, dir_fd=dfd))  # fmt: skip
                try:
                    inroot.attach_tree(tree, dfd, name)
                except OSError as e:
                    if is_dir:
                        os.rmdir(name, dir_fd=dfd)
                    else:
                        os.unlink(name, dir_fd=dfd)
                    if e.errno == errno.ENOENT:  # removed since it was opened
                        raise SubpathError(
                            "notfound", f"cannot access path {subpath}: no such file or directory"
                        ) from None
                    raise
            finally:
                os.close(dfd)
            return os.path.join(cdir, name)
        finally:
            os.close(tree)

    def release(self, container_id: str) -> None:
        """Detach and remove the container's staging points (idempotent)."""
        cdir = self.container_dir(container_id)
        try:
            names = os.listdir(cdir)
        except FileNotFoundError:
            return
        for name in names:
            path = os.path.join(cdir, name)
            detach(path)
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    os.rmdir(path)
                else:
                    os.unlink(path)
            except FileNotFoundError:  # already removed: the goal is reached
                pass
        try:
            os.rmdir(cdir)
        except FileNotFoundError:  # already removed: the goal is reached
            pass

    def sweep(self) -> int:
        """At daemon start: release every container's leftovers (a container keeps its own
        copy of each mount, so this is safe for running ones too); returns how many."""
        try:
            ids = os.listdir(self.root)
        except FileNotFoundError:
            return 0
        for cid in ids:
            self.release(cid)
        return len(ids)
