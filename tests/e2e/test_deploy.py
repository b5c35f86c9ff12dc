"""Deployment (issue 9): systemd units, socket activation, sd_notify and SIGHUP reload.

None of this needs systemd as PID 1: `systemd-analyze verify` lints the units,
`systemd-socket-activate` hands pyd its socket like pyd.socket would, and the test itself is
the NOTIFY_SOCKET listener.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from pyd import config as cfgmod
from pyd.core import certs
from tests.helpers.daemon import DOCKER, REPO, TWISTD, PydDaemon, isolated_network_args

pytestmark = pytest.mark.e2e
DEPLOY = REPO / "deploy"


def verify(unit_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", str(unit_dir / "pyd.service"), str(unit_dir / "pyd.socket")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=unit_dir,
    )


def staged_units(tmp: Path, service_text: str | None = None) -> Path:
    """The shipped units with ExecStart pointing at this venv's twistd (as `make deploy` does)."""
    text = service_text or (DEPLOY / "pyd.service").read_text()
    (tmp / "pyd.service").write_text(text.replace("/opt/pyd/bin/twistd", TWISTD))
    (tmp / "pyd.socket").write_text((DEPLOY / "pyd.socket").read_text())
    return tmp


class UnitTests:
    """The shipped units are clean for systemd and carry what the issue asks for."""

    def test_units_verify_without_any_output(self, tmp_path: Path) -> None:
        """`systemd-analyze verify` prints nothing at all (it exits 0 even on unknown keys)."""
        r = verify(staged_units(tmp_path))
        assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stdout + r.stderr

    def test_verify_catches_a_typo(self, tmp_path: Path) -> None:
        """The lint is not blind: a misspelt key produces output."""
        text = (DEPLOY / "pyd.service").read_text().replace("Delegate=yes", "Delegat=yes")
        r = verify(staged_units(tmp_path, text))
        assert "Delegat" in r.stderr

    def test_service_settings(self) -> None:
        """Type=notify, fd://, KillMode=process, Delegate, reload by SIGHUP, limits, restart."""
        text = (DEPLOY / "pyd.service").read_text()
        lines = {line.strip() for line in text.splitlines()}
        for want in (
            "Type=notify",
            "KillMode=process",
            "Delegate=yes",
            "TasksMax=infinity",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "Restart=on-failure",
            "LimitNOFILE=1048576",
        ):
            assert want in lines, want
        assert " -H fd:// " in text
        assert "ProtectSystem=" not in "\n".join(
            line for line in text.splitlines() if not line.lstrip().startswith("#")
        )

    def test_example_daemon_json_is_valid(self, tmp_path: Path) -> None:
        """deploy/daemon.json is accepted by pyd once its certificate files exist."""
        data = json.loads((DEPLOY / "daemon.json").read_text())
        ca = certs.make_ca()
        srv = certs.make_server(ca, ["h"], [])
        files = {
            "tlscacert": ca.cert_pem,
            "tlscert": srv.cert_pem,
            "tlskey": srv.key_pem,
            "tlscrl": certs.crl_pem(certs.make_crl(ca, [])),
        }
        for key, pem in files.items():
            (tmp_path / key).write_bytes(pem)
            data[key] = str(tmp_path / key)
        (tmp_path / "daemon.json").write_text(json.dumps(data))
        cfg = cfgmod.build({"hosts": ["fd://"]}, str(tmp_path / "daemon.json"), True)
        assert cfg.tls_default_role == "viewer"
        documented = (DEPLOY / "daemon.json.md").read_text()
        for key in json.loads((DEPLOY / "daemon.json").read_text()):
            assert f"`{key}`" in documented, key


