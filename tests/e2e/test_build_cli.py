"""`docker build` with the real CLI (classic builder) against pyd (issue 7)."""

from __future__ import annotations

import io
import json
import secrets
import tarfile
from pathlib import Path

import pytest

from tests.helpers.daemon import PydDaemon
from tests.helpers.images import DEFAULT_TAG, load_busybox

pytestmark = pytest.mark.e2e


def _ctx(base: Path, files: dict[str, str]) -> Path:
    ctx = base / ("ctx-" + secrets.token_hex(4))
    for name, content in files.items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    return ctx


def _image_files(d: PydDaemon, ref: str) -> set[str]:
    """Every path in every layer of the image (from `docker save`)."""
    out = d.base / ("save-" + secrets.token_hex(4) + ".tar")
    d.docker("save", "-o", str(out), ref)
    names: set[str] = set()
    with tarfile.open(out) as tf:
        for m in tf.getmembers():
            if not m.isfile() or m.size < 512:
                continue
            f = tf.extractfile(m)
            assert f is not None
            try:
                with tarfile.open(fileobj=io.BytesIO(f.read())) as layer:
                    names.update(n.lstrip("./") for n in layer.getnames())
            except tarfile.TarError:
                continue
    out.unlink()
    return names


def _inspect(d: PydDaemon, ref: str) -> dict:
    return json.loads(d.docker("image", "inspect", ref).stdout)[0]


