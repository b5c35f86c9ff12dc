"""The fork server of pyd's sealed helpers (layer: drivers).

C{forkserver MODULE...} (started by L{pyd.drivers.helpers.ForkServerRunner}, as the helpers
are: isolated, without site-packages) imports the helper modules named on its command line
once, then serves requests on the C{SOCK_SEQPACKET} socket at fd 3. Each request is one
message: a JSON header C{{"module": NAME, "args": [...], "fds": [TARGET...]}} and, as
C{SCM_RIGHTS}, the descriptors C{[status, stdout, stderr, *child fds]}. For each request the
server forks; the child puts stdout and stderr at 1 and 2 and each child fd at its TARGET,
closes everything else (the server's socket included) and runs C{MODULE.main(args)}, exactly
what the helper's own process would run after its imports. The server reaps the child and
writes its exit status (as a decimal, negative for a signal, as Twisted reports one) to the
status descriptor, then closes it.

Why: a helper's interpreter start and imports cost ~50 ms of CPU (more than half of a 32 MiB
C{docker cp} into a container); a fork of this already-importing process costs ~1 ms. The
server itself never enters a container, never runs a request's code and never reads anything
but the daemon's socket: every child starts from the same pristine, import-only state, and
does its own sealing, C{chroot} and capability drop as the spawned helper does
(L{pyd.drivers.sealed}).

The server exits when the daemon's end of the socket closes (the daemon stopped or died).
Standard library only.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import socket
import sys
from types import ModuleType
from typing import Any

CONTROL_FD = 3
MAX_MESSAGE = 1 << 20
MAX_FDS = 16


def _place(fds: list[int], targets: list[int]) -> None:
    """Put C{fds[i]} at C{targets[i]}: first above every target (a received descriptor may
    sit on another's target), then in place."""
    high = max(targets, default=0) + 1
    moved = []
    for fd in fds:
        new = fd
        while new < high:
            new = os.dup(new)
        moved.append(new)
    for fd, target in zip(moved, targets, strict=True):
        os.dup2(fd, target, inheritable=True)


def _child(modules: dict[str, ModuleType], header: dict[str, Any], fds: list[int]) -> int:
    """In the forked child: descriptors in place, then the module's C{main}."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    targets = [1, 2, *[int(t) for t in header["fds"]]]
    _place(fds[1:], targets)
    keep = set(targets)
    top = os.sysconf("SC_OPEN_MAX")
    low = 0
    for fd in sorted(keep):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, top)
    if 0 not in keep:
        fd = os.open(os.devnull, os.O_RDONLY)
        if fd != 0:
            os.dup2(fd, 0)
            os.close(fd)
    module = modules[str(header["module"])]
    try:
        rc = int(module.main([str(a) for a in header["args"]]))
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - as an interpreter would: printed, exit status 1
        sys.excepthook(*sys.exc_info())  # type: ignore[arg-type]  # inside except: never None
        rc = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed stream: nothing left to say
            pass
    return rc


def serve(modules: dict[str, ModuleType], control: socket.socket) -> None:
    """Fork a child per request until the daemon closes its end of C{control}."""
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    # a Python-level handler (not SIG_IGN): children stay waitable, the pipe wakes the loop
    signal.signal(signal.SIGCHLD, lambda *_: None)
    status_of: dict[int, int] = {}
    while True:
        ready, _, _ = select.select([control.fileno(), wake_r], [], [])
        if wake_r in ready:
            try:
                os.read(wake_r, 512)
            except BlockingIOError:
                pass
            _reap(status_of)
        if control.fileno() not in ready:
            continue
        try:
            data, fds, flags, _ = socket.recv_fds(control, MAX_MESSAGE, MAX_FDS)
        except InterruptedError:
            continue
        if not data:
            return
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) < 3:
            for fd in fds:
                os.close(fd)
            continue
        header = json.loads(data)
        if header.get("module") not in modules or len(fds) != 3 + len(header.get("fds", [])):
            # not a request of the daemon's: its status says so, nothing runs
            os.write(fds[0], b"-1")
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            rc = 1
            try:
                os.close(wake_r)
                os.close(wake_w)
                control.close()
                for other in status_of.values():
                    os.close(other)
                rc = _child(modules, header, fds)
            finally:
                os._exit(rc)
        status_of[pid] = fds[0]
        for fd in fds[1:]:
            os.close(fd)
        _reap(status_of)


def _reap(status_of: dict[int, int]) -> None:
    while status_of:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        fd = status_of.pop(pid, None)
        if fd is None:
            continue
        try:
            os.write(fd, str(os.waitstatus_to_exitcode(status)).encode())
        except OSError:  # the daemon stopped waiting: nobody to tell
            pass
        os.close(fd)


def main(argv: list[str]) -> int:
    """Entry point: C{forkserver MODULE...}; see the module docstring."""
    modules = {name: importlib.import_module(name) for name in argv}
    control = socket.socket(fileno=CONTROL_FD)
    serve(modules, control)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
