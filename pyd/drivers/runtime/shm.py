"""A shareable container's /dev/shm, mounted on the host side (layer: drivers).

With C{--ipc shareable} dockerd mounts the container's shm tmpfs in its own mount namespace
(under the container's directory) and bind-mounts it into the container, so that containers
started with C{--ipc container:X} can bind the same tmpfs: a mount living only inside another
container's mount namespace cannot be bind-mounted from there. pyd does the same. These
functions block (mount syscalls): call them in the io pool.
"""

from __future__ import annotations

import ctypes
import os

from pyd.drivers.storage.overlay import MountError, unmount

MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8

_libc = ctypes.CDLL(None, use_errno=True)


def mount_shm(path: str, size: int) -> None:
    """A tmpfs of C{size} bytes at C{path} (mode 1777, nosuid, nodev, noexec); kept if there."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    if os.path.ismount(path):
        return
    opts = f"mode=1777,size={int(size)}".encode()
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    if _libc.mount(b"shm", os.fsencode(path), b"tmpfs", flags, opts) != 0:
        raise MountError(f"mount shm on {path}", ctypes.get_errno())


def unmount_shm(path: str) -> None:
    """Unmount it (nothing to do when it is not mounted) and remove the directory."""
    unmount(path)
    try:
        os.rmdir(path)
    except OSError:  # best effort: an empty directory left behind is harmless
        pass
