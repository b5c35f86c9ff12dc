"""prune's reclaimed space, ps exited/status filters, policy-restart events, docker cp's
overwrite and ownership options: the real CLI against pyd, compared with dockerd's behaviour."""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
import uuid

import pytest

from tests.helpers.daemon import PydDaemon
from tests.helpers.daemon import wait_until as _until
from tests.helpers.images import DEFAULT_TAG

pytestmark = pytest.mark.e2e

IMG = DEFAULT_TAG


def _name() -> str:
    return "pyd-t-" + uuid.uuid4().hex[:8]


def _tar(*entries: tuple[str, bytes | None, int]) -> bytes:
    """(name, content or None for a directory, uid) entries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data, uid in entries:
            info = tarfile.TarInfo(name)
            info.uid = info.gid = uid
            info.mtime = 1_700_000_000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _owners(d: PydDaemon, ref: str, path: str) -> dict[str, tuple[int, int]]:
    code, _, body = d.request("GET", f"/containers/{ref}/archive?path={path}")
    assert code == 200, body
    with tarfile.open(fileobj=io.BytesIO(body)) as tf:
        return {m.name: (m.uid, m.gid) for m in tf}


class PruneAndListCLITests:
    def test_prune_reports_reclaimed_space(self, pyd: PydDaemon) -> None:
        """container prune: SpaceReclaimed is the removed writable layers (1 MB written)."""
        n = _name()
        pyd.docker("run", "--name", n, IMG, "sh", "-c", "head -c 1000000 /dev/zero > /big")
        code, _, body = pyd.request("POST", "/containers/prune")
        assert code == 200
        result = json.loads(body)
        assert len(result["ContainersDeleted"]) == 1
        assert 1_000_000 <= result["SpaceReclaimed"] < 1_100_000
        pyd.docker("run", "--name", _name(), IMG, "sh", "-c", "head -c 2000000 /dev/zero > /b")
        out = pyd.docker("container", "prune", "-f").stdout
        assert re.search(r"Total reclaimed space: 2(\.\d+)?MB", out), out

    def test_exited_and_status_filters(self, pyd: PydDaemon) -> None:
        """exited=N needs -a (it does not imply it, status does) and a container that ran;
        bad values get moby's foldFilter errors."""
        ex, created, running = _name(), _name(), _name()
        pyd.docker("run", "--name", ex, IMG, "sh", "-c", "exit 3", check=False)
        pyd.docker("create", "--name", created, IMG, "true")
        pyd.docker("run", "-d", "--name", running, IMG, "sleep", "60")

        def names(*args: str) -> set[str]:
            out = pyd.docker("ps", "--format", "{{.Names}}", *args).stdout
            return {x for x in out.split() if x.startswith("pyd-t-")}

        assert names("--filter", "exited=3") == set()
        assert names("-a", "--filter", "exited=3") == {ex}
        assert names("-a", "--filter", "exited=0") == set()
        assert names("--filter", "status=exited") == {ex}
        assert names("--filter", "status=created") == {created}
        assert names("--filter", "status=running", "--filter", "status=created") == {
            running,
            created,
        }
        r = pyd.docker("ps", "--filter", "exited=abc", check=False)
        assert "invalid filter 'exited=abc': strconv.Atoi: parsing \"abc\": invalid syntax" in (
            r.stderr
        )
        r = pyd.docker("ps", "--filter", "status=up", check=False)
        assert "invalid filter 'status=up': invalid value for state (up)" in r.stderr

    def test_policy_restart_events(self, pyd: PydDaemon) -> None:
        """on-failure:2: create, start, then die/start per restart, the last die; RestartCount 2."""
        n = _name()
        since = str(int(time.time()) - 1)
        pyd.docker("run", "-d", "--name", n, "--restart", "on-failure:2", IMG, "sh", "-c", "exit 3")

        def done() -> bool:
            info = json.loads(pyd.docker("inspect", n).stdout)[0]
            return info["State"]["Status"] == "exited" and info["RestartCount"] == 2

        _until(done)
        out = pyd.docker(
            "events", "--since", since, "--until", str(int(time.time()) + 1),
            "--filter", f"container={n}", "--format", "{{.Action}} {{index .Actor.Attributes \"exitCode\"}}",
        ).stdout.split("\n")  # fmt: skip
        actions = [x.strip() for x in out if x.strip()]
        assert actions == ["create", "start", "die 3", "start", "die 3", "start", "die 3"]


