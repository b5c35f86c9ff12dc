"""Attack suite: volumes and mounts never reach the host (issue 12 escapes 4, 5, 9; issue 13
escapes 6, 7).

Each test performs the attack with the real docker CLI or raw API calls against a pyd daemon as
root, then checks the host: a canary directory (its listing, its file's content, its mode) is
unchanged, nothing of the host is mounted into a container (the device and inode of what the
container sees against the host's /), no staging mount is left behind, and no answer is a 5xx.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.daemon import PydDaemon, wait_until
from tests.helpers.images import DEFAULT_TAG, File, load_busybox

pytestmark = pytest.mark.e2e

IMG = DEFAULT_TAG
SEED = "pyd-t-attack/seed:1"
RACE_STARTS = 50
SECRET = "host secret\n"


def _name() -> str:
    return "pyd-t-" + uuid.uuid4().hex[:10]


@pytest.fixture
def canary() -> Iterator[Path]:
    """A host directory (0700, one file) that no attack may read, change, chmod or fill."""
    d = Path(tempfile.mkdtemp(prefix="pyd-t-canary-"))
    (d / "secret").write_text(SECRET)
    os.chmod(d, 0o700)
    before = os.stat(d)
    try:
        yield d
        assert sorted(os.listdir(d)) == ["secret"]
        assert (d / "secret").read_text() == SECRET
        after = os.stat(d)
        assert (after.st_mode, after.st_uid, after.st_gid) == (
            before.st_mode,
            before.st_uid,
            before.st_gid,
        )
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _api(d: PydDaemon, method: str, path: str, body: object = None) -> tuple[int, bytes]:
    status, _, out = d.request(method, path, body)
    assert status < 500, f"{method} {path} -> {status} {out!r}\n" + d.log()[-3000:]
    return status, out


def _message(out: bytes) -> str:
    try:
        return str(json.loads(out).get("message", ""))
    except ValueError:
        return out.decode("utf-8", "replace")


def _create(d: PydDaemon, name: str, body: dict) -> str:
    status, out = _api(d, "POST", f"/containers/create?name={name}", body)
    assert status == 201, out
    return str(json.loads(out)["Id"])


def _host_root() -> tuple[int, int]:
    info = os.stat("/")
    return info.st_dev, info.st_ino


def _staging_mounts(d: PydDaemon) -> list[str]:
    under = os.path.join(d.exec_root, "mounts")
    with open("/proc/self/mountinfo") as f:
        return [ln.split(" ")[4] for ln in f if ln.split(" ")[4].startswith(under + "/")]


def _plant(d: PydDaemon, vol: str, script: str) -> None:
    d.docker("run", "--rm", "-v", f"{vol}:/v", IMG, "sh", "-c", script)


def _subpath_body(vol: str, sub: str, cmd: list[str]) -> dict:
    return {
        "Image": IMG,
        "Cmd": cmd,
        "HostConfig": {
            "Mounts": [
                {"Type": "volume", "Source": vol, "Target": "/x", "VolumeOptions": {"Subpath": sub}}
            ]
        },
    }


@pytest.fixture(scope="module")
def seeded(shared_daemon: PydDaemon) -> str:
    """An image whose /seed holds a 0777 directory with many files (what copy-up copies)."""
    files: dict[str, File | bytes] = {"/seed/d": File(b"", kind="dir", mode=0o777)}
    for i in range(300):
        files[f"/seed/d/f{i:03d}"] = b"seed\n"
    files["/seed/d/e"] = File(b"", kind="dir", mode=0o777)
    files["/seed/d/e/deep"] = b"deep\n"
    load_busybox(shared_daemon, tag=SEED, extra_files=files)
    return SEED


class SubpathLinkTests:
    """Escape 12.4 / 13.6 without a race: the subpath is, or passes through, a link out."""

    @pytest.mark.parametrize(
        ("plant", "sub"),
        [
            ("ln -s / /v/sub", "sub"),
            ("ln -s {canary} /v/sub", "sub"),
            ("ln -s ../../../../../../../../.. /v/sub", "sub"),
            ("mkdir /v/a && ln -s / /v/a/b", "a/b"),
            ("ln -s / /v/a", "a{canary}"),
            ("mkdir /v/a && ln -s ../.. /v/a/up", "a/up/x"),
        ],
    )
    def test_start_and_cp_refused(self, pyd: PydDaemon, canary: Path, plant: str, sub: str) -> None:
        """docker cp out of and into a created container, HEAD archive, and start: all refused
        with a 4xx; the host file is neither read nor written."""
        vol, c = _name(), _name()
        pyd.docker("volume", "create", vol)
        _plant(pyd, vol, plant.format(canary=canary))
        cid = _create(pyd, c, _subpath_body(vol, sub.format(canary=canary), ["true"]))
        inside = f"/x{canary}/secret" if "{canary}" not in sub else "/x/secret"
        r = pyd.docker("cp", f"{c}:{inside}", "-", check=False)
        assert r.returncode != 0 and SECRET.strip() not in r.stdout
        assert "Error response from daemon" in r.stderr
        src = Path(tempfile.mkdtemp(prefix="pyd-t-src-"))
        try:
            (src / "planted").write_text("attacker\n")
            r = pyd.docker(
                "cp", str(src / "planted"), f"{c}:{os.path.dirname(inside)}/", check=False
            )
            assert r.returncode != 0
        finally:
            shutil.rmtree(src, ignore_errors=True)
        status, _ = _api(pyd, "HEAD", f"/containers/{cid}/archive?path={inside}")
        assert status in (400, 404)
        status, out = _api(pyd, "POST", f"/containers/{cid}/start")
        assert status in (400, 404), out
        # dockerd's texts, naming the subpath as given (never where a link points on the host)
        assert _message(out).startswith(("path concatenation escapes", "cannot access path"))
        assert SECRET.strip() not in _message(out)
        assert _staging_mounts(pyd) == []

    def test_missing_subpath_is_404_and_inside_link_works(self, pyd: PydDaemon) -> None:
        """dockerd's behaviour kept: a missing subpath is 404 at start; a link that stays
        inside the volume is followed and the container sees that directory."""
        vol, c1, c2 = _name(), _name(), _name()
        pyd.docker("volume", "create", vol)
        cid = _create(pyd, c1, _subpath_body(vol, "nothing", ["true"]))
        status, out = _api(pyd, "POST", f"/containers/{cid}/start")
        assert status == 404 and "cannot access path nothing" in _message(out)
        _plant(pyd, vol, "mkdir /v/real && echo in-volume > /v/real/f && ln -s real /v/sub")
        _create(pyd, c2, _subpath_body(vol, "sub", ["cat", "/x/f"]))
        assert pyd.docker("start", "-a", c2).stdout == "in-volume\n"
        wait_until(lambda: _staging_mounts(pyd) == [])

    def test_volumes_from_carries_the_subpath(self, pyd: PydDaemon, canary: Path) -> None:
        """--volumes-from a container with a subpath mount: the subpath goes along and is opened
        inside the volume at the receiver's start and cp too, after it became a link out."""
        vol, donor, victim = _name(), _name(), _name()
        pyd.docker("volume", "create", vol)
        _plant(pyd, vol, "mkdir /v/sub")
        _create(pyd, donor, _subpath_body(vol, "sub", ["true"]))
        vid = _create(
            pyd,
            victim,
            {"Image": IMG, "Cmd": ["ls", "/x"], "HostConfig": {"VolumesFrom": [donor]}},
        )
        _plant(pyd, vol, "rmdir /v/sub && ln -s / /v/sub")
        r = pyd.docker("cp", f"{victim}:/x{canary}/secret", "-", check=False)
        assert r.returncode != 0 and SECRET.strip() not in r.stdout
        status, out = _api(pyd, "POST", f"/containers/{vid}/start")
        assert status == 400, out
        assert _staging_mounts(pyd) == []


