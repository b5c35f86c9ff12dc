"""The tools people already drive dockerd with, unchanged, against pyd: compose and testcontainers.

docker-compose here is Debian's (1.29, the Python one: the only compose on this machine; it
speaks the Engine API through docker-py). testcontainers-python comes from PyPI with the test
extras; its Ryuk reaper needs an image from Docker Hub, so it is disabled as its docs describe
for offline use.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.daemon import PydDaemon
from tests.helpers.images import DEFAULT_TAG, load_busybox
from tests.helpers.registry import free_port

pytestmark = pytest.mark.e2e

COMPOSE = shutil.which("docker-compose") or "/usr/bin/docker-compose"

COMPOSE_FILE = """\
version: "3.8"
services:
  web:
    image: {img}
    command: ["sh", "-c", "mkdir -p /www && cat /data/greeting > /www/index.html; httpd -f -p 80 -h /www"]
    ports: ["127.0.0.1:{port}:80"]
    volumes: ["data:/data"]
    networks:
      back:
        aliases: [frontdoor]
    environment:
      ROLE: web
    labels:
      pyd.test: compose
  seed:
    image: {img}
    command: ["sh", "-c", "echo from-volume > /data/greeting"]
    volumes: ["data:/data"]
    network_mode: none
  client:
    image: {img}
    command: ["sh", "-c", "sleep 300"]
    depends_on: [web]
    networks: [back]
volumes:
  data: {{}}
networks:
  back: {{}}
"""


@pytest.fixture
def daemon(pyd_daemon: PydDaemon) -> PydDaemon:
    load_busybox(pyd_daemon)
    return pyd_daemon


def wait_for(check: object, what: str, timeout: float = 30) -> None:
    """Poll C{check()} until it is true (generous deadline: CI boxes are loaded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]  # check is any callable returning a truth value
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


class ComposeTests:
    """docker-compose up/ps/logs/exec/scale/down against pyd."""

    @pytest.fixture
    def project(self, daemon: PydDaemon, tmp_path: Path) -> Iterator[tuple[Path, str, int]]:
        name = "pydt" + uuid.uuid4().hex[:8]
        port = free_port()
        (tmp_path / "docker-compose.yml").write_text(
            COMPOSE_FILE.format(img=DEFAULT_TAG, port=port)
        )
        yield tmp_path, name, port
        self.compose(daemon, tmp_path, name, "down", "-v", "--remove-orphans", check=False)

    def compose(
        self, daemon: PydDaemon, cwd: Path, name: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, DOCKER_HOST=daemon.host, COMPOSE_INTERACTIVE_NO_CLI="1")
        r = subprocess.run(
            [COMPOSE, "-p", name, *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)}: {r.returncode}\n{r.stderr}")
        return r

    def test_up_serves_and_down_cleans(
        self, daemon: PydDaemon, project: tuple[Path, str, int]
    ) -> None:
        """A project with a network, a named volume and a published port comes up, its services
        find each other by service name and alias, and `down -v` removes everything it made."""
        cwd, name, port = project
        self.compose(daemon, cwd, name, "up", "-d", "seed")
        wait_for(
            lambda: (
                self.compose(daemon, cwd, name, "ps", "-q", "seed").stdout.strip()
                and daemon.docker(
                    "inspect", "-f", "{{.State.Status}}", f"{name}_seed_1", check=False
                ).stdout.strip()
                == "exited"
            ),
            "the seed service to finish",
        )
        self.compose(daemon, cwd, name, "up", "-d")

        def served() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    return bool(r.read() == b"from-volume\n")
            except OSError:
                return False

        wait_for(served, "the web service on its published port")
        ps = self.compose(daemon, cwd, name, "ps").stdout
        assert f"{name}_web_1" in ps and f"{name}_client_1" in ps
        for target in ("web", "frontdoor", f"{name}_web_1"):
            out = self.compose(
                daemon, cwd, name, "exec", "-T", "client", "wget", "-q", "-O-", f"http://{target}/"
            ).stdout
            assert out == "from-volume\n", target
        env = self.compose(daemon, cwd, name, "exec", "-T", "web", "sh", "-c", "echo $ROLE").stdout
        assert env == "web\n"
        web = json.loads(daemon.docker("inspect", f"{name}_web_1").stdout)[0]
        assert web["Config"]["Labels"]["pyd.test"] == "compose"
        assert web["Config"]["Labels"]["com.docker.compose.project"] == name
        assert f"{name}_back" in web["NetworkSettings"]["Networks"]
        assert "frontdoor" in web["NetworkSettings"]["Networks"][f"{name}_back"]["Aliases"]
        self.compose(daemon, cwd, name, "up", "-d", "--scale", "client=2")
        wait_for(
            lambda: len(self.compose(daemon, cwd, name, "ps", "-q", "client").stdout.split()) == 2,
            "two client replicas",
        )
        self.compose(daemon, cwd, name, "down", "-v")
        assert daemon.docker("ps", "-aq").stdout.strip() == ""
        assert f"{name}_back" not in daemon.docker("network", "ls").stdout
        assert f"{name}_data" not in daemon.docker("volume", "ls", "-q").stdout


class TestcontainersTests:
    """testcontainers-python's DockerContainer against pyd."""

    def test_container_with_port_and_exec(
        self, daemon: PydDaemon, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Start, wait for a log line, reach the mapped port, exec, stop and remove."""
        monkeypatch.setenv("DOCKER_HOST", daemon.host)
        monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.wait_strategies import LogMessageWaitStrategy

        script = "mkdir /w; echo tc-ok > /w/index.html; echo ready; exec httpd -f -p 80 -h /w"
        container = (
            DockerContainer(DEFAULT_TAG)
            .with_command(["sh", "-c", script])
            .with_exposed_ports(80)
            .waiting_for(LogMessageWaitStrategy("ready"))
        )
        with container as c:
            port = int(c.get_exposed_port(80))
            host = c.get_container_host_ip()

            def served() -> bool:
                try:
                    with urllib.request.urlopen(f"http://{host}:{port}/", timeout=2) as r:
                        return bool(r.read() == b"tc-ok\n")
                except OSError:
                    return False

            wait_for(served, "the mapped port")
            result = c.exec(["cat", "/w/index.html"])
            assert (result.exit_code, result.output) == (0, b"tc-ok\n")
            cid = c.get_wrapped_container().id
        gone = daemon.docker("inspect", cid, check=False)
        assert gone.returncode != 0 and "No such" in gone.stderr
