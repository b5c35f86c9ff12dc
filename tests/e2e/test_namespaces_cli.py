"""--pid container:X and --ipc shareable / container:X with the real CLI, as dockerd."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers.daemon import PydDaemon
from tests.helpers.images import DEFAULT_TAG, load_busybox

pytestmark = pytest.mark.e2e
IMG = DEFAULT_TAG


def _name() -> str:
    return "pyd-t-" + uuid.uuid4().hex[:8]


class NamespaceJoinTests:
    def test_pid_and_ipc_join(self, pyd_daemon: PydDaemon) -> None:
        """A joiner sees the donor's processes and writes into its /dev/shm; a private donor,
        a stopped one and a missing one are refused with dockerd's messages; nothing of the
        donor's host-side shm mount remains after it is removed."""
        d = pyd_daemon
        load_busybox(d)
        donor, private, stopped = _name(), _name(), _name()
        did = d.docker(
            "run", "-d", "--name", donor, "--ipc", "shareable", IMG, "sleep", "300"
        ).stdout.strip()
        ps = d.docker("run", "--rm", "--pid", f"container:{donor}", IMG, "ps", "-o", "comm")
        assert "sleep" in ps.stdout.split()
        d.docker(
            "run",
            "--rm",
            "--ipc",
            f"container:{donor}",
            IMG,
            "sh",
            "-c",
            "echo shared > /dev/shm/x",
        )
        assert d.docker("exec", donor, "cat", "/dev/shm/x").stdout == "shared\n"
        pid = d.docker("run", "-d", "--name", private, IMG, "sleep", "300").stdout.strip()
        r = d.docker("run", "--rm", "--ipc", f"container:{private}", IMG, "true", check=False)
        assert r.returncode == 125
        assert f"container {pid}: non-shareable IPC" in r.stderr
        sid = d.docker("create", "--name", stopped, IMG, "true").stdout.strip()
        r = d.docker("run", "--rm", "--pid", f"container:{stopped}", IMG, "true", check=False)
        assert r.returncode == 125 and f"container {sid} is not running" in r.stderr
        r = d.docker("run", "--rm", "--pid", "container:pyd-t-missing", IMG, "true", check=False)
        assert r.returncode == 125 and "No such container: pyd-t-missing" in r.stderr
        d.docker("rm", "-f", donor)
        with open("/proc/self/mountinfo") as f:
            assert did not in f.read()