class SubpathRaceTests:
    """Escape 12.9 / 13.6: another container flips the subpath between a directory and a link
    to / while the victim starts, many times."""

    def test_flip_during_start(self, pyd: PydDaemon, canary: Path) -> None:
        """50 starts while `sub` flips: each start either fails with a 4xx or the container
        sees the volume's directory; never the host's / (device and inode) nor the canary."""
        vol, racer, victim = _name(), _name(), _name()
        pyd.docker("volume", "create", vol)
        pyd.docker(
            "run", "-d", "--name", racer, "-v", f"{vol}:/v", IMG, "sh", "-c",
            # a directory for a while (so some starts go through), then a link to /
            "while true; do mkdir /v/sub; usleep 150000; rmdir /v/sub; ln -s / /v/sub; "
            "rm -f /v/sub; ln -s / /v/sub; rm -f /v/sub; done 2>/dev/null",
        )  # fmt: skip
        probe = (
            'echo "seen $(stat -c %d:%i /x)"; '
            f"if [ -e /x{canary}/secret ] || [ -e /x/etc/passwd ]; then echo ESCAPED; fi"
        )
        cid = _create(pyd, victim, _subpath_body(vol, "sub", ["sh", "-c", probe]))
        started = 0
        for _ in range(RACE_STARTS):
            status, out = _api(pyd, "POST", f"/containers/{cid}/start")
            # started or refused, the staging point is gone before the answer
            assert _staging_mounts(pyd) == []
            if status == 204:
                started += 1
                _api(pyd, "POST", f"/containers/{cid}/wait")
            else:
                assert status in (400, 404), out
        _, logs = _api(pyd, "GET", f"/containers/{cid}/logs?stdout=1&stderr=1")
        text = logs.decode("utf-8", "replace")
        assert "ESCAPED" not in text
        seen = re.findall(r"seen (\d+:\d+)", text)
        assert "{}:{}".format(*_host_root()) not in seen
        assert len(seen) == started
        pyd.docker("rm", "-f", racer)

    def test_flip_during_cp(self, pyd: PydDaemon, canary: Path) -> None:
        """docker cp out of a stopped container while `sub` flips: 30 copies, none reads the
        host file (each is the volume's file or a 4xx)."""
        vol, racer, victim = _name(), _name(), _name()
        pyd.docker("volume", "create", vol)
        pyd.docker(
            "run", "-d", "--name", racer, "-v", f"{vol}:/v", IMG, "sh", "-c",
            "while true; do mkdir -p /v/sub/tmp; echo volume > /v/sub/tmp/f; usleep 20000; "
            "rm -rf /v/sub; ln -s / /v/sub; usleep 20000; rm -f /v/sub; done 2>/dev/null",
        )  # fmt: skip
        cid = _create(pyd, victim, _subpath_body(vol, "sub", ["true"]))
        for _ in range(30):
            status, _, out = pyd.request("GET", f"/containers/{cid}/archive?path=/x{canary}/secret")
            assert status in (200, 400, 404), (status, out)
            assert SECRET.encode() not in out
        pyd.docker("rm", "-f", racer)


