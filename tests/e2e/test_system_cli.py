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
            other.start(timeout=90)
        except RuntimeError as e:
            assert "another pyd daemon is using the data root" in str(e)
        else:
            raise AssertionError("second daemon started")
        finally:
            other.stop()
            other.remove_network_leftovers()  # its own bridge and table, if it got that far


class DaemonLifecycleTests:
    """Clean shutdown and restart after a crash."""

    def test_sigterm_removes_socket_and_pidfile(self, pyd_daemon: PydDaemon) -> None:
        """SIGTERM shuts down cleanly and removes the socket and the pidfile.

        twistd re-raises the signal after a clean shutdown, so the status is -15.
        """
        import os

        with open(pyd_daemon.pidfile) as f:
            assert int(f.read()) == pyd_daemon.proc.pid  # type: ignore[union-attr]  # proc is set once the daemon runs
        assert pyd_daemon.stop() in (0, -15)
        assert "Server Shut Down." in pyd_daemon.log()
        assert not os.path.exists(pyd_daemon.sock)
        assert not os.path.exists(pyd_daemon.pidfile)

    def test_restart_after_kill9(self, pyd_daemon: PydDaemon) -> None:
        """A stale socket and pidfile left by kill -9 do not stop the next start."""
        import os

        pyd_daemon.kill9()
        assert os.path.exists(pyd_daemon.sock)
        pyd_daemon.start()
        assert pyd_daemon.docker("version").returncode == 0

    def test_log_level_debug_logs_requests(self, tmp_path) -> None:  # type: ignore[no-untyped-def]  # pytest's tmp_path fixture
        """--log-level debug logs one line per API request; info does not."""
        for level, expect in (("debug", True), ("info", False)):
            d = PydDaemon(str(tmp_path / level), extra_args=["--log-level", level])
            try:
                d.start()
                d.docker("info")
                d.stop()
                assert ("GET /v1.50/info 200" in d.log()) is expect, d.log()
            finally:
                d.cleanup()
