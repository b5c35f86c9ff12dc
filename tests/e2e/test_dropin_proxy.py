"""Pulls, pushes and URL imports through the daemon's proxy (issue 17), with the real docker CLI.

The registry is named C{reg.pyd-test.invalid:PORT}, a name only the test's proxy resolves (to the
loopback registry), so a push and a pull that work went through the proxy; `docker info` shows the
proxy with its credentials masked. `docker import http://files.pyd-test.invalid:PORT/...` likewise
reaches a loopback file server only through the proxy (dockerd's import uses the same proxies).
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

from tests.helpers.daemon import PydDaemon
from tests.helpers.images import DEFAULT_TAG, busybox_image_tar, load_busybox
from tests.helpers.proxy import LoopbackProxy
from tests.helpers.registry import Registry

NAME = "reg.pyd-test.invalid"
FILES = "files.pyd-test.invalid"


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


def test_import_url_through_proxy(tmp_path: Path) -> None:
    """`docker import URL` downloads through the daemon's proxy: the file server's name resolves
    only there, and the proxy saw the absolute-URI GET with its credentials."""
    built = busybox_image_tar(tmp_path / "bb.tar")
    www = tmp_path / "www"
    www.mkdir()
    (www / "rootfs.tar").write_bytes(built.layers[0])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy = LoopbackProxy({FILES: "127.0.0.1"})
    d: PydDaemon | None = None
    try:
        authed = proxy.url.replace("http://", "http://bob:hunter2@")
        d = PydDaemon(str(tmp_path / "d"), extra_args=["--http-proxy", authed])
        d.start()
        url = f"http://{FILES}:{server.server_address[1]}/rootfs.tar"
        d.docker("import", url, "pyd-t-proxied:1")
        out = d.docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", "pyd-t-proxied:1")
        assert out.stdout.strip() == f'["{built.diff_ids[0]}"]'
        assert ("GET", url, "Basic Ym9iOmh1bnRlcjI=") in proxy.seen
    finally:
        if d is not None:
            d.cleanup()
        proxy.stop()
        server.shutdown()
        server.server_close()