class CopyUpRaceTests:
    """Escape 13.7: copy-up into a volume a running container changes under it."""

    def test_planted_links_during_copy_up(self, pyd: PydDaemon, seeded: str, canary: Path) -> None:
        """A tmpfs volume (copy-up writes straight into the mounted volume) shared with a
        container that keeps emptying it and planting links to the canary where the copy
        goes: 20 copy-ups, each 2xx/4xx, the canary never gets a file or a new mode."""
        vol, racer = _name(), _name()
        pyd.docker("volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", vol)
        pyd.docker(
            "run", "-d", "--name", racer, "-v", f"{vol}:/v", IMG, "sh", "-c",
            f"while true; do rm -rf /v/d /v/e; ln -s {canary} /v/d; ln -s {canary} /v/d/e; "
            f"rm -f /v/d; mkdir /v/d; ln -s {canary} /v/d/e; rm -rf /v/d; done 2>/dev/null",
        )  # fmt: skip
        for _ in range(20):
            cid = _create(
                pyd,
                _name(),
                {"Image": seeded, "Cmd": ["true"], "HostConfig": {"Binds": [f"{vol}:/seed"]}},
            )
            status, out = _api(pyd, "POST", f"/containers/{cid}/start")
            assert status in (204, 400, 404, 409), out
            if status == 204:
                _api(pyd, "POST", f"/containers/{cid}/wait")
            _api(pyd, "DELETE", f"/containers/{cid}")
        pyd.docker("rm", "-f", racer)

    def test_copy_up_stays_in_the_volume(self, pyd: PydDaemon, seeded: str) -> None:
        """Without a race, copy-up copies everything (modes kept) and nothing else."""
        vol, c = _name(), _name()
        out = pyd.docker(
            "run", "--rm", "--name", c, "-v", f"{vol}:/seed", seeded, "sh", "-c",
            "ls /seed/d | wc -l; stat -c %a /seed/d; cat /seed/d/e/deep",
        ).stdout.split()  # fmt: skip
        assert out == ["301", "777", "deep"]


