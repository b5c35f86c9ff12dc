"""`docker network ...` and docker-py against a running pyd (issue 5).

Each daemon has its own default bridge, subnets and nft table (tests/helpers/daemon.py); these
tests check that what the CLI shows matches what the kernel has, and that nothing stays behind.
"""

from __future__ import annotations

import json
import random
import subprocess
import time

import docker
import pytest

from tests.helpers.daemon import PydDaemon

pytestmark = pytest.mark.e2e


def _links() -> str:
    return subprocess.run(["ip", "-br", "addr"], capture_output=True, text=True).stdout


def _table(d: PydDaemon) -> str:
    r = subprocess.run(
        ["nft", "list", "table", "ip", d.nft_table], capture_output=True, text=True, check=False
    )
    return r.stdout


class NetworkCLITests:
    """create / ls / inspect / rm / prune through the real CLI."""

    def test_predefined_networks(self, pyd_daemon: PydDaemon) -> None:
        """`docker network ls` shows bridge, host and none; the bridge device exists."""
        out = pyd_daemon.docker("network", "ls", "--format", "{{.Name}} {{.Driver}}").stdout
        assert set(out.split("\n")) >= {"bridge bridge", "host host", "none null"}
        info = json.loads(pyd_daemon.docker("network", "inspect", "bridge").stdout)[0]
        assert info["Options"]["com.docker.network.bridge.name"] == pyd_daemon.bridge
        gw = info["IPAM"]["Config"][0]["Gateway"]
        assert f"{gw}/24" in _links()
        r = pyd_daemon.docker("network", "rm", "bridge", check=False)
        assert r.returncode == 1
        assert "bridge is a pre-defined network and cannot be removed" in r.stderr

    def test_create_inspect_rm(self, pyd_daemon: PydDaemon) -> None:
        """A user network with options shows them in inspect; rm removes bridge and rules."""
        d = pyd_daemon
        br = "pydt" + d.bridge[-6:] + "u"
        o = random.randint(0, 255)
        nid = d.docker(
            "network",
            "create",
            "--subnet",
            f"10.251.{o}.0/24",
            "--gateway",
            f"10.251.{o}.254",
            "--ip-range",
            f"10.251.{o}.128/25",
            "--label",
            "team=net",
            "--internal",
            "--attachable",
            "-o",
            f"com.docker.network.bridge.name={br}",
            "appnet",
        ).stdout.strip()
        assert len(nid) == 64
        info = json.loads(d.docker("network", "inspect", "appnet").stdout)[0]
        assert info["Id"] == nid and info["Driver"] == "bridge" and info["Scope"] == "local"
        assert info["IPAM"]["Config"] == [
            {
                "Subnet": f"10.251.{o}.0/24",
                "IPRange": f"10.251.{o}.128/25",
                "Gateway": f"10.251.{o}.254",
            }
        ]
        assert info["Internal"] is True and info["Attachable"] is True
        assert info["Labels"] == {"team": "net"} and info["Containers"] == {}
        assert f"10.251.{o}.254/24" in _links()
        assert br in _table(d)
        r = d.docker("network", "create", "appnet", check=False)
        assert "network with name appnet already exists" in r.stderr
        r = d.docker("network", "create", "--subnet", f"10.251.{o}.0/25", "other", check=False)
        assert "Pool overlaps with other one on this address space" in r.stderr
        d.docker("network", "rm", nid[:12])
        assert f"10.251.{o}.254/" not in _links()
        assert br not in _table(d)
        r = d.docker("network", "inspect", "appnet", check=False)
        assert r.returncode == 1 and "network appnet not found" in r.stderr

    def test_ls_filters_and_prune(self, pyd_daemon: PydDaemon) -> None:
        """ls filters by name, label, type, driver and dangling; prune removes user networks."""
        d = pyd_daemon
        d.docker("network", "create", "--label", "k=v", "flt-one")
        d.docker("network", "create", "flt-two")

        def names(*f: str) -> set[str]:
            args = []
            for x in f:
                args += ["-f", x]
            out = d.docker("network", "ls", *args, "--format", "{{.Name}}").stdout
            return set(out.split())

        assert names("name=flt-") == {"flt-one", "flt-two"}
        assert names("label=k=v") == {"flt-one"}
        assert names("type=custom") == {"flt-one", "flt-two"}
        assert names("type=builtin") == {"bridge", "host", "none"}
        assert names("driver=null") == {"none"}
        assert names("dangling=true") == {"flt-one", "flt-two"}
        r = d.docker("network", "ls", "-f", "bogus=1", check=False)
        assert "invalid filter 'bogus'" in r.stderr
        out = d.docker("network", "prune", "-f", "--filter", "label=k=v").stdout
        assert "flt-one" in out and "flt-two" not in out
        out = d.docker("network", "prune", "-f").stdout
        assert "flt-two" in out
        assert names() == {"bridge", "host", "none"}

    def test_events(self, pyd_daemon: PydDaemon) -> None:
        """create and destroy appear in `docker events`."""
        d = pyd_daemon
        d.docker("network", "create", "evnet")
        d.docker("network", "rm", "evnet")
        time.sleep(1.1)  # the CLI sends `until` in whole seconds
        out = d.docker(
            "events",
            "--since",
            "1h",
            "--until",
            "0s",
            "--filter",
            "type=network",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ).stdout
        assert "create evnet" in out and "destroy evnet" in out

    def test_restart_recreates_bridges(self, pyd_daemon: PydDaemon) -> None:
        """After kill -9 and a removed bridge, a restart re-creates it and its rules."""
        d = pyd_daemon
        info = json.loads(
            d.docker(
                "network", "inspect", d.docker("network", "create", "keep").stdout.strip()
            ).stdout
        )[0]
        br = info["Options"].get("com.docker.network.bridge.name") or "br-" + info["Id"][:12]
        assert br in _links()
        d.kill9()
        subprocess.run(["ip", "link", "del", br], check=True)
        subprocess.run(["nft", "delete", "table", "ip", d.nft_table], check=True)
        d.start()
        assert br in _links()
        assert br in _table(d)

    def test_docker_py(self, pyd_daemon: PydDaemon) -> None:
        """docker-py creates, lists, gets and removes a network."""
        client = docker.DockerClient(base_url=pyd_daemon.host, version="auto")
        try:
            o = random.randint(0, 255)
            ipam = docker.types.IPAMConfig(
                pool_configs=[docker.types.IPAMPool(subnet=f"10.252.{o}.0/24")]
            )
            n = client.networks.create("pynet", driver="bridge", ipam=ipam, labels={"a": "b"})
            got = client.networks.get("pynet")
            assert got.id == n.id
            assert got.attrs["IPAM"]["Config"][0]["Gateway"] == f"10.252.{o}.1"
            assert "pynet" in {x.name for x in client.networks.list()}
            assert [x.name for x in client.networks.list(filters={"label": "a=b"})] == ["pynet"]
            n.remove()
            with pytest.raises(docker.errors.NotFound):
                client.networks.get("pynet")
        finally:
            client.close()
