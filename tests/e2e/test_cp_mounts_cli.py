"""`docker cp` sees what the container sees at its mount points (volumes, binds, tmpfs).

The real CLI against pyd: files go into and come out of the mounted filesystems, not the root
underneath them, for running and stopped containers; read-only mounts and a read-only root are
refused with dockerd's texts; /proc, /sys and /dev of the runtime are not exposed; symlinks never
lead to host paths; export leaves the volumes out.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.daemon import DOCKER, PydDaemon
from tests.helpers.images import DEFAULT_TAG, load_busybox

pytestmark = pytest.mark.e2e
IMG = DEFAULT_TAG


def _name() -> str:
    return "pyd-t-" + uuid.uuid4().hex[:10]


@pytest.fixture
def daemon(pyd_daemon: PydDaemon) -> PydDaemon:
    load_busybox(pyd_daemon)
    return pyd_daemon


@pytest.fixture
def hostdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="pyd-t-cp-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _cp_in(daemon: PydDaemon, tmp: Path, name: str, text: str, dest: str) -> None:
    src = tmp / name
    src.write_text(text)
    daemon.docker("cp", str(src), dest)


def _cp_out(daemon: PydDaemon, src: str, tmp: Path) -> str:
    out = tmp / ("out-" + uuid.uuid4().hex[:8])
    daemon.docker("cp", src, str(out))
    return out.read_text()


class RunningContainerMountsTests:
    """A running container with a named, an anonymous, a nested, a read-only volume, a bind
    mount and a tmpfs."""

    def test_copy_through_every_kind_of_mount(
        self, daemon: PydDaemon, hostdir: Path, tmp_path: Path
    ) -> None:
        """Files copied in are seen by the container in its mounts (and in the bind's host
        directory); files the container writes there are copied out; the root under the mounts
        is untouched."""
        n, vol, nested, ro = _name(), _name(), _name(), _name()
        bind = hostdir / "bind"
        bind.mkdir()
        daemon.docker("volume", "create", ro)
        daemon.docker(
            "run", "-d", "--name", n,
            "-v", f"{vol}:/data", "-v", "/anon", "-v", f"{bind}:/bind", "--tmpfs", "/tmpfs",
            "-v", f"{nested}:/data/nested", "-v", f"{ro}:/ro:ro",
            IMG, "sleep", "300",
        )  # fmt: skip
        dests = ["/data", "/anon", "/bind", "/tmpfs", "/data/nested"]
        for i, d in enumerate(dests):
            _cp_in(daemon, tmp_path, f"in{i}", f"in-{i}\n", f"{n}:{d}/")
        cat = [f"{d}/in{i}" for i, d in enumerate(dests)]
        out = daemon.docker("exec", n, "cat", *cat).stdout
        assert out == "".join(f"in-{i}\n" for i in range(len(dests)))
        assert (bind / "in2").read_text() == "in-2\n"
        script = "; ".join(f"echo from-c-{i} > {d}/mine" for i, d in enumerate(dests))
        daemon.docker("exec", n, "sh", "-c", script)
        for i, d in enumerate(dests):
            assert _cp_out(daemon, f"{n}:{d}/mine", tmp_path) == f"from-c-{i}\n"
        # a directory copied out of the volume holds the nested volume's content too
        daemon.docker("cp", f"{n}:/data", str(tmp_path / "datadir"))
        assert (tmp_path / "datadir" / "nested" / "mine").read_text() == "from-c-4\n"
        # the read-only volume: dockerd's refusal, nothing written
        (tmp_path / "rofile").write_text("x\n")
        r = daemon.docker("cp", str(tmp_path / "rofile"), f"{n}:/ro/", check=False)
        assert r.returncode != 0
        assert "mounted volume is marked read-only" in r.stderr
        assert daemon.docker("exec", n, "ls", "-A", "/ro").stdout == ""
        # the hosts files are the container's own
        hostname = daemon.docker("exec", n, "hostname").stdout.strip()
        assert _cp_out(daemon, f"{n}:/etc/hostname", tmp_path).strip() == hostname
        # the root under the mounts stayed empty: export has no volume content
        exported = subprocess.run(
            [DOCKER, "-H", daemon.host, "export", n], capture_output=True, check=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(exported)) as tf:
            names = tf.getnames()
        for d in dests:
            assert not [x for x in names if x.startswith(d.lstrip("/") + "/")], d

    def test_runtime_mounts_and_host_paths_stay_out(
        self, daemon: PydDaemon, hostdir: Path, tmp_path: Path
    ) -> None:
        """The runtime's /proc is not in the view; a symlink in a volume to /etc means the
        container's /etc (also while paused), and one to a host directory leads nowhere on the
        host."""
        n, vol = _name(), _name()
        secret = hostdir / "secret"
        secret.mkdir()
        (secret / "s").write_text("host-secret\n")
        daemon.docker("run", "-d", "--name", n, "-v", f"{vol}:/data", IMG, "sleep", "300")
        r = daemon.docker("cp", f"{n}:/proc/1/status", str(tmp_path / "p"), check=False)
        assert r.returncode != 0 and "Could not find the file" in r.stderr
        daemon.docker(
            "exec", n, "sh", "-c",
            f"echo in-container > /etc/marker; ln -s /etc /data/etc; ln -s {secret} /data/esc",
        )  # fmt: skip
        assert _cp_out(daemon, f"{n}:/data/etc/marker", tmp_path) == "in-container\n"
        daemon.docker("pause", n)  # a paused container's view is its live one too
        try:
            assert _cp_out(daemon, f"{n}:/data/etc/marker", tmp_path) == "in-container\n"
        finally:
            daemon.docker("unpause", n)
        r = daemon.docker("cp", f"{n}:/data/esc/s", str(tmp_path / "got"), check=False)
        assert r.returncode != 0 and "Could not find the file" in r.stderr
        (tmp_path / "evil").write_text("evil\n")
        daemon.docker("cp", str(tmp_path / "evil"), f"{n}:/data/esc/", check=False)
        daemon.docker("cp", str(tmp_path / "evil"), f"{n}:/data/etc/", check=False)
        assert sorted(p.name for p in secret.iterdir()) == ["s"]
        assert not Path("/etc/evil").exists()
        assert daemon.docker("exec", n, "cat", "/etc/evil").stdout == "evil\n"


class StoppedContainerMountsTests:
    """A container that is not running: its volumes' and binds' sources are mounted."""

    def test_copy_into_and_out_of_a_stopped_container(
        self, daemon: PydDaemon, hostdir: Path, tmp_path: Path
    ) -> None:
        """cp into a created container's volume lands in the volume (the next container using
        it sees it); out of its bind comes the host file; read-only and tmpfs mounts and a
        read-only root behave as the container would see them."""
        n, vol, ro = _name(), _name(), _name()
        bind = hostdir / "bind"
        bind.mkdir()
        (bind / "hostfile").write_text("from-host\n")
        daemon.docker("volume", "create", ro)
        daemon.docker(
            "create", "--name", n, "-v", f"{vol}:/data", "-v", f"{bind}:/bind",
            "-v", f"{ro}:/ro:ro", "--tmpfs", "/t", IMG, "true",
        )  # fmt: skip
        _cp_in(daemon, tmp_path, "f", "to-volume\n", f"{n}:/data/")
        out = daemon.docker("run", "--rm", "-v", f"{vol}:/v", IMG, "cat", "/v/f").stdout
        assert out == "to-volume\n"
        assert _cp_out(daemon, f"{n}:/bind/hostfile", tmp_path) == "from-host\n"
        _cp_in(daemon, tmp_path, "b", "to-bind\n", f"{n}:/bind/")
        assert (bind / "b").read_text() == "to-bind\n"
        r = daemon.docker("cp", str(tmp_path / "f"), f"{n}:/ro/", check=False)
        assert r.returncode != 0 and "mounted volume is marked read-only" in r.stderr
        daemon.docker("cp", f"{n}:/t", str(tmp_path / "tdir"))
        assert list((tmp_path / "tdir").iterdir()) == []
        # after a run the container is stopped: the same holds
        daemon.docker("start", "-a", n)
        assert _cp_out(daemon, f"{n}:/data/f", tmp_path) == "to-volume\n"
        assert _cp_out(daemon, f"{n}:/etc/hostname", tmp_path).strip() == (
            daemon.docker("inspect", "-f", "{{.Config.Hostname}}", n).stdout.strip()
        )
        exported = subprocess.run(
            [DOCKER, "-H", daemon.host, "export", n], capture_output=True, check=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(exported)) as tf:
            assert "data/f" not in tf.getnames()
            assert "bind/hostfile" not in tf.getnames()

    def test_read_only_root(self, daemon: PydDaemon, tmp_path: Path) -> None:
        """--read-only: cp into the root is refused with dockerd's text, into a volume works."""
        n, vol = _name(), _name()
        daemon.docker(
            "run", "-d", "--name", n, "--read-only", "-v", f"{vol}:/data", IMG, "sleep", "300"
        )
        (tmp_path / "f").write_text("x\n")
        r = daemon.docker("cp", str(tmp_path / "f"), f"{n}:/tmp/", check=False)
        assert r.returncode != 0 and "container rootfs is marked read-only" in r.stderr
        daemon.docker("cp", str(tmp_path / "f"), f"{n}:/data/")
        assert daemon.docker("exec", n, "cat", "/data/f").stdout == "x\n"
