"""The real docker CLI and docker-py against pyd's volume API (issue 6)."""

from __future__ import annotations

import json
import os
import time
import uuid

import docker
import pytest

from tests.helpers.daemon import PydDaemon

pytestmark = pytest.mark.e2e


def _name() -> str:
    return "pyd-t-" + uuid.uuid4().hex[:8]


class VolumeCLITests:
    """docker volume create/ls/inspect/rm/prune behave as with dockerd."""

    def test_lifecycle(self, pyd_daemon: PydDaemon) -> None:
        """create (named, labels, opts), ls with filters, inspect, rm, and the events."""
        n = _name()
        assert pyd_daemon.docker("volume", "create", n).stdout.strip() == n
        pyd_daemon.docker(
            "volume",
            "create",
            "--label",
            "tier=db",
            "--opt",
            "type=tmpfs",
            "--opt",
            "device=tmpfs",
            "--opt",
            "o=size=1m",
            n + "-t",
        )
        info = json.loads(pyd_daemon.docker("volume", "inspect", n).stdout)[0]
        assert info["Mountpoint"] == os.path.join(pyd_daemon.data_root, "volumes", n, "_data")
        assert os.path.isdir(info["Mountpoint"])
        assert (info["Driver"], info["Scope"], info["Labels"], info["Options"]) == (
            "local",
            "local",
            None,
            None,
        )
        t = json.loads(pyd_daemon.docker("volume", "inspect", n + "-t").stdout)[0]
        assert t["Labels"] == {"tier": "db"}
        assert t["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
        ls = pyd_daemon.docker("volume", "ls", "-q", "-f", "label=tier=db").stdout.split()
        assert ls == [n + "-t"]
        ls = pyd_daemon.docker("volume", "ls", "-q", "-f", f"name={n}").stdout.split()
        assert sorted(ls) == [n, n + "-t"]
        pyd_daemon.docker("volume", "rm", n, n + "-t")
        r = pyd_daemon.docker("volume", "inspect", n, check=False)
        assert r.returncode == 1 and f"get {n}: no such volume" in r.stderr
        # (the CLI's --until 0s is whole seconds; ask the API with a precise bound)
        _, _, raw = pyd_daemon.request("GET", f"/events?since=0&until={time.time():.9f}")
        ev = "".join(
            f"{e['Action']} {e['Actor']['ID']}\n" for e in map(json.loads, raw.splitlines())
        )
        assert f"create {n}\n" in ev and f"destroy {n}\n" in ev

    def test_errors(self, pyd_daemon: PydDaemon) -> None:
        """Invalid names and unknown drivers are refused with dockerd's messages."""
        r = pyd_daemon.docker("volume", "create", "a", check=False)
        assert r.returncode == 1
        assert "create a: volume name is too short" in r.stderr
        r = pyd_daemon.docker("volume", "create", "-d", "nfsx", "zz", check=False)
        assert 'error looking up volume plugin nfsx: plugin "nfsx" not found' in r.stderr
        r = pyd_daemon.docker("volume", "rm", "nope-" + _name(), check=False)
        assert r.returncode == 1 and "no such volume" in r.stderr

    def test_prune(self, pyd_daemon: PydDaemon) -> None:
        """prune removes anonymous volumes; -a every unused one."""
        named = _name()
        pyd_daemon.docker("volume", "create", named)
        anon = pyd_daemon.docker("volume", "create").stdout.strip()
        out = pyd_daemon.docker("volume", "prune", "-f").stdout
        assert anon in out and named not in out
        out = pyd_daemon.docker("volume", "prune", "-af").stdout
        assert named in out
        assert pyd_daemon.docker("volume", "ls", "-q").stdout.split() == []

    def test_docker_py_and_df(self, pyd_daemon: PydDaemon) -> None:
        """docker-py creates/lists/removes volumes; system df -v lists them."""
        client = docker.DockerClient(base_url=pyd_daemon.host)
        try:
            n = _name()
            v = client.volumes.create(name=n, labels={"k": "v"})
            assert v.attrs["Labels"] == {"k": "v"}
            assert n in [x.name for x in client.volumes.list()]
            df = client.df()
            assert any(x["Name"] == n and x["UsageData"]["RefCount"] == 0 for x in df["Volumes"])
            v.remove()
            assert n not in [x.name for x in client.volumes.list()]
        finally:
            client.close()

    def test_survives_kill9(self, pyd_daemon: PydDaemon) -> None:
        """A volume and its data survive kill -9 of the daemon and a restart."""
        n = _name()
        pyd_daemon.docker("volume", "create", "--label", "x=1", n)
        mp = os.path.join(pyd_daemon.data_root, "volumes", n, "_data")
        with open(os.path.join(mp, "file"), "w") as f:
            f.write("kept")
        pyd_daemon.kill9()
        pyd_daemon.start()
        info = json.loads(pyd_daemon.docker("volume", "inspect", n).stdout)[0]
        assert info["Labels"] == {"x": "1"}
        with open(os.path.join(mp, "file")) as f:
            assert f.read() == "kept"
