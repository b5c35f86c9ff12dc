"""The real docker CLI against pyd's local image store (issue 3)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import docker
import pytest

from tests.helpers.daemon import PydDaemon
from tests.helpers.images import DEFAULT_TAG, busybox_image_tar, load_busybox

pytestmark = pytest.mark.e2e


def _inspect(d: PydDaemon, ref: str) -> dict:
    return json.loads(d.docker("image", "inspect", ref).stdout)[0]


class ImageCLITests:
    """load, images, inspect, tag, rmi, history, save, prune, import with the real CLI."""

    def test_load_and_inspect(self, pyd_daemon: PydDaemon, tmp_path: Path) -> None:
        """`docker load` of the busybox test image; inspect shows its id, layers and config."""
        built = busybox_image_tar(tmp_path / "bb.tar")
        out = pyd_daemon.docker("load", "-i", str(tmp_path / "bb.tar")).stdout
        assert out.strip() == f"Loaded image: {DEFAULT_TAG}"
        info = _inspect(pyd_daemon, DEFAULT_TAG)
        assert info["Id"] == built.id
        assert info["RepoTags"] == [DEFAULT_TAG]
        assert info["RepoDigests"] == []
        assert info["RootFS"] == {"Type": "layers", "Layers": list(built.diff_ids)}
        assert info["Config"]["Cmd"] == ["sh"]
        assert info["Config"]["Env"][0].startswith("PATH=")
        assert info["Created"] == "2023-11-14T22:13:20Z"
        assert info["Size"] > 1_000_000
        assert info["Os"] == "linux" and info["Architecture"] == "amd64"
        images = pyd_daemon.docker("images", "--format", "{{json .}}").stdout.splitlines()
        rows = [json.loads(r) for r in images]
        assert [(r["Repository"], r["Tag"]) for r in rows] == [("pyd-test/busybox", "latest")]
        assert rows[0]["ID"] == built.id[7:19]
        assert pyd_daemon.docker("info", "--format", "{{.Images}}").stdout.strip() == "1"

    def test_tag_and_rmi(self, pyd_daemon: PydDaemon) -> None:
        """`docker tag` adds a name; `docker rmi` of one name untags, of the last deletes."""
        image_id = load_busybox(pyd_daemon)
        pyd_daemon.docker("tag", DEFAULT_TAG, "pyd-t-other/bb:v1")
        assert _inspect(pyd_daemon, "pyd-t-other/bb:v1")["Id"] == image_id
        out = pyd_daemon.docker("rmi", "pyd-t-other/bb:v1").stdout
        assert out.strip() == "Untagged: pyd-t-other/bb:v1"
        r = pyd_daemon.docker("rmi", "pyd-t-other/bb:v1", check=False)
        assert r.returncode == 1
        assert "No such image: pyd-t-other/bb:v1" in r.stderr
        out = pyd_daemon.docker("rmi", DEFAULT_TAG).stdout.splitlines()
        assert out[0] == f"Untagged: {DEFAULT_TAG}"
        assert out[1] == f"Deleted: {image_id}"
        assert pyd_daemon.docker("images", "-q").stdout.strip() == ""

    def test_rmi_by_id_with_two_repos_needs_force(self, pyd_daemon: PydDaemon) -> None:
        """Deleting by id an image tagged in two repositories is refused without -f."""
        image_id = load_busybox(pyd_daemon)
        pyd_daemon.docker("tag", DEFAULT_TAG, "pyd-t-two:x")
        r = pyd_daemon.docker("rmi", image_id[7:19], check=False)
        assert r.returncode == 1
        assert (
            f"conflict: unable to delete {image_id[7:19]} (must be forced) - image is "
            "referenced in multiple repositories"
        ) in r.stderr
        out = pyd_daemon.docker("rmi", "-f", image_id[7:19]).stdout
        assert f"Deleted: {image_id}" in out
        assert "Untagged: pyd-t-two:x" in out

    def test_history(self, pyd_daemon: PydDaemon) -> None:
        """`docker history` lists the config's history, newest first, the image id on top."""
        image_id = load_busybox(pyd_daemon, extra_files={"/hello.txt": "hi\n"})
        rows = [
            json.loads(x)
            for x in pyd_daemon.docker(
                "history", "--no-trunc", "--format", "{{json .}}", DEFAULT_TAG
            ).stdout.splitlines()
        ]
        assert len(rows) == 3
        assert rows[0]["ID"] == image_id
        assert rows[1]["ID"] == "<missing>"
        assert "ADD layer 1" in rows[1]["CreatedBy"]

    def test_save_load_round_trip(self, pyd_daemon: PydDaemon, tmp_path: Path) -> None:
        """`docker save` then `docker load` gives back the same image; the tar has both layouts."""
        image_id = load_busybox(pyd_daemon, extra_files={"/etc/motd": "hello\n"})
        out = tmp_path / "saved.tar"
        pyd_daemon.docker("save", "-o", str(out), DEFAULT_TAG)
        with tarfile.open(out) as tf:
            names = set(tf.getnames())
            manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]  # the member exists in the archive docker saved
            index = json.load(tf.extractfile("index.json"))  # type: ignore[arg-type]  # the member exists in the archive docker saved
        assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= names
        assert manifest[0]["RepoTags"] == [DEFAULT_TAG]
        assert manifest[0]["Config"] == "blobs/sha256/" + image_id[7:]
        assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == (
            "docker.io/pyd-test/busybox:latest"
        )
        pyd_daemon.docker("rmi", DEFAULT_TAG)
        loaded = pyd_daemon.docker("load", "-i", str(out)).stdout
        assert f"Loaded image: {DEFAULT_TAG}" in loaded
        assert _inspect(pyd_daemon, DEFAULT_TAG)["Id"] == image_id

    def test_load_gzip_oci_and_legacy(self, pyd_daemon: PydDaemon, tmp_path: Path) -> None:
        """gzip'd input, OCI-layout-only and docker-archive-only tars all load."""
        a = busybox_image_tar(tmp_path / "a.tar.gz", "pyd-t-gz:1", gzip=True)
        b = busybox_image_tar(tmp_path / "b.tar", "pyd-t-oci:1", fmt="oci", extra_files={"/b": "b"})
        c = busybox_image_tar(
            tmp_path / "c.tar", "pyd-t-legacy:1", fmt="docker", extra_files={"/c": "c"}
        )
        for built in (a, b, c):
            out = pyd_daemon.docker("load", "-i", built.path).stdout
            assert f"Loaded image: {built.tag}" in out
            assert _inspect(pyd_daemon, str(built.tag))["Id"] == built.id

    def test_tampered_layer_refused(self, pyd_daemon: PydDaemon, tmp_path: Path) -> None:
        """A layer whose bytes do not match the config's diff id is refused; nothing is stored."""
        built = busybox_image_tar(tmp_path / "ok.tar", "pyd-t-tamper:1", fmt="docker")
        bad = tmp_path / "bad.tar"
        with tarfile.open(built.path) as src, tarfile.open(bad, "w") as dst:
            for m in src.getmembers():
                data = src.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]  # a regular file member has a file object
                if m.name.endswith("layer.tar") and data is not None:
                    data = data.replace(b"root:x:0:0", b"ROOT:x:0:0")
                dst.addfile(m, __import__("io").BytesIO(data) if data is not None else None)
        r = pyd_daemon.docker("load", "-i", str(bad), check=False)
        assert r.returncode != 0
        assert "digest mismatch" in (r.stderr + r.stdout)
        assert pyd_daemon.docker("images", "-aq").stdout.strip() == ""
        storage = Path(pyd_daemon.data_root) / "storage"
        assert list((storage / "layers").iterdir()) == []
        assert list((storage / "tmp").iterdir()) == []

    def test_prune_dangling(self, pyd_daemon: PydDaemon) -> None:
        """`docker image prune -f` removes dangling images only; -a removes unused tagged ones."""
        load_busybox(pyd_daemon, tag="pyd-t-keep:1")
        dangling = load_busybox(pyd_daemon, tag="pyd-t-gone:1", extra_files={"/x": "x"})
        load_busybox(pyd_daemon, tag="pyd-t-gone:1", extra_files={"/y": "y"})  # steals the tag
        ids = pyd_daemon.docker("images", "-q", "--no-trunc", "--filter", "dangling=true").stdout
        assert ids.split() == [dangling]
        out = pyd_daemon.docker("image", "prune", "-f").stdout
        assert f"deleted: {dangling}" in out
        assert len(pyd_daemon.docker("images", "-q").stdout.split()) == 2
        pyd_daemon.docker("image", "prune", "-af")
        assert pyd_daemon.docker("images", "-q").stdout.strip() == ""

    def test_import_with_changes(self, pyd_daemon: PydDaemon, tmp_path: Path) -> None:
        """`docker import` of a rootfs tar with --change sets Cmd and Env."""
        built = busybox_image_tar(tmp_path / "bb.tar")
        rootfs = tmp_path / "rootfs.tar"
        rootfs.write_bytes(built.layers[0])
        out = pyd_daemon.docker(
            "import",
            "--change",
            'CMD ["echo", "hi"]',
            "--change",
            "ENV A=1",
            "-m",
            "from test",
            str(rootfs),
            "pyd-t-imported:1",
        ).stdout
        assert out.strip().startswith("sha256:")
        info = _inspect(pyd_daemon, "pyd-t-imported:1")
        assert info["Config"]["Cmd"] == ["echo", "hi"]
        assert info["Config"]["Env"] == ["A=1"]
        assert info["Comment"] == "from test"
        assert info["RootFS"]["Layers"] == [built.diff_ids[0]]

    def test_import_from_url(self, pyd_daemon: PydDaemon, tmp_path: Path) -> None:
        """`docker import http://127.0.0.1:PORT/rootfs.tar` downloads and imports the tar."""
        import functools
        import http.server
        import threading

        built = busybox_image_tar(tmp_path / "bb.tar")
        (tmp_path / "www").mkdir()
        (tmp_path / "www" / "rootfs.tar").write_bytes(built.layers[0])
        handler = functools.partial(
            http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www")
        )
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/rootfs.tar"
            pyd_daemon.docker("import", url, "pyd-t-url:1")
            info = _inspect(pyd_daemon, "pyd-t-url:1")
            assert info["RootFS"]["Layers"] == [built.diff_ids[0]]
            assert info["Comment"] == f"Imported from {url}"
            r = pyd_daemon.docker("import", url + ".missing", "pyd-t-url:2", check=False)
            assert r.returncode == 1 and "404" in r.stderr
        finally:
            server.shutdown()
            server.server_close()

    def test_images_filters(self, pyd_daemon: PydDaemon) -> None:
        """--filter reference= and label= select images like dockerd."""
        load_busybox(pyd_daemon, tag="pyd-t-a/one:1", config={"Labels": {"team": "x"}})
        load_busybox(pyd_daemon, tag="pyd-t-b/two:1", extra_files={"/2": "2"})
        out = pyd_daemon.docker(
            "images", "--format", "{{.Repository}}", "--filter", "reference=pyd-t-a/*"
        ).stdout.split()
        assert out == ["pyd-t-a/one"]
        out = pyd_daemon.docker(
            "images", "--format", "{{.Repository}}", "--filter", "label=team=x"
        ).stdout.split()
        assert out == ["pyd-t-a/one"]

    def test_docker_py(self, pyd_daemon: PydDaemon, tmp_path: Path) -> None:
        """docker-py loads, lists, tags and removes images."""
        built = busybox_image_tar(tmp_path / "bb.tar", "pyd-t-py:1")
        client = docker.DockerClient(base_url=pyd_daemon.host, version="auto")
        try:
            with open(built.path, "rb") as f:
                images = client.images.load(f.read())
            assert [i.id for i in images] == [built.id]
            img = client.images.get("pyd-t-py:1")
            assert img.tag("pyd-t-py", "2")
            assert sorted(client.images.get(built.id).tags) == ["pyd-t-py:1", "pyd-t-py:2"]
            client.images.remove("pyd-t-py:2")
            client.images.remove("pyd-t-py:1")
            assert client.images.list() == []
        finally:
            client.close()


