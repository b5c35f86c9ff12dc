"""Container log lines to a syslog server, as dockerd's syslog log driver sends them (layer: drivers).

Addresses: C{udp://HOST[:514]}, C{tcp://HOST[:514]}, C{tcp+tls://HOST[:6514]}, C{unix:///PATH},
C{unixgram:///PATH} (default: the host's C{/dev/log}). Formats: C{rfc3164} (the default; on Unix
sockets without the host name, like the local syslog protocol), C{rfc5424} and C{rfc5424micro}
(microsecond timestamps); the tag is the application name and the message id. On stream transports
rfc5424 messages are octet-counted and rfc3164 ones end with a newline. Sending blocks (sockets):
call L{SyslogSender.send} from the io pool.

TLS (C{tcp+tls}) as dockerd's client configuration: TLS 1.2 or later, the server's certificate
checked against the system's roots plus C{syslog-tls-ca-cert} and its name against the address's
host, C{syslog-tls-cert}/C{syslog-tls-key} presented when given, no verification at all when
C{syslog-tls-skip-verify} is present (whatever its value, as dockerd reads it). L{tls_context}
reads files: call it from the io pool too.
"""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import attrs

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
    **{f"local{i}": 16 + i for i in range(8)},
}  # fmt: skip
FORMATS = ("", "rfc3164", "rfc5424", "rfc5424micro")
SCHEMES = ("udp", "tcp", "tcp+tls", "unix", "unixgram")
SEVERITY = {"stdout": 6, "stderr": 3}  # info, err (dockerd's)
CLOSE_WAIT = 2.0  # seconds a closing stream connection waits for the server to close its end


class SyslogError(Exception):
    """A bad address, facility, format or TLS file (the message is dockerd's)."""


@attrs.frozen
class TlsFiles:
    """The C{syslog-tls-*} options of a container."""

    ca_cert: str = ""
    cert: str = ""
    key: str = ""
    skip_verify: bool = False

    @classmethod
    def of(cls, opts: Mapping[str, str]) -> TlsFiles:
        """From the log options (skip-verify counts when present, as in dockerd)."""
        return cls(
            opts.get("syslog-tls-ca-cert", ""),
            opts.get("syslog-tls-cert", ""),
            opts.get("syslog-tls-key", ""),
            "syslog-tls-skip-verify" in opts,
        )


def tls_context(files: TlsFiles) -> ssl.SSLContext:
    """The client context for C{tcp+tls} (reads the files: blocking).

    @raise SyslogError: a file that cannot be read or parsed (dockerd's texts, without the OS's).
    """
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if files.skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif files.ca_cert:
        # added to the system's roots, as dockerd's (non-exclusive) pool
        try:
            ctx.load_verify_locations(cafile=files.ca_cert)
        except ssl.SSLError as e:
            raise SyslogError(
                f'failed to append certificates from PEM file: "{files.ca_cert}"'
            ) from e
        except OSError as e:
            raise SyslogError(f'could not read CA certificate "{files.ca_cert}"') from e
    if files.cert or files.key:
        # dockerd reads both files whenever either is set: one alone fails
        for key, path in (("syslog-tls-cert", files.cert), ("syslog-tls-key", files.key)):
            if not path:
                raise SyslogError(f"could not load X509 key pair: {key} is not set")
        try:
            ctx.load_cert_chain(files.cert, files.key)
        except ssl.SSLError as e:
            raise SyslogError(
                "could not load X509 key pair: the certificate and key do not match or are not PEM"
            ) from e
        except OSError as e:
            raise SyslogError(
                f'could not load X509 key pair: cannot read "{e.filename or files.cert}"'
            ) from e
    return ctx


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
        tls: TlsFiles | None = None,
    ) -> None:
        self.scheme, self.host, self.port = parse_address(address)
        self.facility = facility_code(facility)
        if fmt not in FORMATS:
            raise SyslogError(f"Invalid syslog format: {fmt}")
        self.fmt = fmt
        self._tls = tls or TlsFiles()
        self._tls_ctx: ssl.SSLContext | None = None
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
            if self._tls_ctx is None:
                self._tls_ctx = tls_context(self._tls)
            try:
                s = self._tls_ctx.wrap_socket(s, server_hostname=self.host)
            except BaseException:
                s.close()
                raise
        return s

    def connect(self) -> None:
        """Connect now, as dockerd's driver does when the container starts (blocking).

        @raise SyslogError: the server cannot be reached, with Go's dial texts.
        """
        if self._sock is not None:
            return
        net = "tcp" if self.scheme == "tcp+tls" else self.scheme
        where = self.host if net.startswith("unix") else _join_host_port(self.host, self.port)
        try:
            self._sock = self._connect()
        except socket.gaierror as e:
            raise SyslogError(f"dial {net}: lookup {self.host}: no such host") from e
        except ssl.SSLError as e:
            raise SyslogError(f"tls: {e.reason or 'handshake failure'}".lower()) from e
        except TimeoutError as e:
            raise SyslogError(f"dial {net} {where}: i/o timeout") from e
        except OSError as e:
            reason = (e.strerror or "connection failed").lower()
            raise SyslogError(f"dial {net} {where}: connect: {reason}") from e

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
        """Close the connection (idempotent), after the server has taken every line sent.

        A plain close() of a TCP socket with unread data (a TLS 1.3 server's session tickets,
        which nothing here reads) makes the kernel send a reset and discard what is still
        queued for sending: the last lines sent just before a container's exit were lost (one
        run in three). So: end the stream with a FIN behind the data, read away what the server
        sends until it closes too (its EOF means it read ours), then close.
        """
        s, self._sock = self._sock, None
        if s is None:
            return
        try:
            if s.type == socket.SOCK_STREAM:
                # on a TLS socket this leaves TLS (no close_notify, as before) and reads raw bytes
                s.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + CLOSE_WAIT
                while (left := deadline - time.monotonic()) > 0:
                    s.settimeout(left)
                    if not s.recv(65536):
                        break
        except OSError:
            pass  # the server went first (or never answers): nothing more can be done
        finally:
            s.close()


def _join_host_port(host: str, port: int) -> str:
    """Go's C{net.JoinHostPort}: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
