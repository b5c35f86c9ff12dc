"""The operator role end to end: the real docker CLI over mutual TLS with an operator certificate.

One daemon serves mutual TLS on loopback and its Unix socket. An admin certificate sets up what an
operator must not reach (a privileged container, one with a host bind, one in the host's network
namespace, a local volume that is a host bind in disguise); the operator certificate then tries
each escalation path and the ordinary neighbour of each. The Unix socket maps a supplementary
group to the viewer role.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.helpers.daemon import DOCKER, PydDaemon, pyd_cli
from tests.helpers.images import DEFAULT_TAG, load_busybox
from tests.helpers.registry import free_port

pytestmark = pytest.mark.e2e

VIEWER_GID = 42421  # a group no account has; the Unix test gives it to its child process


class Host:
    """The daemon, its allowed bind directory, and CLI environments per role."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.allowed = base / "allowed"
        self.allowed.mkdir()
        self.tag = uuid.uuid4().hex[:8]
        ca, srv = base / "ca", base / "srv"
        env = {"PYD_TLS_DIR": str(ca)}
        pyd_cli("tls", "init", env=env)
        pyd_cli(
            "tls", "server", "--host", "localhost", "--ip", "127.0.0.1", "--out", str(srv), env=env
        )
        self.certs = {}
        for role in ("admin", "operator"):
            out = base / f"cli-{role}"
            pyd_cli(
                "tls", "client", f"{role}-{self.tag}", "--role", role, "--out", str(out), env=env
            )
            self.certs[role] = out
        self.port = free_port()
        self.d = PydDaemon(
            str(base / "d"),
            extra_args=[
                "-H", f"tcp://127.0.0.1:{self.port}", "--tlsverify",
                "--tlscacert", str(ca / "ca.pem"),
                "--tlscert", str(srv / "server-cert.pem"),
                "--tlskey", str(srv / "server-key.pem"),
            ],
        )  # fmt: skip
        self.d.base.mkdir(parents=True, exist_ok=True)
        (self.d.base / "daemon.json").write_text(
            json.dumps(
                {
                    "allowed-bind-paths": [str(self.allowed)],
                    "unix-roles": {f"gid:{VIEWER_GID}": "viewer"},
                }
            )
        )

    def name(self, what: str) -> str:
        return f"pyd-t-{what}-{self.tag}"

    def cli(self, role: str, *args: str, build: bool = False) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(
            {
                "DOCKER_HOST": f"tcp://127.0.0.1:{self.port}",
                "DOCKER_TLS_VERIFY": "1",
                "DOCKER_CERT_PATH": str(self.certs[role]),
                "DOCKER_CONFIG": str(self.base / "docker-config"),
            }
        )
        if build:
            env["DOCKER_BUILDKIT"] = "0"
        return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=120, env=env)

    def ok(self, role: str, *args: str, build: bool = False) -> str:
        r = self.cli(role, *args, build=build)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r.stdout

    def refused(self, *args: str, rule: str, build: bool = False) -> None:
        r = self.cli("operator", *args, build=build)
        assert r.returncode != 0, (args, r.stdout)
        assert "role operator may not" in r.stderr and rule in r.stderr, (args, r.stderr)


H = TypeVar("H", bound=Host)


