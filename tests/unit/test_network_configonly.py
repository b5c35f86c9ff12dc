"""pyd.engine.networks.configonly: dockerd's rules for --config-only and --config-from."""

from __future__ import annotations

import unittest

from pyd.core.errors import Forbidden, NotFound
from pyd.core.records import IpamPool, Network
from pyd.engine.networks import CreateRequest, configonly

_CONFIG = Network(
    id="c" * 64,
    name="cfg",
    driver="null",
    created_nano=0,
    enable_ipv6=True,
    ipam_options={"o": "1"},
    pools=(IpamPool("10.1.0.0/24", "", "10.1.0.128/25"), IpamPool("fd00:1::/64", "")),
    options={"com.docker.network.driver.mtu": "1400"},
    labels={"l": "v"},
    config_only=True,
)


class CheckTests(unittest.TestCase):
    """What may be combined with ConfigOnly and ConfigFrom."""

    def test_allowed(self) -> None:
        """A configuration with IPAM, options and labels; a network from one that is internal
        and attachable: both pass."""
        configonly.check(
            CreateRequest("a", config_only=True, pools=_CONFIG.pools, labels={"x": "y"})
        )
        configonly.check(
            CreateRequest("b", config_from="cfg", internal=True, attachable=True, ipam_options={})
        )

    def test_refused(self) -> None:
        """Each refused combination is libnetwork's Forbidden with its text."""
        operator = "configuration network can only contain network specific fields"
        own = "user specified configurations are not supported"
        for req, text in (
            (CreateRequest("a", config_only=True, internal=True), operator),
            (CreateRequest("a", config_only=True, attachable=True), operator),
            (CreateRequest("a", config_only=True, ingress=True), operator),
            (CreateRequest("a", config_only=True, scope="local"), operator),
            (CreateRequest("a", config_only=True, config_from="cfg"), "cannot depend on another"),
            (CreateRequest("a", config_from="cfg", pools=_CONFIG.pools), own),
            (CreateRequest("a", config_from="cfg", enable_ipv6=True), own),
            (CreateRequest("a", config_from="cfg", labels={"a": "b"}), own),
            (CreateRequest("a", config_from="cfg", ipam_options={"a": "b"}), own),
            (CreateRequest("a", config_from="cfg", ipam_driver="other"), own),
            (CreateRequest("a", config_from="cfg", options={"a": "b"}), "network driver options"),
        ):
            with self.assertRaises(Forbidden) as cm:
                configonly.check(req)
            self.assertIn(text, str(cm.exception), req)


class ApplyTests(unittest.TestCase):
    """The configuration a network created from one takes."""

    def test_find_by_name_among_configurations(self) -> None:
        """Only a configuration-only network of that exact name is found."""
        plain = Network(id="p" * 64, name="plain", driver="bridge", created_nano=0)
        self.assertIs(configonly.find([plain, _CONFIG], "cfg"), _CONFIG)
        for name in ("plain", "c" * 12, "nope"):
            with self.assertRaises(NotFound) as cm:
                configonly.find([plain, _CONFIG], name)
            self.assertEqual(str(cm.exception), f'configuration network "{name}" does not exist')

    def test_apply(self) -> None:
        """Families, IPAM, options and labels come from the configuration; internal and
        attachable stay the request's."""
        got = configonly.apply(
            _CONFIG, CreateRequest("b", config_from="cfg", internal=True, ipam_options={})
        )
        self.assertEqual(
            (got.enable_ipv6, got.pools, got.ipam_options, got.options, got.labels),
            (True, _CONFIG.pools, {"o": "1"}, _CONFIG.options, _CONFIG.labels),
        )
        self.assertEqual((got.internal, got.attachable, got.name), (True, False, "b"))
