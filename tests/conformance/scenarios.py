"""The conformance scenarios: scripts of CLI and API calls whose answers must match dockerd's.

Each L{Scenario} starts from a daemon with no containers, user networks or volumes and the
offline busybox test image (L{tests.helpers.images.DEFAULT_TAG}); its L{Scenario.cleanup} steps
run even when a step fails. Names are fixed (C{conf-...}) so that transcripts do not depend on
generated names; containers use C{--network none} unless the scenario is about networks (the
recording dockerd runs with C{--bridge none}). Addresses a scenario chooses itself are listed in
L{Scenario.keep}; the others are normalised away.
"""

from __future__ import annotations

from collections.abc import Sequence

from tests.conformance.api_scenarios import API_SCENARIOS
from tests.conformance.field_scenarios import FIELD_SCENARIOS
from tests.conformance.more_scenarios import MORE_SCENARIOS
from tests.conformance.network_scenarios import NETWORK_SCENARIOS
from tests.conformance.steps import Api, Cli, Scenario, Step, Wait, d, rm_f
from tests.helpers.images import DEFAULT_TAG as B

__all__ = ["SCENARIOS", "Api", "Cli", "Scenario", "Step", "Wait", "each"]


def _state(name: str) -> Cli:
    return d("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.State.Running}}", name)