class BuildCLITests:
    """Builds that need only the image store (COPY and metadata instructions)."""

    def test_build_copy_cache_ignore_quiet(self, pyd_daemon: PydDaemon) -> None:
        """`docker build -t` builds, tags, honours .dockerignore, reuses the cache, and -q /
        --iidfile / DOCKER_BUILDKIT=0 give the id."""
        d = pyd_daemon
        load_busybox(d)
        tag = "pyd-t-" + secrets.token_hex(3)
        ctx = _ctx(
            d.base,
            {
                "Dockerfile": f"FROM {DEFAULT_TAG}\nCOPY . /www/\nENV SITE=/www\nEXPOSE 80\n"
                'CMD ["httpd", "-f", "-p", "80", "-h", "/www"]\n',
                "index.html": "<h1>pyd</h1>\n",
                "secret.txt": "do not send\n",
                ".dockerignore": "secret.txt\n",
            },
        )
        r = d.docker("build", "-t", tag, str(ctx))
        out = r.stdout
        assert "Step 1/5 : FROM pyd-test/busybox" in out
        assert "Step 2/5 : COPY . /www/" in out
        assert f"Successfully tagged {tag}:latest" in out
        info = _inspect(d, tag)
        assert info["Config"]["Cmd"] == ["httpd", "-f", "-p", "80", "-h", "/www"]
        assert "80/tcp" in info["Config"]["ExposedPorts"]
        assert "SITE=/www" in info["Config"]["Env"]
        # .dockerignore: secret.txt is not in the image (COPY . copied the rest)
        names = _image_files(d, tag)
        assert "www/index.html" in names
        assert "www/secret.txt" not in names
        # The cache: the second build reuses every step and gives the same image.
        r2 = d.docker("build", "-t", tag, str(ctx), env={"DOCKER_BUILDKIT": "0"})
        assert r2.stdout.count("---> Using cache") == 4
        assert _inspect(d, tag)["Id"] == info["Id"]
        # -q prints the id; --iidfile writes it.
        q = d.docker("build", "-q", str(ctx)).stdout.strip()
        assert q == info["Id"]
        iid = d.base / "iid.txt"
        d.docker("build", "--iidfile", str(iid), str(ctx))
        assert iid.read_text().strip() == info["Id"]
        # a changed file busts the COPY cache
        (ctx / "index.html").write_text("changed\n")
        r3 = d.docker("build", "-t", tag, str(ctx))
        assert "Using cache" not in r3.stdout

    def test_dockerignore_excludes(self, pyd_daemon: PydDaemon) -> None:
        """An ignored file is not available to COPY."""
        d = pyd_daemon
        load_busybox(d)
        ctx = _ctx(
            d.base,
            {
                "Dockerfile": f"FROM {DEFAULT_TAG}\nCOPY secret.txt /s\n",
                "secret.txt": "x",
                ".dockerignore": "*.txt\n",
            },
        )
        r = d.docker("build", str(ctx), check=False)
        assert r.returncode != 0
        assert "file not found in build context or excluded by .dockerignore" in r.stderr

    def test_multistage_target(self, pyd_daemon: PydDaemon) -> None:
        """COPY --from an earlier stage; --target builds only up to a stage."""
        d = pyd_daemon
        load_busybox(d)
        tag = "pyd-t-" + secrets.token_hex(3)
        ctx = _ctx(
            d.base,
            {
                "Dockerfile": f"FROM {DEFAULT_TAG} AS first\nCOPY a.txt /stage/a.txt\n"
                "LABEL stage=first\n"
                f"FROM {DEFAULT_TAG}\nCOPY --from=first /stage /copied\nLABEL stage=final\n",
                "a.txt": "A\n",
            },
        )
        out = d.docker("build", "-t", tag, str(ctx)).stdout
        assert "Step 6/6" in out
        assert _inspect(d, tag)["Config"]["Labels"] == {"stage": "final"}
        out = d.docker("build", "--target", "first", "-t", tag + "-first", str(ctx)).stdout
        assert "Step 3/3" in out
        assert _inspect(d, tag + "-first")["Config"]["Labels"] == {"stage": "first"}

    def test_errors(self, pyd_daemon: PydDaemon) -> None:
        """Syntax errors carry the line; a missing base image and --squash are clear errors."""
        d = pyd_daemon
        load_busybox(d)
        ctx = _ctx(d.base, {"Dockerfile": f"FROM {DEFAULT_TAG}\n\nBOGUSX x\n"})
        r = d.docker("build", str(ctx), check=False)
        assert r.returncode == 1
        assert "dockerfile parse error on line 3: unknown instruction: BOGUSX" in r.stderr
        # A missing base image is pulled; from a registry on loopback that does not answer
        # (never Docker Hub from a test).
        ctx2 = _ctx(d.base, {"Dockerfile": "FROM 127.0.0.1:1/pyd-t-nosuch/image:1\n"})
        r = d.docker("build", "-t", "pyd-t-never", str(ctx2), check=False)
        assert r.returncode == 1
        assert "127.0.0.1:1" in r.stderr
        assert d.docker("image", "inspect", "pyd-t-never", check=False).returncode == 1
        ctx3 = _ctx(d.base, {"Dockerfile": f"FROM {DEFAULT_TAG}\nCOPY ../x /x\n"})
        r = d.docker("build", str(ctx3), check=False)
        assert "forbidden path outside the build context" in r.stderr

    def test_dockerfile_outside_context(self, pyd_daemon: PydDaemon) -> None:
        """-f with a Dockerfile outside the context (sent as .dockerfile.<hex>)."""
        d = pyd_daemon
        load_busybox(d)
        ctx = _ctx(d.base, {"f.txt": "F\n"})
        df = d.base / ("outside-" + secrets.token_hex(3) + ".Dockerfile")
        df.write_text(f"FROM {DEFAULT_TAG}\nCOPY . /ctx/\n")
        tag = "pyd-t-" + secrets.token_hex(3)
        d.docker("build", "-f", str(df), "-t", tag, str(ctx))
        assert _inspect(d, tag)["Id"].startswith("sha256:")


