"""docker push / pull / pull --all-tags with the real CLI against pyd and a loopback registry."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.helpers.daemon import DOCKER, PydDaemon
from tests.helpers.images import load_busybox
from tests.helpers.registry import PASSWORD, USER, Registry, seed_multiplatform

pytestmark = pytest.mark.e2e


@pytest.fixture
def registry() -> Iterator[Registry]:
    """An open registry on loopback (127.0.0.0/8 is insecure by default: plain HTTP)."""
    r = Registry()
    try:
        r.start()
        yield r
    finally:
        r.stop()


def _inspect(d: PydDaemon, ref: str) -> dict[str, object]:
    out = d.docker("image", "inspect", ref).stdout
    result: dict[str, object] = json.loads(out)[0]
    return result


def _images(d: PydDaemon) -> list[str]:
    out = d.docker("images", "-a", "--digests", "--no-trunc", "--format", "{{json .}}").stdout
    return sorted(out.splitlines())


class PushPullCLITests:
    """The full round trip, by tag and by digest, with dockerd's progress output."""

    def test_push_rmi_pull(self, pyd_daemon: PydDaemon, registry: Registry) -> None:
        """Push, remove, pull back by tag and by digest: same image id; progress lines shown."""
        image_id = load_busybox(pyd_daemon, tag="pyd-t-reg/bb:1", extra_files={"/hello": "hi\n"})
        name = f"{registry.host}/pyd-t/bb"
        pyd_daemon.docker("tag", "pyd-t-reg/bb:1", f"{name}:v1")
        push = pyd_daemon.docker("push", f"{name}:v1").stdout
        assert f"The push refers to repository [{name}]" in push
        assert "Pushed" in push
        line = [x for x in push.splitlines() if x.startswith("v1: digest: sha256:")]
        assert line, push
        digest = line[0].split()[2]
        assert f"{name}@{digest}" in _inspect(pyd_daemon, f"{name}:v1")["RepoDigests"]  # type: ignore[operator]  # inspect JSON, untyped: RepoDigests is a list
        # the same layers again: nothing to upload
        again = pyd_daemon.docker("push", f"{name}:v1").stdout
        assert "Layer already exists" in again and "Pushed" not in again
        # a plain-HTTP registry (tried over HTTPS first, as dockerd does, by a ClientHello
        # probe) never made the daemon load the TLS stack (~12 MiB resident)
        assert pyd_daemon.proc is not None
        with open(f"/proc/{pyd_daemon.proc.pid}/maps") as f:
            assert "cryptography" not in f.read()

        pyd_daemon.docker("rmi", f"{name}:v1", "pyd-t-reg/bb:1")
        pull = pyd_daemon.docker("pull", f"{name}:v1").stdout
        assert "v1: Pulling from pyd-t/bb" in pull
        assert "Pull complete" in pull
        assert f"Digest: {digest}" in pull
        assert f"Status: Downloaded newer image for {name}:v1" in pull
        info = _inspect(pyd_daemon, f"{name}:v1")
        assert info["Id"] == image_id
        assert f"{name}@{digest}" in info["RepoDigests"]  # type: ignore[operator]  # inspect JSON, untyped: RepoDigests is a list
        up = pyd_daemon.docker("pull", f"{name}:v1").stdout
        assert f"Status: Image is up to date for {name}:v1" in up

        pyd_daemon.docker("rmi", f"{name}:v1")
        by_digest = pyd_daemon.docker("pull", f"{name}@{digest}").stdout
        assert f"Status: Downloaded newer image for {name}@{digest}" in by_digest
        assert _inspect(pyd_daemon, f"{name}@{digest}")["Id"] == image_id

    def test_all_tags_and_unknown(self, pyd_daemon: PydDaemon, registry: Registry) -> None:
        """push/pull --all-tags move every tag; an unknown tag is dockerd's 'not found' error."""
        load_busybox(pyd_daemon, tag="pyd-t-reg/all:1")
        name = f"{registry.host}/pyd-t/all"
        for t in ("a", "b"):
            pyd_daemon.docker("tag", "pyd-t-reg/all:1", f"{name}:{t}")
        pushed = pyd_daemon.docker("push", "--all-tags", name).stdout
        assert "a: digest: sha256:" in pushed and "b: digest: sha256:" in pushed
        pyd_daemon.docker("rmi", f"{name}:a", f"{name}:b")
        out = pyd_daemon.docker("pull", "--all-tags", name).stdout
        assert f"Status: Downloaded newer image for {name}" in out
        tags = pyd_daemon.docker("images", name, "--format", "{{.Tag}}").stdout.split()
        assert sorted(tags) == ["a", "b"]
        bad = pyd_daemon.docker("pull", f"{name}:nope", check=False)
        assert bad.returncode != 0
        assert f"manifest for {name}:nope not found: manifest unknown" in bad.stderr

    def test_tampered_blob_refused(self, pyd_daemon: PydDaemon, registry: Registry) -> None:
        """A layer changed in the registry's storage fails the pull; the store is unchanged."""
        load_busybox(pyd_daemon, tag="pyd-t-reg/bad:1", extra_files={"/x": "x\n"})
        name = f"{registry.host}/pyd-t/bad"
        pyd_daemon.docker("tag", "pyd-t-reg/bad:1", f"{name}:1")
        pyd_daemon.docker("push", f"{name}:1")
        pyd_daemon.docker("rmi", f"{name}:1", "pyd-t-reg/bad:1")
        _, _, body = registry.request(
            "GET",
            "/v2/pyd-t/bad/manifests/1",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        layer = json.loads(body)["layers"][-1]["digest"]
        with open(registry.blob_data_path(layer), "r+b") as f:
            f.seek(20)
            b = f.read(1)
            f.seek(20)
            f.write(bytes([b[0] ^ 0xFF]))
        before = _images(pyd_daemon)
        r = pyd_daemon.docker("pull", f"{name}:1", check=False)
        assert r.returncode != 0
        assert f"filesystem layer verification failed for digest {layer}" in r.stderr + r.stdout
        assert _images(pyd_daemon) == before
        staging = os.path.join(pyd_daemon.data_root, "tmp", "distribution")
        assert os.listdir(staging) == []

    def test_kill9_mid_pull(self, pyd_daemon: PydDaemon, registry: Registry) -> None:
        """kill -9 of the daemon during a pull, restart, pull again: it works."""
        load_busybox(pyd_daemon, tag="pyd-t-reg/big:1", random_layers=[4 << 20, 4 << 20, 4 << 20])
        name = f"{registry.host}/pyd-t/big"
        pyd_daemon.docker("tag", "pyd-t-reg/big:1", f"{name}:1")
        pyd_daemon.docker("push", f"{name}:1")
        pyd_daemon.docker("rmi", f"{name}:1", "pyd-t-reg/big:1")
        env = {
            **os.environ,
            "DOCKER_HOST": pyd_daemon.host,
            "DOCKER_CONFIG": str(pyd_daemon.base / "docker-config"),
        }
        proc = subprocess.Popen(
            [DOCKER, "pull", f"{name}:1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            assert proc.stdout is not None
            seen = b""
            deadline = time.monotonic() + 60
            while b"Downloading" not in seen and b"Extracting" not in seen:
                chunk = proc.stdout.readline()
                if not chunk or time.monotonic() > deadline:
                    break
                seen += chunk
            pyd_daemon.kill9()
        finally:
            proc.wait(30)
        pyd_daemon.start()
        out = pyd_daemon.docker("pull", f"{name}:1").stdout
        assert f"Status: Downloaded newer image for {name}:1" in out or "up to date" in out
        pyd_daemon.docker("image", "inspect", f"{name}:1")
        staging = os.path.join(pyd_daemon.data_root, "tmp", "distribution")
        assert os.listdir(staging) == []


class RunPullsCLITests:
    """docker run of an image that is only in the registry pulls it first (the CLI's 404 path)."""

    def test_run_pulls(self, pyd_daemon: PydDaemon, registry: Registry) -> None:
        """`Unable to find image ... locally`, the pull, then the container's output."""
        load_busybox(pyd_daemon, tag="pyd-t-reg/run:1")
        name = f"{registry.host}/pyd-t/run:1"
        pyd_daemon.docker("tag", "pyd-t-reg/run:1", name)
        pyd_daemon.docker("push", name)
        pyd_daemon.docker("rmi", name, "pyd-t-reg/run:1")
        r = pyd_daemon.docker("run", "--rm", name, "echo", "hello-from-pulled")
        assert r.stdout.strip() == "hello-from-pulled"
        assert f"Status: Downloaded newer image for {name}" in r.stderr


class PlatformCLITests:
    """docker pull of a multi-platform image (manifest list and OCI index)."""

    @pytest.mark.parametrize("oci", [False, True])
    def test_platform(self, pyd_daemon: PydDaemon, registry: Registry, oci: bool) -> None:
        """The host's platform by default; --platform picks another entry."""
        ids = seed_multiplatform(registry, "pyd-t/multi", "latest", oci)
        name = f"{registry.host}/pyd-t/multi"
        out = pyd_daemon.docker("pull", name).stdout
        assert f"Digest: {ids['index']}" in out
        info = _inspect(pyd_daemon, name)
        assert (info["Id"], info["Architecture"]) == (ids["amd64"], "amd64")
        pyd_daemon.docker("pull", "--platform", "linux/arm64", name)
        info = _inspect(pyd_daemon, name)
        assert (info["Id"], info["Architecture"]) == (ids["arm64"], "arm64")
        bad = pyd_daemon.docker("pull", "--platform", "linux/s390x", name, check=False)
        assert "no matching manifest for linux/s390x in the manifest list entries" in bad.stderr


@pytest.fixture(params=["basic", "token"])
def auth_registry(request: pytest.FixtureRequest) -> Iterator[Registry]:
    """A registry behind htpasswd Basic auth or the bearer-token flow."""
    r = Registry(request.param)
    try:
        r.start()
        yield r
    finally:
        r.stop()


class AuthPushPullCLITests:
    """Credentials from docker login travel in X-Registry-Auth."""

    def test_login_push_pull(self, pyd_daemon: PydDaemon, auth_registry: Registry) -> None:
        """Without login push is refused; after login push and pull work; after logout pull fails."""
        load_busybox(pyd_daemon, tag="pyd-t-reg/auth:1")
        name = f"{auth_registry.host}/pyd-t/auth"
        pyd_daemon.docker("tag", "pyd-t-reg/auth:1", f"{name}:1")
        denied = pyd_daemon.docker("push", f"{name}:1", check=False)
        assert denied.returncode != 0
        assert "unauthorized" in (denied.stderr + denied.stdout).lower()
        pyd_daemon.docker(
            "login", auth_registry.host, "-u", USER, "--password-stdin", input=PASSWORD.encode()
        )
        pyd_daemon.docker("push", f"{name}:1")
        pyd_daemon.docker("rmi", f"{name}:1")
        pyd_daemon.docker("pull", f"{name}:1")
        pyd_daemon.docker("logout", auth_registry.host)
        pyd_daemon.docker("rmi", f"{name}:1")
        anon = pyd_daemon.docker("pull", f"{name}:1", check=False)
        assert anon.returncode != 0


class MirrorCLITests:
    """--registry-mirror serves Docker Hub names."""

    def test_pull_hub_name_from_mirror(
        self, tmp_path_factory: pytest.TempPathFactory, registry: Registry
    ) -> None:
        """`docker pull pyd-t-mirror` reads docker.io/library/pyd-t-mirror from the mirror."""
        d = PydDaemon(
            str(tmp_path_factory.mktemp("pyd")), extra_args=["--registry-mirror", registry.url]
        )
        try:
            d.start()
            load_busybox(d, tag="pyd-t-reg/m:1")
            seeded = f"{registry.host}/library/pyd-t-mirror:latest"
            d.docker("tag", "pyd-t-reg/m:1", seeded)
            d.docker("push", seeded)
            d.docker("rmi", seeded, "pyd-t-reg/m:1")
            out = d.docker("pull", "pyd-t-mirror").stdout
            assert "latest: Pulling from library/pyd-t-mirror" in out
            assert "Status: Downloaded newer image for pyd-t-mirror:latest" in out
            tags = d.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
            assert "pyd-t-mirror:latest" in tags
        finally:
            d.cleanup()
