"""Confinement options with the real CLI: each takes effect inside a busybox container, or is
refused with dockerd's text (issue 16).

The default seccomp profile is moby's (an allow-list where C{unshare} needs CAP_SYS_ADMIN),
C{seccomp=unconfined} lifts it, a custom profile's JSON (the CLI reads the file and sends it) is
applied; devices, device cgroup rules, ulimits, the OOM score and the pids limit reach the
container; C{--gpus} is refused where no GPU driver is registered.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.helpers.daemon import PydDaemon
from tests.helpers.images import DEFAULT_TAG, load_busybox

pytestmark = pytest.mark.e2e
IMG = DEFAULT_TAG


class SeccompTests:
    def test_default_profile_refuses_user_namespaces(self, pyd: PydDaemon) -> None:
        """moby's default profile: no `unshare -U` without CAP_SYS_ADMIN; unconfined can."""
        r = pyd.docker("run", "--rm", IMG, "unshare", "-U", "true", check=False)
        assert r.returncode != 0
        assert "Operation not permitted" in r.stderr or "not permitted" in r.stdout + r.stderr
        r = pyd.docker(
            "run", "--rm", "--security-opt", "seccomp=unconfined", IMG, "unshare", "-U", "true"
        )
        assert r.returncode == 0
        # the filter is on (Seccomp: 2 = filter mode) by default and off when unconfined
        on = pyd.docker("run", "--rm", IMG, "grep", "^Seccomp:", "/proc/self/status").stdout
        off = pyd.docker(
            "run",
            "--rm",
            "--security-opt",
            "seccomp=unconfined",
            IMG,
            "grep",
            "^Seccomp:",
            "/proc/self/status",
        ).stdout
        assert on.split()[-1] == "2" and off.split()[-1] == "0"

    def test_custom_profile_applied(self, pyd: PydDaemon, tmp_path: object) -> None:
        """A profile file denying mkdir (EPERM) over default-allow: mkdir fails, touch works."""
        profile = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
            ],
        }
        path = os.path.join(str(tmp_path), "profile.json")
        with open(path, "w") as f:
            json.dump(profile, f)
        r = pyd.docker(
            "run",
            "--rm",
            "--security-opt",
            f"seccomp={path}",
            IMG,
            "sh",
            "-c",
            "touch /tmp/f && echo touched; mkdir /tmp/d && echo made",
            check=False,
        )
        assert "touched" in r.stdout and "made" not in r.stdout
        assert "Operation not permitted" in r.stderr

    def test_compiled_filter_reused_only_for_its_profile(
        self, pyd: PydDaemon, tmp_path: object
    ) -> None:
        """crun's compiled filter is handed to the next container of the same profile (issue
        21): the first create compiles (no annotation), the next ones carry the annotation and
        are still confined by that profile; a container of another profile is not."""
        profile = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["chmod", "fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO"},
            ],
        }
        path = os.path.join(str(tmp_path), "nochmod.json")
        with open(path, "w") as f:
            json.dump(profile, f)
        probe = "touch /tmp/f; chmod 600 /tmp/f && echo chmod-ok; sleep 30"
        ids = []
        for _ in range(3):
            cid = pyd.docker(
                "run", "-d", "--security-opt", f"seccomp={path}", IMG, "sh", "-c", probe
            ).stdout.strip()
            ids.append(cid)
        other = pyd.docker("run", "-d", IMG, "sh", "-c", probe).stdout.strip()
        try:
            annotated = []
            for cid in ids:
                with open(os.path.join(pyd.data_root, "containers", cid, "config.json")) as f:
                    spec = json.load(f)
                annotated.append("run.oci.seccomp_bpf_data" in spec.get("annotations", {}))
                status = pyd.docker("exec", cid, "grep", "^Seccomp:", "/proc/1/status").stdout
                assert status.split()[-1] == "2"
            assert annotated == [False, True, True]
            for cid in [*ids, other]:
                pyd.docker("stop", "-t", "0", cid)
            logs = [pyd.docker("logs", cid).stdout + pyd.docker("logs", cid).stderr for cid in ids]
            assert all("chmod-ok" not in out and "not permitted" in out for out in logs), logs
            assert "chmod-ok" in pyd.docker("logs", other).stdout
        finally:
            pyd.docker("rm", "-f", *ids, other, check=False)

    def test_bad_profile_refused(self, pyd: PydDaemon, tmp_path: object) -> None:
        """A profile with both architectures and archMap: dockerd's text, nothing created."""
        path = os.path.join(str(tmp_path), "bad.json")
        bad = json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "archMap": [{"architecture": "SCMP_ARCH_X86_64"}],
            }
        )
        with open(path, "w") as f:
            f.write(bad)
        r = pyd.docker("create", "--security-opt", f"seccomp={path}", IMG, "true", check=False)
        assert r.returncode != 0
        assert "both 'architectures' and 'archMap' are specified" in r.stderr
        assert pyd.docker("ps", "-aq").stdout.strip() == ""

    def test_info_shows_seccomp(self, pyd: PydDaemon) -> None:
        info = json.loads(pyd.docker("info", "--format", "{{json .SecurityOptions}}").stdout)
        assert "name=seccomp,profile=builtin" in info


