"""OCI runtimes and the daemon's container defaults with the real CLI.

One daemon of the module's own, configured as an operator would: daemon.json registers a runc
with runtimeArgs (C{--log FILE}, so the file proves the arguments reached runc), and sets
default-ulimits, default-shm-size, init and cgroup-parent. C{--runtime runc} and C{--runtime
crun} each run their container under that runtime (its state directory under the exec root,
conmon's C{-r} in the process table); exec, pause, kill and rm go through it, also after a
daemon restart; docker info lists the runtimes and the default as dockerd does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.daemon import PydDaemon
from tests.helpers.images import DEFAULT_TAG, load_busybox

pytestmark = pytest.mark.e2e
IMG = DEFAULT_TAG
PARENT = "pyd-t-rtparent-" + os.urandom(3).hex()
FEATURES = "org.opencontainers.runtime-spec.features"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PydDaemon]:
    base = tmp_path_factory.mktemp("pyd-runtimes")
    d = PydDaemon(str(base))
    (base / "daemon.json").write_text(
        json.dumps(
            {
                "runtimes": {
                    "runc-logged": {
                        "path": "/usr/sbin/runc",
                        "runtimeArgs": ["--log", str(base / "runc-logged.log")],
                    }
                },
                "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1000, "Hard": 1001}},
                "default-shm-size": "96M",
                "init": True,
                "init-path": "/usr/bin/tini-static",
                "cgroup-parent": "/" + PARENT,
            }
        )
    )
    try:
        d.start()
        load_busybox(d)
        yield d
    finally:
        d.cleanup()
        for ctrl in os.listdir("/sys/fs/cgroup"):
            path = os.path.join("/sys/fs/cgroup", ctrl, PARENT)
            # the parents the runtimes made (PARENT/own, PARENT/steps), deepest first
            for sub, _, _ in sorted(os.walk(path), key=lambda w: -len(w[0])):
                os.rmdir(sub)


def _conmon_cmdline(d: PydDaemon, cid: str) -> list[str]:
    pid = (Path(d.data_root) / "containers" / cid / "conmon.pid").read_text().strip()
    return Path(f"/proc/{pid}/cmdline").read_text().split("\0")


def _inspect(d: PydDaemon, cid: str) -> dict[str, object]:
    return dict(json.loads(d.docker("inspect", cid).stdout)[0])


class RuntimeTests:
    def test_info_lists_runtimes(self, daemon: PydDaemon) -> None:
        """Runtimes: crun, runc (and its containerd alias) and the configured one with its
        runtimeArgs; DefaultRuntime crun; InitBinary the init-path; SecurityOptions as
        dockerd's on this kernel."""
        info = json.loads(daemon.docker("info", "--format", "{{json .}}").stdout)
        rts = info["Runtimes"]
        assert rts["crun"]["path"] == "crun"
        assert rts["runc"]["path"] == "runc"
        assert rts["io.containerd.runc.v2"]["path"] == "runc"
        # path and runtimeArgs as configured; status (API 1.44+): runc's own OCI features
        assert set(rts["runc-logged"]) == {"path", "runtimeArgs", "status"}
        assert rts["runc-logged"]["path"] == "/usr/sbin/runc"
        assert rts["runc-logged"]["runtimeArgs"] == ["--log", str(daemon.base / "runc-logged.log")]
        assert set(rts["runc-logged"]["status"]) == {FEATURES}
        # an API client older than 1.44 gets no status, as from dockerd 28
        old = json.loads(daemon.request("GET", "/v1.43/info")[2])["Runtimes"]
        assert old["runc-logged"] == {
            "path": "/usr/sbin/runc",
            "runtimeArgs": rts["runc-logged"]["runtimeArgs"],
        }
        assert info["DefaultRuntime"] == "crun"
        assert info["InitBinary"] == "/usr/bin/tini-static"  # init-path, as dockerd shows it
        # dockerd lists AppArmor only where the kernel has it enabled (not on these hosts)
        flag = Path("/sys/module/apparmor/parameters/enabled")
        apparmor = flag.exists() and flag.read_text().strip().upper().startswith("Y")
        assert ("name=apparmor" in info["SecurityOptions"]) == apparmor
        assert "name=seccomp,profile=builtin" in info["SecurityOptions"]
        # the default runtime's and the init's commits and versions, from their --version
        crun = subprocess.run(["crun", "--version"], capture_output=True, text=True).stdout
        commit = next(
            ln.split(":", 1)[1].strip() for ln in crun.splitlines() if ln.startswith("commit:")
        )
        tini = subprocess.run(["/usr/bin/tini-static", "--version"], capture_output=True, text=True)
        assert info["RuncCommit"]["ID"] == commit
        # Debian's tini prints no "- git.<commit>" part: dockerd's InitCommit is then empty
        _, sep, tini_commit = tini.stdout.strip().partition(" - git.")
        assert info["InitCommit"]["ID"] == (tini_commit if sep else "")
        version = json.loads(daemon.docker("version", "--format", "{{json .Server}}").stdout)
        names = {c["Name"]: c for c in version["Components"]}
        assert names["crun"]["Details"]["GitCommit"] == commit
        assert names["crun"]["Version"] == crun.splitlines()[0].split("version")[-1].strip()
        assert names["tini-static"]["Version"] == "0.19.0"

    @pytest.mark.parametrize(
        ("runtime", "binary", "state_dir", "state_file"),
        [
            ("runc", "/usr/sbin/runc", "runtime-runc", "state.json"),
            ("crun", "/usr/bin/crun", "crun", "status"),
        ],
    )
    def test_runs_under_the_runtime(
        self, daemon: PydDaemon, runtime: str, binary: str, state_dir: str, state_file: str
    ) -> None:
        """The container's state is in that runtime's root (and not in the other's), its
        conmon runs that binary; inspect keeps the name; exec, pause/unpause, kill and rm
        work through it."""
        other = "crun" if runtime == "runc" else "runtime-runc"
        cid = daemon.docker("run", "-d", "--runtime", runtime, IMG, "sleep", "300").stdout.strip()
        try:
            assert _inspect(daemon, cid)["HostConfig"]["Runtime"] == runtime  # type: ignore[index]  # inspect JSON, untyped
            exec_root = Path(daemon.exec_root)
            assert (exec_root / state_dir / cid / state_file).is_file()
            assert not (exec_root / other / cid).exists()
            argv = _conmon_cmdline(daemon, cid)
            assert argv[argv.index("-r") + 1] == binary
            assert daemon.docker("exec", cid, "echo", "hi").stdout == "hi\n"
            daemon.docker("pause", cid)
            assert _inspect(daemon, cid)["State"]["Status"] == "paused"  # type: ignore[index]  # inspect JSON, untyped
            daemon.docker("unpause", cid)
            daemon.docker("kill", cid)
            state = _inspect(daemon, cid)["State"]
            assert (state["Status"], state["ExitCode"]) == ("exited", 137)  # type: ignore[index]  # inspect JSON, untyped
            assert not (exec_root / state_dir / cid).exists()
        finally:
            daemon.docker("rm", "-f", cid)

    def test_runtime_args_and_restart(self, daemon: PydDaemon) -> None:
        """The configured runtime gets its runtimeArgs (runc writes the --log file it was
        given); after a daemon restart the running container is still signalled, exec'd into
        and removed through it."""
        log = daemon.base / "runc-logged.log"
        cid = daemon.docker(
            "run", "-d", "--runtime", "runc-logged", IMG, "sleep", "300"
        ).stdout.strip()
        try:
            assert log.is_file()
            assert (Path(daemon.exec_root) / "runtime-runc-logged" / cid / "state.json").is_file()
            daemon.stop()
            daemon.start()
            assert _inspect(daemon, cid)["State"]["Status"] == "running"  # type: ignore[index]  # inspect JSON, untyped
            assert daemon.docker("exec", cid, "cat", "/proc/1/comm").stdout.strip() in (
                "docker-init",
                "tini-static",
            )
            before = log.stat().st_size
            daemon.docker("stop", "-t", "1", cid)
            assert log.stat().st_size >= before
            assert not (Path(daemon.exec_root) / "runtime-runc-logged" / cid).exists()
        finally:
            daemon.docker("rm", "-f", cid)

    def test_unknown_runtime(self, daemon: PydDaemon) -> None:
        """dockerd's 400 text; nothing is created."""
        status, _, body = daemon.request(
            "POST", "/containers/create", {"Image": IMG, "HostConfig": {"Runtime": "kata"}}
        )
        assert (status, json.loads(body)) == (
            400,
            {"message": "unknown or invalid runtime name: kata"},
        )


