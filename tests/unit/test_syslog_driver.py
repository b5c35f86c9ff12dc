"""The syslog log driver: addresses, formats, framing, tag templates and option checks."""

from __future__ import annotations

import datetime
import os
import select
import shutil
import socket
import ssl
import tempfile
import threading
import time

from twisted.trial.unittest import SynchronousTestCase

from pyd.core.errors import InvalidParameter
from pyd.core.records import Container, ContainerState
from pyd.drivers import syslog
from pyd.engine.containers import runconfig
from pyd.engine.containers.logforward import render_tag
from pyd.engine.spec import rules

WHEN = datetime.datetime(2026, 3, 5, 14, 7, 9, 123456, tzinfo=datetime.UTC)


class FormatTests(SynchronousTestCase):
    """The message texts dockerd's driver sends."""

    def setUp(self) -> None:
        self.patch(os, "environ", {**os.environ, "TZ": "UTC"})
        import time

        time.tzset()
        self.addCleanup(time.tzset)

    def test_rfc3164(self) -> None:
        """Local sockets omit the host name; the day is space-padded."""
        local = syslog.format_message("", 30, "web", b"hi\n", WHEN, "h1", 42, True)
        self.assertEqual(local, b"<30>Mar  5 14:07:09 web[42]: hi")
        remote = syslog.format_message("rfc3164", 27, "web", b"hi", WHEN, "h1", 42, False)
        self.assertEqual(remote, b"<27>Mar  5 14:07:09 h1 web[42]: hi")

    def test_rfc5424(self) -> None:
        """The tag is app name and message id; micro adds microseconds."""
        m = syslog.format_message("rfc5424", 30, "web", b"hi", WHEN, "h1", 42, False)
        self.assertEqual(m, b"<30>1 2026-03-05T14:07:09+00:00 h1 web 42 web - hi")
        m = syslog.format_message("rfc5424micro", 30, "web", b"hi", WHEN, "h1", 42, False)
        self.assertEqual(m, b"<30>1 2026-03-05T14:07:09.123456+00:00 h1 web 42 web - hi")

    def test_addresses(self) -> None:
        """Schemes and default ports as dockerd; anything else is refused with its text."""
        self.assertEqual(syslog.parse_address(""), ("unixgram", "/dev/log", 0))
        self.assertEqual(syslog.parse_address("udp://10.1.2.3"), ("udp", "10.1.2.3", 514))
        self.assertEqual(syslog.parse_address("tcp+tls://h:7000"), ("tcp+tls", "h", 7000))
        self.assertEqual(syslog.parse_address("unix:///run/s"), ("unix", "/run/s", 0))
        e = self.assertRaises(syslog.SyslogError, syslog.parse_address, "ftp://h")
        self.assertEqual(str(e), "unsupported scheme: 'ftp'")
        self.assertEqual(syslog.facility_code("local3"), 19)
        self.assertRaises(syslog.SyslogError, syslog.facility_code, "nope")

    def test_tcp_framing(self) -> None:
        """On a stream rfc5424 is octet-counted and rfc3164 newline-terminated; stderr is err."""
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        self.addCleanup(server.close)
        port = server.getsockname()[1]
        s5424 = syslog.SyslogSender(f"tcp://127.0.0.1:{port}", "local0", "rfc5424")
        s5424.send("stderr", b"boom\n", WHEN, "t")
        conn, _ = server.accept()
        self.addCleanup(conn.close)
        data = conn.recv(4096)
        n, _, msg = data.partition(b" ")
        self.assertEqual(int(n), len(msg))
        self.assertTrue(msg.startswith(b"<131>1 "))  # local0 (16) * 8 + err (3)
        conn.close()  # the sender's close waits for the server's end
        s5424.close()
        s3164 = syslog.SyslogSender(f"tcp://127.0.0.1:{port}")
        s3164.send("stdout", b"ok", WHEN, "t")
        conn2, _ = server.accept()
        self.addCleanup(conn2.close)
        self.assertTrue(conn2.recv(4096).endswith(b"]: ok\n"))
        conn2.close()
        s3164.close()

    def test_close_delivers_everything_despite_unread_data(self) -> None:
        """The server sent something nothing reads (a TLS 1.3 session ticket) and still holds
        lines in the sender's queue when the container exits: close() must not reset the
        connection (the kernel's answer to closing with unread data, which drops the queue)."""
        self.patch(syslog, "CLOSE_WAIT", 60.0)  # the server below is slow on purpose
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # small: lines stay queued
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        self.addCleanup(server.close)
        tx = syslog.SyslogSender(f"tcp://127.0.0.1:{server.getsockname()[1]}")
        tx.send("stdout", b"0", WHEN, "t")
        conn, _ = server.accept()
        self.addCleanup(conn.close)
        conn.sendall(b"ticket")
        assert tx._sock is not None
        tx._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        for i in range(1, 500):
            tx.send("stdout", str(i).encode() + b"x" * 200, WHEN, "t")
        select.select([tx._sock], [], [])  # the ticket arrived, unread
        got: list[bytes] = []

        def read_all() -> None:
            time.sleep(0.2)  # the sender closes first (not needed for the assertion to hold)
            with conn:
                while chunk := conn.recv(65536):
                    got.append(chunk)

        reader = threading.Thread(target=read_all)
        reader.start()
        tx.close()
        reader.join()
        lines = b"".join(got).split(b"\n")
        self.assertEqual(
            [ln.rsplit(b": ", 1)[1].rstrip(b"x") for ln in lines[:-1]],
            [str(i).encode() for i in range(500)],
        )

    def test_unixgram(self) -> None:
        """One datagram per line on a unixgram socket."""
        tmp = tempfile.mkdtemp(prefix="pyd-syslog-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "s")
        rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        rx.bind(path)
        self.addCleanup(rx.close)
        tx = syslog.SyslogSender(f"unixgram://{path}")
        tx.send("stdout", b"a", WHEN, "t")
        tx.send("stdout", b"b", WHEN, "t")
        tx.close()
        self.assertTrue(rx.recv(100).endswith(b": a"))
        self.assertTrue(rx.recv(100).endswith(b": b"))


class OptionTests(SynchronousTestCase):
    """--log-opt checks at create, and the local cache of dual logging."""

    def test_validation(self) -> None:
        """Unknown keys, bad address, facility and format are 400s with dockerd's texts."""
        cases = {
            "syslog-bogus": ("x", "unknown log opt 'syslog-bogus' for syslog log driver"),
            "syslog-address": ("ftp://x", "unsupported scheme: 'ftp'"),
            "syslog-facility": ("nope", "invalid syslog facility"),
            "syslog-format": ("rfc9999", "Invalid syslog format: rfc9999"),
        }
        for key, (value, text) in cases.items():
            e = self.assertRaises(
                InvalidParameter,
                rules.validate_log_config,
                {"Type": "syslog", "Config": {key: value}},
            )
            self.assertEqual(str(e), text)
        rules.validate_log_config(
            {"Type": "syslog", "Config": {"syslog-address": "udp://127.0.0.1", "tag": "x"}}
        )

    def test_cache_plan(self) -> None:
        """The cache is 20m x 5 by default, cache-max-size/-file change it; the syslog options
        are kept to forward with."""
        plan = runconfig.log_plan({"Type": "syslog", "Config": {"syslog-format": "rfc5424"}})
        self.assertEqual((plan.driver, plan.max_size, plan.max_files), ("syslog", 20 << 20, 5))
        self.assertEqual(plan.forward, {"syslog-format": "rfc5424"})
        plan = runconfig.log_plan(
            {"Type": "syslog", "Config": {"cache-max-size": "1m", "cache-max-file": "2"}}
        )
        self.assertEqual((plan.max_size, plan.max_files), (1_000_000, 2))

    def test_tag(self) -> None:
        """dockerd's tag fields; {{.ID}} by default."""
        c = Container(
            id="a" * 64,
            name="/web",
            image_id="sha256:" + "b" * 64,
            image_ref="nginx:1",
            created_nano=0,
            config={},
            host_config={},
            state=ContainerState(),
        )
        self.assertEqual(render_tag("", c, "h"), "a" * 12)
        self.assertEqual(
            render_tag("{{.Name}}/{{.ImageName}}/{{.ImageID}}/{{.DaemonName}}", c, "h"),
            f"web/nginx:1/{'b' * 12}/h",
        )


class TlsTests(SynchronousTestCase):
    """The tcp+tls client configuration and dockerd's texts for files it cannot use."""

    def test_options(self) -> None:
        """skip-verify counts when present, whatever its value (dockerd reads it so)."""
        files = syslog.TlsFiles.of({"syslog-tls-skip-verify": "false", "syslog-tls-cert": "c"})
        self.assertEqual(files, syslog.TlsFiles("", "c", "", True))
        ctx = syslog.tls_context(syslog.TlsFiles(skip_verify=True))
        self.assertEqual((ctx.verify_mode, ctx.check_hostname), (ssl.CERT_NONE, False))
        ctx = syslog.tls_context(syslog.TlsFiles())
        self.assertEqual((ctx.verify_mode, ctx.check_hostname), (ssl.CERT_REQUIRED, True))
        self.assertEqual(ctx.minimum_version, ssl.TLSVersion.TLSv1_2)

    def test_bad_files(self) -> None:
        """A missing half of the key pair, an unreadable or empty CA file: dockerd's texts."""
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        empty = os.path.join(d, "empty.pem")
        open(empty, "w").close()
        for files, text in (
            (syslog.TlsFiles(key=empty), "could not load X509 key pair: syslog-tls-cert is not set"),
            (syslog.TlsFiles(cert=empty), "could not load X509 key pair: syslog-tls-key is not set"),
            (syslog.TlsFiles(ca_cert=d + "/no.pem"), f'could not read CA certificate "{d}/no.pem"'),
            (syslog.TlsFiles(ca_cert=empty), f'failed to append certificates from PEM file: "{empty}"'),
            (syslog.TlsFiles(cert=empty, key=empty), "could not load X509 key pair: the certificate"),
        ):  # fmt: skip
            e = self.assertRaises(syslog.SyslogError, syslog.tls_context, files)
            self.assertTrue(str(e).startswith(text), str(e))

    def test_accepted_at_create(self) -> None:
        """The TLS options pass create's check (files are read when the logger starts)."""
        config = {
            "syslog-address": "tcp+tls://h", "syslog-tls-ca-cert": "/x", "syslog-tls-cert": "/c",
            "syslog-tls-key": "/k", "syslog-tls-skip-verify": "",
        }  # fmt: skip
        rules.validate_log_config({"Type": "syslog", "Config": config})
        e = self.assertRaises(
            InvalidParameter,
            rules.validate_log_config,
            {"Type": "syslog", "Config": {**config, "syslog-tls-crl": "/r"}},
        )
        self.assertEqual(str(e), "unknown log opt 'syslog-tls-crl' for syslog log driver")


class ConnectTests(SynchronousTestCase):
    """The driver dials its server when the container starts, as dockerd's does: a server that
    cannot be reached is Go's dial error."""

    def test_unreachable(self) -> None:
        """A closed TCP port, a missing Unix socket: Go's texts."""
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # nothing listens there now
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        for address, text in (
            (f"tcp://127.0.0.1:{port}", f"dial tcp 127.0.0.1:{port}: connect: connection refused"),
            (f"unix://{d}/none", f"dial unix {d}/none: connect: no such file or directory"),
            (f"unixgram://{d}/none", f"dial unixgram {d}/none: connect: no such file or directory"),
        ):  # fmt: skip
            sender = syslog.SyslogSender(address)
            e = self.assertRaises(syslog.SyslogError, sender.connect)
            self.assertEqual(str(e), text)

    def test_connection_is_kept(self) -> None:
        """The connection made at start is the one lines then use."""
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        rx.bind(f"{d}/log")
        self.addCleanup(rx.close)
        sender = syslog.SyslogSender(f"unixgram://{d}/log")
        sender.connect()
        self.addCleanup(sender.close)
        os.unlink(f"{d}/log")  # a new connection could not be made any more
        sender.send("stdout", b"hello\n", WHEN, "t")
        self.assertIn(b"hello", rx.recv(4096))