class DeviceTests:
    def test_device_mapped(self, pyd: PydDaemon) -> None:
        """--device /dev/null:/dev/mynull: a character device 1,3 that can be written."""
        out = pyd.docker(
            "run",
            "--rm",
            "--device",
            "/dev/null:/dev/mynull",
            IMG,
            "sh",
            "-c",
            "stat -c '%F %t,%T' /dev/mynull && echo x > /dev/mynull && echo written",
        ).stdout
        assert out.splitlines() == ["character special file 1,3", "written"]

    def test_device_cgroup_rule(self, pyd: PydDaemon) -> None:
        """A node made with mknod is usable only when a device cgroup rule allows it."""
        # /dev/loop-control's numbers: not among a container's default device rules
        script = "mknod /tmp/z c 10 237 && : < /tmp/z && echo readable"
        denied = pyd.docker("run", "--rm", IMG, "sh", "-c", script, check=False)
        assert "readable" not in denied.stdout
        allowed = pyd.docker(
            "run", "--rm", "--device-cgroup-rule", "c 10:237 r", IMG, "sh", "-c", script
        )
        assert "readable" in allowed.stdout

    def test_bad_cgroup_rule_and_missing_device_refused(self, pyd: PydDaemon) -> None:
        r = pyd.docker("create", "--device-cgroup-rule", "x 1:5 r", IMG, "true", check=False)
        assert r.returncode != 0 and "invalid device cgroup format" in r.stderr
        r = pyd.docker("run", "--rm", "--device", "/dev/pyd-no-such", IMG, "true", check=False)
        assert r.returncode != 0
        assert (
            'error gathering device information while adding custom device "/dev/pyd-no-such"'
            in r.stderr
        )

    def test_gpus_refused(self, pyd: PydDaemon) -> None:
        r = pyd.docker("run", "--rm", "--gpus", "all", IMG, "true", check=False)
        assert r.returncode == 125
        assert 'could not select device driver "" with capabilities: [[gpu]]' in r.stderr
        assert pyd.docker("ps", "-aq").stdout.strip() == ""

    def test_privileged_sees_host_devices(self, pyd: PydDaemon) -> None:
        """--privileged: the host's device nodes (here: /dev/zero and a loop or tty device)."""
        out = pyd.docker("run", "--rm", "--privileged", IMG, "ls", "/dev").stdout.split()
        host = set(os.listdir("/dev"))
        assert "zero" in out
        extra = {n for n in out if n in host and n.startswith(("loop", "tty", "mem"))}
        assert extra, out


class LimitsTests:
    def test_ulimit_oom_score_pids(self, pyd: PydDaemon) -> None:
        out = pyd.docker(
            "run",
            "--rm",
            "--ulimit",
            "nofile=512:1024",
            "--oom-score-adj",
            "300",
            "--pids-limit",
            "42",
            IMG,
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj; "
            "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max",
        ).stdout.split()
        assert out == ["512", "1024", "300", "42"]