class DaemonDefaultsTests:
    def test_defaults_inside_the_container(self, daemon: PydDaemon) -> None:
        """default-ulimits (under the container's own --ulimit of the same name),
        default-shm-size, init as PID 1 and cgroup-parent, seen from inside; inspect shows
        the merged Ulimits and the ShmSize as dockerd's does, and HostConfig.Init unset."""
        cid = daemon.docker("run", "-d", IMG, "sleep", "300").stdout.strip()
        try:
            out = daemon.docker(
                "exec",
                cid,
                "sh",
                "-c",
                "ulimit -Sn; ulimit -Hn; df -k /dev/shm | tail -1; cat /proc/1/cmdline | tr '\\0' ' '",
            ).stdout.splitlines()
            assert out[:2] == ["1000", "1001"]
            assert out[2].split()[1] == str(96 * 1024)
            assert out[3].startswith("/sbin/docker-init -- sleep 300")
            hc = _inspect(daemon, cid)["HostConfig"]
            assert hc["Ulimits"] == [{"Name": "nofile", "Hard": 1001, "Soft": 1000}]  # type: ignore[index]  # inspect JSON, untyped
            assert hc["ShmSize"] == 96 * 1024 * 1024  # type: ignore[index]  # inspect JSON, untyped
            # unset: Go leaves the *bool out of the JSON (omitempty), as dockerd shows it
            assert "Init" not in hc  # type: ignore[operator]  # inspect JSON, untyped
            pid = _inspect(daemon, cid)["State"]["Pid"]  # type: ignore[index]  # inspect JSON, untyped
            cgroups = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
            assert any(line.endswith(f":/{PARENT}/{cid}") for line in cgroups), cgroups
            top = daemon.docker("top", cid).stdout.splitlines()[1:]
            assert [line.split(None, 7)[-1] for line in top] == [
                "/sbin/docker-init -- sleep 300",
                "sleep 300",
            ]
        finally:
            daemon.docker("rm", "-f", cid)
        # the container's own settings win
        out = daemon.docker(
            "run",
            "--rm",
            "--init=false",
            "--ulimit",
            "nofile=50:60",
            "--shm-size",
            "8m",
            "--cgroup-parent",
            "/" + PARENT + "/own",
            IMG,
            "sh",
            "-c",
            "ulimit -Sn; df -k /dev/shm | tail -1; cat /proc/1/comm; grep -c /own/ /proc/self/cgroup",
        ).stdout.splitlines()
        assert out[0] == "50"
        assert out[1].split()[1] == str(8 * 1024)
        assert out[2] == "sh"
        assert int(out[3]) > 0

    def test_build_cgroupparent(self, daemon: PydDaemon, tmp_path: Path) -> None:
        """A build's cgroupparent query parameter places its RUN step containers (as dockerd's
        classic builder)."""
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(
            f"FROM {IMG}\nRUN grep -m1 ':/{PARENT}/steps/' /proc/self/cgroup > /found\n"
        )
        r = daemon.docker(
            "build", "--cgroup-parent", f"/{PARENT}/steps", "--no-cache", "-t", "pyd-t-cgp", str(ctx),
            env={"DOCKER_BUILDKIT": "0"},
        )  # fmt: skip
        assert r.returncode == 0
        out = daemon.docker("run", "--rm", "--init=false", "pyd-t-cgp", "cat", "/found").stdout
        assert f":/{PARENT}/steps/" in out
        daemon.docker("rmi", "pyd-t-cgp")