class ImageContainerCLITests:
    """Images as containers use them: diff, commit, rmi conflicts."""

    def test_commit_and_diff(self, pyd_daemon: PydDaemon) -> None:
        """`docker diff` shows A/C/D; `docker commit` makes an image with the changes."""
        load_busybox(pyd_daemon)
        name = "pyd-t-commit-src"
        pyd_daemon.docker(
            "run",
            "-d",
            "--name",
            name,
            DEFAULT_TAG,
            "sh",
            "-c",
            "echo hi > /newfile && rm /bin/vi && echo x >> /etc/passwd",
        )
        assert pyd_daemon.docker("wait", name).stdout.strip() == "0"
        diff = pyd_daemon.docker("diff", name).stdout.splitlines()
        assert "A /newfile" in diff
        assert "D /bin/vi" in diff
        assert "C /etc/passwd" in diff
        out = pyd_daemon.docker(
            "commit", "--change", "ENV COMMITTED=1", "-m", "snap", name, "pyd-t-snap:1"
        ).stdout.strip()
        assert out.startswith("sha256:")
        info = _inspect(pyd_daemon, "pyd-t-snap:1")
        assert info["Id"] == out
        assert "COMMITTED=1" in info["Config"]["Env"]
        assert info["Comment"] == "snap"
        assert len(info["RootFS"]["Layers"]) == 2
        pyd_daemon.docker(
            "run",
            "-d",
            "--name",
            "pyd-t-from-snap",
            "pyd-t-snap:1",
            "sh",
            "-c",
            "cat /newfile; test -e /bin/vi || echo gone",
        )
        assert pyd_daemon.docker("wait", "pyd-t-from-snap").stdout.strip() == "0"
        assert pyd_daemon.docker("logs", "pyd-t-from-snap").stdout.split() == ["hi", "gone"]

    def test_rmi_refused_while_used(self, pyd_daemon: PydDaemon) -> None:
        """rmi of an image a container uses gives dockerd's 409 messages."""
        image_id = load_busybox(pyd_daemon, tag="pyd-t-used:1")
        pyd_daemon.docker("create", "--name", "pyd-t-user", "pyd-t-used:1", "true")
        r = pyd_daemon.docker("rmi", "pyd-t-used:1", check=False)
        assert r.returncode == 1
        assert 'unable to remove repository reference "pyd-t-used:1" (must force)' in r.stderr
        assert f"is using its referenced image {image_id[7:19]}" in r.stderr
        pyd_daemon.docker("rm", "pyd-t-user")
        pyd_daemon.docker("run", "-d", "--name", "pyd-t-runner", "pyd-t-used:1", "sleep", "60")
        r = pyd_daemon.docker("rmi", "-f", image_id, check=False)
        assert r.returncode == 1
        assert (
            f"unable to delete {image_id[7:19]} (cannot be forced) - image is being used by "
            "running container"
        ) in r.stderr
        pyd_daemon.docker("rm", "-f", "pyd-t-runner")
        pyd_daemon.docker("rmi", "pyd-t-used:1")