def _cgroup_dirs(rel: str) -> list[str]:
    """The host directories of cgroup C{rel} (v2: one; v1: one per mounted controller)."""
    root = "/sys/fs/cgroup"
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return [os.path.join(root, rel)]
    return [
        os.path.join(root, c, rel)
        for c in sorted(os.listdir(root))
        if os.path.isdir(os.path.join(root, c)) and not os.path.islink(os.path.join(root, c))
    ]


class CgroupParentTests:
    def test_cgroup_parent(self, pyd: PydDaemon) -> None:
        """--cgroup-parent /P: the container's cgroup is /P/<id> on the host (its pids are
        there), docker top and stats read it; ../ is refused."""
        parent = "pyd-t-parent-" + os.urandom(3).hex()
        try:
            cid = pyd.docker(
                "run", "-d", "--cgroup-parent", "/" + parent, IMG, "sleep", "300"
            ).stdout.strip()
            pid = pyd.docker("inspect", "-f", "{{.State.Pid}}", cid).stdout.strip()
            with open(f"/proc/{pid}/cgroup") as f:
                lines = f.read().splitlines()
            assert any(line.endswith(f":/{parent}/{cid}") for line in lines), lines
            top = pyd.docker("top", cid).stdout
            assert "sleep 300" in top
            stats = pyd.docker("stats", "--no-stream", "--format", "{{.PIDs}}", cid).stdout.strip()
            assert stats == "1"
            pyd.docker("rm", "-f", cid)
            r = pyd.docker("create", "--cgroup-parent", "../../x", IMG, "true", check=False)
            assert r.returncode != 0 and "invalid cgroup parent" in r.stderr
        finally:
            pyd.remove_all_objects()
            for d in _cgroup_dirs(parent):
                if os.path.isdir(d):
                    os.rmdir(d)


def _block_device() -> str:
    """A block device node of the host (loop devices exist on every test machine)."""
    for name in sorted(os.listdir("/dev")):
        path = os.path.join("/dev", name)
        if stat.S_ISBLK(os.stat(path).st_mode):
            return path
    raise AssertionError("no block device under /dev")