_SLEEP = ("--network", "none", B, "sleep", "1000")

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "kill",
        (
            d("run", "-d", "--name", "conf-k", *_SLEEP),
            d("kill", "conf-k"),
            # SIGKILL (the default) returns once the container is dead.
            _state("conf-k"),
            d("rm", "conf-k"),
            d("run", "-d", "--name", "conf-k2", *_SLEEP),
            Api("POST", "/containers/conf-k2/kill?signal=NOPE"),
            Api("POST", "/containers/conf-k2/kill?signal=KILL"),
            _state("conf-k2"),
            d("kill", "conf-k2"),
            Api("POST", "/containers/conf-k2/kill"),
            Api("POST", "/containers/nope/kill"),
            d("create", "--name", "conf-k3", *_SLEEP),
            Api("POST", "/containers/conf-k3/kill"),
        ),
        rm_f("conf-k", "conf-k2", "conf-k3"),
    ),
    Scenario(
        "restart",
        (
            d("run", "-d", "--name", "conf-r", "--network", "none", B, "true"),
            Wait("conf-r", "{{.State.Status}}", "exited"),
            d("restart", "-t", "0", "conf-r"),
            Wait("conf-r", "{{.State.Status}}", "exited"),
            d("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "conf-r"),
            d("create", "--name", "conf-r2", *_SLEEP),
            d("restart", "-t", "0", "conf-r2"),
            _state("conf-r2"),
            Api("POST", "/containers/nope/restart"),
        ),
        rm_f("conf-r", "conf-r2"),
    ),
    Scenario(
        "remove_restarting",
        (
            d(
                "run",
                "-d",
                "--name",
                "conf-rr",
                "--restart",
                "always",
                "--network",
                "none",
                B,
                "false",
            ),
            # Restart delays double (100 ms first); after the sixth restart the container stays
            # restarting for 6.4 s, ample time for the two removals below even on a loaded machine.
            Wait("conf-rr", "{{if ge .RestartCount 6}}{{.State.Restarting}}{{end}}", "true"),
            d("rm", "conf-rr"),
            Api("DELETE", "/containers/conf-rr"),
            d("rm", "-f", "conf-rr"),
            d("run", "-d", "--name", "conf-rr2", *_SLEEP),
            d("rm", "conf-rr2"),
            Api("DELETE", "/containers/conf-rr2"),
        ),
        rm_f("conf-rr", "conf-rr2"),
    ),
    Scenario(
        "top",
        (
            d("run", "-d", "--name", "conf-t", *_SLEEP),
            d("top", "conf-t", "-o", "pid=,comm="),
            Api("GET", "/containers/conf-t/top?ps_args=--no-such-option", fields=("message",)),
            Api("GET", "/containers/conf-t/top?ps_args=-o%20nosuchfield", fields=("message",)),
            d("kill", "conf-t"),
            Api("GET", "/containers/conf-t/top"),
            Api("GET", "/containers/nope/top"),
        ),
        rm_f("conf-t"),
    ),
    Scenario(
        "update",
        (
            d("run", "-d", "--name", "conf-u", *_SLEEP),
            Api("POST", "/containers/conf-u/update", {"CpusetCpus": "4095"}, ("message",)),
            Api("POST", "/containers/conf-u/update", {"CpusetMems": "4095"}, ("message",)),
            Api("POST", "/containers/conf-u/update", {"CpusetCpus": "x-y"}, ("message",)),
            Api("POST", "/containers/conf-u/update", {"Memory": 1024}),
            Api("POST", "/containers/conf-u/update", {"CpuShares": 512}),
            d("inspect", "-f", "{{.HostConfig.CpuShares}}", "conf-u"),
            Api("POST", "/containers/nope/update", {"CpuShares": 512}),
        ),
        rm_f("conf-u"),
    ),
    Scenario(
        "exec_tty",
        (
            d("run", "-d", "--name", "conf-e", *_SLEEP),
            d("exec", "-t", "conf-e", "echo", "hi"),
            d("exec", "conf-e", "echo", "hi"),
            d("exec", "-t", "conf-e", "sh", "-c", "echo out; echo err >&2"),
            d("exec", "conf-e", "sh", "-c", "echo out; echo err >&2"),
            d("exec", "-t", "conf-e", "sh", "-c", "test -t 0; echo $?; test -t 1; echo $?"),
            d("exec", "conf-e", "sh", "-c", "test -t 1; echo $?"),
            d("exec", "-t", "conf-e", "sh", "-c", "exit 3"),
            d("exec", "conf-e", "nonexistent"),
            d("exec", "conf-e", "/nope/x"),
            d("exec", "-t", "conf-e", "nonexistent"),
            d("kill", "conf-e"),
            d("exec", "conf-e", "true"),
            Api("POST", "/containers/nope/exec", {"Cmd": ["true"]}),
        ),
        rm_f("conf-e"),
    ),
    Scenario(
        "resize",
        (
            d("run", "-d", "-t", "--name", "conf-z", *_SLEEP),
            Api("POST", "/containers/conf-z/resize?h=30&w=100"),
            d("exec", "conf-z", "stty", "size", "-F", "/dev/console"),
            Api("POST", "/containers/conf-z/resize?h=x&w=100"),
            Api("POST", "/containers/conf-z/resize"),
            Api("POST", "/containers/nope/resize?h=30&w=100"),
            Api("POST", "/exec/nope/resize?h=30&w=100"),
            Api("POST", "/exec/nope/start", {"Detach": True}),
            Api("GET", "/exec/nope/json"),
            d("create", "--name", "conf-z2", "-t", *_SLEEP),
            Api("POST", "/containers/conf-z2/resize?h=30&w=100"),
        ),
        rm_f("conf-z", "conf-z2"),
    ),
    Scenario(
        "detach_keys",
        (
            d("run", "-d", "-t", "-i", "--name", "conf-dk", *_SLEEP),
            # The keys are checked before the container is looked up.
            Api("POST", "/containers/nope/attach?stream=1&stdout=1&detachKeys=ctrl-A"),
            Api("POST", "/containers/conf-dk/attach?stream=1&stdout=1&detachKeys=ctrl-A"),
            Api("POST", "/containers/conf-dk/attach?stream=1&stdout=1&detachKeys=a,,b"),
            Api("POST", "/containers/conf-dk/attach?stream=1&stdout=1&detachKeys=%C3%A9"),
            Api("POST", "/containers/conf-dk/exec", {"Cmd": ["true"], "DetachKeys": "ctrl-A"}),
            Api("POST", "/containers/conf-dk/exec", {"Cmd": ["true"], "DetachKeys": "del"}),
            Api("POST", "/containers/conf-dk/exec", {"Cmd": ["true"], "DetachKeys": "DEL,a"}),
            Api("GET", "/exec/{last_id}/json", fields=("DetachKeys",)),
            Api("POST", "/containers/conf-dk/exec", {"Cmd": ["true"], "DetachKeys": ""}),
            Api("GET", "/exec/{last_id}/json", fields=("DetachKeys",)),
            Api("POST", "/containers/conf-dk/exec", {"Cmd": ["true"]}),
            Api("GET", "/exec/{last_id}/json", fields=("DetachKeys",)),
            Api(
                "POST",
                "/containers/conf-dk/exec",
                {"Cmd": ["true"], "DetachKeys": "ctrl-p,ctrl-q,ctrl-@,ctrl-_,ctrl-\\"},
            ),
            Api("GET", "/exec/{last_id}/json", fields=("DetachKeys",)),
            d("exec", "--detach-keys", "ctrl-A", "conf-dk", "true"),
            d("attach", "--detach-keys", "nope", "conf-dk"),
            d("pause", "conf-dk"),
            Api("POST", "/containers/conf-dk/attach?stream=1&stdout=1"),
            d("unpause", "conf-dk"),
        ),
        rm_f("conf-dk"),
    ),
    Scenario(
        "links",
        (
            d(
                "run",
                "-d",
                "--name",
                "conf-lc",
                "-h",
                "conf-lch",
                "-e",
                "FOO=bar",
                "-e",
                "HOME=/h",
                "--expose",
                "80",
                "--expose",
                "81",
                "--expose",
                "53/udp",
                B,
                "sleep",
                "1000",
            ),
            d(
                "run",
                "-d",
                "--name",
                "conf-lp",
                "--link",
                "conf-lc:web",
                "--add-host",
                "h1:10.9.8.7",
                B,
                "sleep",
                "1000",
            ),
            d("exec", "conf-lp", "sh", "-c", "grep -v -e ip6 -e localhost /etc/hosts"),
            d("exec", "conf-lp", "sh", "-c", "env | grep -e ^WEB_ -e ^CONF | sort"),
            d("exec", "conf-lp", "sh", "-c", "ping -c1 -W5 web >/dev/null; echo $?"),
            d("inspect", "-f", "{{json .HostConfig.Links}}", "conf-lp"),
            d("inspect", "-f", "{{.Name}}", "conf-lp/web"),
            d("ps", "-a", "--filter", "name=web", "--format", "{{.Names}}"),
            d("ps", "-a", "--filter", "name=^/conf-lp/web$", "--format", "{{.Names}}"),
            d("ps", "-a", "--filter", "name=conf-lc", "--format", "{{.Names}}"),
            d("create", "--name", "conf-lx", "--link", "nope:x", B),
            Api(
                "POST",
                "/containers/create?name=conf-ly",
                {"Image": B, "HostConfig": {"Links": ["a:b:c"]}},
            ),
            Api(
                "POST",
                "/containers/create?name=conf-ly",
                {"Image": B, "HostConfig": {"Links": [""]}},
            ),
            d("create", "--name", "conf-ls", B, "sleep", "1000"),
            d("run", "-d", "--name", "conf-lq", "--link", "conf-ls:s", B, "sleep", "1000"),
            d("rm", "--link", "conf-lp/web"),
            d("exec", "conf-lp", "sh", "-c", "grep -v -e ip6 -e localhost /etc/hosts"),
            d("inspect", "-f", "{{json .HostConfig.Links}}", "conf-lp"),
            d("rm", "--link", "conf-lc"),
            Api("DELETE", "/containers/nope%2Fweb?link=1"),
            d("network", "create", "--subnet", "172.31.79.0/24", "conf-ln"),
            d("run", "-d", "--name", "conf-lu1", "--network", "conf-ln", B, "sleep", "1000"),
            d(
                "run",
                "-d",
                "--name",
                "conf-lu2",
                "--network",
                "conf-ln",
                "--link",
                "conf-lu1:ualias",
                "--link",
                "nope:gone",
                B,
                "sleep",
                "1000",
            ),
            d("exec", "conf-lu2", "sh", "-c", "nslookup ualias >/dev/null 2>&1; echo $?"),
            d("exec", "conf-lu1", "sh", "-c", "nslookup ualias >/dev/null 2>&1; echo $?"),
            d(
                "inspect",
                "-f",
                '{{json .HostConfig.Links}} {{json (index .NetworkSettings.Networks "conf-ln").Links}}',
                "conf-lu2",
            ),
            d("exec", "conf-lu2", "sh", "-c", "env | grep -c UALIAS"),
            d("network", "connect", "--link", "conf-lu1:cx", "conf-ln", "conf-lp"),
            d("exec", "conf-lp", "sh", "-c", "nslookup cx >/dev/null 2>&1; echo $?"),
        ),
        (
            *rm_f("conf-lc", "conf-lp", "conf-lx", "conf-ly", "conf-ls", "conf-lq"),
            *rm_f("conf-lu1", "conf-lu2"),
            d("network", "rm", "conf-ln"),
        ),
        keep=("10.9.8.7", "127.0.0.1"),
        bridge=True,
    ),
    Scenario(
        "errors",
        (
            d("inspect", "nope"),
            Api("GET", "/containers/nope/json"),
            d("start", "nope"),
            d("stop", "nope"),
            Api("POST", "/containers/nope/wait"),
            d("run", "-d", "--name", "conf-x", *_SLEEP),
            d("rm", "conf-x"),
            d("create", "--name", "conf-x", *_SLEEP),
            d("rename", "conf-x", "conf-x"),
            d("create", "--name", "conf-y", *_SLEEP),
            d("rename", "conf-y", "conf-x"),
            d("pause", "conf-y"),
            d("unpause", "conf-x"),
            d("create", "--name", "a b", B),
            Api("POST", "/containers/create", {"Image": "pyd-test/nosuch:1"}),
            Api("POST", "/containers/create?name=conf-z", {}),
            d("image", "inspect", "pyd-test/nosuch:1"),
            d("rmi", B),
            d("network", "rm", "nope"),
            d("network", "inspect", "nope"),
            d("volume", "inspect", "nope"),
            d("volume", "create", "conf-v"),
            d("create", "--name", "conf-v1", "-v", "conf-v:/v", *_SLEEP),
            d("volume", "rm", "conf-v"),
        ),
        (*rm_f("conf-x", "conf-y", "conf-v1"), d("volume", "rm", "-f", "conf-v")),
    ),
    Scenario(
        "network_ipam",
        (
            d(
                "network",
                "create",
                "--subnet",
                "172.28.5.0/24",
                "--gateway",
                "172.28.5.1",
                "--aux-address",
                "host1=172.28.5.2",
                "--aux-address",
                "host2=172.28.5.3",
                "-o",
                "com.docker.network.driver.mtu=1400",
                "conf-net",
            ),
            d(
                "network",
                "inspect",
                "-f",
                "{{json .IPAM}} {{json .Options}} {{.Driver}} {{.Internal}}",
                "conf-net",
            ),
            d("network", "create", "conf-net"),
            d(
                "create",
                "--name",
                "conf-n1",
                "--network",
                "conf-net",
                "--network-alias",
                "web",
                B,
                "sleep",
                "1000",
            ),
            d("start", "conf-n1"),
            d(
                "inspect",
                "-f",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                "conf-n1",
            ),
            d("create", "--name", "conf-n2", "--network", "none", B, "sleep", "1000"),
            d("network", "disconnect", "none", "conf-n2"),
            d("network", "connect", "--ip", "172.28.5.20", "--alias", "db", "conf-net", "conf-n2"),
            d("inspect", "-f", "{{json .NetworkSettings.Networks}}", "conf-n2"),
            d("start", "conf-n2"),
            d(
                "inspect",
                "-f",
                "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} "
                "{{json $v.IPAMConfig}} {{json $v.Links}} {{json $v.DriverOpts}} {{$v.IPAddress}}"
                "{{end}}",
                "conf-n2",
            ),
            d("exec", "conf-n2", "cat", "/etc/hosts"),
            d("network", "connect", "conf-net", "conf-n2"),
            # Connecting a never-started container to a network it is on changes nothing.
            d("create", "--name", "conf-n3", "--network", "conf-net", B, "sleep", "1000"),
            d("network", "connect", "--alias", "again", "conf-net", "conf-n3"),
            d("inspect", "-f", "{{json .NetworkSettings.Networks}}", "conf-n3"),
        ),
        (*rm_f("conf-n1", "conf-n2", "conf-n3"), d("network", "rm", "conf-net")),
        keep=(
            "172.28.5.0/24",
            "172.28.5.1",
            "172.28.5.2",
            "172.28.5.3",
            "172.28.5.20",
            "127.0.0.1",
        ),
    ),
    Scenario(
        "network_ipv6",
        (
            d(
                "network",
                "create",
                "--ipv6",
                "--subnet",
                "172.28.6.0/24",
                "--gateway",
                "172.28.6.1",
                "--subnet",
                "fd00:c0f:1::/64",
                "--gateway",
                "fd00:c0f:1::1",
                "conf-v6",
            ),
            d("network", "inspect", "-f", "{{.EnableIPv6}} {{json .IPAM.Config}}", "conf-v6"),
            d("network", "ls", "-f", "name=conf-v6", "--format", "{{.Name}} {{.IPv6}}"),
            d(
                "create",
                "--name",
                "conf-6a",
                "--network",
                "conf-v6",
                "--ip",
                "172.28.6.10",
                "--ip6",
                "fd00:c0f:1::10",
                B,
                "sleep",
                "1000",
            ),
            d(
                "inspect",
                "-f",
                '{{json (index .NetworkSettings.Networks "conf-v6").IPAMConfig}}',
                "conf-6a",
            ),
            d("start", "conf-6a"),
            d("run", "-d", "--name", "conf-6b", "--network", "conf-v6", B, "sleep", "1000"),
            *(
                d(
                    "inspect",
                    "-f",
                    "{{range .NetworkSettings.Networks}}{{.IPAddress}}/{{.IPPrefixLen}} "
                    "{{.Gateway}} {{.GlobalIPv6Address}}/{{.GlobalIPv6PrefixLen}} "
                    "{{.IPv6Gateway}}{{end}} [{{.NetworkSettings.GlobalIPv6Address}}]",
                    name,
                )
                for name in ("conf-6a", "conf-6b")
            ),
            d("exec", "conf-6b", "ip", "-6", "route", "show", "default"),
            d(
                "exec",
                "conf-6b",
                "sh",
                "-c",
                "ping -6 -c1 -W5 fd00:c0f:1::10 >/dev/null && echo ok",
            ),
            d("create", "--name", "conf-6c", "--network", "none", B, "sleep", "1000"),
            d("network", "disconnect", "none", "conf-6c"),
            d("network", "connect", "--ip6", "fd00:c0f:1::20", "conf-v6", "conf-6c"),
            d("start", "conf-6c"),
            d(
                "inspect",
                "-f",
                "{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}} "
                "{{json .IPAMConfig}}{{end}}",
                "conf-6c",
            ),
            # The interface's index is the daemon's business (dockerd moves a host veth in).
            d(
                "exec",
                "conf-6c",
                "sh",
                "-c",
                "ip -6 -o addr show scope global | sed 's/^[0-9]*: //'",
            ),
        ),
        (*rm_f("conf-6a", "conf-6b", "conf-6c"), d("network", "rm", "conf-v6")),
        keep=("172.28.6.0/24", "172.28.6.1", "172.28.6.10"),
    ),
    Scenario(
        "link_local",
        (
            d("network", "create", "--subnet", "172.28.9.0/24", "conf-ll"),
            # Link-local addresses beside the network's own (IPAMConfig.LinkLocalIPs).
            d(
                "run",
                "--rm",
                "--network",
                "conf-ll",
                "--ip",
                "172.28.9.20",
                "--link-local-ip",
                "169.254.9.9",
                B,
                "sh",
                "-c",
                "ip -o -4 addr show eth0 | awk '{print $4}'",
            ),
            d(
                "create",
                "--name",
                "conf-ll1",
                "--network",
                "conf-ll",
                "--link-local-ip",
                "169.254.9.10",
                B,
                "true",
            ),
            d(
                "inspect",
                "-f",
                "{{range .NetworkSettings.Networks}}{{json .IPAMConfig}}{{end}}",
                "conf-ll1",
            ),
            d(
                "create",
                "--name",
                "conf-ll2",
                "--network",
                "conf-ll",
                "--link-local-ip",
                "10.0.0.1",
                B,
                "true",
            ),
            d("start", "conf-ll2"),
            d(
                "create",
                "--name",
                "conf-ll3",
                "--network",
                "conf-ll",
                "--link-local-ip",
                "nope",
                B,
                "true",
            ),
            d("start", "conf-ll3"),
            d("run", "--rm", "--network", "none", "--link-local-ip", "169.254.9.11", B, "true"),
        ),
        (*rm_f("conf-ll1", "conf-ll2", "conf-ll3"), d("network", "rm", "conf-ll")),
        keep=(
            "172.28.9.0/24",
            "172.28.9.1",
            "172.28.9.20",
            "172.28.9.20/24",
            "169.254.9.9/16",
            "169.254.9.9",
            "169.254.9.10",
            "169.254.9.11",
            "10.0.0.1",
        ),
    ),
    Scenario(
        "ports_shown",
        (
            d("run", "-d", "--name", "conf-p", "-p", "18080:80", B, "sleep", "1000"),
            d("port", "conf-p"),
            d("inspect", "-f", "{{json .NetworkSettings.Ports}}", "conf-p"),
            d("ps", "--format", "{{.Ports}}", "-f", "name=conf-p"),
        ),
        rm_f("conf-p"),
        bridge=True,
    ),
    Scenario(
        "start_errors",
        (
            # What cannot run: the runtime's words, the exit code dockerd records.
            d("run", "--name", "conf-s1", "--network", "none", B, "nonexistent"),
            d("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}", "conf-s1"),
            d("start", "conf-s1"),
            d("run", "--name", "conf-s2", "--network", "none", B, "/nope/x"),
            d("run", "--name", "conf-s3", "--network", "none", B, "/etc"),
            d("run", "--name", "conf-s4", "--network", "none", B, "/etc/passwd"),
            d("inspect", "-f", "{{.State.ExitCode}} {{.State.Error}}", "conf-s4"),
            # A working directory that is a file (dockerd refuses it at create, pyd at start: the
            # container stays, so it is not inspected), and one that does not exist (made).
            d("run", "--name", "conf-s5", "--network", "none", "-w", "/etc/passwd", B, "pwd"),
            d("run", "--rm", "--network", "none", "-w", "/made/here", B, "pwd"),
            d("create", "--name", "conf-s6", "--network", "none", B, "nonexistent"),
            Api("POST", "/containers/conf-s6/start"),
        ),
        rm_f("conf-s1", "conf-s2", "conf-s3", "conf-s4", "conf-s5", "conf-s6"),
    ),
)

SCENARIOS += API_SCENARIOS + FIELD_SCENARIOS + NETWORK_SCENARIOS + MORE_SCENARIOS

# Scenarios where pyd still answers otherwise than dockerd (each says what differs); the e2e
# comparison expects them to fail (strictly: one that starts passing must leave this list).
KNOWN_DIFFERENCES: dict[str, str] = {}


def each(names: Sequence[str]) -> list[Scenario]:
    """The scenarios named (all when none is)."""
    return [s for s in SCENARIOS if not names or s.name in names]
