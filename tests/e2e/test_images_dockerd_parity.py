"""What the real CLI shows for images, pinned where pyd was compared with dockerd (issue 3).

Each test states the dockerd behaviour it pins: dockerd 20.10 was run side by side with pyd on
the same image tars, registry and containers; where 20.10 and dockerd 28 (API 1.50) differ, the
dockerd 28 behaviour (from moby's sources) is what pyd does.
"""

from __future__ import annotations

import json
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.daemon import PydDaemon
from tests.helpers.fake_index import FakeIndex
from tests.helpers.images import File, busybox_image_tar, load_busybox
from tests.helpers.registry import Registry, free_port

pytestmark = pytest.mark.e2e


def _name() -> str:
    return f"pyd-t-{uuid.uuid4().hex[:8]}"


def _inspect(d: PydDaemon, ref: str, api: str | None = None) -> dict:
    env = {"DOCKER_API_VERSION": api} if api else None
    return json.loads(d.docker("image", "inspect", ref, env=env).stdout)[0]


def _layer_size(layer: bytes) -> int:
    """dockerd's size of an extracted layer: file contents (hardlinks once) + symlink targets."""
    import io

    total = 0
    with tarfile.open(fileobj=io.BytesIO(layer)) as tf:
        for m in tf:
            if m.isreg():
                total += m.size
            elif m.issym():
                total += len(m.linkname.encode())
    return total


@pytest.fixture
def index() -> Iterator[FakeIndex]:
    """A fake v1 index on loopback (an insecure registry: plain HTTP)."""
    with FakeIndex() as i:
        yield i


@pytest.fixture
def registry() -> Iterator[Registry]:
    """An open registry on loopback."""
    r = Registry()
    try:
        r.start()
        yield r
    finally:
        r.stop()


