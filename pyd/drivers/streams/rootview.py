"""A container's files as the container sees them, for C{docker cp} (layer: drivers).

C{rootview SPEC OP [ARG...]} (L{helper_argv}) builds a private view of a container's
filesystem in a mount namespace of its own, C{chroot}s into it, then runs one operation and
prints one JSON line on stdout. The view dies with the process: nothing is ever mounted in the
daemon's (the host's) mount namespace.

SPEC (JSON) says how to build the view:

  - C{"mode": "live"}: a running container. The helper joins the mount namespace of C{pid},
    checks that its root is the container's root (C{expect}: the device and inode of the
    mounted root, so a recycled pid is refused as C{"stale"}), copies the namespace
    (C{unshare}), makes every mount private to the copy and detaches every mount that is not
    the root, one of C{keep} or below one of C{keep} (the runtime's /proc, /sys, /dev, the
    init binary). What stays are the container's live volumes, binds, tmpfs and hosts files,
    read-only where the container has them read-only.
  - C{"mode": "mounts"}: a container that is not running. The helper makes a private copy of
    the host's namespace, clones each bind source (C{open_tree}; read-only ones made so; a
    volume C{subpath} is opened inside its volume C{source} and cloned by descriptor,
    L{pyd.drivers.volumes.stage}, so a link there never leads out of the volume),
    C{chroot}s into C{root} and attaches each clone at its destination resolved I{inside} the
    chroot (so a symlink in the container can never send a mount onto a host path), creating
    the mount point when missing as dockerd does; a C{tmpfs} gets a fresh empty tmpfs (dockerd's
    view does the same). C{"optional"} bind sources that do not exist are skipped.

Operations (paths are container paths):

  - C{stat PATH}: C{{"stat": {...}}} or C{{"stat": null}}.
  - C{get PATH}: the stat, and a tar of the path written to fd 3.
  - C{put PATH [--no-overwrite-dir-non-dir]}: extract the tar on fd 0 (a regular file, read
    from its start, or a pipe the request body arrives on) into the directory PATH (every
    element followed in scope), after the checks listed in C{checks}: C{{"ok": true}}.

Known failures are C{{"error": KIND, "message": TEXT}} with exit status 0, KIND one of
C{stale}, C{notfound}, C{escape}, C{notdir}, C{ro-volume}, C{ro-rootfs}, C{dir-non-dir},
C{tar}, C{setup}, C{subpath-escape}, C{subpath-notfound}; anything else is a traceback on stderr and exit status 1.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import posixpath
import stat as st
import sys
from typing import Any

from pyd.drivers import sealed
from pyd.drivers.storage import untar
from pyd.drivers.streams import rootpaths, tarstream
from pyd.drivers.volumes import stage

CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_SYMLINKS = 0x10
MOUNT_ATTR_RDONLY = 0x1
# x86_64 and aarch64 share these (the new mount API has one number on every architecture)
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_MOUNT_SETATTR = 442

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

_TMPFS_FLAGS = {
    "ro": MS_RDONLY,
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
}
_TMPFS_IGNORED = {"rw", "suid", "dev", "exec", "rprivate", "private", "tmpcopyup", "notmpcopyup"}


class ViewError(Exception):
    """A known failure: C{kind} for the caller, C{message} for the user."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _abs(path: str) -> str:
    """C{path} absolute and clean (C{normpath} keeps a leading C{//})."""
    return posixpath.normpath("/" + path.lstrip("/"))


def _check(rc: int, what: str) -> int:
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return rc


def _make_private() -> None:
    _check(_libc.unshare(CLONE_NEWNS), "unshare")
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make-rprivate /")


def _unescape(field: str) -> str:
    """mountinfo's octal escapes (space, tab, newline, backslash)."""
    out = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit() and len(field[i + 1 : i + 4]) == 3:
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _mount_points(proc_dir: int) -> list[str]:
    fd = os.open("mountinfo", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_dir)
    with os.fdopen(fd, "r", encoding="utf-8", errors="surrogateescape") as f:
        return [_unescape(line.split(" ")[4]) for line in f if line.strip()]