class HonouredOrRefusedTests:
    def test_refused_with_reasons(self, pyd: PydDaemon) -> None:
        """Options pyd cannot apply are refused at create, naming the field; nothing stored."""
        cases = [
            (["--storage-opt", "size=1G"], "--storage-opt is supported only for overlay over xfs"),
            (["--runtime", "pyd-no-such-runtime"], "unknown or invalid runtime name"),
            (["--isolation", "hyperv"], "Invalid isolation"),
            (["--security-opt", "apparmor=docker-default"], "AppArmor is not enabled"),
            (["--security-opt", "mask=/proc/x"], 'invalid --security-opt 2: "mask=/proc/x"'),
        ]
        for args, want in cases:
            r = pyd.docker("create", *args, IMG, "true", check=False)
            assert r.returncode != 0 and want in r.stderr, (args, r.stderr)
        assert pyd.docker("ps", "-aq").stdout.strip() == ""

    def test_accepted_forms(self, pyd: PydDaemon) -> None:
        """--userns host, --runtime crun, apparmor=unconfined, systempaths=unconfined (the
        masked paths are readable), annotations reach the runtime spec."""
        cid = pyd.docker(
            "run",
            "-d",
            "--userns",
            "host",
            "--runtime",
            "crun",
            "--security-opt",
            "apparmor=unconfined",
            "--security-opt",
            "systempaths=unconfined",
            "--annotation",
            "org.example.pyd=yes",
            IMG,
            "sleep",
            "300",
        ).stdout.strip()
        # /proc/timer_list is masked (bound to /dev/null) by default; unmasked it has content
        out = pyd.docker("exec", cid, "head", "-c", "20", "/proc/timer_list").stdout
        assert out.strip() != ""
        masked = pyd.docker("run", "--rm", IMG, "head", "-c", "20", "/proc/timer_list").stdout
        assert masked == ""
        with open(os.path.join(pyd.data_root, "containers", cid, "config.json")) as f:
            annotations = json.load(f)["annotations"]
        assert annotations["org.example.pyd"] == "yes"
        # beside the container's own: at most the compiled filter pyd hands crun
        assert set(annotations) <= {"org.example.pyd", "run.oci.seccomp_bpf_data"}

    def test_blkio(self, pyd: PydDaemon) -> None:
        """A read-bps throttle lands in the container's cgroup with the device's real numbers;
        a weight the kernel cannot apply is discarded with dockerd's warning."""
        dev = _block_device()
        st = os.stat(dev)
        numbers = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
        cid = pyd.docker(
            "run", "-d", "--device-read-bps", f"{dev}:1mb", IMG, "sleep", "300"
        ).stdout.strip()
        with open(os.path.join(pyd.data_root, "containers", cid, "config.json")) as f:
            block = json.load(f)["linux"]["resources"]["blockIO"]
        assert block["throttleReadBpsDevice"] == [
            {"major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev), "rate": 1048576}
        ]
        if not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            pid = pyd.docker("inspect", "-f", "{{.State.Pid}}", cid).stdout.strip()
            with open(f"/proc/{pid}/cgroup") as f:
                rel = next(
                    line.strip().split(":", 2)[2] for line in f if line.split(":")[1] == "blkio"
                )
            with open(f"/sys/fs/cgroup/blkio{rel}/blkio.throttle.read_bps_device") as f:
                assert f"{numbers} 1048576" in f.read()
        weight_file = "/sys/fs/cgroup/blkio/blkio.weight"
        if not os.path.exists(weight_file) and not os.path.exists(
            "/sys/fs/cgroup/cgroup.controllers"
        ):
            r = pyd.docker("run", "--rm", "--blkio-weight", "300", IMG, "true")
            assert "Weight discarded" in r.stderr


class UpdateTests:
    def test_update_applied_or_refused(self, pyd: PydDaemon) -> None:
        """docker update changes the running container's pids limit; a field update cannot
        change (Ulimits) is a 400 naming it; the CpuCount of a create body is stored."""
        cid = pyd.docker("run", "-d", IMG, "sleep", "300").stdout.strip()
        pyd.docker("update", "--pids-limit", "17", cid)
        out = pyd.docker(
            "exec",
            cid,
            "sh",
            "-c",
            "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max",
        ).stdout.strip()
        assert out == "17"
        status, _, body = pyd.request(
            "POST",
            f"/containers/{cid}/update",
            {"Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 10}]},
        )
        assert status == 400 and b"Ulimits cannot be changed by docker update" in body
        # Windows-only CpuCount: stored and shown, without effect on Linux (as dockerd)
        status, _, body = pyd.request(
            "POST", "/containers/create", {"Image": IMG, "HostConfig": {"CpuCount": 2}}
        )
        assert status == 201, body
        new = json.loads(body)["Id"]
        status, _, body = pyd.request("GET", f"/containers/{new}/json")
        assert json.loads(body)["HostConfig"]["CpuCount"] == 2
        pyd.docker("rm", "-f", new)


class DaemonOptionTests:
    def test_unconfined_daemon_with_no_new_privileges(self, tmp_path: object) -> None:
        """--seccomp-profile unconfined --no-new-privileges: info shows both and dockerd's
        warning; containers run without a filter and with NoNewPrivs, unless they opt out."""
        d = PydDaemon(
            os.path.join(str(tmp_path), "d"),
            extra_args=["--seccomp-profile", "unconfined", "--no-new-privileges"],
        )
        try:
            d.start()
            load_busybox(d)
            info = json.loads(d.docker("info", "--format", "{{json .}}").stdout)
            assert "name=seccomp,profile=unconfined" in info["SecurityOptions"]
            assert "name=no-new-privileges" in info["SecurityOptions"]
            assert "WARNING: daemon is not using the default seccomp profile" in info["Warnings"]
            out = d.docker(
                "run",
                "--rm",
                IMG,
                "sh",
                "-c",
                "unshare -U true && grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
            ).stdout.split()
            assert out == ["NoNewPrivs:", "1", "Seccomp:", "0"]
            out = d.docker(
                "run",
                "--rm",
                "--security-opt",
                "no-new-privileges=false",
                "--security-opt",
                "seccomp=builtin",
                IMG,
                "grep",
                "-E",
                "^(Seccomp|NoNewPrivs):",
                "/proc/self/status",
            ).stdout.split()
            assert out == ["NoNewPrivs:", "0", "Seccomp:", "2"]
        finally:
            d.cleanup()
