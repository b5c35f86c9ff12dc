"""Names the daemon writes into files (/etc/hosts, /etc/hostname, resolv.conf, nft): one line each,
refused at create/connect with a plain 400 when they carry newlines, control characters or
whitespace; ExtraHosts with dockerd's texts."""

from __future__ import annotations

from typing import Any

import pytest

from pyd.core.errors import InvalidParameter
from pyd.core.ids import VALID_NAME, go_quote, line_safe
from pyd.engine.containers import runconfig
from pyd.engine.spec import rules
from pyd.engine.spec.validate import validate_create

BAD = ["a\nb", "a\rb", "a\x00b", "a\tb", "a b", "a\u2028b", "a\x7fb", "trailing\n"]


def _create(config: dict[str, Any] | None = None, **hc: Any) -> str:
    with pytest.raises(InvalidParameter) as e:
        validate_create({"Image": "b", **(config or {})}, hc, 4)
    return str(e.value)


class LineSafeTests:
    def test_rules(self) -> None:
        for bad in BAD:
            assert not line_safe(bad), bad
        assert line_safe("a b", spaces=True)
        assert not line_safe("a\nb", spaces=True)
        for good in ("web", "db.example.com", "my-host_1", "ünïcode"):
            assert line_safe(good)

    def test_go_quote(self) -> None:
        assert go_quote('a\nb"\\\x01\u2028') == '"a\\nb\\"\\\\\\x01\\u2028"'

    def test_container_names_with_a_trailing_newline(self) -> None:
        """Python's $ matches before a final newline, Go's does not: names use \\Z."""
        assert VALID_NAME.match("web")
        assert not VALID_NAME.match("web\n")


class CreateChecksTests:
    @pytest.mark.parametrize("bad", BAD)
    def test_hostname_and_domainname(self, bad: str) -> None:
        assert _create({"Hostname": bad}) == (
            f"invalid Hostname {go_quote(bad)}: it must not contain whitespace or control characters"
        )
        assert _create({"Domainname": bad}).startswith(f"invalid Domainname {go_quote(bad)}: ")

    @pytest.mark.parametrize("bad", BAD)
    def test_extra_host_names(self, bad: str) -> None:
        assert _create(ExtraHosts=[f"{bad}:10.0.0.1"]) == (
            f"invalid host name in add-host: {go_quote(bad)}: "
            "it must not contain whitespace or control characters"
        )

    def test_extra_hosts_dockerd_texts(self) -> None:
        assert _create(ExtraHosts=["nohost"]) == 'bad format for add-host: "nohost"'
        assert _create(ExtraHosts=[":1.2.3.4"]) == 'bad format for add-host: ":1.2.3.4"'
        assert _create(ExtraHosts=["h:1.2.3"]) == 'invalid IP address in add-host: "1.2.3"'
        assert _create(ExtraHosts=["h:1.2.3.4\nx"]) == (
            'invalid IP address in add-host: "1.2.3.4\\nx"'
        )
        # a v6 zone is not checked by ipaddress: the line check catches it
        assert _create(ExtraHosts=["h:fe80::1%a\nb"]).startswith("invalid IP address in add-host")

    def test_extra_hosts_accepted_forms(self) -> None:
        assert rules.parse_extra_host("db:10.0.0.9") == ("db", "10.0.0.9")
        assert rules.parse_extra_host("db=10.0.0.9") == ("db", "10.0.0.9")
        assert rules.parse_extra_host("v6:::1") == ("v6", "::1")
        assert rules.parse_extra_host("v6=[::1]") == ("v6", "::1")
        assert rules.parse_extra_host("gw:host-gateway") == ("gw", "host-gateway")
        assert runconfig.render_hosts((), ["db:10.0.0.9", "v6=[::1]", "gw:host-gateway"]).endswith(
            "10.0.0.9\tdb\n::1\tv6\n"
        )

    @pytest.mark.parametrize("key", ["Dns", "DnsSearch", "DnsOptions"])
    def test_resolv_conf_entries(self, key: str) -> None:
        assert _create(None, **{key: ["ok", "x\nnameserver 10.0.0.1"]}) == (
            f'invalid {key} entry "x\\nnameserver 10.0.0.1": '
            "it must not contain whitespace or control characters"
        )

    def test_good_names_pass(self) -> None:
        validate_create(
            {"Image": "b", "Hostname": "web", "Domainname": "example.com"},
            {
                "ExtraHosts": ["db:10.0.0.9"],
                "DnsSearch": ["example.com"],
                "DnsOptions": ["ndots:2"],
            },
            4,
        )
