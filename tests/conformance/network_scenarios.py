"""Conformance scenarios of network kinds beyond the plain bridge: config-only networks and the
networks created from them (C{--config-only}, C{--config-from}).

IPv6-only networks (C{--ipv4=false}, API 1.48) are not here: the recording dockerd (20.10)
does not have them; their rules are moby 28's, checked by unit and integration tests.
"""

from __future__ import annotations

from tests.conformance.steps import Api, Scenario, d, rm_f
from tests.helpers.images import DEFAULT_TAG as B

# What a network's inspect shows that a config-only network and its users decide (EnableIPv4 is
# left out: API 1.41 has no such field, so 20.10 sends none).
_SHOWN = (
    "{{.Driver}} {{.Scope}} {{.ConfigOnly}} {{json .ConfigFrom}} {{json .IPAM}} "
    "{{json .Options}} {{json .Labels}} {{.EnableIPv6}} {{.Internal}} {{.Attachable}}"
)

CONFIG_ONLY = Scenario(
    "network_config_only",
    (
        d(
            "network",
            "create",
            "--config-only",
            "--subnet",
            "172.28.7.0/24",
            "--gateway",
            "172.28.7.1",
            "--ip-range",
            "172.28.7.128/25",
            "-o",
            "com.docker.network.driver.mtu=1400",
            "--label",
            "conf=c",
            "conf-cfg",
        ),
        d("network", "inspect", "-f", _SHOWN + " {{json .Containers}}", "conf-cfg"),
        d("network", "ls", "-f", "name=conf-cfg", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"),
        Api(
            "GET",
            "/networks/conf-cfg",
            fields=("ConfigOnly", "ConfigFrom", "Driver", "Scope", "IPAM", "Containers"),
        ),
        # What a configuration network may not be or have.
        d("network", "create", "--config-only", "--internal", "conf-bad1"),
        d("network", "create", "--config-only", "--attachable", "conf-bad2"),
        d("network", "create", "--config-only", "--config-from", "conf-cfg", "conf-bad3"),
        Api(
            "POST", "/networks/create", {"Name": "conf-bad4", "ConfigOnly": True, "Scope": "local"}
        ),
        # What a network made from one may not give itself.
        d(
            "network",
            "create",
            "--config-from",
            "conf-cfg",
            "--subnet",
            "172.28.8.0/24",
            "conf-bad5",
        ),
        d("network", "create", "--config-from", "conf-cfg", "-o", "a=b", "conf-bad6"),
        d("network", "create", "--config-from", "conf-cfg", "--label", "a=b", "conf-bad7"),
        d("network", "create", "--config-from", "conf-cfg", "--ipv6", "conf-bad8"),
        d("network", "create", "--config-from", "conf-cfg", "--ipam-opt", "a=b", "conf-bad9"),
        d("network", "create", "--config-from", "nope", "conf-bad10"),
        d("network", "create", "--subnet", "172.28.8.0/24", "conf-plain"),
        d("network", "create", "--config-from", "conf-plain", "conf-bad11"),
        d("network", "rm", "conf-plain"),
        # The network made from it: the configuration's IPAM, options and labels.
        d("network", "create", "--config-from", "conf-cfg", "-d", "bridge", "conf-from"),
        d("network", "inspect", "-f", _SHOWN, "conf-from"),
        d("network", "ls", "-f", "name=conf-", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"),
        d("run", "-d", "--name", "conf-cf1", "--network", "conf-from", B, "sleep", "1000"),
        d(
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}/{{.IPPrefixLen}} {{.Gateway}}{{end}}",
            "conf-cf1",
        ),
        d("exec", "conf-cf1", "cat", "/sys/class/net/eth0/mtu"),
        # Nothing runs on a configuration network, nor is it removed while a network uses it.
        d("run", "--rm", "--network", "conf-cfg", B, "true"),
        d("create", "--name", "conf-cf2", "--network", "none", B, "sleep", "1000"),
        d("network", "disconnect", "none", "conf-cf2"),
        d("network", "connect", "conf-cfg", "conf-cf2"),
        d("start", "conf-cf2"),
        d("network", "connect", "conf-cfg", "conf-cf1"),
        Api("POST", "/networks/conf-cfg/connect", {"Container": "conf-cf1"}),
        d("network", "rm", "conf-cfg"),
        Api("DELETE", "/networks/conf-cfg"),
        d("network", "prune", "-f"),
        d("network", "ls", "-f", "name=conf-", "--format", "{{.Name}}"),
        d("rm", "-f", "conf-cf1"),
        d("network", "rm", "conf-from"),
        d("network", "rm", "conf-cfg"),
        d("network", "create", "--config-only", "conf-cfg2"),
        d("network", "inspect", "-f", _SHOWN, "conf-cfg2"),
        d("network", "rm", "conf-cfg2"),
    ),
    (
        *rm_f("conf-cf1", "conf-cf2"),
        d("network", "rm", "conf-from", "conf-plain", "conf-cfg", "conf-cfg2"),
        d("network", "rm", *(f"conf-bad{i}" for i in range(1, 12))),
    ),
    keep=(
        "172.28.7.0/24",
        "172.28.7.1",
        "172.28.7.128/25",
        "172.28.7.128",
        "172.28.7.129",
        "172.28.7.128/24",
        "172.28.7.129/24",
        "172.28.8.0/24",
    ),
)

NETWORK_SCENARIOS = (CONFIG_ONLY,)