def _under(path: str, prefixes: list[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def setup_live(pid: int, expect: tuple[int, int], keep: list[str]) -> None:
    """Join a copy of C{pid}'s mount namespace with only the root and C{keep} left.

    @raise ViewError: C{stale} when C{pid} is gone or its root is not C{expect}.
    """
    keep = [_abs(k) for k in keep]
    # our own /proc directory, opened now: after the setns "/proc" is the container's procfs
    proc_dir = os.open(f"/proc/{os.getpid()}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            ns = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise ViewError("stale", f"container process {pid} is gone") from e
        try:
            _check(_libc.setns(ns, CLONE_NEWNS), "setns")
        finally:
            os.close(ns)
        _make_private()
        os.chdir("/")
        info = os.stat("/")
        if (info.st_dev, info.st_ino) != tuple(expect):
            raise ViewError("stale", f"process {pid} is not in the container")
        for _ in range(4):
            drop: list[str] = []
            for mp in sorted(set(_mount_points(proc_dir)), key=lambda p: p.count("/")):
                if mp == "/" or _under(mp, keep) or _under(mp, drop):
                    continue
                drop.append(mp)
            if not drop:
                return
            for mp in drop:
                rc = _libc.umount2(
                    mp.encode("utf-8", "surrogateescape"), MNT_DETACH | UMOUNT_NOFOLLOW
                )
                if rc < 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
                    _check(rc, f"detach {mp}")
        raise ViewError("setup", "cannot detach the runtime's mounts from the view")
    finally:
        os.close(proc_dir)


def _open_tree(source: str, recursive: bool, rw: bool) -> int:
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    fd = _check(
        _libc.syscall(SYS_OPEN_TREE, AT_FDCWD, source.encode(), ctypes.c_uint(flags)),
        f"open_tree {source}",
    )
    if not rw:
        attr = _MountAttr(attr_set=MOUNT_ATTR_RDONLY)
        _check(
            _libc.syscall(
                SYS_MOUNT_SETATTR,
                fd,
                b"",
                ctypes.c_uint(AT_EMPTY_PATH | AT_RECURSIVE),
                ctypes.byref(attr),
                ctypes.c_size_t(ctypes.sizeof(attr)),
            ),
            f"read-only {source}",
        )
    return int(fd)


def _ensure_target(dest: str, is_dir: bool) -> None:
    """dockerd's C{createIfNotExists}, inside the chroot: symlinks on the way are followed in
    scope (as the runtime does), so a dangling one gets its target created inside the root."""
    if os.path.exists(dest):
        return
    if is_dir:
        os.makedirs(rootpaths.scoped("/", dest), mode=0o755, exist_ok=True)
        return
    parent = rootpaths.scoped("/", posixpath.dirname(dest))
    os.makedirs(parent, mode=0o755, exist_ok=True)
    target = posixpath.join(parent, posixpath.basename(dest))
    if not os.path.lexists(target):
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o755))


def _tmpfs(dest: str, options: list[str], rw: bool) -> None:
    flags = 0 if rw else MS_RDONLY
    data = []
    for o in options:
        if o in _TMPFS_FLAGS:
            flags |= _TMPFS_FLAGS[o]
        elif o not in _TMPFS_IGNORED:
            data.append(o)
    _check(
        _libc.mount(b"tmpfs", dest.encode(), b"tmpfs", flags, ",".join(data).encode() or None),
        f"tmpfs {dest}",
    )


def setup_mounts(root: str, mounts: list[dict[str, Any]]) -> None:
    """A private namespace, C{chroot(root)}, each mount attached in order inside it."""
    _make_private()
    prepared: list[tuple[dict[str, Any], int, bool]] = []
    try:
        for m in mounts:
            if m["type"] == "tmpfs":
                prepared.append((m, -1, True))
                continue
            if m.get("subpath"):
                # a volume subpath: opened once inside the volume, cloned by descriptor
                try:
                    tree, is_dir = stage.clone_subpath(
                        m["source"], m["subpath"],
                        recursive=m.get("recursive", True), readonly=not m.get("rw", True),
                    )  # fmt: skip
                except stage.SubpathError as e:
                    raise ViewError("subpath-" + e.kind, e.message) from None
                prepared.append((m, tree, is_dir))
                continue
            try:
                is_dir = st.S_ISDIR(os.stat(m["source"]).st_mode)
            except FileNotFoundError as e:
                if m.get("optional"):
                    continue
                raise ViewError("setup", f"stat {m['source']}: no such file or directory") from e
            fd = _open_tree(m["source"], m.get("recursive", True), m.get("rw", True))
            prepared.append((m, fd, is_dir))
        os.chroot(root)
        os.chdir("/")
        for m, fd, is_dir in prepared:
            dest = _abs(m["destination"])
            _ensure_target(dest, is_dir)
            if fd < 0:
                _tmpfs(dest, list(m.get("options", [])), m.get("rw", True))
                continue
            rc = _libc.syscall(
                SYS_MOVE_MOUNT,
                fd,
                b"",
                AT_FDCWD,
                dest.encode(),
                ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS),
            )
            if rc < 0 and m.get("subpath") and ctypes.get_errno() == errno.ENOENT:
                # the subpath was removed after it was opened (a container using the volume)
                raise ViewError(
                    "subpath-notfound",
                    f"cannot access path {m['subpath']}: no such file or directory",
                )
            _check(rc, f"mount {m['source']} on {dest}")
    finally:
        for _, fd, _ in prepared:
            if fd >= 0:
                os.close(fd)


def _stat_dict(path: str) -> dict[str, Any] | None:
    try:
        return rootpaths.stat_fields("/", path)
    except rootpaths.PathEscape as e:
        raise ViewError("escape", str(e)) from e