class InspectParityTests:
    """docker image inspect / images / history as dockerd answers them."""

    def test_inspect_fields(self, pyd_daemon: PydDaemon, tmp_path: Path) -> None:
        """API 1.50: dockerd 28's fields (Parent, Comment, DockerVersion, Author always; no
        VirtualSize/ContainerConfig; Config last with its fixed defaults); API 1.41: 20.10's
        (VirtualSize, ContainerConfig, the whole container config). Size counts symlinks like
        dockerd's directory size; a loaded image was never tagged (zero LastTagTime)."""
        built = busybox_image_tar(
            tmp_path / "bb.tar",
            "pyd-t-parity/bb:1",
            extra_files={"/lnk": File(kind="symlink", target="/bin/busybox")},
        )
        pyd_daemon.docker("load", "-q", "-i", str(tmp_path / "bb.tar"))
        info = _inspect(pyd_daemon, "pyd-t-parity/bb:1")
        assert list(info) == [
            "Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "DockerVersion",
            "Author", "Architecture", "Os", "Size", "GraphDriver", "RootFS", "Metadata", "Config",
        ]  # fmt: skip
        assert (info["Parent"], info["Comment"], info["DockerVersion"], info["Author"]) == (
            "",
            "",
            "",
            "",
        )
        assert info["Config"] == {
            "Cmd": ["sh"],
            "Entrypoint": None,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Labels": None,
            "OnBuild": None,
            "User": "",
            "Volumes": None,
            "WorkingDir": "",
        }
        assert info["Size"] == sum(_layer_size(layer) for layer in built.layers)
        assert info["Metadata"] == {"LastTagTime": "0001-01-01T00:00:00Z"}
        assert list(info["GraphDriver"]) == ["Data", "Name"]
        assert sorted(info["GraphDriver"]["Data"]) == [
            "LowerDir",
            "MergedDir",
            "UpperDir",
            "WorkDir",
        ]
        old = _inspect(pyd_daemon, "pyd-t-parity/bb:1", api="1.41")
        assert old["VirtualSize"] == info["Size"]
        assert old["ContainerConfig"]["Cmd"] is None and old["ContainerConfig"]["Hostname"] == ""
        assert old["Config"]["Cmd"] == ["sh"] and old["Config"]["AttachStdin"] is False
        assert "Container" not in old  # omitempty in dockerd 28 (20.10 showed "")
        # tagging sets LastTagTime
        pyd_daemon.docker("tag", "pyd-t-parity/bb:1", "pyd-t-parity/bb:2")
        again = _inspect(pyd_daemon, "pyd-t-parity/bb:1")
        assert again["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"

    def test_list_per_api_version(self, pyd_daemon: PydDaemon) -> None:
        """GET /images/json: Labels null when unset, RepoDigests [] (null before 1.43),
        VirtualSize only before 1.44, <none>:<none> for untagged images before 1.43."""
        load_busybox(pyd_daemon, tag=None)
        status, _, body = pyd_daemon.request("GET", "/v1.50/images/json")
        assert status == 200
        (row,) = json.loads(body)
        assert list(row) == [
            "Containers", "Created", "Id", "Labels", "ParentId", "RepoDigests", "RepoTags",
            "SharedSize", "Size",
        ]  # fmt: skip
        assert (row["Labels"], row["RepoTags"], row["RepoDigests"]) == (None, [], [])
        status, _, body = pyd_daemon.request("GET", "/v1.41/images/json")
        (old,) = json.loads(body)
        assert old["RepoTags"] == ["<none>:<none>"]
        assert old["RepoDigests"] == ["<none>@<none>"]
        assert old["VirtualSize"] == old["Size"]

    def test_unknown_image_messages(self, pyd_daemon: PydDaemon) -> None:
        """dockerd 28's "No such image" names the reference with its default tag, and a 64-hex
        id as the digest it is parsed as; the CLI exits 1."""
        for args in (("image", "inspect", "nope"), ("history", "nope"), ("rmi", "nope")):
            r = pyd_daemon.docker(*args, check=False)
            assert r.returncode == 1
            assert "No such image: nope:latest" in r.stderr, r.stderr
        hexid = "0" * 64
        r = pyd_daemon.docker("rmi", hexid, check=False)
        assert r.stderr.strip() == f"Error response from daemon: No such image: sha256:{hexid}"


class CommitImportParityTests:
    """docker commit / import record what dockerd records."""

    def test_commit_records_container(self, pyd_daemon: PydDaemon) -> None:
        """The history line is the container's command, the size counts the new symlink, the
        image carries DockerVersion, and (API < 1.45) Container + ContainerConfig."""
        load_busybox(pyd_daemon)
        name = _name()
        pyd_daemon.docker(
            "run",
            "--name",
            name,
            "pyd-test/busybox",
            "sh",
            "-c",
            "echo hi > /hello; ln -s /hello /lnk",
        )
        try:
            pyd_daemon.docker("commit", "-a", "me", "-m", "msg", name, f"{name}:c")
            rows = pyd_daemon.docker(
                "history",
                "--no-trunc",
                "--format",
                "{{.CreatedBy}}|{{.Size}}|{{.Comment}}",
                f"{name}:c",
            ).stdout.splitlines()
            assert rows[0] == "sh -c echo hi > /hello; ln -s /hello /lnk|9B|msg"
            info = _inspect(pyd_daemon, f"{name}:c")
            assert info["DockerVersion"] and info["Author"] == "me" and info["Comment"] == "msg"
            assert info["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"
            old = _inspect(pyd_daemon, f"{name}:c", api="1.44")
            cid = pyd_daemon.docker("inspect", "-f", "{{.Id}}", name).stdout.strip()
            assert old["Container"] == cid
            assert old["ContainerConfig"]["Cmd"] == [
                "sh",
                "-c",
                "echo hi > /hello; ln -s /hello /lnk",
            ]
        finally:
            pyd_daemon.docker("rm", "-f", name, check=False)

    def test_commit_pauses_by_default(self, pyd_daemon: PydDaemon) -> None:
        """A running container is paused for the commit and unpaused after (dockerd's
        pause, commit, unpause container events); --pause=false leaves it running."""
        load_busybox(pyd_daemon)
        name = _name()
        pyd_daemon.docker("run", "-d", "--name", name, "pyd-test/busybox", "sleep", "300")
        try:
            since = str(int(time.time()) - 1)
            pyd_daemon.docker("commit", name, f"{name}:p")
            pyd_daemon.docker("commit", "--pause=false", name, f"{name}:np")
            until = str(int(time.time()) + 1)
            actions = pyd_daemon.docker(
                "events", "--since", since, "--until", until, "--filter", f"container={name}",
                "--format", "{{.Action}}",
            ).stdout.split()  # fmt: skip
            wanted = [a for a in actions if a in ("pause", "commit", "unpause")]
            assert wanted == ["pause", "commit", "unpause", "commit"], actions
            state = pyd_daemon.docker("inspect", "-f", "{{.State.Status}}", name).stdout.strip()
            assert state == "running"
        finally:
            pyd_daemon.docker("rm", "-f", name, check=False)

    def test_import_records_version(self, pyd_daemon: PydDaemon, tmp_path: Path) -> None:
        """docker import records DockerVersion and the message as Comment (and history)."""
        built = busybox_image_tar(tmp_path / "bb.tar")
        (tmp_path / "rootfs.tar").write_bytes(built.layers[0])
        name = _name()
        pyd_daemon.docker("import", "-m", "imp", str(tmp_path / "rootfs.tar"), f"{name}:i")
        info = _inspect(pyd_daemon, f"{name}:i")
        assert info["Comment"] == "imp" and info["DockerVersion"]
        assert info["Size"] == _layer_size(built.layers[0])


class SaveParityTests:
    """docker save writes what dockerd 25+ writes."""

    def test_save_layout(self, pyd_daemon: PydDaemon, tmp_path: Path) -> None:
        """repositories points a tag at the top layer's diff id; manifest.json and repositories
        end with a newline (json.Encoder); the OCI layout is there too."""
        built = busybox_image_tar(tmp_path / "bb.tar", "pyd-t-save/bb:1", extra_files={"/a": "a\n"})
        pyd_daemon.docker("load", "-q", "-i", str(tmp_path / "bb.tar"))
        pyd_daemon.docker("save", "-o", str(tmp_path / "out.tar"), "pyd-t-save/bb:1")
        with tarfile.open(tmp_path / "out.tar") as tf:
            names = tf.getnames()
            repos = tf.extractfile("repositories").read()  # type: ignore[union-attr]  # the member exists in the archive docker saved
            manifest = tf.extractfile("manifest.json").read()  # type: ignore[union-attr]  # the member exists in the archive docker saved
        assert {"index.json", "oci-layout", "manifest.json", "repositories"} <= set(names)
        assert repos.endswith(b"}\n") and manifest.endswith(b"]\n")
        assert json.loads(repos) == {"pyd-t-save/bb": {"1": built.diff_ids[-1][7:]}}
        assert json.loads(manifest)[0]["Layers"] == [
            f"blobs/sha256/{d[7:]}" for d in built.diff_ids
        ]


class PullParityTests:
    """docker pull / push progress as dockerd prints it."""

    def test_pull_progress(self, pyd_daemon: PydDaemon, registry: Registry) -> None:
        """Pushing lists layers top-down; pulling an image that is already here prints no layer
        lines; a digest pull is announced by its whole reference."""
        load_busybox(pyd_daemon, tag="pyd-t-pp/bb:1", extra_files={"/a": "a\n"})
        ref = f"{registry.host}/pyd-t-pp/bb:1"
        pyd_daemon.docker("tag", "pyd-t-pp/bb:1", ref)
        out = pyd_daemon.docker("push", ref).stdout.splitlines()
        top, base = _inspect(pyd_daemon, ref)["RootFS"]["Layers"][::-1]
        assert out[1:3] == [f"{top[7:19]}: Preparing", f"{base[7:19]}: Preparing"], out
        digest = out[-1].split()[2]
        pyd_daemon.docker("rmi", ref)
        lines = pyd_daemon.docker("pull", ref).stdout.splitlines()
        assert lines == [
            "1: Pulling from pyd-t-pp/bb",
            f"Digest: {digest}",
            f"Status: Downloaded newer image for {ref}",
            ref,
        ], lines
        by_digest = f"{registry.host}/pyd-t-pp/bb@{digest}"
        lines = pyd_daemon.docker("pull", by_digest).stdout.splitlines()
        assert lines[0] == f"{by_digest}: Pulling from pyd-t-pp/bb", lines
        # nothing local to push: the stream starts, then ends with dockerd's error (no
        # "Error response from daemon" prefix: it is in-band)
        r = pyd_daemon.docker("push", f"{registry.host}/pyd-t-pp/none:1", check=False)
        assert r.returncode == 1
        assert r.stdout.splitlines() == [
            f"The push refers to repository [{registry.host}/pyd-t-pp/none]"
        ]
        assert r.stderr.strip() == (
            f"An image does not exist locally with the tag: {registry.host}/pyd-t-pp/none"
        )
        r = pyd_daemon.docker("push", f"{registry.host}/pyd-t-pp/bb:nope", check=False)
        assert r.returncode == 1
        assert r.stderr.strip() == f"tag does not exist: {registry.host}/pyd-t-pp/bb:nope"
        r = pyd_daemon.docker("pull", f"{registry.host}/pyd-t-pp/bb:nosuch", check=False)
        assert r.returncode == 1
        assert r.stderr.strip() == (
            f"Error response from daemon: manifest for {registry.host}/pyd-t-pp/bb:nosuch not "
            "found: manifest unknown: manifest unknown"
        )


class SearchCLITests:
    """docker search against a fake index on loopback."""

    def test_search_table_and_filters(self, pyd_daemon: PydDaemon, index: FakeIndex) -> None:
        """The CLI's table, --limit, --filter is-official/stars, is-automated's deprecation
        (nothing found) and --format, as dockerd answers."""
        out = pyd_daemon.docker("search", f"{index.host}/busy").stdout.splitlines()
        assert out[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
        assert [line.split()[0] for line in out[1:]] == [
            "library/busybox", "someone/busybox-tools", "other/busybox-mini",
        ]  # fmt: skip
        assert out[1].split()[-2:] == ["3300", "[OK]"]
        out = pyd_daemon.docker("search", "--limit", "1", f"{index.host}/busy").stdout
        assert len(out.splitlines()) == 2
        assert index.searches()[-1].query == {"q": ["busy"], "n": ["1"]}
        out = pyd_daemon.docker(
            "search", "--filter", "is-official=true", "--filter", "stars=5000", "--format",
            "{{.Name}} {{.StarCount}} {{.IsOfficial}}", f"{index.host}/i",
        ).stdout  # fmt: skip
        assert out.splitlines() == ["library/alpine 11000 [OK]"]
        r = pyd_daemon.docker("search", "--filter", "is-automated=true", f"{index.host}/busy")
        assert r.stdout.splitlines() == ["NAME      DESCRIPTION   STARS     OFFICIAL"]
        status, _, body = pyd_daemon.request(
            "GET", f"/v1.50/images/search?term={index.host}/busybox-tools"
        )
        assert status == 200
        assert json.loads(body) == [
            {
                "star_count": 12,
                "is_official": False,
                "name": "someone/busybox-tools",
                "is_automated": False,
                "description": "Tools on busybox",
            }
        ]

    def test_search_errors(self, pyd_daemon: PydDaemon, index: FakeIndex) -> None:
        """Bad filters and limits, and an index that cannot be reached, fail as dockerd's do."""
        for args, msg in (
            (("--filter", "foo=1"), "invalid filter 'foo'"),
            (("--limit", "101"), "limit 101 is outside the range of [1, 100]"),
        ):
            r = pyd_daemon.docker("search", *args, f"{index.host}/b", check=False)
            assert r.returncode == 1
            assert r.stderr.strip() == f"Error response from daemon: {msg}"
        port = free_port()
        r = pyd_daemon.docker("search", f"127.0.0.1:{port}/b", check=False)
        assert r.returncode == 1
        assert r.stderr.strip() == (
            f'Error response from daemon: invalid registry endpoint "http://127.0.0.1:{port}/v1/". '
            f'HTTPS attempt: Get "https://127.0.0.1:{port}/v1/_ping": dial tcp 127.0.0.1:{port}: '
            f'connect: connection refused. HTTP attempt: Get "http://127.0.0.1:{port}/v1/_ping": '
            f"dial tcp 127.0.0.1:{port}: connect: connection refused"
        )
        index.status = 500
        r = pyd_daemon.docker("search", f"{index.host}/b", check=False)
        assert r.stderr.strip() == "Error response from daemon: Unexpected status code 500"

    def test_search_sends_credentials(self, pyd_daemon: PydDaemon, index: FakeIndex) -> None:
        """Credentials stored for the index (docker login's config) reach it as basic auth."""
        import base64

        cfg = pyd_daemon.base / "docker-config"
        cfg.mkdir(exist_ok=True)
        token = base64.b64encode(b"joe:secret").decode()
        (cfg / "config.json").write_text(json.dumps({"auths": {index.host: {"auth": token}}}))
        try:
            pyd_daemon.docker("search", f"{index.host}/busy")
            assert index.searches()[-1].headers["authorization"] == f"Basic {token}"
        finally:
            (cfg / "config.json").unlink()