def test_sighup_reloads_runtimes(tmp_path: Path) -> None:
    """runtimes and default-runtime are reloaded by SIGHUP, as dockerd reloads them: docker
    info lists the new set with each runtime's OCI features (dockerd 28's status), a new
    container runs under the new default; a runtime whose binary is missing refuses the whole
    reload, naming it, and the old set stays."""
    from tests.e2e.test_deploy import wait_log

    d = PydDaemon(str(tmp_path / "d"))
    d.base.mkdir(parents=True)
    cfg = d.base / "daemon.json"
    cfg.write_text("{}")
    cid = ""
    try:
        d.start()
        assert d.proc is not None
        load_busybox(d)
        info = json.loads(d.docker("info", "--format", "{{json .}}").stdout)
        assert "late" not in info["Runtimes"]
        # runc tells its features (crun 1.8 has no `features` command: no status, as dockerd)
        features = json.loads(info["Runtimes"]["runc"]["status"][FEATURES])
        assert features["ociVersionMin"] == "1.0.0"
        assert "status" not in info["Runtimes"]["crun"]
        cfg.write_text(
            json.dumps(
                {"runtimes": {"late": {"path": "/usr/sbin/runc"}}, "default-runtime": "late"}
            )
        )
        d.proc.send_signal(signal.SIGHUP)
        wait_log(d, "configuration reloaded")
        info = json.loads(d.docker("info", "--format", "{{json .}}").stdout)
        assert info["Runtimes"]["late"]["path"] == "/usr/sbin/runc"
        assert FEATURES in info["Runtimes"]["late"]["status"]
        assert info["DefaultRuntime"] == "late"
        cid = d.docker("run", "-d", IMG, "sleep", "300").stdout.strip()
        assert _inspect(d, cid)["HostConfig"]["Runtime"] == "late"  # type: ignore[index]  # inspect JSON, untyped
        argv = _conmon_cmdline(d, cid)
        assert argv[argv.index("-r") + 1] == "/usr/sbin/runc"
        cfg.write_text(json.dumps({"runtimes": {"gone": {"path": "/nonexistent/pyd-rt"}}}))
        d.proc.send_signal(signal.SIGHUP)
        wait_log(d, "refusing the new configuration")
        assert "/nonexistent/pyd-rt" in d.log()
        info = json.loads(d.docker("info", "--format", "{{json .}}").stdout)
        assert (info["DefaultRuntime"], "gone" in info["Runtimes"]) == ("late", False)
    finally:
        if cid:
            d.docker("rm", "-f", cid)
        d.cleanup()