@contextlib.contextmanager
def running(kind: type[H], prefix: str) -> Iterator[H]:
    """A started L{Host} (or subclass) with busybox loaded; cleaned up, daemon and files, after.

    Its directory is outside pytest's 0700 temp tree, so an unprivileged child reaches the
    socket."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(base, 0o755)
    h = kind(base)
    try:
        h.d.start()
        load_busybox(h.d)
        yield h
    finally:
        h.d.cleanup()
        subprocess.run(["rm", "-rf", str(base)], check=False)


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    with running(Host, "pyd-t-op-") as h:
        # What an admin made.
        h.ok(
            "admin", "create", "--name", h.name("priv"), "--privileged", DEFAULT_TAG, "sleep", "300"
        )
        h.ok(
            "admin",
            "create",
            "--name",
            h.name("bind"),
            "-v",
            "/etc:/host-etc:ro",
            DEFAULT_TAG,
            "true",
        )
        h.ok(
            "admin", "create", "--name", h.name("hostnet"), "--network", "host", DEFAULT_TAG, "true"
        )
        h.ok(
            "admin", "volume", "create", "--opt", "type=none", "--opt", "o=bind",
            "--opt", "device=/etc", h.name("disguised"),
        )  # fmt: skip
        h.ok("admin", "create", "--name", h.name("privtools"), "--privileged",
             "-v", f"{h.name('tools')}:/tools", DEFAULT_TAG, "true")  # fmt: skip
        # The operator's own running container.
        h.ok("operator", "run", "-d", "--name", h.name("own"), DEFAULT_TAG, "sleep", "300")
        yield h


class OperatorRefusedTests:
    """Each escalation path is refused with a 403 naming the role and the rule."""

    def test_other_objects(self, host: Host) -> None:
        """--volumes-from a host-bind container, container:X namespaces of host-mode or
        privileged containers, a bind-in-disguise volume, and writing to a volume a privileged
        container uses are refused (read-only is fine)."""
        h = host
        h.refused("run", "--rm", "--volumes-from", h.name("bind"), DEFAULT_TAG, "true",
                  rule=f"use volumes from container {h.name('bind')}")  # fmt: skip
        h.refused("run", "--rm", "--network", f"container:{h.name('hostnet')}", DEFAULT_TAG, "true",
                  rule=f"join the namespaces of container {h.name('hostnet')}")  # fmt: skip
        h.refused("run", "--rm", "--pid", f"container:{h.name('priv')}", DEFAULT_TAG, "true",
                  rule="create privileged containers")  # fmt: skip
        h.refused("run", "--rm", "-v", f"{h.name('disguised')}:/x", DEFAULT_TAG, "true",
                  rule=f"use volume {h.name('disguised')}")  # fmt: skip
        h.refused("run", "--rm", "-v", f"{h.name('tools')}:/t", DEFAULT_TAG, "true",
                  rule=f"mount volume {h.name('tools')} writable")  # fmt: skip
        h.ok("operator", "run", "--rm", "-v", f"{h.name('tools')}:/t:ro", DEFAULT_TAG, "true")

    def test_calls_on_an_admins_containers(self, host: Host) -> None:
        """exec (as root or not) and cp into a privileged or host-bind container are refused."""
        h = host
        h.refused("exec", h.name("priv"), "true", rule=f"exec into container {h.name('priv')}")
        h.refused("exec", "-u", "1000", h.name("bind"), "true", rule="exec into container")
        src = h.base / "file.txt"
        src.write_text("x")
        # The CLI stats the destination first (HEAD archive, refused as a read through the
        # container's mounts); then sends the archive, refused as a write.
        h.refused("cp", str(src), f"{h.name('priv')}:/tmp/file.txt", rule="container")
        h.refused(
            "rename", h.name("priv"), h.name("mine"), rule=f"rename container {h.name('priv')}"
        )

    def test_create_options(self, host: Host) -> None:
        """Capabilities, devices, unconfined options, host namespaces, sysctls, host binds,
        shared propagation and cgroup parents are refused."""
        h = host
        for args, rule in (
            (["--cap-add", "ALL"], "add capability ALL"),
            (["--cap-add", "SYS_PTRACE"], "add capability SYS_PTRACE"),
            (["--device", "/dev/null:/dev/x"], "host devices (Devices)"),
            (["--security-opt", "apparmor=unconfined"], "unconfined security options"),
            (["--security-opt", "systempaths=unconfined"], "unmask or make writable kernel paths"),
            (["--uts", "host"], "UTSMode=host"),
            (["--ipc", "host"], "IpcMode=host"),
            (["--cgroupns", "host"], "CgroupnsMode=host"),
            (["--network", "host"], "NetworkMode=host"),
            (["--mount", "type=bind,src=/,dst=/h"], "bind-mount host path /"),
            (
                ["--mount", f"type=bind,src={h.allowed},dst=/a,bind-propagation=rshared"],
                "rshared propagation",
            ),
            (["--cgroup-parent", "/system.slice"], "choose the cgroup parent"),
            (["-p", "22:80"], "publish host port 22"),
        ):
            h.refused("run", "--rm", *args, DEFAULT_TAG, "true", rule=rule)

    def test_volumes_and_build(self, host: Host) -> None:
        """Local volumes that bind host paths or mount host devices, and host-network or
        cgroup-parent builds, are refused."""
        h = host
        h.refused("volume", "create", "--opt", "type=none", "--opt", "o=bind",
                  "--opt", "device=/root", rule="bind-mount host path /root")  # fmt: skip
        h.refused("volume", "create", "--opt", "type=ext4", "--opt", "device=/dev/sda1",
                  rule="host device or path /dev/sda1")  # fmt: skip
        ctx = h.base / "ctx"
        ctx.mkdir(exist_ok=True)
        (ctx / "Dockerfile").write_text(f"FROM {DEFAULT_TAG}\nRUN true\n")
        h.refused("build", "--network", "host", str(ctx), rule="host's network", build=True)
        h.refused("build", "--cgroup-parent", "/x", str(ctx), rule="cgroup parent", build=True)


class OperatorAllowedTests:
    """The ordinary neighbour of each refusal works for the operator."""

    def test_own_containers(self, host: Host) -> None:
        """Sidecars (volumes-from, network container:), exec, cp, safe caps and sysctls."""
        h = host
        own = h.name("own")
        h.ok("operator", "run", "--rm", "--volumes-from", own, "--network", f"container:{own}",
             DEFAULT_TAG, "true")  # fmt: skip
        assert h.ok("operator", "exec", own, "id", "-u").strip() == "0"
        src = h.base / "op.txt"
        src.write_text("hello")
        h.ok("operator", "cp", str(src), f"{own}:/tmp/")
        assert h.ok("operator", "exec", own, "cat", "/tmp/op.txt") == "hello"
        out = h.ok("operator", "run", "--rm", "--cap-add", "NET_ADMIN",
                   "--sysctl", "net.ipv4.ip_forward=1", DEFAULT_TAG,
                   "cat", "/proc/sys/net/ipv4/ip_forward")  # fmt: skip
        assert out.strip() == "1"
        # Reading from the operator's own container is allowed; from an admin-tier one, cp
        # would read through its mounts (see the attack suite), so it is refused.
        h.ok("operator", "cp", f"{own}:/etc/passwd", str(h.base / "passwd-copy"))
        assert "root:x:0:0" in (h.base / "passwd-copy").read_text()
        h.refused("cp", f"{h.name('priv')}:/etc/passwd", str(h.base / "passwd-copy2"),
                  rule=f"copy files out of container {h.name('priv')}")  # fmt: skip
        h.ok("operator", "stop", "-t", "0", h.name("priv"))

    def test_allowed_bind_paths_and_volumes(self, host: Host) -> None:
        """Binds and bind-backed volumes under allowed-bind-paths work and reach that directory;
        tmpfs volumes work."""
        h = host
        h.ok("operator", "run", "--rm", "-v", f"{h.allowed}:/a", DEFAULT_TAG,
             "sh", "-c", "echo one > /a/one")  # fmt: skip
        assert (h.allowed / "one").read_text() == "one\n"
        vol = h.name("opbind")
        h.ok("operator", "volume", "create", "--opt", "type=none", "--opt", "o=bind",
             "--opt", f"device={h.allowed}", vol)  # fmt: skip
        h.ok(
            "operator",
            "run",
            "--rm",
            "-v",
            f"{vol}:/v",
            DEFAULT_TAG,
            "sh",
            "-c",
            "echo two > /v/two",
        )
        assert (h.allowed / "two").read_text() == "two\n"
        tmp = h.name("optmpfs")
        h.ok("operator", "volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs",
             "--opt", "o=size=1m", tmp)  # fmt: skip
        h.ok("operator", "run", "--rm", "-v", f"{tmp}:/t", DEFAULT_TAG, "touch", "/t/x")

    def test_build_runs_steps(self, host: Host) -> None:
        """An operator's classic build with RUN steps and --add-host works."""
        h = host
        ctx = h.base / "ctx-ok"
        ctx.mkdir(exist_ok=True)
        (ctx / "Dockerfile").write_text(
            f"FROM {DEFAULT_TAG}\nRUN grep -q build-host /etc/hosts && echo built > /built\n"
        )
        tag = f"pyd-t-opbuild-{h.tag}:latest"
        h.ok("operator", "build", "-q", "--add-host", "build-host:10.0.0.1", "-t", tag, str(ctx),
             build=True)  # fmt: skip
        assert h.ok("operator", "run", "--rm", tag, "cat", "/built").strip() == "built"

    def test_admin_unaffected(self, host: Host) -> None:
        """What the operator is refused still works for the admin certificate."""
        h = host
        h.ok("admin", "run", "--rm", "--volumes-from", h.name("bind"), DEFAULT_TAG,
             "test", "-f", "/host-etc/hostname")  # fmt: skip
        h.ok("admin", "run", "--rm", "-v", f"{h.name('disguised')}:/x", DEFAULT_TAG,
             "test", "-f", "/x/hostname")  # fmt: skip
        h.ok("admin", "start", h.name("priv"))
        h.ok("admin", "exec", h.name("priv"), "true")
        h.ok("admin", "stop", "-t", "0", h.name("priv"))