class NotifyListener:
    """A datagram socket playing systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[str] = []

    def wait_for(self, needle: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                msg = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            self.messages.append(msg)
            if needle in msg:
                return msg
        raise AssertionError(f"no {needle!r} in {self.messages}")

    def close(self) -> None:
        self.sock.close()


class SocketActivationTests:
    """`-H fd://` adopts the socket systemd-socket-activate passes; sd_notify reports states."""

    def test_activated_socket_serves_cli_and_notifies(self, tmp_path: Path) -> None:
        """The real CLI is served on the passed socket; READY=1 comes once it serves;
        STOPPING=1 at SIGTERM."""
        sock = tmp_path / "s.sock"
        (tmp_path / "daemon.json").write_text("{}")
        notify = NotifyListener(tmp_path / "notify")
        log = tmp_path / "pyd.log"
        argv = [
            "systemd-socket-activate",
            "-l",
            str(sock),
            "-E",
            f"NOTIFY_SOCKET={notify.path}",
            "-E",
            f"PYTHONPATH={REPO}",
            TWISTD,
            "-n",
            "--pidfile=",
            "--logfile",
            str(log),
            "pyd",
            "-H",
            "fd://",
            "--data-root",
            str(tmp_path / "data"),
            "--exec-root",
            str(tmp_path / "exec"),
            "--pidfile",
            str(tmp_path / "pyd.pid"),
            "--config-file",
            str(tmp_path / "daemon.json"),
        ]
        net_args, net_cleanup = isolated_network_args(str(tmp_path / "exec"))
        argv += net_args
        proc = subprocess.Popen(
            argv,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 10
            while not sock.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            # The first connection makes systemd-socket-activate exec pyd; the CLI waits in the
            # socket's backlog meanwhile, as it would behind pyd.socket.
            r = subprocess.run(
                [DOCKER, "version", "--format", "{{.Server.Version}}"],
                capture_output=True,
                text=True,
                timeout=60,
                env={
                    **os.environ,
                    "DOCKER_HOST": f"unix://{sock}",
                    "DOCKER_CONFIG": str(tmp_path / "dc"),
                },
            )
            assert r.returncode == 0 and r.stdout.strip() == "28.2.2", r.stderr + log.read_text()
            ready = notify.wait_for("READY=1")
            assert "STATUS=serving" in ready and f"MAINPID={proc.pid}" in ready
            assert "ApiSite starting on" in log.read_text()  # listening came first
            assert "pyd ready" in log.read_text()
            os.kill(proc.pid, signal.SIGTERM)
            notify.wait_for("STOPPING=1")
            assert proc.wait(30) in (0, -signal.SIGTERM)  # twistd re-raises the signal
            assert "Server Shut Down." in log.read_text()
            assert sock.exists()  # the activated socket is systemd's to remove, not pyd's
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            notify.close()
            net_cleanup()
            subprocess.run(
                [
                    "sh",
                    "-c",
                    f"grep ' {tmp_path}' /proc/mounts | cut -d' ' -f2 | "
                    "sort -r | xargs -r -n1 umount -l",
                ],
                check=False,
            )

    def test_fd_without_activation_refused(self, tmp_path: Path) -> None:
        """`-H fd://` with no sockets passed fails to start with dockerd's reason."""
        d = PydDaemon(str(tmp_path / "d"))
        d.base.mkdir(parents=True)
        (d.base / "daemon.json").write_text("{}")
        argv = [a if a != d.host else "fd://" for a in d.argv()]
        r = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            cwd=d.base,
        )
        assert r.returncode != 0
        assert "no sockets found via socket activation" in (r.stderr + d.log())


