"""Flags + daemon.json -> DaemonConfig, with dockerd's rules and messages."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from pyd import config as cfgmod
from pyd.config import limits
from pyd.tap import Options

# The daemon.json files the tests write: one directory, removed when the test process ends.
_FILES = tempfile.mkdtemp(prefix="pyd-t-config-")
atexit.register(shutil.rmtree, _FILES, True)


def _file(content: object) -> str:
    fd, path = tempfile.mkstemp(suffix=".json", dir=_FILES)
    with os.fdopen(fd, "w") as f:
        f.write(content if isinstance(content, str) else json.dumps(content))
    return path


class ConfigTests(SynchronousTestCase):
    """Options parse like dockerd's."""

    def parse(self, *argv: str) -> cfgmod.DaemonConfig:
        o = Options()
        o.parseOptions(list(argv))
        assert o.config is not None
        return o.config

    def test_defaults(self) -> None:
        """Without flags or file: dockerd-like defaults under pyd's own paths."""
        c = self.parse("--config-file", _file({}))
        self.assertEqual(c.data_root, "/var/lib/pyd")
        self.assertEqual(c.exec_root, "/run/pyd")
        self.assertEqual(c.default_hosts(), ("unix:///var/run/pyd.sock",))
        self.assertEqual(c.log_level, "info")

    def test_repeatable_host(self) -> None:
        """-H is repeatable and keeps order."""
        c = self.parse(
            "--config-file", _file({}), "-H", "unix:///a.sock", "--host", "unix:///b.sock"
        )
        self.assertEqual(c.hosts, ("unix:///a.sock", "unix:///b.sock"))

    def test_file_keys(self) -> None:
        """daemon.json uses dockerd's keys."""
        c = self.parse(
            "--config-file",
            _file({"data-root": "/x", "log-level": "debug", "insecure-registries": ["r:5000"]}),
        )
        self.assertEqual(
            (c.data_root, c.log_level, c.insecure_registries), ("/x", "debug", ("r:5000",))
        )

    def test_unknown_key(self) -> None:
        """An unknown key is an error naming it."""
        e = self.assertRaises(usage.UsageError, self.parse, "--config-file", _file({"bogus": 1}))
        self.assertIn("bogus", str(e))
        self.assertIn("don't match any configuration option", str(e))

    def test_bad_json(self) -> None:
        """Malformed JSON is an error naming the file."""
        path = _file("{nope")
        e = self.assertRaises(usage.UsageError, self.parse, "--config-file", path)
        self.assertIn(path, str(e))

    def test_flag_and_file_conflict(self) -> None:
        """The same option as flag and in the file is refused, like dockerd."""
        e = self.assertRaises(
            usage.UsageError,
            self.parse,
            "--config-file",
            _file({"data-root": "/a"}),
            "--data-root",
            "/b",
        )
        self.assertIn("specified both as a flag and in the configuration file", str(e))
        self.assertIn("data-root", str(e))

    def test_bad_value(self) -> None:
        """A bad value names the key."""
        e = self.assertRaises(
            usage.UsageError, self.parse, "--config-file", _file({"log-level": "loud"})
        )
        self.assertIn("log-level", str(e))

    def test_missing_explicit_file(self) -> None:
        """An explicitly named config file must exist."""
        self.assertRaises(usage.UsageError, self.parse, "--config-file", "/nonexistent/daemon.json")

    def test_plain_tcp_refused(self) -> None:
        """tcp:// without TLS needs the loudly named opt-in."""
        e = self.assertRaises(
            usage.UsageError, self.parse, "--config-file", _file({}), "-H", "tcp://127.0.0.1:2375"
        )
        self.assertIn("insecure-tcp-without-tls-gives-root-to-anyone", str(e))
        c = self.parse(
            "--config-file",
            _file({}),
            "-H",
            "tcp://127.0.0.1:2375",
            "--insecure-tcp-without-tls-gives-root-to-anyone",
        )
        self.assertEqual(c.hosts, ("tcp://127.0.0.1:2375",))

    def test_tlsverify_needs_files(self) -> None:
        """--tlsverify without certificate paths is refused."""
        e = self.assertRaises(
            usage.UsageError, self.parse, "--config-file", _file({}), "--tlsverify"
        )
        self.assertIn("tls", str(e))