def op_get(path: str) -> dict[str, Any]:
    """Stat C{path} and write its tar on fd 3."""
    found = _stat_dict(path)
    if found is None:
        return {"stat": None}
    source_dir, source_base, rebase = rootpaths.tar_plan("/", path)
    os.chdir(source_dir)
    with os.fdopen(3, "wb", buffering=1 << 20) as out:
        tarstream.write(source_base, rebase, out)
    return {"stat": found}


def _in_mount(path: str, mounts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The deepest of C{mounts} that holds C{path} (dockerd's C{HasResource})."""
    best = None
    for m in mounts:
        d = _abs(m["destination"])
        if (path == d or path.startswith(d.rstrip("/") + "/")) and (
            best is None or len(d) > len(best["destination"])
        ):
            best = {**m, "destination": d}
    return best


def op_put(path: str, checks: dict[str, Any], no_overwrite_dir_non_dir: bool) -> dict[str, Any]:
    """Extract the tar on fd 0 into the directory C{path}."""
    try:
        host, exists, is_dir = rootpaths.extraction_dir("/", path)
    except rootpaths.PathEscape as e:
        raise ViewError("escape", str(e)) from e
    dest = _abs(host)
    if not exists:
        raise ViewError("notfound", path)
    if not is_dir:
        raise ViewError("notdir", "extraction point is not a directory")
    where = _in_mount(dest, list(checks.get("mounts", [])))
    if where is not None and not where.get("rw", True):
        raise ViewError("ro-volume", "mounted volume is marked read-only")
    if where is None and checks.get("readonly_rootfs"):
        raise ViewError("ro-rootfs", "container rootfs is marked read-only")
    # unbuffered: a plain tar is read in place (headers only, contents sent by the kernel)
    src = open(0, "rb", buffering=0, closefd=False)  # noqa: SIM115 - stdin, kept open
    piped = st.S_ISFIFO(os.fstat(0).st_mode)
    if not piped:
        os.lseek(0, 0, os.SEEK_SET)
    if no_overwrite_dir_non_dir and not piped:
        seekable = untar.plain_file(src)
        conflict = rootpaths.dir_non_dir_conflict(src, dest, dest, seekable=seekable)
        if conflict:
            raise ViewError("dir-non-dir", conflict)
        src.seek(0)
    try:
        # devices as dockerd (the daemon never opens them); no CAP_SYS_ADMIN. A body still
        # arriving (a pipe) is read once: its entries are checked as they come, as go-archive
        # checks them (what came before a conflict stays, as in dockerd)
        untar.copy_in(
            dest,
            src,
            caps=sealed.CP_IN_CAPS,
            no_dir_non_dir=dest if no_overwrite_dir_non_dir and piped else None,
        )
    except untar.DirNonDir as e:
        raise ViewError("dir-non-dir", str(e)) from e
    except untar.UntarError as e:
        raise ViewError("tar", str(e)) from e
    return {"ok": True}


def run(spec: dict[str, Any], op: str, args: list[str]) -> dict[str, Any]:
    """Build the view of C{spec}, then run C{op}.

    The import system is sealed first (L{pyd.drivers.sealed}): joining a container's mount
    namespace or C{chroot}ing into its root makes every path name the container's files.
    """
    sealed.preload()
    sealed.seal()
    try:
        if spec["mode"] == "live":
            setup_live(int(spec["pid"]), (spec["expect"][0], spec["expect"][1]), spec["keep"])
        else:
            setup_mounts(spec["root"], spec["mounts"])
    except OSError as e:
        raise ViewError("setup", str(e)) from e
    if op in ("stat", "get"):
        sealed.drop_capabilities(sealed.READ_CAPS)
    # put: the untar code drops to what extraction needs once it has entered the directory
    if op == "stat":
        return {"stat": _stat_dict(args[0])}
    if op == "get":
        return op_get(args[0])
    if op == "put":
        return op_put(args[0], spec.get("checks", {}), "--no-overwrite-dir-non-dir" in args[1:])
    raise ValueError(f"unknown operation {op}")


def helper_argv(spec: dict[str, Any], op: str, *args: str) -> list[str]:
    """The helper's command line (L{sealed.helper_argv}: isolated, no site-packages; it needs
    the standard library and pyd only, and starts twice as fast without site-packages)."""
    return sealed.helper_argv("pyd.drivers.streams.rootview", json.dumps(spec), op, *args)


def main(argv: list[str]) -> int:
    """Entry point; see the module docstring."""
    if len(argv) < 3:
        sys.stderr.write("usage: rootview SPEC OP PATH [FLAGS]\n")
        return 2
    sealed.close_inherited((0, 1, 2, 3))
    try:
        result = run(json.loads(argv[0]), argv[1], argv[2:])
    except ViewError as e:
        result = {"error": e.kind, "message": e.message}
    except OSError as e:
        # a path the kernel refuses (too long, a loop, not a directory): its reason as Go
        # prints it, with the path as the client gave it (never a view's own path)
        reason = (e.strerror or "cannot access the path").lower()
        result = {"error": "path", "errno": e.errno, "message": f"{argv[2]}: {reason}"}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