class UnixGroupsTests:
    """Unix-socket roles use the peer's supplementary groups."""

    def test_supplementary_group_maps_to_viewer(self, host: Host) -> None:
        """A peer whose supplementary group is mapped to viewer may read but not create; the
        same uid without that group is admin (the default)."""
        d = host.d
        os.chmod(d.sock, 0o666)
        code = (
            "import os, socket, sys\n"
            "os.setgroups([int(sys.argv[1])]); os.setgid(65534); os.setuid(65534)\n"
            "def r(method, path, body=b''):\n"
            "    s = socket.socket(socket.AF_UNIX); s.connect(SOCK)\n"
            "    s.sendall(f'{method} {path} HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n"
            "Content-Type: application/json\\r\\nContent-Length: {len(body)}\\r\\n\\r\\n'.encode() + body)\n"
            "    data = b''\n"
            "    while chunk := s.recv(65536): data += chunk\n"
            "    return data.decode()\n"
            "create = r('POST', '/containers/create', b'{}')\n"
            "print(r('GET', '/info').split()[1], create.split()[1], create.splitlines()[-1])\n"
        ).replace("SOCK", repr(d.sock))

        def as_group(gid: int) -> str:
            out = subprocess.run(
                ["/usr/bin/python3", "-c", code, str(gid)],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert out.returncode == 0, out.stderr
            return out.stdout

        viewer = as_group(VIEWER_GID)
        assert viewer.startswith("200 403"), viewer
        assert "role viewer may not POST /containers/create" in viewer
        other = as_group(VIEWER_GID + 1)
        assert other.startswith("200 ") and not other.startswith("200 403"), other