class HostParseTests(SynchronousTestCase):
    """-H values become Twisted endpoint descriptions."""

    def test_unix(self) -> None:
        """unix://PATH listens with mode 660."""
        self.assertEqual(
            cfgmod.parse_host("unix:///run/p.sock").endpoint_description(),
            "unix:/run/p.sock:mode=660",
        )

    def test_tcp(self) -> None:
        """tcp://HOST:PORT binds that interface."""
        s = cfgmod.parse_host("tcp://0.0.0.0:2376")
        self.assertEqual((s.kind, s.port), ("tcp", 2376))
        self.assertEqual(s.endpoint_description(), "tcp:2376:interface=0.0.0.0")

    def test_fd(self) -> None:
        """fd:// adopts systemd's sockets."""
        self.assertEqual(
            cfgmod.parse_host("fd://").endpoint_description(), "systemd:domain=UNIX:index=0"
        )

    def test_bad(self) -> None:
        """Unknown schemes are refused with dockerd's text."""
        e = self.assertRaises(cfgmod.ConfigError, cfgmod.parse_host, "ftp://x")
        self.assertIn("invalid bind address format", str(e))


class ConfigDocsTests(SynchronousTestCase):
    """docs/configuration.md documents every option."""

    def test_every_key_documented(self) -> None:
        """Each daemon.json key and flag appears in the configuration doc."""
        from pathlib import Path

        doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
        for o in cfgmod.OPTIONS:
            self.assertIn(f"`{o.key}`", doc, "add a row for it to docs/configuration.md")
            if o.flag:
                self.assertIn(f"`--{o.flag}`", doc)


class RobustnessOptionTests(SynchronousTestCase):
    """The limits of issue 18: sizes, the free-space reserve, connection caps, timeouts."""

    def test_sizes(self) -> None:
        """C{64MiB}, C{64m}, C{1g} and integers are bytes; junk names the key."""
        b = limits._bytes
        self.assertEqual(b("64MiB", "k"), 64 << 20)
        self.assertEqual(b("64m", "k"), 64 << 20)
        self.assertEqual(b("1g", "k"), 1 << 30)
        self.assertEqual(b(4096, "k"), 4096)
        for bad in ("-1", "lots", "1x", -5, True, [1]):
            with self.assertRaisesRegex(cfgmod.ConfigError, "max-layer-size"):
                b(bad, "max-layer-size")

    def test_reserve(self) -> None:
        """Default: 5 % or 2 GiB, whichever is smaller; a percentage; a size; 0 is none."""
        f = limits.free_reserve_bytes
        self.assertEqual(f("", 10 << 30), (10 << 30) // 20)
        self.assertEqual(f("", 1000 << 30), 2 << 30)
        self.assertEqual(f("10%", 1000), 100)
        self.assertEqual(f("1g", 1000), 1 << 30)
        self.assertEqual(f("0", 1000), 0)
        for bad in ("150%", "x%", "nope"):
            with self.assertRaises(cfgmod.ConfigError):
                limits._reserve(bad, "min-free-space")

    def test_flags_and_file(self) -> None:
        """The flags reach the config."""
        cfg = cfgmod.build(
            {"max-layer-size": "64MiB", "header-timeout": "5s", "max-connections-per-peer": "3"},
            "/nonexistent/daemon.json",
            False,
        )
        self.assertEqual(cfg.max_layer_size, 64 << 20)
        self.assertEqual(cfg.header_timeout, 5.0)
        self.assertEqual(cfg.max_connections_per_peer, 3)
        self.assertEqual(cfg.min_free_space, "")
