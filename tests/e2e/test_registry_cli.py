"""The real docker CLI against pyd and Debian's docker-registry on loopback (issue 3, registry half)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.helpers.daemon import PydDaemon
from tests.helpers.registry import PASSWORD, USER, Registry

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["basic", "token"])
def auth_registry(request: pytest.FixtureRequest) -> Iterator[Registry]:
    """A registry behind htpasswd Basic auth or the bearer-token flow."""
    r = Registry(request.param)
    try:
        r.start()
        yield r
    finally:
        r.stop()


class LoginCLITests:
    """docker login/logout go through POST /auth, which really contacts the registry."""

    def test_login_logout(self, pyd_daemon: PydDaemon, auth_registry: Registry) -> None:
        """Good credentials log in and land in the CLI config; bad ones fail; logout removes them."""
        r = pyd_daemon.docker(
            "login", auth_registry.host, "-u", USER, "--password-stdin", input=PASSWORD.encode()
        )
        assert "Login Succeeded" in r.stdout
        with open(pyd_daemon.base / "docker-config" / "config.json") as f:
            auths = json.load(f)["auths"]
        assert auth_registry.host in auths
        if auth_registry.token_server is not None:
            assert any(q["user"] == USER and q["ok"] for q in auth_registry.token_server.requests)
        bad = pyd_daemon.docker(
            "login", auth_registry.host, "-u", USER, "--password-stdin", input=b"wrong", check=False
        )
        assert bad.returncode != 0
        assert "Error response from daemon" in bad.stderr
        out = pyd_daemon.docker("logout", auth_registry.host)
        assert f"Removing login credentials for {auth_registry.host}" in out.stdout

    def test_login_unreachable(self, pyd_daemon: PydDaemon) -> None:
        """A registry that does not answer is an error from the daemon, not a client-side login."""
        from tests.helpers.registry import free_port

        host = f"127.0.0.1:{free_port()}"
        r = pyd_daemon.docker("login", host, "-u", "x", "--password-stdin", input=b"y", check=False)
        assert r.returncode != 0
        assert "Error response from daemon" in r.stderr
