"""Volumes and mounts used by real containers, driven by the docker CLI (issue 6)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import docker
import pytest

from tests.helpers.daemon import PydDaemon
from tests.helpers.images import File, load_busybox

pytestmark = pytest.mark.e2e

IMG = "pyd-t-vol/bb:1"


def _name() -> str:
    return "pyd-t-" + uuid.uuid4().hex[:8]


def _load(d: PydDaemon) -> None:
    load_busybox(
        d,
        tag=IMG,
        extra_files={
            "/data/seed.txt": File(b"seed\n", mode=0o640, uid=1000, gid=1000),
            "/data/sub/x": File(b"x", mode=0o4755),
        },
        config={"Volumes": {"/data": {}}},
    )


@pytest.fixture(scope="module")
def vd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PydDaemon]:
    """One daemon with the test image for the whole module (tests use unique names)."""
    d = PydDaemon(str(tmp_path_factory.mktemp("pydvol")))
    try:
        d.start()
        _load(d)
        yield d
    finally:
        d.cleanup()


def _volumes(d: PydDaemon) -> list[str]:
    return d.docker("volume", "ls", "-q").stdout.split()


class VolumeContainerTests:
    """What the issue's checks ask for, with the real CLI."""

    def test_write_then_read_and_in_use(self, vd: PydDaemon) -> None:
        """Data written in one container is read in the next; the volume cannot be removed
        while a (stopped) container refers to it, and can once it is gone."""
        v = _name()
        vd.docker(
            "run", "--rm", "-v", f"{v}:/store", IMG, "sh", "-c", "echo written-once > /store/f"
        )
        out = vd.docker("run", "--rm", "-v", f"{v}:/store:ro", IMG, "cat", "/store/f")
        assert out.stdout == "written-once\n"
        c = _name()
        vd.docker("create", "--name", c, "-v", f"{v}:/store", IMG, "true")
        r = vd.docker("volume", "rm", "-f", v, check=False)
        assert r.returncode == 1
        assert f"remove {v}: volume is in use - [" in r.stderr
        cid = vd.docker("inspect", "-f", "{{.Id}}", c).stdout.strip()
        assert cid in r.stderr
        mounts = json.loads(vd.docker("inspect", "-f", "{{json .Mounts}}", c).stdout)
        mounts = [m for m in mounts if m["Destination"] != "/data"]  # the image's VOLUME
        assert mounts == [
            {
                "Type": "volume",
                "Name": v,
                "Source": os.path.join(vd.data_root, "volumes", v, "_data"),
                "Destination": "/store",
                "Driver": "local",
                "Mode": "z",
                "RW": True,
                "Propagation": "",
            }
        ]
        vd.docker("rm", c)
        vd.docker("volume", "rm", v)

    def test_rm_leaves_nothing(self, vd: PydDaemon) -> None:
        """A --rm container with an anonymous volume (-v /path and the image's VOLUME) leaves
        no volume behind; `docker rm -v` removes them too, `docker rm` alone keeps them."""
        before = _volumes(vd)
        vd.docker(
            "run", "--rm", "-v", "/scratch", IMG, "sh", "-c", "echo x > /scratch/y && ls /data"
        )
        assert _volumes(vd) == before
        c = _name()
        vd.docker("run", "--name", c, "-v", "/scratch", IMG, "true")
        assert len(_volumes(vd)) == len(before) + 2
        vd.docker("rm", "-v", c)
        assert _volumes(vd) == before
        vd.docker("run", "--name", c, IMG, "true")
        vd.docker("rm", c)
        left = set(_volumes(vd)) - set(before)
        assert len(left) == 1
        out = vd.docker("volume", "prune", "-f").stdout
        assert left.pop() in out
        assert not set(_volumes(vd)) - set(before)

    def test_copy_up(self, vd: PydDaemon) -> None:
        """A fresh named volume gets the image's content at the mount path, owners and modes
        kept; nocopy leaves it empty."""
        v = _name()
        out = vd.docker(
            "run",
            "--rm",
            "-v",
            f"{v}:/data",
            IMG,
            "sh",
            "-c",
            "stat -c '%u:%g %a' /data/seed.txt /data/sub/x; cat /data/seed.txt",
        )
        assert out.stdout.split("\n")[:3] == ["1000:1000 640", "0:0 4755", "seed"]
        host = os.path.join(vd.data_root, "volumes", v, "_data", "seed.txt")
        st = os.stat(host)
        assert (st.st_uid, st.st_mode & 0o7777) == (1000, 0o640)
        n = _name()
        out = vd.docker("run", "--rm", "-v", f"{n}:/data:nocopy", IMG, "ls", "-A", "/data")
        assert out.stdout == ""

    def test_tmpfs_size_enforced(self, vd: PydDaemon) -> None:
        """--mount type=tmpfs,tmpfs-size=1m: writing 2 MB fails; a tmpfs volume is mounted while
        used and unmounted afterwards."""
        r = vd.docker(
            "run",
            "--rm",
            "--mount",
            "type=tmpfs,destination=/t,tmpfs-size=1m",
            IMG,
            "dd",
            "if=/dev/zero",
            "of=/t/f",
            "bs=1024",
            "count=2048",
            check=False,
        )
        assert r.returncode != 0
        assert "No space left on device" in r.stderr
        v = _name()
        vd.docker(
            "volume",
            "create",
            "--opt",
            "type=tmpfs",
            "--opt",
            "device=tmpfs",
            "--opt",
            "o=size=1m",
            v,
        )
        r = vd.docker(
            "run",
            "--rm",
            "-v",
            f"{v}:/t",
            IMG,
            "sh",
            "-c",
            "grep ' /t ' /proc/mounts; dd if=/dev/zero of=/t/f bs=1024 count=2048",
            check=False,
        )
        assert r.returncode != 0 and "tmpfs" in r.stdout
        data = os.path.join(vd.data_root, "volumes", v, "_data")
        with open("/proc/self/mountinfo") as f:
            assert not any(line.split(" ")[4] == data for line in f)

    def test_binds(self, vd: PydDaemon) -> None:
        """-v creates a missing host directory; --mount refuses a missing source."""
        host = os.path.join(str(vd.base), "made", "here")
        vd.docker("run", "--rm", "-v", f"{host}:/h", IMG, "sh", "-c", "echo hi > /h/f")
        with open(os.path.join(host, "f")) as f:
            assert f.read() == "hi\n"
        missing = os.path.join(str(vd.base), "nope")
        r = vd.docker(
            "run", "--rm", "--mount", f"type=bind,src={missing},dst=/x", IMG, "true", check=False
        )
        assert r.returncode != 0
        assert f"bind source path does not exist: {missing}" in r.stderr
        assert not os.path.exists(missing)
        r = vd.docker("run", "--rm", "-v", f"{host}:/h:ro", IMG, "touch", "/h/g", check=False)
        assert r.returncode != 0

    def test_volumes_from(self, vd: PydDaemon) -> None:
        """--volumes-from shares the other container's volumes (read-only with :ro)."""
        src = _name()
        vd.docker(
            "run", "--name", src, "-v", "/shared", IMG, "sh", "-c", "echo from-src > /shared/f"
        )
        out = vd.docker("run", "--rm", "--volumes-from", src, IMG, "cat", "/shared/f")
        assert out.stdout == "from-src\n"
        r = vd.docker(
            "run", "--rm", "--volumes-from", f"{src}:ro", IMG, "touch", "/shared/g", check=False
        )
        assert r.returncode != 0

    def test_docker_py(self, vd: PydDaemon) -> None:
        """docker-py: containers.run with a volumes dict, then the volume's inspect."""
        client = docker.DockerClient(base_url=vd.host)
        try:
            v = _name()
            out = client.containers.run(
                IMG,
                "sh -c 'echo pyvol > /v/f; cat /v/f'",
                volumes={v: {"bind": "/v", "mode": "rw"}},
                remove=True,
            )
            assert out == b"pyvol\n"
            assert client.volumes.get(v).attrs["Mountpoint"].endswith(f"/volumes/{v}/_data")
        finally:
            client.close()

    def test_survives_daemon_kill9(self, vd: PydDaemon) -> None:
        """Data in a volume survives kill -9 of the daemon and a restart."""
        v = _name()
        vd.docker("run", "--rm", "-v", f"{v}:/store", IMG, "sh", "-c", "echo durable > /store/f")
        vd.kill9()
        vd.start()
        out = vd.docker("run", "--rm", "-v", f"{v}:/store", IMG, "cat", "/store/f")
        assert out.stdout == "durable\n"