class ReloadTests:
    """SIGHUP applies log level and labels, and refuses a broken daemon.json."""

    def test_sighup_reload_and_refusal(self, tmp_path: Path) -> None:
        """A new log level takes effect; a broken file is refused while the daemon serves."""
        d = PydDaemon(str(tmp_path / "d"))
        d.base.mkdir(parents=True)
        cfg = d.base / "daemon.json"
        cfg.write_text(json.dumps({"log-level": "info", "labels": ["a=1"]}))
        try:
            d.start()
            assert d.proc is not None
            d.request("GET", "/info")
            assert "GET /info 200" not in d.log()  # the access line is debug level
            cfg.write_text(json.dumps({"log-level": "debug", "labels": ["a=2"]}))
            d.proc.send_signal(signal.SIGHUP)
            wait_log(d, "configuration reloaded")
            assert "SIGHUP: log-level changed: 'info' -> 'debug'" in d.log()
            d.request("GET", "/info")
            wait_log(d, "GET /info 200")
            info = json.loads(d.docker("info", "--format", "{{json .}}").stdout)
            assert info["Labels"] == ["a=2"]

            cfg.write_text('{"log-level": "info", ')  # broken JSON
            d.proc.send_signal(signal.SIGHUP)
            wait_log(d, "refusing the new configuration")
            cfg.write_text(json.dumps({"log-level": "loud"}))  # bad value
            d.proc.send_signal(signal.SIGHUP)
            wait_log(d, "invalid value for log-level", count=1)
            assert d.request("GET", "/_ping")[0] == 200
            before = d.log().count("GET /version 200")
            d.request("GET", "/version")
            wait_log(d, "GET /version 200", count=before + 1)  # still debug: old config kept
            assert d.proc.poll() is None
        finally:
            d.cleanup()


def wait_log(d: PydDaemon, needle: str, count: int = 1, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while d.log().count(needle) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert d.log().count(needle) >= count, f"{needle!r} not in log:\n{d.log()[-3000:]}"


class MetricsTests:
    """`--metrics-addr` serves Prometheus text with API, event and container metrics."""

    def test_metrics_endpoint(self, tmp_path: Path) -> None:
        """Requests show up by route and status; gauges are present."""
        import urllib.request

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        d = PydDaemon(str(tmp_path / "d"), extra_args=["--metrics-addr", f"127.0.0.1:{port}"])
        try:
            d.start()
            d.docker("info")
            d.request("GET", "/v1.50/containers/nope/json")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                text = r.read().decode()
                assert r.headers["Content-Type"].startswith("text/plain")
            assert 'pyd_api_requests_total{method="GET",route="/info",status="200"} 1.0' in text
            assert 'route="/containers/{id}/json",status="404"' in text
            assert "pyd_api_request_duration_seconds_bucket" in text
            assert "\npyd_event_subscribers " in text
        finally:
            d.cleanup()

    def test_container_and_pull_metrics(self, tmp_path: Path) -> None:
        """Container states, start latency and pulled bytes are exported."""
        import urllib.request

        from tests.helpers.images import load_busybox
        from tests.helpers.registry import Registry

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]

        def scrape() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                return r.read().decode()

        d = PydDaemon(str(tmp_path / "d"), extra_args=["--metrics-addr", f"127.0.0.1:{port}"])
        reg = Registry()
        try:
            d.start()
            reg.start()
            load_busybox(d, tag="pyd-t-metrics/bb:1")
            name = f"{reg.host}/pyd-t/metrics"
            d.docker("tag", "pyd-t-metrics/bb:1", name)
            d.docker("push", name)
            d.docker("rmi", name, "pyd-t-metrics/bb:1")
            d.docker("pull", name)
            text = scrape()
            pulled = [
                line for line in text.splitlines() if line.startswith("pyd_image_pull_bytes_total ")
            ]
            assert pulled and float(pulled[0].split()[1]) > 100_000, pulled
            d.docker("create", "--name", "pyd-t-m1", name, "true")
            assert 'pyd_containers{state="created"} 1.0' in scrape()
            d.docker("run", "-d", "--name", "pyd-t-m2", name, "sleep", "60")
            text = scrape()
            assert 'pyd_containers{state="running"} 1.0' in text
            assert "pyd_container_start_duration_seconds_count 1.0" in text
        finally:
            d.cleanup()
            reg.stop()