class ArchivePutCLITests:
    def test_no_overwrite_dir_non_dir(self, pyd: PydDaemon) -> None:
        """docker cp (noOverwriteDirNonDir=true) refuses a file over a directory and the reverse
        with go-archive's text; the raw API without the flag replaces."""
        n = _name()
        pyd.docker("create", "--name", n, IMG, "true")
        put = "/containers/{}/archive?path=/tmp{}"
        hdr = {"Content-Type": "application/x-tar"}
        assert pyd.request("PUT", put.format(n, ""), _tar(("x", None, 0)), hdr)[0] == 200
        code, _, body = pyd.request(
            "PUT", put.format(n, "&noOverwriteDirNonDir=1"), _tar(("x", b"f", 0)), hdr
        )
        assert (code, json.loads(body)["message"]) == (
            500,
            'cannot overwrite directory "/tmp/x" with non-directory "/tmp"',
        )
        assert pyd.request("PUT", put.format(n, ""), _tar(("x", b"f", 0)), hdr)[0] == 200
        code, _, body = pyd.request(
            "PUT", put.format(n, "&noOverwriteDirNonDir=true"), _tar(("x", None, 0)), hdr
        )
        assert (code, json.loads(body)["message"]) == (
            500,
            'cannot overwrite non-directory "/tmp/x" with directory "/tmp"',
        )
        r = pyd.docker("cp", "-", f"{n}:/tmp", input=_tar(("x/", None, 0)), check=False)
        assert 'cannot overwrite non-directory "/tmp/x" with directory "/tmp"' in r.stderr

    def test_copy_uid_gid(self, pyd: PydDaemon) -> None:
        """Without copyUIDGID the archive's owners stay; with it (cp -a) the container's User
        owns what is extracted."""
        n = _name()
        pyd.docker("create", "--name", n, "-u", "daemon", IMG, "true")
        hdr = {"Content-Type": "application/x-tar"}
        tar = _tar(("d", None, 1234), ("d/f", b"x", 1234))
        code, _, _ = pyd.request("PUT", f"/containers/{n}/archive?path=/tmp", tar, hdr)
        assert code == 200
        assert _owners(pyd, n, "/tmp/d") == {"d": (1234, 1234), "d/f": (1234, 1234)}
        code, _, _ = pyd.request("PUT", f"/containers/{n}/archive?path=/tmp&copyUIDGID=1", tar, hdr)
        assert code == 200
        assert _owners(pyd, n, "/tmp/d") == {"d": (1, 1), "d/f": (1, 1)}


class ExitRaceTests:
    """A kill racing the container's own exit (crun: open pidfd: No such process) is dockerd's
    answer, never a 500: rm -f removes the container, kill is done or 409 is not running."""

    def test_force_remove_and_kill_at_exit(self, pyd: PydDaemon) -> None:
        for i in range(16):
            delay = (i % 8) * 0.01  # sweep the signal across the process's last moments
            for action in ("rm", "kill"):
                n = _name()
                code, _, body = pyd.request(
                    "POST", f"/containers/create?name={n}",
                    {"Image": IMG, "Cmd": ["usleep", str(int(delay * 1e6))]},
                )  # fmt: skip
                assert code == 201, body
                code, _, body = pyd.request("POST", f"/containers/{n}/start")
                assert code == 204, body
                time.sleep(delay)  # pacing only: aim the signal at the exit
                if action == "rm":
                    code, _, body = pyd.request("DELETE", f"/containers/{n}?force=1")
                    assert code == 204, body
                    code, _, _ = pyd.request("GET", f"/containers/{n}/json")
                    assert code == 404
                else:
                    code, _, body = pyd.request("POST", f"/containers/{n}/kill")
                    assert code == 204 or (code == 409 and b"is not running" in body), body
                    pyd.request("DELETE", f"/containers/{n}?force=1")


class RuntimeErrorTextTests:
    """A runtime error passed through to the client names no path of the daemon's own (exec
    root, data root, staging points): crun's `mount <staging point> to /etc` names the volume
    path the client asked for, under <data-root>."""

    def test_mount_error_names_no_host_path(self, pyd: PydDaemon) -> None:
        vol, n = _name(), _name()
        pyd.docker("volume", "create", vol)
        pyd.docker("run", "--rm", "-v", f"{vol}:/v", IMG, "touch", "/v/f")
        code, _, body = pyd.request(
            "POST", f"/containers/create?name={n}",
            {"Image": IMG, "Cmd": ["true"], "HostConfig": {"Mounts": [
                {"Type": "volume", "Source": vol, "Target": "/etc",
                 "VolumeOptions": {"Subpath": "f"}}]}},
        )  # fmt: skip
        assert code == 201, body
        code, _, body = pyd.request("POST", f"/containers/{n}/start")
        assert code == 400, body
        msg = json.loads(body)["message"]
        assert "crun" in msg, msg  # the runtime's own refusal, passed through
        for root in (pyd.base, pyd.exec_root, pyd.data_root):
            assert str(root) not in msg, msg
        assert f"<data-root>/volumes/{vol}/_data/f" in msg, msg
        inspect = json.loads(pyd.docker("inspect", n).stdout)[0]
        assert str(pyd.base) not in inspect["State"]["Error"]