class BuildRunTests:
    """Builds with RUN steps (real containers)."""

    def test_run_steps_cache_and_failure(self, pyd_daemon: PydDaemon) -> None:
        """RUN runs in a container from the previous step; output streams; the cache works;
        a failing RUN reports its code and tags nothing."""
        d = pyd_daemon
        load_busybox(d)
        tag = "pyd-t-" + secrets.token_hex(3)
        ctx = _ctx(
            d.base,
            {
                "Dockerfile": f"FROM {DEFAULT_TAG}\nARG WHO=world\nWORKDIR /app\n"
                "RUN echo hello-$WHO > greeting.txt && cat greeting.txt\n"
                "RUN test -f /app/greeting.txt\n",
            },
        )
        r = d.docker("build", "--build-arg", "WHO=pyd", "-t", tag, str(ctx))
        assert "hello-pyd" in r.stdout
        assert "---> Running in " in r.stdout
        assert "---> Removed intermediate container" in r.stdout
        assert f"Successfully tagged {tag}:latest" in r.stdout
        r2 = d.docker("build", "--build-arg", "WHO=pyd", "-t", tag, str(ctx))
        assert r2.stdout.count("---> Using cache") == 4
        names = _image_files(d, tag)
        assert "app/greeting.txt" in names
        # no intermediate containers left
        assert d.docker("ps", "-aq").stdout.strip() == ""
        bad = _ctx(d.base, {"Dockerfile": f"FROM {DEFAULT_TAG}\nRUN exit 3\n"})
        r3 = d.docker("build", "-t", tag + "-bad", str(bad), check=False)
        assert r3.returncode == 3  # the CLI exits with errorDetail.code
        assert "The command '/bin/sh -c exit 3' returned a non-zero code: 3" in r3.stderr
        assert d.docker("image", "inspect", tag + "-bad", check=False).returncode == 1


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SeedFlowTests:
    """The seed's whole flow: build an httpd image, run it with a published port, stop it."""

    def test_build_run_publish_stop(self, pyd_daemon: PydDaemon) -> None:
        """`docker build -t my-image .`, `docker run -d -p PORT:80 my-image`, GET, ps, stop."""
        import urllib.request

        d = pyd_daemon
        load_busybox(d)
        tag = "pyd-t-" + secrets.token_hex(3)
        ctx = _ctx(
            d.base,
            {
                "Dockerfile": f"FROM {DEFAULT_TAG}\nRUN mkdir -p /www\nCOPY index.html /www/\n"
                'EXPOSE 80\nCMD ["httpd", "-f", "-p", "80", "-h", "/www"]\n',
                "index.html": "<h1>built by pyd</h1>\n",
            },
        )
        d.docker("build", "-t", tag, str(ctx))
        port = _free_port()
        cid = d.docker("run", "-d", "-p", f"{port}:80", tag).stdout.strip()
        try:
            assert cid in d.docker("ps", "--no-trunc", "-q").stdout
            body = b""
            for _ in range(50):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                        body = resp.read()
                    break
                except OSError:
                    import time

                    time.sleep(0.2)
            assert body == b"<h1>built by pyd</h1>\n"
        finally:
            d.docker("stop", "-t", "1", cid)
        assert cid not in d.docker("ps", "--no-trunc", "-q").stdout

    def test_docker_py_build(self, pyd_daemon: PydDaemon) -> None:
        """docker-py's images.build (legacy /build) works and returns the image."""
        import docker

        d = pyd_daemon
        load_busybox(d)
        ctx = _ctx(d.base, {"Dockerfile": f"FROM {DEFAULT_TAG}\nLABEL via=docker-py\n"})
        client = docker.DockerClient(base_url=d.host)
        try:
            img, logs = client.images.build(path=str(ctx), tag="pyd-t-dockerpy")
            assert img.labels == {"via": "docker-py"}
            assert any("Successfully built" in (entry.get("stream") or "") for entry in logs)
        finally:
            client.close()

    def test_docker_py_build_error_raises_api_error(self, pyd_daemon: PydDaemon) -> None:
        """A build refused before it starts (no such Dockerfile) is docker-py's APIError with
        dockerd's status and text: the answer is whole (Content-Length), not a chunked stream
        that docker-py would read as build output and turn into a BuildError."""
        import docker

        d = pyd_daemon
        ctx = _ctx(d.base, {"Dockerfile": "FROM scratch\n"})
        client = docker.DockerClient(base_url=d.host)
        try:
            with pytest.raises(docker.errors.APIError) as err:
                client.images.build(path=str(ctx), dockerfile="Nope")
            assert err.value.status_code == 400
            assert err.value.explanation == "Cannot locate specified Dockerfile: Nope"
        finally:
            client.close()


