"""docker logs with json-file rotation (max-size/max-file), local and none, with the real CLI."""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest

from tests.helpers.daemon import PydDaemon
from tests.helpers.daemon import wait_until as _until
from tests.helpers.images import DEFAULT_TAG

pytestmark = pytest.mark.e2e

IMG = DEFAULT_TAG
# ~1 KB lines, a short pause every 50 lines (conmon rotates every ~90 lines at 100k)
WRITER = (
    "PAD=$(printf '%0900d' 0); i=0; while [ $i -lt {n} ]; do echo \"line $i $PAD\"; "
    "i=$((i+1)); if [ $((i % 50)) -eq 0 ]; then usleep 20000; fi; done; exit 0"
)


def _name() -> str:
    return "pyd-t-" + uuid.uuid4().hex[:8]


def _inspect(d: PydDaemon, name: str) -> dict:
    return json.loads(d.docker("inspect", name).stdout)[0]


def _numbers(out: str) -> list[int]:
    return [int(line.split()[1]) for line in out.splitlines() if line.startswith("line ")]


def _log_files(d: PydDaemon, cid: str) -> dict[str, int]:
    """The numbered log files and their sizes (pyd may prune one while we look)."""
    bundle = f"{d.data_root}/containers/{cid}"
    out = {}
    for n in os.listdir(bundle):
        if n.startswith("ctr.log.") and n.split(".")[-1].isdigit():
            try:
                out[n] = os.path.getsize(f"{bundle}/{n}")
            except FileNotFoundError:
                continue
    return out


class LogRotationCLITests:
    """--log-opt max-size/max-file like dockerd's json-file."""

    def test_rotation_keeps_max_file_files(self, pyd: PydDaemon) -> None:
        """3 MB through max-size=100k max-file=3: 3 files are left; logs (and --tail) give the
        newest lines, in order, none missing or repeated."""
        n = _name()
        cid = pyd.docker(
            "run", "-d", "--name", n, "--log-opt", "max-size=100k", "--log-opt", "max-file=3",
            IMG, "sh", "-c", WRITER.format(n=3000),
        ).stdout.strip()  # fmt: skip
        assert pyd.docker("wait", n, timeout=120).stdout.strip() == "0"
        files = _log_files(pyd, cid)
        assert len(files) == 3, files
        # pyd asks conmon to reopen the log once it reached 100 kB (so a file is a little
        # larger, by what was written meanwhile); the total stays far below the 3 MB written
        assert sum(files.values()) < 2_500_000, files
        got = _numbers(pyd.docker("logs", n).stdout)
        assert got == list(range(got[0], 3000))
        assert len(got) > 90
        assert _numbers(pyd.docker("logs", "--tail", "20", n).stdout) == list(range(2980, 3000))
        info = _inspect(pyd, n)
        assert info["HostConfig"]["LogConfig"] == {
            "Type": "json-file",
            "Config": {"max-file": "3", "max-size": "100k"},
        }
        assert info["LogPath"].endswith(f"/{cid}/ctr.log")

    def test_follow_across_rotations(self, pyd: PydDaemon) -> None:
        """logs -f from the start to the exit: every line once, in order, through ~30
        rotations."""
        n = _name()
        pyd.docker(
            "run", "-d", "--name", n, "--log-opt", "max-size=100k", "--log-opt", "max-file=50",
            IMG, "sh", "-c", "sleep 1; " + WRITER.format(n=3000),
        )  # fmt: skip
        followed = pyd.docker("logs", "-f", n, timeout=120).stdout
        got = _numbers(followed)
        assert got == sorted(set(got))
        assert got[-1] == 2999
        assert got == list(range(3000))
        assert _numbers(pyd.docker("logs", n).stdout) == got

    def test_rotation_survives_daemon_restart(self, pyd: PydDaemon) -> None:
        """kill -9 of the daemon while a container logs: after the restart rotation goes on
        and max-file holds."""
        n = _name()
        cid = pyd.docker(
            "run", "-d", "--name", n, "--log-opt", "max-size=20k", "--log-opt", "max-file=3",
            IMG, "sh", "-c",
            "PAD=$(printf '%0900d' 0); i=0; while true; do echo \"line $i $PAD\"; i=$((i+1)); "
            "usleep 5000; done",
        ).stdout.strip()  # fmt: skip
        _until(lambda: len(_log_files(pyd, cid)) == 3)
        pyd.kill9()
        time.sleep(1)
        pyd.start()
        seen = max(int(f.split(".")[-1]) for f in _log_files(pyd, cid))
        _until(lambda: min((int(f.split(".")[-1]) for f in _log_files(pyd, cid)), default=0) > seen)
        pyd.docker("stop", "-t", "1", n)
        files = _log_files(pyd, cid)
        assert len(files) == 3, files
        got = _numbers(pyd.docker("logs", n).stdout)
        assert got == list(range(got[0], got[0] + len(got)))
        assert len(got) > 20


class LogDriverCLITests:
    """Driver and option validation with dockerd's messages; none and local."""

    def test_validation(self, pyd: PydDaemon) -> None:
        """Unknown options and drivers are refused at create, bad values at start."""
        r = pyd.docker("create", "--log-opt", "foo=bar", IMG, "true", check=False)
        assert "unknown log opt 'foo' for json-file log driver" in r.stderr
        r = pyd.docker("create", "--log-driver", "local", "--log-opt", "foo=1", IMG, check=False)
        assert "unknown log opt 'foo' for log driver local" in r.stderr
        r = pyd.docker("create", "--log-driver", "bogus", IMG, "true", check=False)
        assert 'error looking up logging plugin bogus: plugin "bogus" not found' in r.stderr
        r = pyd.docker("run", "--rm", "--log-opt", "max-size=abc", IMG, "true", check=False)
        assert r.returncode == 125
        assert "failed to initialize logging driver: invalid size: 'abc'" in r.stderr
        n = _name()
        r = pyd.docker(
            "run", "--name", n, "--log-opt", "max-file=0", "--log-opt", "max-size=1k", IMG, "true",
            check=False,
        )  # fmt: skip
        assert "failed to initialize logging driver: max-file cannot be less than 1" in r.stderr
        st = _inspect(pyd, n)["State"]
        assert (st["Status"], st["ExitCode"]) == ("created", 128)
        assert st["Error"] == "failed to initialize logging driver: max-file cannot be less than 1"
        # max-file without max-size is accepted, as by dockerd (nothing rotates)
        out = pyd.docker("run", "--rm", "--log-opt", "max-file=3", IMG, "echo", "ok").stdout
        assert out == "ok\n"

    def test_none_and_local(self, pyd: PydDaemon) -> None:
        """none keeps nothing (logs refused, attach still streams); local reads back."""
        n = _name()
        out = pyd.docker("run", "--name", n, "--log-driver", "none", IMG, "echo", "hi").stdout
        assert out == "hi\n"
        r = pyd.docker("logs", n, check=False)
        assert r.returncode != 0
        assert "configured logging driver does not support reading" in r.stderr
        info = _inspect(pyd, n)
        assert info["LogPath"] == ""
        assert not os.path.exists(f"{pyd.data_root}/containers/{info['Id']}/ctr.log")
        m = _name()
        pyd.docker("run", "--name", m, "--log-driver", "local", IMG, "echo", "kept")
        assert pyd.docker("logs", m).stdout == "kept\n"
        info = _inspect(pyd, m)
        assert info["LogPath"] == ""
        assert info["HostConfig"]["LogConfig"]["Type"] == "local"
