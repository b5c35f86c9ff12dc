"""pyd's rules in the host's filter FORWARD, as text (pyd.drivers.network.hostfw)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pyd.drivers.network.hostfw import chain_names, ours, render


class HostForwardTextTests(SynchronousTestCase):
    def test_ours_finds_marked_and_jumping_rules_only(self) -> None:
        """The rules of C{iptables -S FORWARD} that are this daemon's: its comment (quoted or
        not) or a jump to its chain; another daemon's and the operator's are left."""
        listing = "\n".join(
            [
                "-P FORWARD DROP",
                '-A FORWARD -m comment --comment "pyd:pyd" -j PYD-FORWARD',
                "-A FORWARD -m comment --comment pyd:pyd -j PYD-FORWARD",
                "-A FORWARD -j PYD-FORWARD",
                '-A FORWARD -m comment --comment "pyd:pyd_0123456789" -j PYD_0123456789-FORWARD',
                "-A FORWARD -i eth0 -j ACCEPT",
                "-A PYD-FORWARD -j PYD-USER",
            ]
        )
        self.assertEqual(
            ours("pyd", listing),
            [
                '-A FORWARD -m comment --comment "pyd:pyd" -j PYD-FORWARD',
                "-A FORWARD -m comment --comment pyd:pyd -j PYD-FORWARD",
                "-A FORWARD -j PYD-FORWARD",
            ],
        )

    def test_render(self) -> None:
        """One jump at FORWARD's head, the operator's hook first, three accepts a bridge;
        stale rules deleted in the same transaction; a bridge name iptables would read as a
        wildcard (C{br+}) gets no accept."""
        chain, user = chain_names("pyd")
        self.assertEqual((chain, user), ("PYD-FORWARD", "PYD-USER"))
        text = render("pyd", ["pyd0", "e+"], ["-A FORWARD -j PYD-FORWARD"])
        self.assertEqual(
            text.splitlines(),
            [
                "*filter",
                ":PYD-FORWARD - [0:0]",
                "-D FORWARD -j PYD-FORWARD",
                '-I FORWARD 1 -m comment --comment "pyd:pyd" -j PYD-FORWARD',
                "-A PYD-FORWARD -j PYD-USER",
                "-A PYD-FORWARD -o pyd0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                "-A PYD-FORWARD -o pyd0 -m conntrack --ctstate DNAT -j ACCEPT",
                "-A PYD-FORWARD -i pyd0 -j ACCEPT",
                "COMMIT",
            ],
        )
