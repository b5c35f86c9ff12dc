"""Fail-fast start-up checks that own files: the data-root lock, the pidfile and a stale API
socket (layer: daemon). They block, which is allowed: they run before the reactor does."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from collections.abc import Callable


class StartupError(Exception):
    """The daemon cannot start; the message says why (printed by twistd)."""


def lock_data_root(path: str) -> int:
    fd = os.open(os.path.join(path, "pyd.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise StartupError(f"another pyd daemon is using the data root {path}") from e
        raise
    return fd


def write_pidfile(path: str) -> None:
    try:
        with open(path) as f:
            old = int(f.read().strip() or "0")
    except (OSError, ValueError):
        old = 0
    if old and old != os.getpid():
        try:
            os.kill(old, 0)
        except ProcessLookupError:  # the pidfile's process is gone: the file is stale
            pass
        except PermissionError:
            raise StartupError(
                f"pid file found, ensure pyd is not running or delete {path}"
            ) from None
        else:
            raise StartupError(f"pid file found, ensure pyd is not running or delete {path}")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, path)


def clear_stale_socket(path: str) -> None:
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(1)
        s.connect(path)
    except OSError:
        os.unlink(path)  # nobody answers: a leftover of a killed daemon
    else:
        raise StartupError(f"another daemon is already serving {path}")
    finally:
        s.close()


def remove_file(path: str) -> Callable[[], None]:
    def fn() -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:  # already removed: the goal is reached
            pass

    return fn
