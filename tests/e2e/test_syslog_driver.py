"""The syslog log driver with dual logging (issue 17): a container's lines reach a unixgram socket
of the test's own, and `docker logs` still shows them."""

from __future__ import annotations

import queue
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from pyd.core import certs
from tests.helpers.daemon import PydDaemon
from tests.helpers.images import DEFAULT_TAG, load_busybox


def _receive(sock: socket.socket, want: int, timeout: float = 30) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.1))
        try:
            got.append(sock.recv(65536))
        except TimeoutError:
            break
    return got


def test_syslog_unixgram_and_docker_logs(tmp_path: Path) -> None:
    """Lines go out as rfc5424 with the daemon facility (stdout info, stderr err) and the
    {{.Name}} tag; docker logs shows the same lines from the local cache."""
    path = str(tmp_path / "log.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    d = PydDaemon(str(tmp_path / "d"))
    try:
        d.start()
        load_busybox(d)
        d.docker(
            "run", "--name", "logger", "--log-driver", "syslog",
            "--log-opt", f"syslog-address=unixgram://{path}",
            "--log-opt", "syslog-format=rfc5424", "--log-opt", "tag={{.Name}}",
            DEFAULT_TAG, "sh", "-c", "echo one; echo two >&2; echo three",
        )  # fmt: skip
        got = _receive(sock, 3)
        assert len(got) == 3, got
        by_text = {m.rsplit(b" - ", 1)[1]: m for m in got}
        assert set(by_text) == {b"one", b"two", b"three"}
        assert by_text[b"one"].startswith(b"<30>1 ")  # daemon.info
        assert by_text[b"two"].startswith(b"<27>1 ")  # daemon.err
        assert b" logger " in by_text[b"one"]
        logs = d.docker("logs", "logger")
        assert logs.stdout.split() == ["one", "three"] and logs.stderr.split() == ["two"]
        info = d.docker("info", "--format", "{{json .Plugins.Log}}").stdout
        assert "syslog" in info
        # cache-disabled: lines still go out, but nothing is kept for docker logs (dockerd's)
        d.docker(
            "run", "--name", "nocache", "--log-driver", "syslog",
            "--log-opt", f"syslog-address=unixgram://{path}", "--log-opt", "cache-disabled=true",
            DEFAULT_TAG, "sh", "-c", "echo four",
        )  # fmt: skip
        assert [m.rsplit(b": ", 1)[1] for m in _receive(sock, 1)] == [b"four"]
        r = d.docker("logs", "nocache", check=False)
        assert r.returncode != 0
        assert "configured logging driver does not support reading" in r.stderr
    finally:
        d.cleanup()
        sock.close()


class _TlsSyslogServer:
    """A syslog server on loopback speaking mutual TLS (certificates of the test's own CA);
    collects the newline-framed messages of every connection."""

    def __init__(self, d: Path) -> None:
        self.ca = certs.make_ca("syslog test CA")
        server = certs.make_server(self.ca, [], ["127.0.0.1"])
        client = certs.make_client(self.ca, "pyd", None)
        d.mkdir(parents=True, exist_ok=True)
        self.files = {}
        for name, data in (
            ("ca.pem", self.ca.cert_pem), ("server.pem", server.cert_pem),
            ("server-key.pem", server.key_pem), ("cert.pem", client.cert_pem),
            ("key.pem", client.key_pem),
        ):  # fmt: skip
            (d / name).write_bytes(data)
            self.files[name] = str(d / name)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(self.files["server.pem"], self.files["server-key.pem"])
        self.ctx.load_verify_locations(self.files["ca.pem"])
        self.ctx.verify_mode = ssl.CERT_REQUIRED  # the daemon must present its certificate
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.peers: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._conn, args=(raw,), daemon=True).start()

    def _conn(self, raw: socket.socket) -> None:
        try:
            with self.ctx.wrap_socket(raw, server_side=True) as s:
                peer: Any = s.getpeercert() or {}
                self.peers += [v for rdn in peer["subject"] for k, v in rdn if k == "commonName"]
                buf = b""
                while chunk := s.recv(65536):
                    buf += chunk
                    *done, buf = buf.split(b"\n")
                    for line in done:
                        self.lines.put(line)
        except (OSError, ValueError):
            return  # a refused handshake or a closed connection

    def receive(self, want: int, timeout: float = 30) -> list[bytes]:
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(got) < want and time.monotonic() < deadline:
            try:
                got.append(self.lines.get(timeout=max(deadline - time.monotonic(), 0.1)))
            except queue.Empty:
                break
        return got

    def close(self) -> None:
        self.sock.close()


def test_syslog_tcp_tls(tmp_path: Path) -> None:
    """tcp+tls with the test's CA and a client certificate: the server (which requires the
    certificate) receives the container's lines, rfc3164 newline-framed; a bad combination of
    TLS options fails the start with dockerd's logger error, and skip-verify with no CA works."""
    srv = _TlsSyslogServer(tmp_path / "tls")
    f = srv.files
    d = PydDaemon(str(tmp_path / "d"))
    address = f"syslog-address=tcp+tls://127.0.0.1:{srv.port}"
    try:
        d.start()
        load_busybox(d)
        d.docker(
            "run", "--name", "tls", "--log-driver", "syslog", "--log-opt", address,
            "--log-opt", f"syslog-tls-ca-cert={f['ca.pem']}",
            "--log-opt", f"syslog-tls-cert={f['cert.pem']}",
            "--log-opt", f"syslog-tls-key={f['key.pem']}", "--log-opt", "tag={{.Name}}",
            DEFAULT_TAG, "sh", "-c", "echo one; echo two >&2; echo three",
        )  # fmt: skip
        got = srv.receive(3)
        assert sorted(m.rsplit(b": ", 1)[1] for m in got) == [b"one", b"three", b"two"], (
            got,
            d.docker("logs", "tls").stderr,
            d.log()[-3000:],
        )
        assert all(b" tls[" in m for m in got), got
        assert "pyd" in srv.peers
        assert d.docker("logs", "tls").stdout.split() == ["one", "three"]
        # the key without its certificate, a CA file that does not exist: the start fails
        for opts, text in (
            ([f"syslog-tls-key={f['key.pem']}"], "could not load X509 key pair: syslog-tls-cert"),
            (["syslog-tls-ca-cert=/nonexistent/ca.pem"], 'could not read CA certificate "/non'),
            ([f"syslog-tls-ca-cert={f['key.pem']}"], "failed to append certificates from PEM"),
        ):
            args = [a for o in (address, *opts) for a in ("--log-opt", o)]
            r = d.docker(
                "run", "--log-driver", "syslog", *args, DEFAULT_TAG, "true", check=False
            )  # fmt: skip
            assert r.returncode != 0, r
            assert "failed to initialize logging driver: " + text in r.stderr, r.stderr
            assert "Errno" not in r.stderr and "Traceback" not in r.stderr
        # skip-verify (any value counts, as in dockerd) with no CA: the test CA is not trusted,
        # yet the line arrives
        d.docker(
            "run", "--log-driver", "syslog", "--log-opt", address,
            "--log-opt", "syslog-tls-skip-verify=false",
            "--log-opt", f"syslog-tls-cert={f['cert.pem']}",
            "--log-opt", f"syslog-tls-key={f['key.pem']}", DEFAULT_TAG, "sh", "-c", "echo four",
        )  # fmt: skip
        assert [m.rsplit(b": ", 1)[1] for m in srv.receive(1)] == [b"four"]
    finally:
        d.cleanup()
        srv.close()