class TmpfsOptionInjectionTests:
    """Escape 12.5: a local volume's type/device/o reach mount(8)."""

    def test_fstab_device_refused(self, pyd: PydDaemon, canary: Path) -> None:
        """--opt device=-T<fstab that binds the canary> is refused at create (400) and nothing is
        ever mounted; the other argument-injection shapes are refused the same way."""
        vol = _name()
        fstab = canary.parent / f"pyd-t-fstab-{uuid.uuid4().hex[:8]}"
        data = os.path.join(pyd.data_root, "volumes", vol, "_data")
        fstab.write_text(f"{canary} {data} none bind 0 0\n/ {data} none bind 0 0\n")
        try:
            for opts in (
                {"type": "tmpfs", "device": f"-T{fstab}"},
                {"type": "tmpfs", "device": f"--fstab={fstab}"},
                {"type": "tmpfs", "device": "tmpfs", "o": f"size=1m,-T{fstab}"},
                {"type": "tmpfs", "device": "tmpfs", "o": f"-T{fstab}"},
                {"type": f"-T{fstab}", "device": "tmpfs"},
                {"type": "tmpfs", "device": "tmpfs", "o": "remount,rw"},
                {"type": "tmpfs", "device": "tmpfs", "o": "size=1m,X-mount.mkdir"},
                {"type": "tmpfs", "device": "tmpfs", "o": "helper=x"},
                {"type": "tmpfs", "device": f"-T{fstab}", "o": "bind"},
                {"type": "tmpfs", "device": "etc", "o": "bind"},
                {"type": "tmpfs,bind", "device": "tmpfs"},
            ):
                status, out = _api(
                    pyd, "POST", "/volumes/create", {"Name": vol, "DriverOpts": opts}
                )
                assert status == 400, (opts, out)
                assert _message(out).startswith(f"create {vol}: ")
            status, _ = _api(pyd, "GET", f"/volumes/{vol}")
            assert status == 404
        finally:
            fstab.unlink(missing_ok=True)

    @pytest.mark.parametrize(
        "device",
        ["tmpfs", "tmpfs,bind", "/", "x -T/etc/fstab", "tmpfs,remount", "a=b,ro"],
    )
    def test_tmpfs_volume_is_a_tmpfs(self, pyd: PydDaemon, device: str) -> None:
        """A tmpfs volume works whatever its device says (a comma, a space, a path, an option
        look-alike are one positional argument after `--`): the container sees a tmpfs with the
        given options, never the host's root."""
        vol = _name()
        pyd.docker(
            "volume", "create", "--opt", "type=tmpfs", "--opt", f"device={device}",
            "--opt", "o=size=1m,uid=1000", vol,
        )  # fmt: skip
        out = pyd.docker(
            "run", "--rm", "-v", f"{vol}:/v", IMG, "sh", "-c",
            "stat -f -c %T /v; stat -c '%d:%i %u' /v",
        ).stdout.split()  # fmt: skip
        assert out[0] == "tmpfs"
        assert out[1] != "{}:{}".format(*_host_root())
        assert out[2] == "1000"


class CpThroughVolumeTests:
    """docker cp through a volume never follows a link out of it."""

    def test_links_in_volume(self, pyd: PydDaemon, canary: Path) -> None:
        """A volume holding links to / and to the canary: cp out (stopped and running) and cp
        in through them stay inside the container."""
        vol, c = _name(), _name()
        pyd.docker("volume", "create", vol)
        _plant(pyd, vol, f"ln -s / /v/root; ln -s {canary} /v/can; ln -s ../../../.. /v/up")
        pyd.docker("create", "--name", c, "-v", f"{vol}:/x", IMG, "sleep", "300")
        src = Path(tempfile.mkdtemp(prefix="pyd-t-src-"))
        try:
            (src / "planted").write_text("attacker\n")
            for running in (False, True):
                if running:
                    pyd.docker("start", c)
                for path in (f"/x/root{canary}/secret", "/x/can/secret", f"/x/up{canary}/secret"):
                    r = pyd.docker("cp", f"{c}:{path}", "-", check=False)
                    assert SECRET.strip() not in r.stdout
                for path in ("/x/can/", f"/x/root{canary}/"):
                    pyd.docker("cp", str(src / "planted"), f"{c}:{path}", check=False)
        finally:
            shutil.rmtree(src, ignore_errors=True)