class BuildPullTests:
    """FROM pulls a missing base image (and --pull refreshes it) from a registry on loopback."""

    def test_from_pulls_missing_base(self, pyd_daemon: PydDaemon) -> None:
        """A base image only in the registry is pulled during the build, with progress."""
        from tests.helpers.registry import Registry

        d = pyd_daemon
        load_busybox(d)
        with Registry() as reg:
            ref = f"{reg.host}/pyd-t-base:1"
            d.docker("tag", DEFAULT_TAG, ref)
            d.docker("push", ref)
            d.docker("rmi", ref)
            assert d.docker("image", "inspect", ref, check=False).returncode == 1
            ctx = _ctx(d.base, {"Dockerfile": f"FROM {ref}\nLABEL pulled=yes\n"})
            tag = "pyd-t-" + secrets.token_hex(3)
            r = d.docker("build", "-t", tag, str(ctx))
            assert f"Step 1/2 : FROM {ref}" in r.stdout
            assert _inspect(d, ref)["Id"].startswith("sha256:")
            assert _inspect(d, tag)["Config"]["Labels"] == {"pulled": "yes"}
            r2 = d.docker("build", "--pull", "-t", tag, str(ctx))
            assert "Image is up to date" in r2.stdout or "Using cache" in r2.stdout


class BuildCancelTests:
    """Interrupting `docker build` stops the build and removes the step's container."""

    def test_interrupt_removes_container(self, pyd_daemon: PydDaemon) -> None:
        """The CLI killed during a long RUN, five builds in a row: no container is left running
        or stopped (the HTTP layer cancels the build wherever it waits; issue 18)."""
        import os
        import subprocess
        import time

        d = pyd_daemon
        load_busybox(d)
        env = {**os.environ, "DOCKER_HOST": d.host, "DOCKER_CONFIG": str(d.base / "docker-config")}
        for i in range(5):
            ctx = _ctx(
                d.base,
                {"Dockerfile": f"FROM {DEFAULT_TAG}\nRUN echo started{i} && sleep 60\n"},
            )
            p = subprocess.Popen(
                ["docker", "build", "-t", f"pyd-t-cancel{i}", str(ctx)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=env,
            )
            try:
                assert p.stdout is not None
                for line in p.stdout:
                    if f"started{i}" in line:
                        break
            finally:
                p.kill()
                p.wait()
        # Generous under load; a container that is never removed stays listed (exited).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if d.docker("ps", "-aq").stdout.strip() == "":
                break
            time.sleep(0.3)
        assert d.docker("ps", "-aq").stdout.strip() == ""
        for i in range(5):
            assert d.docker("image", "inspect", f"pyd-t-cancel{i}", check=False).returncode == 1


class BuildOptionsTests:
    """Build options that reach the RUN containers, and a Dockerfile from stdin."""

    def test_add_host_network_and_stdin(self, pyd_daemon: PydDaemon) -> None:
        """--add-host shows in RUN's /etc/hosts; --network none and host work; `-` reads the
        Dockerfile from stdin."""
        d = pyd_daemon
        load_busybox(d)
        ctx = _ctx(d.base, {"Dockerfile": f"FROM {DEFAULT_TAG}\nRUN grep pyd-extra /etc/hosts\n"})
        r = d.docker("build", "--add-host", "pyd-extra:10.213.0.9", str(ctx))
        assert "10.213.0.9" in r.stdout
        for mode in ("none", "host"):
            ctx2 = _ctx(d.base, {"Dockerfile": f"FROM {DEFAULT_TAG}\nRUN echo net-{mode}\n"})
            r = d.docker("build", "--network", mode, str(ctx2))
            assert f"net-{mode}" in r.stdout
        df = f"FROM {DEFAULT_TAG}\nLABEL from=stdin\n".encode()
        r = d.docker("build", "-t", "pyd-t-stdin", "-", input=df)
        assert _inspect(d, "pyd-t-stdin")["Config"]["Labels"] == {"from": "stdin"}