class ImageCrashTests:
    """kill -9 in the middle of a load leaves nothing half-visible."""

    def test_kill9_mid_load(self, pyd_daemon: PydDaemon, tmp_path: Path) -> None:
        """After a kill -9 during `docker load` and a restart, no image, layer or staging
        leftover remains, and the same load then succeeds."""
        import subprocess
        import time

        built = busybox_image_tar(tmp_path / "big.tar", "pyd-t-big:1", random_layers=[8 << 20] * 6)
        storage = Path(pyd_daemon.data_root) / "storage"
        env = {"DOCKER_HOST": pyd_daemon.host, "DOCKER_CONFIG": str(tmp_path / "cfg")}
        proc = subprocess.Popen(
            ["/usr/local/bin/docker", "load", "-i", built.path],
            env={**__import__("os").environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if len(list((storage / "layers").iterdir())) >= 2:
                    break
                time.sleep(0.01)
            else:
                raise AssertionError("load never started extracting layers")
            pyd_daemon.kill9()
        finally:
            proc.wait(timeout=60)
        assert list((storage / "layers").iterdir()) or list((storage / "tmp").iterdir())
        pyd_daemon.start()
        assert pyd_daemon.docker("images", "-aq").stdout.strip() == ""
        assert list((storage / "tmp").iterdir()) == []
        assert list((storage / "layers").iterdir()) == []
        out = pyd_daemon.docker("load", "-i", built.path).stdout
        assert "Loaded image: pyd-t-big:1" in out
        assert len(list((storage / "layers").iterdir())) == 7
