"""A container's resolv.conf as dockerd writes it (pyd.engine.resolvconf; issue 5).

Expected texts follow moby's libnetwork/internal/resolvconf golden files.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pyd.engine import resolvconf as rcf

HEADER = rcf.HEADER + "\n\n"


def _internal(host: str, **overrides: list[str]) -> str:
    rc = rcf.with_overrides(
        rcf.parse(host),
        overrides.get("dns", []),
        overrides.get("search", []),
        overrides.get("options", []),
    )
    return rcf.generate(rcf.for_internal(rc))


class InternalResolverTests(SynchronousTestCase):
    """User-defined networks: 127.0.0.11, the host's servers kept as the resolver's upstreams."""

    def test_host_loopback_server(self) -> None:
        """A host-only 127.0.0.53 becomes an external server reached from the host; ndots:0."""
        self.assertEqual(
            _internal("nameserver 127.0.0.53\n"),
            HEADER + "nameserver 127.0.0.11\noptions ndots:0\n\n"
            "# Based on host file: '/etc/resolv.conf' (internal resolver)\n"
            "# ExtServers: [host(127.0.0.53)]\n# Overrides: []\n# Option ndots from: internal\n",
        )

    def test_search_and_options_carried_over(self) -> None:
        """The host's search list and options stay; ndots:0 is appended after them."""
        text = _internal(
            "# comment\nnameserver 10.0.0.1\nsearch a.test b.test\noptions trust-ad\n"
            "options attempts:3 edns0\n"
        )
        body = text.split("\n\n")[1]
        self.assertEqual(
            body,
            "nameserver 127.0.0.11\nsearch a.test b.test\n"
            "options trust-ad attempts:3 edns0 ndots:0",
        )
        self.assertIn("# ExtServers: [host(10.0.0.1)]\n", text)

    def test_host_ndots_kept(self) -> None:
        """An ndots option from the host wins over the resolver's ndots:0."""
        text = _internal("nameserver 127.0.0.53\noptions ndots:1\n")
        self.assertIn("options ndots:1\n", text)
        self.assertNotIn("ndots:0", text)
        self.assertTrue(text.endswith("# Option ndots from: host\n"))

    def test_invalid_ndots_replaced(self) -> None:
        """A malformed ndots is dropped and the resolver's one added."""
        text = _internal("nameserver 10.0.0.1\noptions ndots:x edns0\n")
        self.assertIn("options edns0 ndots:0\n", text)

    def test_dns_override(self) -> None:
        """--dns servers are upstreams of the resolver (not host loopback); listed as overrides."""
        text = _internal("nameserver 127.0.0.53\n", dns=["10.9.9.9"], options=["ndots:2"])
        self.assertEqual(
            text,
            HEADER + "nameserver 127.0.0.11\noptions ndots:2\n\n"
            "# Based on host file: '/etc/resolv.conf' (internal resolver)\n"
            "# ExtServers: [10.9.9.9]\n# Overrides: [nameservers options]\n"
            "# Option ndots from: override\n",
        )

    def test_no_servers(self) -> None:
        """Without any nameserver, the file says so (dockerd adds no default upstream)."""
        text = _internal("search x.test\n", search=["."])
        self.assertIn("# NO EXTERNAL NAMESERVERS DEFINED\n", text)
        self.assertNotIn("search", text.split("\n\n")[1])
        self.assertIn("# Overrides: [search]\n", text)

    def test_ext_servers_listed(self) -> None:
        """for_internal returns the upstreams in order with their origin."""
        rc = rcf.for_internal(rcf.parse("nameserver 10.0.0.1\nnameserver bogus\nnameserver ::1\n"))
        self.assertEqual(
            rc.ext_servers, (rcf.ExtServer("10.0.0.1", True), rcf.ExtServer("::1", True))
        )
        self.assertIn("# Invalid nameservers: [bogus]\n", rcf.generate(rc))


class LegacyTests(SynchronousTestCase):
    """The default bridge: no resolver, loopback servers removed, Google's as a last resort."""

    def test_loopback_removed_default_used(self) -> None:
        """Only-loopback hosts give 8.8.8.8/8.8.4.4 with a warning."""
        text = rcf.generate(rcf.for_legacy(rcf.parse("nameserver 127.0.0.53\nsearch s.test\n")))
        self.assertEqual(
            text,
            HEADER + "nameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch s.test\n\n"
            "# Based on host file: '/etc/resolv.conf' (legacy)\n"
            "# Used default nameservers.\n# Overrides: []\n",
        )

    def test_overrides_kept_verbatim(self) -> None:
        """--dns is written as given, even a loopback address."""
        rc = rcf.with_overrides(rcf.parse("nameserver 10.0.0.1\n"), ["127.0.0.1"], ["x.test"])
        body = rcf.generate(rcf.for_legacy(rc)).split("\n\n")[1]
        self.assertEqual(body, "nameserver 127.0.0.1\nsearch x.test")


class FileTests(SynchronousTestCase):
    """The hash next to the file keeps pyd from overwriting a user's edits."""

    def setUp(self) -> None:
        d = tempfile.mkdtemp(prefix="pyd-t-")
        self.addCleanup(shutil.rmtree, d, True)
        self.path = os.path.join(d, "resolv.conf")

    def test_rewrite_until_user_edits(self) -> None:
        """An untouched file is replaced; once edited by the user it is left alone."""
        rcf.write_file(self.path, "nameserver 10.0.0.1\n")
        self.assertFalse(rcf.user_modified(self.path))
        self.assertTrue(rcf.replace_unless_modified(self.path, "nameserver 127.0.0.11\n"))
        with open(self.path) as f:
            self.assertEqual(f.read(), "nameserver 127.0.0.11\n")
        with open(self.path, "a") as f:
            f.write("options rotate\n")
        self.assertTrue(rcf.user_modified(self.path))
        self.assertFalse(rcf.replace_unless_modified(self.path, "nameserver 10.1.1.1\n"))
        with open(self.path) as f:
            self.assertIn("rotate", f.read())

    def test_written_in_place(self) -> None:
        """The file keeps its inode (it is bind-mounted into a running container)."""
        rcf.write_file(self.path, "a\n")
        ino = os.stat(self.path).st_ino
        rcf.replace_unless_modified(self.path, "b\n")
        self.assertEqual(os.stat(self.path).st_ino, ino)
