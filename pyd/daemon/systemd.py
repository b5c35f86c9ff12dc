"""systemd integration (layer: daemon): socket activation (C{-H fd://}) and C{sd_notify}."""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.internet import tcp
from twisted.internet.defer import Deferred, execute
from twisted.internet.interfaces import IReactorFDSet, IStreamServerEndpoint
from twisted.logger import Logger
from zope.interface import implementer

from pyd.daemon.eager import UnixPort
from pyd.daemon.pidlock import StartupError

log = Logger()


class _KeepPathPort(UnixPort):
    """A Unix port on an adopted socket that leaves the socket file alone when it stops.

    Twisted's port unlinks its path on close; the file of an activated socket is systemd's
    (pyd.socket keeps it across restarts so clients queue instead of failing).
    """

    def connectionLost(self, reason: Any) -> None:
        """Close the socket without unlinking the path."""
        tcp.Port.connectionLost(self, reason)


@implementer(IStreamServerEndpoint)
class AdoptedUnixEndpoint:
    """Listen on an inherited, already-listening Unix socket (see L{_KeepPathPort})."""

    def __init__(self, reactor: IReactorFDSet, fd: int) -> None:
        self.reactor = reactor
        self.fd = fd

    def listen(self, factory: Any) -> Deferred[Any]:
        """Adopt the descriptor and start accepting."""

        def adopt() -> Any:
            os.set_blocking(self.fd, False)
            port = _KeepPathPort._fromListeningDescriptor(self.reactor, self.fd, factory)
            port.startListening()
            return port

        return execute(adopt)


def systemd_sockets() -> list[tuple[int, int, str]]:
    """The listening sockets systemd (or systemd-socket-activate) passed: (fd, family, name).

    Twisted's C{systemd:} endpoint cannot be used for C{fd://}: importing
    L{twisted.internet.endpoints} (twistd does, long before the plugin runs) consumes
    C{LISTEN_PID}/C{LISTEN_FDS} from the environment and keeps nothing when C{LISTEN_FDNAMES} is
    absent, as with C{systemd-socket-activate} without C{--fdname}. So the sockets are found the
    way C{sd_listen_fds(3)} numbers them: the run of listening sockets starting at fd 3. Names come
    from what Twisted parsed, or from the environment when it is still there.
    """
    names = _systemd_names()
    out = []
    fd = 3
    while True:
        try:
            probe = socket.socket(fileno=fd)  # detects family and type of the inherited fd
        except OSError:
            break
        try:
            listening = probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            kind, family = probe.type, probe.family
        finally:
            probe.detach()
        if not listening or kind != socket.SOCK_STREAM:
            break
        os.set_inheritable(fd, False)  # containers and helpers must not inherit the API socket
        os.set_blocking(fd, False)  # the reactor adopts only non-blocking sockets
        out.append((fd, int(family), names.get(fd, f"fd{fd}")))
        fd += 1
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(key, None)
    return out


def _systemd_names() -> dict[int, str]:
    env_names = os.environ.get("LISTEN_FDNAMES")
    if env_names and os.environ.get("LISTEN_PID") == str(os.getpid()):
        return {3 + i: n for i, n in enumerate(env_names.split(":"))}
    from twisted.internet import endpoints

    # Where Twisted keeps what it parsed from the environment at import time.
    parsed = getattr(getattr(endpoints, "_SystemdParser", None), "_sddaemon", None)
    if parsed is None:
        return {}
    return {fd: name for name, fd in parsed.inheritedNamedDescriptors().items()}


def select_sockets(
    inherited: list[tuple[int, int, str]], which: str, host: str
) -> list[tuple[int, int, str]]:
    """C{fd://} takes every inherited socket; C{fd://N} the fd N; C{fd://NAME} those named so.

    @raise StartupError: nothing matches (dockerd refuses to start too).
    """
    if not which:
        chosen = inherited
    elif which.isdigit():
        chosen = [s for s in inherited if s[0] == int(which)]
    else:
        chosen = [s for s in inherited if s[2] == which]
    if not chosen:
        raise StartupError(
            f"no sockets found via socket activation for {host}: make sure the service was "
            "started by systemd (or systemd-socket-activate)"
        )
    return chosen


def sd_notify(message: str) -> bool:
    """Send C{message} to systemd's C{$NOTIFY_SOCKET} (READY=1, STOPPING=1, STATUS=...).

    @return: whether a message was sent (no socket, or an unreachable one, is not an error).
    """
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            s.sendall(message.encode())
    except OSError as e:
        log.warn("sd_notify to {addr} failed: {err}", addr=addr, err=e)
        return False
    return True
