"""overlayfs mounts (layer: drivers).

On kernel >= 6.8 the new mount API is used through ctypes: C{fsopen("overlay")}, one
C{fsconfig(FSCONFIG_SET_STRING, "lowerdir+", dir)} per layer (no option-page limit; ~500 layers),
C{fsmount}, C{move_mount}. Older kernels get Docker's trick instead: short C{l/<id>} symlinks to
each layer's C{diff}, passed relative to the storage root by C{mount(8)} run with that cwd, which
fits ~138 layers in one page of options. Blocking: call from the io pool (or via the process
runner for the fallback).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from collections.abc import Sequence

SYS_MOVE_MOUNT = 429
SYS_FSOPEN = 430
SYS_FSCONFIG = 431
SYS_FSMOUNT = 432
FSOPEN_CLOEXEC = 0x1
FSMOUNT_CLOEXEC = 0x1
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
MOVE_MOUNT_F_EMPTY_PATH = 0x4
AT_FDCWD = -100
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class MountError(Exception):
    """A mount or unmount failed; carries the errno."""

    def __init__(self, what: str, err: int) -> None:
        super().__init__(f"{what}: {os.strerror(err)}")
        self.errno = err


def kernel_supports_lowerdir_plus(release: str | None = None) -> bool:
    """Whether the kernel takes C{lowerdir+} through fsconfig (Linux 6.8 and later)."""
    rel = release if release is not None else platform.release()
    try:
        major, minor = (int(x) for x in rel.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (6, 8)


def _check(ret: int, what: str) -> int:
    if ret < 0:
        raise MountError(what, ctypes.get_errno())
    return ret


def mount_overlay_fsconfig(lowers: Sequence[str], upper: str, work: str, target: str) -> None:
    """Mount overlay at C{target}; C{lowers} top-most first."""
    fs = _check(_libc.syscall(SYS_FSOPEN, b"overlay", FSOPEN_CLOEXEC), "fsopen overlay")
    try:

        def set_string(key: str, value: str) -> None:
            _check(
                _libc.syscall(
                    SYS_FSCONFIG, fs, FSCONFIG_SET_STRING, key.encode(), os.fsencode(value), 0
                ),
                f"fsconfig {key}={value}",
            )

        set_string("source", "overlay")
        for lower in lowers:
            set_string("lowerdir+", lower)
        set_string("upperdir", upper)
        set_string("workdir", work)
        _check(
            _libc.syscall(SYS_FSCONFIG, fs, FSCONFIG_CMD_CREATE, None, None, 0), "fsconfig create"
        )
        mnt = _check(_libc.syscall(SYS_FSMOUNT, fs, FSMOUNT_CLOEXEC, 0), "fsmount")
        try:
            _check(
                _libc.syscall(
                    SYS_MOVE_MOUNT, mnt, b"", AT_FDCWD, os.fsencode(target), MOVE_MOUNT_F_EMPTY_PATH
                ),
                f"move_mount {target}",
            )
        finally:
            os.close(mnt)
    finally:
        os.close(fs)


def legacy_mount_options(short_lowers: Sequence[str], upper: str, work: str) -> str:
    """The C{-o} string for C{mount(8)} run with cwd = storage root (lowers relative, top first)."""
    return f"lowerdir={':'.join(short_lowers)},upperdir={upper},workdir={work}"


def unmount(target: str) -> None:
    """Unmount C{target} (lazily when busy); nothing to do when it is not mounted."""
    if not os.path.ismount(target):
        return
    path = os.fsencode(target)
    if _libc.umount2(path, 0) == 0:
        return
    err = ctypes.get_errno()
    if err == errno.EINVAL:  # not a mount point any more
        return
    if err == errno.EBUSY and _libc.umount2(path, MNT_DETACH) == 0:
        return
    raise MountError(f"umount {target}", ctypes.get_errno() or err)
