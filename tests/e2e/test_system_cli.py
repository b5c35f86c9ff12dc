"""The real docker CLI and docker-py against a running `twistd pyd` (issue 2)."""

from __future__ import annotations

import json

import docker

from tests.helpers.daemon import PydDaemon


class SystemCLITests:
    """docker version/info/system df/events work and show pyd's own figures."""

    def test_version(self, pyd_daemon: PydDaemon) -> None:
        """`docker version` prints the server block with pyd's API version."""
        out = pyd_daemon.docker("version", "--format", "{{json .Server}}").stdout
        server = json.loads(out)
        assert server["ApiVersion"] == "1.50"
        assert server["MinAPIVersion"] == "1.24"
        assert any(c["Name"] == "pyd" for c in server["Components"])

    def test_info_figures(self, pyd_daemon: PydDaemon) -> None:
        """`docker info` reports the data root and a daemon ID that survives a restart."""
        info = json.loads(pyd_daemon.docker("info", "--format", "{{json .}}").stdout)
        assert info["DockerRootDir"] == pyd_daemon.data_root
        assert info["NCPU"] >= 1 and info["MemTotal"] > 0
        first_id = info["ID"]
        pyd_daemon.stop()
        pyd_daemon.start()
        info2 = json.loads(pyd_daemon.docker("info", "--format", "{{json .}}").stdout)
        assert info2["ID"] == first_id

    def test_system_df_and_events(self, pyd_daemon: PydDaemon) -> None:
        """`docker system df` and a bounded `docker events` exit 0."""
        assert "TYPE" in pyd_daemon.docker("system", "df").stdout
        r = pyd_daemon.docker("events", "--since", "1h", "--until", "0s", timeout=20)
        assert r.returncode == 0

    def test_docker_py_version_auto(self, pyd_daemon: PydDaemon) -> None:
        """docker-py negotiates the API version against pyd."""
        client = docker.DockerClient(base_url=pyd_daemon.host, version="auto")
        try:
            assert client.version()["ApiVersion"] == "1.50"
            assert client.api.api_version == "1.50"
        finally:
            client.close()

    def test_errors_are_dockerd_shaped(self, pyd_daemon: PydDaemon) -> None:
        """Unknown routes and versions get JSON errors with dockerd's codes and text."""
        status, headers, body = pyd_daemon.request("GET", "/v1.99/info")
        assert status == 400
        assert json.loads(body)["message"] == (
            "client version 1.99 is too new. Maximum supported API version is 1.50"
        )
        status, headers, body = pyd_daemon.request("GET", "/v1.45/nonsense")
        assert status == 404 and json.loads(body) == {"message": "page not found"}
        assert headers["api-version"] == "1.50" and headers["ostype"] == "linux"

    def test_second_daemon_on_same_data_root_refused(self, pyd_daemon: PydDaemon) -> None:
        """A second daemon on the same data root exits with a clear message."""
        other = PydDaemon(str(pyd_daemon.base / "other"))
        other.data_root = pyd_daemon.data_root
        try:
            other.start(timeout=15)
        except RuntimeError as e:
            assert "another pyd daemon is using the data root" in str(e)
        else:
            raise AssertionError("second daemon started")
        finally:
            other.stop()
