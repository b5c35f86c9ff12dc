"""Container log lines to a syslog server, as dockerd's syslog log driver sends them (layer: drivers).

Addresses: C{udp://HOST[:514]}, C{tcp://HOST[:514]}, C{tcp+tls://HOST[:6514]}, C{unix:///PATH},
C{unixgram:///PATH} (default: the host's C{/dev/log}). Formats: C{rfc3164} (the default; on Unix
sockets without the host name, like the local syslog protocol), C{rfc5424} and C{rfc5424micro}
(microsecond timestamps); the tag is the application name and the message id. On stream transports
rfc5424 messages are octet-counted and rfc3164 ones end with a newline. Sending blocks (sockets):
call L{SyslogSender.send} from the io pool.
"""

from __future__ import annotations

import datetime
import os
import socket
import ssl
from urllib.parse import urlsplit

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
    **{f"local{i}": 16 + i for i in range(8)},
}  # fmt: skip
FORMATS = ("", "rfc3164", "rfc5424", "rfc5424micro")
SCHEMES = ("udp", "tcp", "tcp+tls", "unix", "unixgram")
SEVERITY = {"stdout": 6, "stderr": 3}  # info, err (dockerd's)


class SyslogError(Exception):
    """A bad address, facility or format (the message is dockerd's)."""


def parse_address(address: str) -> tuple[str, str, int]:
    """C{(scheme, host or path, port)} of C{syslog-address}. @raise SyslogError: as dockerd."""
    if not address:
        return "unixgram", "/dev/log", 0
    u = urlsplit(address)
    if u.scheme not in SCHEMES:
        raise SyslogError(f"unsupported scheme: '{u.scheme}'")
    if u.scheme in ("unix", "unixgram"):
        if not u.path:
            raise SyslogError(f"invalid syslog address: {address}")
        return u.scheme, u.path, 0
    if not u.hostname:
        raise SyslogError(f"invalid syslog address: {address}")
    try:
        port = u.port or (6514 if u.scheme == "tcp+tls" else 514)
    except ValueError as e:
        raise SyslogError(f"invalid syslog address: {address}") from e
    return u.scheme, u.hostname, port


def facility_code(name: str) -> int:
    """The facility's number (C{daemon} when empty). @raise SyslogError: unknown name."""
    if not name:
        return FACILITIES["daemon"]
    if name.isdigit() and 0 <= int(name) <= 23:
        return int(name)
    if name not in FACILITIES:
        raise SyslogError("invalid syslog facility")
    return FACILITIES[name]


def format_message(
    fmt: str,
    priority: int,
    tag: str,
    message: bytes,
    when: datetime.datetime,
    hostname: str,
    pid: int,
    local: bool,
) -> bytes:
    """One syslog message (without transport framing)."""
    msg = message.rstrip(b"\n")
    if fmt in ("", "rfc3164"):
        stamp = when.astimezone().strftime("%b %d %H:%M:%S")
        stamp = stamp[:4] + (" " + stamp[5:] if stamp[4] == "0" else stamp[4:])
        head = f"<{priority}>{stamp} " + ("" if local else f"{hostname} ") + f"{tag}[{pid}]: "
        return head.encode() + msg
    digits = 6 if fmt == "rfc5424micro" else 0
    stamp = when.astimezone().isoformat(timespec="microseconds" if digits else "seconds")
    return f"<{priority}>1 {stamp} {hostname} {tag} {pid} {tag} - ".encode() + msg


class SyslogSender:
    """A connection to one syslog server (reconnects after a failure)."""

    def __init__(
        self,
        address: str,
        facility: str = "",
        fmt: str = "",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.scheme, self.host, self.port = parse_address(address)
        self.facility = facility_code(facility)
        if fmt not in FORMATS:
            raise SyslogError(f"Invalid syslog format: {fmt}")
        self.fmt = fmt
        self._tls = tls
        self._sock: socket.socket | None = None
        self._hostname = socket.gethostname()
        self._pid = os.getpid()

    def _connect(self) -> socket.socket:
        if self.scheme in ("unix", "unixgram"):
            kind = socket.SOCK_DGRAM if self.scheme == "unixgram" else socket.SOCK_STREAM
            s = socket.socket(socket.AF_UNIX, kind)
            s.settimeout(5)
            s.connect(self.host)
            return s
        if self.scheme == "udp":
            s = socket.socket(
                socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_DGRAM
            )
            s.connect((self.host, self.port))
            return s
        s = socket.create_connection((self.host, self.port), timeout=5)
        if self.scheme == "tcp+tls":
            ctx = self._tls or ssl.create_default_context()
            s = ctx.wrap_socket(s, server_hostname=self.host)
        return s

    def send(
        self, stream: str, line: bytes, when: datetime.datetime, tag: str, stamp: bytes = b""
    ) -> None:
        """Send one log line (C{stamp} is not used: syslog formats C{when}).

        @raise OSError: the server cannot be reached.
        """
        priority = self.facility * 8 + SEVERITY.get(stream, 6)
        local = self.scheme in ("unix", "unixgram")
        msg = format_message(self.fmt, priority, tag, line, when, self._hostname, self._pid, local)
        if self.scheme in ("tcp", "tcp+tls", "unix"):
            if self.fmt.startswith("rfc5424"):
                msg = str(len(msg)).encode() + b" " + msg
            else:
                msg += b"\n"
        for attempt in range(2):
            if self._sock is None:
                self._sock = self._connect()
            try:
                self._sock.sendall(msg)
                return
            except OSError:
                self.close()
                if attempt:
                    raise

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
