"""Which registry requests go through a proxy (dockerd's, i.e. Go's, rules)."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from pyd.drivers.registry.proxy import Proxy, ProxySettings


class ProxySettingsTests(SynchronousTestCase):
    """Config first, then the environment; NO_PROXY and loopback bypass."""

    def test_parse(self) -> None:
        """Credentials become a Basic Proxy-Authorization; the port defaults to 80."""
        p = Proxy.parse("http://u%40x:p%3Aw@proxy.test")
        self.assertEqual(
            (p.host, p.port, p.authorization), ("proxy.test", 80, "Basic dUB4OnA6dw==")
        )
        self.assertRaises(ValueError, Proxy.parse, "socks5://proxy:1080")

    def test_scheme_and_bypass(self) -> None:
        """http and https pick their own proxy; loopback, localhost and NO_PROXY go direct."""
        s = ProxySettings.resolve(
            "http://hp:3128", "http://sp:3129", "example.org, .corp.test,10.0.0.0/8,reg:5000"
        )
        self.assertEqual(s.for_url("http", "reg.example.net", 80), Proxy("hp", 3128))
        self.assertEqual(s.for_url("https", "reg.example.net", 443), Proxy("sp", 3129))
        for host, port in (
            ("localhost", 5000),
            ("127.0.0.1", 5000),
            ("::1", 443),
            ("example.org", 443),
            ("a.example.org", 443),
            ("x.corp.test", 443),
            ("10.2.3.4", 443),
            ("reg", 5000),
        ):
            self.assertIsNone(s.for_url("https", host, port), host)
        self.assertIsNotNone(s.for_url("https", "reg", 5001))  # the entry names port 5000
        self.assertIsNotNone(s.for_url("https", "notexample.org", 443))

    def test_star(self) -> None:
        """NO_PROXY=* bypasses every host."""
        s = ProxySettings.resolve("http://hp:1", "", "*")
        self.assertIsNone(s.for_url("http", "anything", 80))

    def test_environment(self) -> None:
        """Without configuration the daemon's environment decides; configuration wins."""
        env = {"HTTPS_PROXY": "http://envproxy:8080", "no_proxy": "skip.test"}
        self.patch(os, "environ", env)
        s = ProxySettings.resolve()
        self.assertEqual(s.https, Proxy("envproxy", 8080))
        self.assertIsNone(s.http)
        self.assertEqual(s.no_proxy, ("skip.test",))
        self.assertEqual(ProxySettings.resolve(https="http://cfg:1").https, Proxy("cfg", 1))
        self.assertFalse(ProxySettings().active)
