"""The real docker CLI (and docker-py) against pyd for the container lifecycle (issue 4)."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import docker
import pytest

from tests.helpers.daemon import PydDaemon
from tests.helpers.daemon import wait_until as _until
from tests.helpers.images import DEFAULT_TAG

pytestmark = pytest.mark.e2e

IMG = DEFAULT_TAG


def _name() -> str:
    return "pyd-t-" + uuid.uuid4().hex[:8]


def _stamp(rfc3339: str) -> float:
    """Seconds since the epoch of C{docker logs -t}'s RFC 3339 nano timestamp (UTC)."""
    from datetime import datetime

    head, _, frac = rfc3339.rstrip("Z").partition(".")
    secs = datetime.fromisoformat(head + "+00:00").timestamp()
    return secs + float("0." + (frac or "0"))


def _inspect(d: PydDaemon, name: str) -> dict:
    return json.loads(d.docker("inspect", name).stdout)[0]


class ContainersCLITests:
    """run/ps/stop/kill/logs/rm with the real CLI."""

    def test_run_detached_lifecycle(self, pyd: PydDaemon) -> None:
        """run -d, ps, logs, stop (137 after the timeout), start again, rm."""
        n = _name()
        cid = pyd.docker(
            "run", "-d", "--name", n, IMG, "sh", "-c", "echo hello; sleep 100"
        ).stdout.strip()
        assert len(cid) == 64
        ps = pyd.docker("ps", "--format", "{{.ID}} {{.Names}} {{.Status}}").stdout
        assert f"{cid[:12]} {n} Up" in ps
        _until(lambda: pyd.docker("logs", n).stdout == "hello\n")
        pyd.docker("stop", "-t", "1", n)
        info = _inspect(pyd, n)
        assert info["State"]["Status"] == "exited"
        assert info["State"]["ExitCode"] == 137
        assert (
            "Exited (137)"
            in pyd.docker("ps", "-a", "--format", "{{.Status}}", "-f", f"name={n}").stdout
        )
        pyd.docker("start", n)
        assert _inspect(pyd, n)["State"]["Running"] is True
        r = pyd.docker("rm", n, check=False)
        assert r.returncode == 1 and "container is running" in r.stderr
        pyd.docker("rm", "-f", n)
        r = pyd.docker("inspect", n, check=False)
        assert r.returncode == 1

    def test_foreground_exit_codes(self, pyd: PydDaemon) -> None:
        """run returns the process's code; 127 for a missing command, 126 for a non-executable."""
        r = pyd.docker("run", "--rm", IMG, "sh", "-c", "echo out; exit 3", check=False)
        assert (r.returncode, r.stdout) == (3, "out\n")
        r = pyd.docker("run", "--rm", IMG, "nope-not-here", check=False)
        assert r.returncode == 127
        assert 'exec: "nope-not-here": executable file not found in $PATH' in r.stderr
        r = pyd.docker("run", "--rm", IMG, "/etc/passwd", check=False)
        assert r.returncode == 126
        # --rm removed every one of them
        assert pyd.docker("ps", "-aq").stdout.strip() == ""

    def test_name_conflict_and_rename(self, pyd: PydDaemon) -> None:
        """A taken name is dockerd's 409 text; rename moves the name."""
        n, m = _name(), _name()
        cid = pyd.docker("create", "--name", n, IMG, "true").stdout.strip()
        r = pyd.docker("create", "--name", n, IMG, "true", check=False)
        assert r.returncode == 1
        assert (
            f'Conflict. The container name "/{n}" is already in use by container "{cid}". '
            "You have to remove (or rename) that container to be able to reuse that name."
        ) in r.stderr
        pyd.docker("rename", n, m)
        assert _inspect(pyd, m)["Name"] == "/" + m

    def test_ps_filters(self, pyd: PydDaemon) -> None:
        """-a, -q, -n, -l, label/status/exited/name/ancestor filters, --no-trunc."""
        a, b, c = _name(), _name(), _name()
        pyd.docker("run", "-d", "--name", a, "--label", "tier=web", IMG, "sleep", "100")
        pyd.docker("run", "--name", b, IMG, "sh", "-c", "exit 2", check=False)
        pyd.docker("create", "--name", c, IMG, "true")

        def names(*args: str) -> set[str]:
            out = pyd.docker("ps", *args, "--format", "{{.Names}}").stdout
            return set(out.split())

        assert names() == {a}
        assert names("-a") == {a, b, c}
        assert names("-a", "-f", "label=tier=web") == {a}
        assert names("-f", "status=exited") == {b}
        assert names("-f", "status=created") == {c}
        assert names("-a", "-f", "exited=2") == {b}
        assert names("-a", "-f", f"name={b}") == {b}
        assert names("-a", "-f", f"ancestor={IMG}") == {a, b, c}
        assert names("-l") == {c}
        assert len(names("-n", "2")) == 2
        ids = pyd.docker("ps", "-aq", "--no-trunc").stdout.split()
        assert len(ids) == 3 and all(len(i) == 64 for i in ids)

    def test_kill_pause_restart(self, pyd: PydDaemon) -> None:
        """kill -s, pause/unpause, restart keep state and counters right."""
        n = _name()
        pyd.docker(
            "run",
            "-d",
            "--name",
            n,
            IMG,
            "sh",
            "-c",
            "trap 'exit 42' HUP; echo trapped; sleep 100 & wait",
        )
        # pid 1 ignores a signal it has no handler for: wait until the trap is set.
        _until(lambda: "trapped" in pyd.docker("logs", n).stdout)
        pyd.docker("kill", "-s", "HUP", n)
        _until(lambda: _inspect(pyd, n)["State"]["Status"] == "exited")
        assert _inspect(pyd, n)["State"]["ExitCode"] == 42
        r = pyd.docker("kill", n, check=False)
        assert r.returncode == 1 and "is not running" in r.stderr
        pyd.docker("start", n)
        pyd.docker("pause", n)
        assert _inspect(pyd, n)["State"]["Paused"] is True
        assert "(Paused)" in pyd.docker("ps", "--format", "{{.Status}}", "-f", f"name={n}").stdout
        pyd.docker("unpause", n)
        pyd.docker("restart", "-t", "0", n)
        assert _inspect(pyd, n)["State"]["Running"] is True

    def test_logs_follow_and_options(self, pyd: PydDaemon) -> None:
        """logs -f streams until the container exits; --tail, -t, stderr kept apart."""
        n = _name()
        pyd.docker(
            "run",
            "-d",
            "--name",
            n,
            IMG,
            "sh",
            "-c",
            "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.3; done",
        )
        r = pyd.docker("logs", "-f", n, timeout=30)
        assert r.stdout == "out1\nout2\nout3\n"
        assert r.stderr == "err1\nerr2\nerr3\n"
        last = pyd.docker("logs", "--tail", "1", n)
        assert (last.stdout, last.stderr) == ("", "err3\n")
        assert pyd.docker("logs", "--tail", "2", n).stdout == "out3\n"
        stamped = pyd.docker("logs", "-t", n).stdout.splitlines()
        assert stamped[0].endswith(" out1") and stamped[0][:4].isdigit() and "T" in stamped[0]

    def test_restart_policy(self, pyd: PydDaemon) -> None:
        """on-failure:2 restarts twice, then stays exited."""
        n = _name()
        pyd.docker("run", "-d", "--name", n, "--restart", "on-failure:2", IMG, "sh", "-c", "exit 1")
        _until(
            lambda: (
                _inspect(pyd, n)["RestartCount"] == 2
                and _inspect(pyd, n)["State"]["Status"] == "exited"
            )
        )
        assert _inspect(pyd, n)["State"]["ExitCode"] == 1

    def test_oom_killed(self, pyd: PydDaemon) -> None:
        """-m 32m with an allocating process ends OOMKilled (137)."""
        n = _name()
        r = pyd.docker(
            "run",
            "--name",
            n,
            "-m",
            "32m",
            IMG,
            "sh",
            "-c",
            "x=a; while true; do x=$x$x$x$x; done",
            check=False,
            timeout=60,
        )
        assert r.returncode == 137
        info = _inspect(pyd, n)
        assert info["State"]["OOMKilled"] is True

    def test_live_restore(self, pyd: PydDaemon) -> None:
        """kill -9 of the daemon: the container keeps running and logging; after the restart
        ps shows it, logs kept flowing, an exit that happened meanwhile is recorded."""
        n, short = _name(), _name()
        pyd.docker(
            "run", "-d", "--name", n, IMG, "sh", "-c", "while true; do echo tick; sleep 0.2; done"
        )
        pyd.docker("run", "-d", "--name", short, IMG, "sh", "-c", "sleep 1; exit 7")
        _until(lambda: "tick" in pyd.docker("logs", n).stdout)
        pyd.kill9()
        down_from = time.time()
        time.sleep(1.5)
        down_to = time.time()
        pyd.start()
        assert n in pyd.docker("ps", "--format", "{{.Names}}").stdout
        _until(lambda: _inspect(pyd, short)["State"]["Status"] == "exited")
        assert _inspect(pyd, short)["State"]["ExitCode"] == 7
        # Lines logged while no daemon ran are there, with their own timestamps.
        stamped = pyd.docker("logs", "-t", n).stdout.splitlines()
        while_down = [
            line
            for line in stamped
            if down_from + 0.2 < _stamp(line.split(" ", 1)[0]) < down_to - 0.2
        ]
        assert while_down, stamped[-5:]
        ticks = len(stamped)
        _until(lambda: pyd.docker("logs", n).stdout.count("tick") > ticks)
        pyd.docker("stop", "-t", "1", n)
        assert _inspect(pyd, n)["State"]["Status"] == "exited"

    def test_simulated_reboot(self, pyd: PydDaemon) -> None:
        """Runtime state gone (conmon killed, exec root wiped): the container is Exited and
        can be started again."""
        n = _name()
        pyd.docker("run", "-d", "--name", n, IMG, "sleep", "100")
        info = _inspect(pyd, n)
        pyd.kill9()
        with open(f"{pyd.data_root}/containers/{info['Id']}/conmon.pid") as f:
            conmon_pid = f.read().strip()
        subprocess.run(["kill", "-9", conmon_pid, str(info["State"]["Pid"])], check=False)
        subprocess.run(
            ["crun", "--root", f"{pyd.exec_root}/crun", "delete", "-f", info["Id"]], check=False
        )
        time.sleep(0.5)
        pyd.start()
        st = _inspect(pyd, n)["State"]
        assert st["Status"] == "exited"
        pyd.docker("start", n)
        assert _inspect(pyd, n)["State"]["Running"] is True

    def test_docker_py(self, pyd: PydDaemon) -> None:
        """docker-py: run detached, wait, logs, attrs, remove."""
        client = docker.DockerClient(base_url=pyd.host)
        c = client.containers.run(IMG, ["sh", "-c", "echo py; exit 5"], detach=True, name=_name())
        assert c.wait(timeout=20)["StatusCode"] == 5
        assert c.logs() == b"py\n"
        c.reload()
        assert c.status == "exited"
        c.remove()
        out = client.containers.run(IMG, ["echo", "hi"], remove=True)
        assert out == b"hi\n"
