"""A client for conmon's attach socket (layer: drivers).

conmon listens on C{<socket dir>/<id>/attach}, a C{SOCK_SEQPACKET} Unix socket (RUNTIME.md 2.2).
Each packet it sends is one byte naming the pipe (2 = stdout, 3 = stderr; a TTY's output comes as
2) followed by the data. Bytes we send become the container's stdin; C{shutdown(SHUT_WR)} (or
closing) closes the container's stdin unless conmon runs with C{--leave-stdin-open}. There is no
replay: connect before the output you need is produced.

Twisted's stream transports read with C{recv} too, but they assume a byte stream; here each
C{recv} is one packet and each C{send} must stay below conmon's 32 KiB read buffer, so this module
has its own small C{FileDescriptor}.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

from twisted.internet import abstract, main
from twisted.internet.interfaces import IHalfCloseableDescriptor, IPushProducer, IReactorFDSet
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

# conmon reads the attach socket with a 32768-byte buffer; a longer packet would be truncated.
MAX_PACKET = 32768
# conmon sends at most 8 KiB + 1 per packet; reading several per reactor turn saves turns.
_RECV_SIZE = 65536
_READS_PER_TURN = 32
PIPE_STDOUT = 2
PIPE_STDERR = 3


class AttachUnavailable(Exception):
    """The attach socket does not exist or refuses connections (the monitor is gone)."""


@implementer(IHalfCloseableDescriptor, IPushProducer)
class SeqPacketConnection(abstract.FileDescriptor):
    """A connected C{SOCK_SEQPACKET} socket driven by the reactor: one packet per C{dataReceived}."""

    def __init__(self, sock: socket.socket, protocol: Protocol, reactor: IReactorFDSet) -> None:
        super().__init__(reactor)
        self.socket = sock
        self.protocol = protocol
        self.connected = 1
        self.disconnected = 0
        protocol.makeConnection(self)
        self.startReading()

    _reading = False

    def startReading(self) -> None:
        """Watch for packets."""
        self._reading = True
        super().startReading()

    def stopReading(self) -> None:
        """Stop watching (back-pressure or close)."""
        self._reading = False
        super().stopReading()

    def fileno(self) -> int:
        """The socket's descriptor (-1 once closed)."""
        return self.socket.fileno()

    def doRead(self) -> Any:
        """Read the packets waiting (a bounded number per reactor turn), one call each."""
        for _ in range(_READS_PER_TURN):
            try:
                data = self.socket.recv(_RECV_SIZE)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EINTR):
                    return None
                return main.CONNECTION_LOST
            if not data:
                return main.CONNECTION_DONE
            self.protocol.dataReceived(data)
            if not self.connected or self.disconnecting or not self._reading:
                return None  # closed, or paused by the consumer of our output
        return None

    def writeSomeData(self, data: Any) -> Any:
        """Send at most one packet's worth; Twisted calls again for the rest."""
        try:
            return self.socket.send(data[:MAX_PACKET])
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EINTR, errno.ENOBUFS):
                return 0
            return main.CONNECTION_LOST

    def _closeWriteConnection(self) -> None:
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError:  # the peer already closed: nothing more to send
            pass

    def readConnectionLost(self, reason: Failure) -> None:
        """conmon closed its side: treat it as the end of the connection."""
        self.connectionLost(reason)

    def connectionLost(self, reason: Failure) -> None:
        """Close the socket and tell the protocol."""
        super().connectionLost(reason)
        self.socket.close()
        self.protocol.connectionLost(reason)

    def getHost(self) -> Any:
        """Not meaningful for this socket."""
        return None

    def getPeer(self) -> Any:
        """Not meaningful for this socket."""
        return None


def connect_attach(reactor: IReactorFDSet, path: str, protocol: Protocol) -> SeqPacketConnection:
    """Connect C{protocol} to the conmon attach socket at C{path}.

    @raise AttachUnavailable: no socket, or nobody listening on it.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    dir_fd = -1
    try:
        target = path
        if len(os.fsencode(path)) >= 108:
            # sun_path holds 108 bytes; reach a long path through the directory's descriptor.
            dir_fd = os.open(os.path.dirname(path), os.O_PATH | os.O_CLOEXEC)
            target = f"/proc/self/fd/{dir_fd}/{os.path.basename(path)}"
        # conmon accepts at once; the timeout only bounds a wedged monitor.
        sock.settimeout(2)
        sock.connect(target)
    except OSError as e:
        sock.close()
        raise AttachUnavailable(f"cannot connect to {path}: {e.strerror or e}") from e
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)
    sock.setblocking(False)
    return SeqPacketConnection(sock, protocol, reactor)
