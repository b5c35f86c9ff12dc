"""Pulls and pushes through the daemon's proxy (issue 17), with the real docker CLI.

The registry is named C{reg.pyd-test.invalid:PORT}, a name only the test's proxy resolves (to the
loopback registry), so a push and a pull that work went through the proxy; `docker info` shows the
proxy with its credentials masked.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.daemon import PydDaemon
from tests.helpers.images import DEFAULT_TAG, load_busybox
from tests.helpers.proxy import LoopbackProxy
from tests.helpers.registry import Registry

NAME = "reg.pyd-test.invalid"


def test_push_pull_through_proxy(tmp_path: Path) -> None:
    """push and pull reach a registry only the proxy can resolve; info shows the proxy."""
    proxy = LoopbackProxy({NAME: "127.0.0.1"})
    registry = Registry(None)
    d: PydDaemon | None = None
    try:
        registry.start()
        host = f"{NAME}:{registry.port}"
        authed = proxy.url.replace("http://", "http://bob:hunter2@")
        d = PydDaemon(
            str(tmp_path / "d"),
            extra_args=["--http-proxy", authed, "--https-proxy", authed,
                        "--insecure-registry", host],
        )  # fmt: skip
        d.start()
        info = d.docker("info", "--format", "{{.HTTPProxy}}|{{.HTTPSProxy}}|{{.NoProxy}}").stdout
        masked = proxy.url.replace("http://", "http://xxxxx:xxxxx@")
        assert info.strip() == f"{masked}|{masked}|"
        load_busybox(d)
        d.docker("tag", DEFAULT_TAG, f"{host}/t/bb:1")
        d.docker("push", f"{host}/t/bb:1")
        d.docker("rmi", f"{host}/t/bb:1", DEFAULT_TAG)
        d.docker("pull", f"{host}/t/bb:1")
        out = d.docker("run", "--rm", f"{host}/t/bb:1", "echo", "via-proxy").stdout
        assert out.strip() == "via-proxy"
        # The registry speaks plain HTTP: pushes (PUT) and pulls (GET) went to the proxy with
        # absolute URIs naming it.
        targets = {(m, t.split("/v2/")[0]) for m, t, _ in proxy.seen if "/v2/" in t}
        assert {("PUT", f"http://{host}"), ("GET", f"http://{host}")} <= targets
        assert all(auth == "Basic Ym9iOmh1bnRlcjI=" for _, _, auth in proxy.seen)
    finally:
        if d is not None:
            d.cleanup()
        registry.stop()
        proxy.stop()
