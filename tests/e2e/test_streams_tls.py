"""Hijacked streams over mutual TLS: the CLI's half-close is a TLS close_notify (issue 4).

`echo data | docker --tlsverify run -i IMG ...`: Go's C{tls.Conn.CloseWrite} sends close_notify
at stdin's EOF; output written after it must still reach the client.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.daemon import DOCKER, PydDaemon, pyd_cli
from tests.helpers.images import DEFAULT_TAG, load_busybox
from tests.helpers.registry import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def tls_daemon(tmp_path: Path) -> Iterator[tuple[PydDaemon, dict[str, str]]]:
    ca, srv, cli = tmp_path / "ca", tmp_path / "srv", tmp_path / "cli"
    env = {"PYD_TLS_DIR": str(ca)}
    pyd_cli("tls", "init", env=env)
    pyd_cli("tls", "server", "--host", "localhost", "--ip", "127.0.0.1", "--out", str(srv), env=env)
    pyd_cli("tls", "client", "admin", "--role", "admin", "--out", str(cli), env=env)
    port = free_port()
    d = PydDaemon(
        str(tmp_path / "d"),
        extra_args=[
            "-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
            "--tlscacert", str(ca / "ca.pem"),
            "--tlscert", str(srv / "server-cert.pem"),
            "--tlskey", str(srv / "server-key.pem"),
        ],
    )  # fmt: skip
    try:
        d.start()
        load_busybox(d)
        client_env = {
            "DOCKER_HOST": f"tcp://127.0.0.1:{port}",
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": str(cli),
            "DOCKER_CONFIG": str(tmp_path / "docker-config"),
        }
        yield d, client_env
    finally:
        d.cleanup()


class TLSHalfCloseTests:
    """Output after stdin's EOF survives TLS."""

    def test_stdin_eof_over_tls(self, tls_daemon: tuple[PydDaemon, dict[str, str]]) -> None:
        """`echo data | docker run -i` over TLS prints the data and what follows the EOF."""
        _, env = tls_daemon
        full = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        r = subprocess.run(
            [DOCKER, "run", "-i", "--rm", DEFAULT_TAG, "sh", "-c", "cat; sleep 0.3; echo after"],
            input=b"data\n",
            capture_output=True,
            timeout=120,
            env={**full, **env},
        )
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"data\nafter\n"
