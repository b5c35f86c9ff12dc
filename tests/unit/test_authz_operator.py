"""Operator escalation paths (pyd.api.authz): each refusal and each allowed neighbour.

The rules look at the request and at the objects it names; L{FakeLookup} holds those objects
(containers as the engine stores them, volumes' driver options, exec sessions).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from pyd.api.authz import (
    Authorizer,
    Identity,
    Policy,
    RoleVisibility,
    candidates,
)
from pyd.api.identity import groups_from_status, unix_group_keys
from pyd.api.visibility import redact_event, redact_inspect
from pyd.core.errors import Forbidden, InvalidParameter
from pyd.core.records import Container, ContainerState, Event, MountSpec
from pyd.drivers.volumes.stage import confine
from pyd.engine.spec import CreateSpec, parse_create
from pyd.engine.volumes import parse_bind
from tests.helpers.sync import run_sync
from tests.unit.test_authz import FakeRequest, route_for, run_check


def container(
    name: str, hc: dict[str, Any] | None = None, mounts: tuple[MountSpec, ...] = ()
) -> Container:
    """A container as the engine stores it (defaults filled in like create does)."""
    full = {"NetworkMode": "bridge", "RestartPolicy": {"Name": "no"}, "ShmSize": 67108864}
    full.update(hc or {})
    return Container(
        id=name.ljust(64, "0"),
        name="/" + name,
        image_id="sha256:" + "1" * 64,
        image_ref="busybox",
        created_nano=0,
        config={"Cmd": ["sh"]},
        host_config=full,
        state=ContainerState(),
        mounts=mounts,
    )


class FakeLookup:
    """Containers, volumes and exec sessions the rules may look up."""

    def __init__(self) -> None:
        self.by_ref: dict[str, Container] = {}
        self.volumes: dict[str, dict[str, str] | None] = {}
        self.execs: dict[str, tuple[str, bool]] = {}
        self.networks = {
            "host": "host",
            "f00dhostnet": "host",
            "bridge": "bridge",
            "mynet": "bridge",
        }

    def add(self, c: Container) -> Container:
        self.by_ref[c.name.lstrip("/")] = c
        self.by_ref[c.id] = c
        return c

    def all(self) -> list[Container]:
        return list({c.id: c for c in self.by_ref.values()}.values())

    def containers(self, ref: str) -> list[Container]:
        return candidates(self.all(), ref)

    def parse_create(self, body: Any, api_version: tuple[int, int]) -> CreateSpec:
        return parse_create(body, api_version)

    async def volume_options(self, name: str) -> Mapping[str, str] | None:
        return self.volumes.get(name)

    def exec_session(self, exec_id: str) -> tuple[str, bool] | None:
        return self.execs.get(exec_id)

    def network_driver(self, ref: str) -> str | None:
        return self.networks.get(ref)

    def volume_users(self, name: str) -> list[Container]:
        unique = {c.id: c for c in self.by_ref.values()}
        return [
            c
            for c in unique.values()
            if any(m.type == "volume" and m.name == name for m in c.mounts)
        ]

    async def bind_root(self, path: str, roots: Sequence[str]) -> tuple[str, str] | None:
        return confine(path, roots)  # the daemon's resolution, inline


class _Base(SynchronousTestCase):
    def setUp(self) -> None:
        self.lookup = FakeLookup()
        self.base = tempfile.mkdtemp(prefix="pyd-t-authz-")
        self.addCleanup(shutil.rmtree, self.base)
        self.allowed = os.path.join(self.base, "shared")
        os.mkdir(self.allowed)
        self.policy = Policy(allowed_bind_paths=(self.allowed,))
        # What an admin made: a privileged container, one with a host bind, one in the host's
        # network namespace, an ordinary one; a bind-backed volume and a tmpfs volume.
        self.lookup.add(container("priv", {"Privileged": True}))
        self.lookup.add(
            container(
                "hostbind",
                {"Binds": ["/etc:/host-etc"]},
                (MountSpec("bind", "/etc", "/host-etc", propagation="rprivate"),),
            )
        )
        self.lookup.add(container("hostnet", {"NetworkMode": "host"}))
        self.lookup.add(container("chained", {"NetworkMode": "container:hostnet"}))
        self.lookup.add(
            container(
                "plain",
                # as the engine stores it: the daemon's default runtime and shm size filled in
                {
                    "Binds": ["data:/data", f"{self.allowed}:/s"],
                    "Runtime": "crun",
                    "ShmSize": 64 << 20,
                },
                (
                    MountSpec("volume", "/var/lib/pyd/volumes/data/_data", "/data", name="data"),
                    MountSpec("bind", self.allowed, "/s", propagation="rprivate"),
                ),
            )
        )
        self.lookup.add(
            container(
                "usesdisguised",
                {"Binds": ["disguised:/r"]},
                (MountSpec("volume", "/v/disguised/_data", "/r", name="disguised"),),
            )
        )
        self.lookup.volumes["disguised"] = {"type": "none", "o": "bind", "device": "/root"}
        self.lookup.volumes["scratch"] = {"type": "tmpfs", "device": "tmpfs", "o": "size=10m"}
        self.lookup.volumes["nfs"] = {"type": "nfs", "o": "addr=10.0.0.1,ro", "device": ":/export"}

    def refuse(
        self, method: str, path: str, body: Any = None, args: dict[bytes, list[bytes]] | None = None
    ) -> str:
        with self.assertRaises(Forbidden) as cm:
            run_check("operator", method, path, FakeRequest(body, args), self.policy, self.lookup)
        msg = str(cm.exception)
        self.assertTrue(msg.startswith("pyd authorization: role operator may not "), msg)
        return msg

    def allow(
        self, method: str, path: str, body: Any = None, args: dict[bytes, list[bytes]] | None = None
    ) -> None:
        run_check("operator", method, path, FakeRequest(body, args), self.policy, self.lookup)

    def create_refused(self, hc: dict[str, Any], rule: str) -> None:
        msg = self.refuse("POST", "/containers/create", {"Image": "busybox", "HostConfig": hc})
        self.assertIn(rule, msg)

    def create_invalid(self, hc: dict[str, Any], text: str) -> None:
        with self.assertRaises(InvalidParameter) as cm:
            self.create_allowed(hc)
        self.assertIn(text, str(cm.exception))

    def create_allowed(self, hc: dict[str, Any]) -> None:
        self.allow("POST", "/containers/create", {"Image": "busybox", "HostConfig": hc})


class OtherObjectsTests(_Base):
    """The holes of session 1: --volumes-from and container:X namespaces, named volumes."""

    def test_volumes_from_host_bind_refused(self) -> None:
        """--volumes-from a container with a host bind (or a bind-backed volume) is refused."""
        self.create_refused(
            {"VolumesFrom": ["hostbind"]},
            "use volumes from container hostbind (made with what an operator may not: "
            "bind-mount host path /etc",
        )
        self.create_refused({"VolumesFrom": ["usesdisguised:ro"]}, "container usesdisguised")

    def test_volumes_from_ordinary_allowed(self) -> None:
        """--volumes-from a container with named volumes and allowed binds is allowed, and so is
        one that is privileged but mounts nothing of the host (its mounts are what is shared)."""
        self.create_allowed({"VolumesFrom": ["plain", "priv:ro"]})
        self.create_allowed({"VolumesFrom": ["no-such-container"]})  # the engine answers 404

    def test_join_namespaces_of_privileged_or_host_containers_refused(self) -> None:
        """network/pid/ipc container:X where X is privileged, host-mode, has host binds, or
        itself joins such a container, is refused."""
        for key in ("NetworkMode", "PidMode", "IpcMode"):
            for target, why in (
                ("priv", "create privileged containers"),
                ("hostnet", "NetworkMode=host"),
                ("hostbind", "bind-mount host path /etc"),
                ("chained", "join the namespaces of container hostnet"),
            ):
                msg = self.refuse(
                    "POST",
                    "/containers/create",
                    {"HostConfig": {key: f"container:{target}"}},
                )
                self.assertIn(f"join the namespaces of container {target}", msg)
                self.assertIn(why, msg)

    def test_join_ordinary_container_allowed(self) -> None:
        """container:X of an ordinary container is allowed (a sidecar)."""
        for key in ("NetworkMode", "PidMode", "IpcMode"):
            self.create_allowed({key: "container:plain"})

    def test_named_volume_in_disguise_refused(self) -> None:
        """A named volume an admin created with o=bind device=/root is a host bind: refused
        in Binds and Mounts; tmpfs, NFS and plain volumes are fine."""
        self.create_refused({"Binds": ["disguised:/x"]}, "use volume disguised")
        self.create_refused(
            {"Mounts": [{"Type": "volume", "Source": "disguised", "Target": "/x"}]},
            "bind-mount host path /root",
        )
        self.create_allowed(
            {
                "Binds": ["scratch:/s", "nfs:/n", "newvol:/v"],
                "Mounts": [{"Type": "volume", "Source": "scratch", "Target": "/t"}],
            }
        )

    def test_volume_shared_with_an_admin_container(self) -> None:
        """A volume a privileged container mounts may be mounted read-only only (what is written
        there that container may run with its powers), directly or through --volumes-from."""
        tools = MountSpec("volume", "/v/tools/_data", "/usr/local/bin", name="tools")
        self.lookup.add(container("privtools", {"Privileged": True}, (tools,)))
        self.lookup.add(container("optools", {}, (tools,)))
        msg = self.refuse("POST", "/containers/create", {"HostConfig": {"Binds": ["tools:/t"]}})
        self.assertIn("mount volume tools writable: container privtools uses it", msg)
        self.create_refused(
            {"Mounts": [{"Type": "volume", "Source": "tools", "Target": "/t"}]}, "read-only"
        )
        self.create_refused({"VolumesFrom": ["optools"]}, "mount volume tools writable")
        self.create_refused({"VolumesFrom": ["privtools"]}, "mount volume tools writable")
        self.create_allowed(
            {
                "Binds": ["tools:/t:ro"],
                "Mounts": [{"Type": "volume", "Source": "tools", "Target": "/u", "ReadOnly": True}],
                "VolumesFrom": ["optools:ro"],
            }
        )
        self.create_allowed({"Binds": ["data:/d"]})  # used by ordinary containers only

    def test_named_volume_bound_under_allowed_path_allowed(self) -> None:
        """A bind-backed volume whose device lies under allowed-bind-paths is fine."""
        self.lookup.volumes["ok"] = {"type": "none", "o": "bind", "device": self.allowed}
        self.create_allowed({"Binds": ["ok:/x"]})


class CreateOptionTests(_Base):
    """Every HostConfig option that could reach the host."""

    def test_capabilities(self) -> None:
        """Dangerous capabilities and ALL are refused; defaults and namespaced ones pass."""
        for cap in (
            "SYS_ADMIN",
            "CAP_SYS_MODULE",
            "sys_ptrace",
            "ALL",
            "DAC_READ_SEARCH",
            "SYS_RAWIO",
            "SYS_TIME",
            "BPF",
            "MAC_ADMIN",
        ):
            name = cap.upper().removeprefix("CAP_")
            self.create_refused({"CapAdd": [cap]}, f"add capability {name} (CapAdd)")
        self.create_allowed({"CapAdd": ["NET_ADMIN", "CAP_CHOWN", "sys_nice"], "CapDrop": ["ALL"]})
        # Names the engine does not know are its 400 (the rules read the engine's parse).
        self.create_invalid({"CapAdd": ["NO_SUCH_CAP"]}, "unknown capability")

    def test_devices(self) -> None:
        """--device, device cgroup rules and --gpus are refused."""
        for key, value in (
            ("Devices", [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda"}]),
            ("DeviceCgroupRules", ["b 8:* rwm"]),
            ("DeviceRequests", [{"Count": -1, "Capabilities": [["gpu"]]}]),
        ):
            self.create_refused({key: value}, f"host devices ({key})")

    def test_security_opts(self) -> None:
        """Unconfined options and custom profiles are refused; no-new-privileges passes."""
        for opt in (
            "seccomp=unconfined",
            "seccomp:unconfined",
            "apparmor=unconfined",
            "label=disable",
            "label:disable",
            "systempaths=unconfined",
        ):
            self.create_refused({"SecurityOpt": [opt]}, "unconfined security options")
        for opt in (
            'seccomp={"defaultAction":"SCMP_ACT_ALLOW"}',
            "apparmor=lax",
            "label=type:spc_t",
        ):
            self.create_refused({"SecurityOpt": [opt]}, "use security option")
        self.create_allowed(
            {
                "SecurityOpt": [
                    "no-new-privileges",
                    "no-new-privileges:true",
                    "apparmor=docker-default",
                    "label=level:s0:c1",
                ]
            }
        )

    def test_host_namespaces(self) -> None:
        """--pid/--ipc/--uts/--userns/--cgroupns/--network host are refused."""
        for key in ("PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode", "NetworkMode"):
            self.create_refused({key: "host"}, f"({key}=host)")
        self.create_allowed(
            {"IpcMode": "shareable", "CgroupnsMode": "private", "NetworkMode": "none"}
        )

    def test_host_network_by_id_or_endpoint(self) -> None:
        """The host network named by id, as an extra endpoint, or in network connect is refused;
        user networks are fine; '//' in a path does not hide a call from the rules."""
        self.create_refused({"NetworkMode": "f00dhostnet"}, "the host network")
        msg = self.refuse(
            "POST",
            "/containers/create",
            {"HostConfig": {}, "NetworkingConfig": {"EndpointsConfig": {"host": {}}}},
        )
        self.assertIn("connect containers to the host network (host)", msg)
        self.refuse("POST", "/networks/f00dhostnet/connect", {"Container": "plain"})
        self.allow("POST", "/networks/mynet/connect", {"Container": "plain"})
        self.allow(
            "POST",
            "/containers/create",
            {
                "HostConfig": {"NetworkMode": "mynet"},
                "NetworkingConfig": {"EndpointsConfig": {"mynet": {}}},
            },
        )
        # Repeated or trailing slashes match no route (werkzeug redirects or answers 404): no
        # handler runs, whatever the rules would say.
        for path in (
            "//containers//priv/exec/",
            "/containers//priv/exec",
            "/containers/priv/exec/",
        ):
            self.assertIsNone(route_for("POST", path), path)

    def test_masked_and_readonly_paths(self) -> None:
        """MaskedPaths/ReadonlyPaths that drop Docker's defaults are refused (empty ones too)."""
        from pyd.drivers.runtime.spec import MASKED_PATHS, READONLY_PATHS

        self.create_refused({"MaskedPaths": []}, "MaskedPaths without Docker's defaults")
        self.create_refused(
            {"ReadonlyPaths": ["/proc/bus"]}, "ReadonlyPaths without Docker's defaults"
        )
        self.create_allowed(
            {
                "MaskedPaths": [*MASKED_PATHS, "/proc/extra"],
                "ReadonlyPaths": list(READONLY_PATHS),
            }
        )

    def test_sysctls(self) -> None:
        """Only sysctls of the container's own namespaces are allowed."""
        for key in (
            "kernel.core_pattern",
            "vm.overcommit_memory",
            "kernel.modprobe",
            "fs.file-max",
        ):
            self.create_refused({"Sysctls": {key: "1"}}, f"set sysctl {key}")
        # Names are judged as the file the runtime writes; escaping parts are the engine's 400.
        self.create_refused(
            {"Sysctls": {"kernel/core_pattern": "|x"}}, "sysctl kernel.core_pattern"
        )
        for key in ("net/../kernel/core_pattern", "net.ipv4/../../kernel.core_pattern",
                    "net..x", "net/./x", ".net.x", "net.x.", "net.x\n"):  # fmt: skip
            self.create_invalid({"Sysctls": {key: "1"}}, "invalid sysctl name")
        self.create_allowed(
            {
                "Sysctls": {
                    "net.ipv4.ip_forward": "1",
                    "net/core/somaxconn": "1024",
                    "kernel.shmmax": "1",
                    "fs.mqueue.msg_max": "20",
                }
            }
        )

    def test_binds_and_mounts(self) -> None:
        """Host binds outside the allowed list, shared propagation, and unknown mount types are
        refused; bind options inside the allowed list pass (non-recursive, slave, create)."""
        self.create_refused({"Binds": ["/:/host"]}, "bind-mount host path /")
        self.create_refused(
            {"Binds": [f"{self.allowed}:/s:rshared"]}, "bind-mount with rshared propagation"
        )
        self.create_refused(
            {
                "Mounts": [
                    {
                        "Type": "bind",
                        "Source": self.allowed,
                        "Target": "/s",
                        "BindOptions": {"Propagation": "shared"},
                    }
                ]
            },
            "shared propagation",
        )
        with self.assertRaises(InvalidParameter) as cm:
            self.create_allowed({"Mounts": [{"Type": "npipe", "Source": "x", "Target": "/x"}]})
        self.assertIn('type "npipe": mount type unknown', str(cm.exception))
        self.create_allowed(
            {
                "Binds": [f"{self.allowed}/sub:/s:ro,rslave"],
                "Mounts": [
                    {
                        "Type": "bind",
                        "Source": f"{self.allowed}/new",
                        "Target": "/n",
                        "BindOptions": {
                            "NonRecursive": True,
                            "CreateMountpoint": True,
                            "Propagation": "rslave",
                        },
                    },
                    {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1 << 20}},
                ],
                "Tmpfs": {"/run": "rw,size=1m"},
            }
        )

    def test_bind_sources_are_classified_by_the_engines_parser(self) -> None:
        """Escape 2 of issue 12: a source not starting with C{/} is a volume name for the rules
        and for the engine alike (C{\\root} was a volume here and C{/root} there); a
        C{--mount type=bind} source must be absolute, with C{/}."""
        for source in ("\\", "\\root", "\\\\etc", "./x", "~", "~/x", "..\\..\\"):
            bind = parse_bind(f"{source}:/host")
            self.assertEqual((bind.type, bind.source), ("volume", source))
            self.create_allowed({"Binds": [f"{source}:/host"]})  # the volume name rule refuses it
            with self.assertRaises(InvalidParameter) as cm:
                self.create_allowed(
                    {"Mounts": [{"Type": "bind", "Source": source, "Target": "/h"}]}
                )
            self.assertIn("mount path must be absolute", str(cm.exception))
        for bind in ("//:/h", "/./:/h", "/tmp/../:/h", "/.:/h:rw"):
            self.create_refused({"Binds": [bind]}, "bind-mount host path /")

    def test_mount_volume_options(self) -> None:
        """--mount type=volume with driver options follows the volume-create rules."""

        def vol(opts: dict[str, str]) -> dict[str, Any]:
            return {
                "Mounts": [
                    {
                        "Type": "volume",
                        "Target": "/v",
                        "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": opts}},
                    }
                ]
            }

        self.create_refused(vol({"type": "ext4", "device": "/dev/sda1"}), "host device")
        self.create_refused(vol({"type": "none", "o": "bind", "device": "/etc"}), "/etc")
        self.create_allowed(vol({"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}))

    def test_low_host_ports(self) -> None:
        """Publishing host ports below 1024 (root's on the host) is refused; high, ranged and
        ephemeral ports are allowed; an admin's container publishing port 80 (or with a cgroup
        parent) stays usable."""
        self.create_refused(
            {"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "22"}]}},
            "publish host port 22 (below 1024, for 80/tcp)",
        )
        self.create_refused(
            {"PortBindings": {"80/tcp": [{"HostPort": "1000-1100"}]}}, "publish host port"
        )
        # The engine's strict parser: what Python's int() would read as 22 is a 400 for both.
        for text in ("+22", " 22", "22 ", "8_1", "0x16", "\uff12\uff12", "22-+30"):
            self.create_invalid(
                {"PortBindings": {"80/tcp": [{"HostPort": text}]}}, f"invalid hostPort: {text}"
            )
        self.create_allowed(
            {
                "PortBindings": {
                    "80/tcp": [{"HostPort": "8080"}, {"HostPort": ""}],
                    "53/udp": [{"HostPort": "10053-10060"}],
                },
                "PublishAllPorts": True,
            }
        )
        self.lookup.add(
            container(
                "web",
                {"PortBindings": {"80/tcp": [{"HostPort": "80"}]}, "CgroupParent": "/web.slice"},
            )
        )
        self.allow("POST", "/containers/web/exec", {"Cmd": ["sh"]})

    def test_wrong_types_refused(self) -> None:
        """A list or map field sent as another type is the engine's 400 (Go's typed decoding),
        not interpreted."""
        self.create_invalid({"Binds": "/etc:/x"}, "cannot unmarshal")
        self.create_invalid({"CapAdd": 1}, "cannot unmarshal")
        self.create_invalid({"Sysctls": ["kernel.core_pattern=x"]}, "cannot unmarshal")
        self.create_allowed({"Binds": None, "CapAdd": None, "Sysctls": None})

    def test_cgroup_parent_and_annotations(self) -> None:
        """CgroupParent and OCI annotations are admin-only."""
        self.create_refused({"CgroupParent": "/system.slice"}, "choose the cgroup parent")
        self.create_refused({"Annotations": {"run.oci.hooks.stdout": "/x"}}, "set OCI annotations")

    def test_resources_and_ordinary_options_allowed(self) -> None:
        """Limits, ulimits, ports, DNS, hosts, log options, init and groups are allowed."""
        self.create_allowed(
            {
                "Memory": 1 << 30,
                "PidsLimit": -1,
                "OomScoreAdj": -500,
                "Ulimits": [{"Name": "nofile", "Soft": 1 << 20, "Hard": 1 << 20}],
                "PortBindings": {"80/tcp": [{"HostPort": "8080"}]},
                "Dns": ["10.0.0.1"],
                "ExtraHosts": ["a:10.0.0.2"],
                "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
                "Init": True,
                "GroupAdd": ["disk"],
                "ReadonlyRootfs": True,
                "RestartPolicy": {"Name": "always"},
            }
        )

    def test_start_with_host_config_checked(self) -> None:
        """A HostConfig on start (old clients) gets the same rules; an empty start passes."""
        msg = self.refuse("POST", "/containers/plain/start", {"Privileged": True})
        self.assertIn("privileged", msg)
        self.allow("POST", "/containers/priv/start")


class ExistingContainerTests(_Base):
    """Calls on a container an admin made beyond the operator's reach."""

    def test_exec(self) -> None:
        """Exec into a privileged/host-bind/host-net container is refused, as any user; exec into
        an ordinary one is allowed; a privileged exec is refused everywhere."""
        for name in ("priv", "hostbind", "hostnet", "chained"):
            for user in ("", "root", "1000:1000"):
                msg = self.refuse("POST", f"/containers/{name}/exec", {"Cmd": ["sh"], "User": user})
                self.assertIn(
                    f"exec into container {name} (made with what an operator may not", msg
                )
        self.allow("POST", "/containers/plain/exec", {"Cmd": ["sh"], "User": "root"})
        self.assertIn(
            "run a privileged exec",
            self.refuse("POST", "/containers/plain/exec", {"Cmd": ["sh"], "Privileged": True}),
        )

    def test_exec_start_of_an_admins_exec(self) -> None:
        """Starting an exec an admin created (privileged, or in a privileged container) is
        refused; starting one's own is allowed; resize and inspect are allowed."""
        self.lookup.execs["e1"] = (self.lookup.by_ref["plain"].id, True)
        self.lookup.execs["e2"] = (self.lookup.by_ref["priv"].id, False)
        self.lookup.execs["e3"] = (self.lookup.by_ref["plain"].id, False)
        self.assertIn("start a privileged exec", self.refuse("POST", "/exec/e1/start", {}))
        self.assertIn("exec into container priv", self.refuse("POST", "/exec/e2/start", {}))
        self.allow("POST", "/exec/e3/start", {"Detach": False})
        self.allow("POST", "/exec/e2/resize", args={b"h": [b"10"], b"w": [b"10"]})
        self.allow("GET", "/exec/e2/json")

    def test_attach_stdin(self) -> None:
        """Attaching stdin to such a container is refused (its main process may be a root
        shell); attaching to read its output is allowed, as are logs."""
        msg = self.refuse("POST", "/containers/priv/attach", args={b"stdin": [b"1"]})
        self.assertIn("attach stdin to container priv", msg)
        self.refuse("GET", "/containers/priv/attach/ws", args={b"stdin": [b"true"]})
        self.allow("GET", "/containers/priv/attach/ws", args={b"stdout": [b"1"]})
        # Before API 1.42 a websocket attach joins stdin whatever the query says (dockerd).
        old = FakeRequest(None, {b"stdout": [b"1"]})
        old.pyd_api_version = (1, 41)
        with self.assertRaises(Forbidden):
            run_check(
                "operator", "GET", "/containers/priv/attach/ws", old, self.policy, self.lookup
            )
        # Every spelling the endpoint takes as true (one function: pyd.api.wire.qbool).
        for value in (b"on", b"True", b"TRUE", b"yes", b"y", b"2", b" 1", b"anything"):
            self.refuse("POST", "/containers/priv/attach", args={b"stdin": [value]})
        for value in (b"0", b"no", b"false", b"none", b"", b"FALSE"):
            self.allow("POST", "/containers/priv/attach", args={b"stdin": [value]})
        self.allow("POST", "/containers/priv/attach", args={b"stdout": [b"1"], b"stream": [b"1"]})
        self.allow("POST", "/containers/plain/attach", args={b"stdin": [b"1"]})
        self.allow("GET", "/containers/priv/logs")

    def test_copy_into_and_out_of(self) -> None:
        """docker cp into or out of such a container (GET/HEAD archive read through its mounts:
        escape 3 of issue 12) is refused; export (the root filesystem only) is allowed, and
        cp with an ordinary container both ways."""
        msg = self.refuse("PUT", "/containers/hostbind/archive", args={b"path": [b"/"]})
        self.assertIn("copy files into container hostbind", msg)
        self.allow("PUT", "/containers/plain/archive", args={b"path": [b"/"]})
        msg = self.refuse("GET", "/containers/hostbind/archive", args={b"path": [b"/host-etc"]})
        self.assertIn("copy files out of container hostbind", msg)
        self.refuse("HEAD", "/containers/priv/archive", args={b"path": [b"/"]})
        self.refuse("GET", "/containers/usesdisguised/archive", args={b"path": [b"/r"]})
        self.allow("GET", "/containers/plain/archive", args={b"path": [b"/s"]})
        self.allow("GET", "/containers/priv/export")

    def test_every_container_a_reference_may_name(self) -> None:
        """A name that is also an id prefix of an admin-tier container is refused (removing
        the decoy would make the handler resolve it to the other): exec, cp, attach, joins."""
        target = attrs.evolve(container("adm", {"Privileged": True}), id="abcd" + "1" * 60)
        self.lookup.add(target)
        self.lookup.add(attrs.evolve(container("abcd"), id="e" * 64))
        ref = "abcd"
        self.assertIn("container adm", self.refuse("POST", f"/containers/{ref}/exec", {}))
        self.refuse("GET", f"/containers/{ref}/archive", args={b"path": [b"/"]})
        self.refuse("POST", f"/containers/{ref}/attach", args={b"stdin": [b"1"]})
        for key in ("NetworkMode", "PidMode", "IpcMode"):
            self.create_refused({key: f"container:{ref}"}, "join the namespaces of container adm")

    def test_lifecycle_and_update(self) -> None:
        """Start/stop/kill/rm/commit of any container are allowed; update may raise
        limits but not add devices."""
        for action in ("start", "stop", "restart", "kill", "pause", "unpause", "wait", "resize"):
            self.allow("POST", f"/containers/priv/{action}")
        self.allow("DELETE", "/containers/priv")
        self.allow("POST", "/commit", {"Cmd": ["sh"]}, args={b"container": [b"priv"]})
        self.allow(
            "POST", "/containers/priv/update", {"Memory": 0, "PidsLimit": -1, "CpuShares": 4096}
        )
        self.assertIn(
            "host devices",
            self.refuse("POST", "/containers/plain/update", {"DeviceCgroupRules": ["a *:* rwm"]}),
        )

    def test_rename(self) -> None:
        """Renaming an admin's privileged container is refused (names are what container:X and
        --volumes-from resolve); renaming an ordinary one is allowed."""
        msg = self.refuse("POST", "/containers/priv/rename", args={b"name": [b"mine"]})
        self.assertIn("rename container priv", msg)
        self.allow("POST", "/containers/plain/rename", args={b"name": [b"other"]})

    def test_unknown_container_left_to_the_engine(self) -> None:
        """A container that does not exist is not refused here (the engine answers 404)."""
        self.allow("POST", "/containers/ghost/exec", {"Cmd": ["sh"]})
        self.allow("PUT", "/containers/ghost/archive")


class VolumeCreateTests(_Base):
    """POST /volumes/create with the local driver's options."""

    def create(self, opts: dict[str, str] | None) -> None:
        self.allow("POST", "/volumes/create", {"Name": "v", "DriverOpts": opts})

    def refused(self, opts: dict[str, str], rule: str) -> None:
        msg = self.refuse("POST", "/volumes/create", {"Name": "v", "DriverOpts": opts})
        self.assertIn(rule, msg)

    def test_host_binds_in_disguise_refused(self) -> None:
        """type=none o=bind device=/host/path is a host bind: refused outside the allowed list;
        relative devices and shared propagation too."""
        self.refused({"type": "none", "o": "bind", "device": "/"}, "bind-mount host path /")
        self.refused({"type": "none", "o": "rbind,ro", "device": "/etc"}, "host path /etc")
        self.refused({"type": "none", "o": "bind", "device": "etc"}, "relative host path")
        self.refused(
            {"type": "none", "o": "bind,rshared", "device": self.allowed}, "shared propagation"
        )
        self.create({"type": "none", "o": "bind,ro", "device": self.allowed})

    def test_other_types_refused(self) -> None:
        """Block devices, loop files, overlay over host paths, and network filesystems
        (mounted by root with the host's identity) are refused; tmpfs and plain are allowed."""
        self.refused({"type": "ext4", "device": "/dev/sda1"}, "host device or path /dev/sda1")
        self.refused({"type": "ext4", "o": "loop", "device": "/root/disk.img"}, "host")
        self.refused(
            {
                "type": "overlay",
                "o": "lowerdir=/etc,upperdir=/tmp/u,workdir=/tmp/w",
                "device": "overlay",
            },
            "type=overlay",
        )
        self.refused({"type": "nfs", "o": "addr=10.0.0.1", "device": ":/export"}, "type nfs")
        self.refused({"type": "cifs", "o": "credentials=/root/c", "device": "//s/x"}, "type cifs")
        self.refused({"type": "tmpfs", "o": "size=1m,context=x", "device": "tmpfs"}, "context")
        self.create({"type": "tmpfs", "o": "size=1m,uid=1000,mode=0700", "device": "tmpfs"})
        self.create(None)
        self.create({})


class BuildTests(_Base):
    """POST /build: the RUN steps' containers get the same rules."""

    def build(self, **params: str) -> dict[bytes, list[bytes]]:
        return {k.encode(): [v.encode()] for k, v in params.items()}

    def test_build_network_and_cgroup(self) -> None:
        """--network host, --network container:X of a privileged container, --cgroup-parent are
        refused; bridge, none, --add-host, limits and ulimits are allowed."""
        self.assertIn(
            "host's network", self.refuse("POST", "/build", args=self.build(networkmode="host"))
        )
        msg = self.refuse("POST", "/build", args=self.build(networkmode="container:priv"))
        self.assertIn("RUN step containers", msg)
        self.assertIn("container priv", msg)
        self.assertIn(
            "cgroup parent", self.refuse("POST", "/build", args=self.build(cgroupparent="/x"))
        )
        self.allow(
            "POST",
            "/build",
            args=self.build(
                networkmode="none",
                extrahosts="a:10.0.0.1",
                memory="100000000",
                ulimits='[{"Name":"nofile","Soft":1024,"Hard":1024}]',
            ),
        )
        self.allow("POST", "/build", args=self.build(networkmode="container:plain"))
        self.allow("POST", "/build/prune")
        self.allow("POST", "/build/cancel", args=self.build(id="x"))

    def test_dockerfile_run_options_refused_for_operators(self) -> None:
        """RUN --network=host and --security=insecure sit in the Dockerfile, which the rules
        cannot see: an allowed operator build carries the refusals into the build options
        (issue 20), worded as the rules word them."""
        from pyd.api.build import options_from_request

        req = FakeRequest(None, self.build(networkmode="none"))
        run_check("operator", "POST", "/build", req, self.policy, self.lookup)
        refused = options_from_request(req).refused
        self.assertEqual(set(refused), {"network.host", "security.insecure"})
        self.assertTrue(
            refused["network.host"].startswith("pyd authorization: role operator may not build")
        )
        self.assertIn("RUN --network=host", refused["network.host"])
        # An admin's request is not checked (the guard returns at once): nothing refused.
        self.assertEqual(options_from_request(FakeRequest(None, self.build())).refused, {})

    def test_every_step_option_is_checked(self) -> None:
        """The rules check the builder's own step HostConfig (one function), so an option the
        builder passes on cannot escape them."""
        from pyd.engine.builder.builder import BuildOptions, step_host_config

        hc = step_host_config(BuildOptions(network_mode="host", cgroup_parent="/x"))
        self.assertEqual(hc["NetworkMode"], "host")
        self.assertEqual(hc["CgroupParent"], "/x")


class EndpointTests(_Base):
    """Whole endpoints: admin-only ones and ordinary ones."""

    def test_admin_only_endpoints(self) -> None:
        """Plugins, swarm, BuildKit session/grpc and unknown areas are refused for writes."""
        for method, path in (
            ("POST", "/plugins/pull"),
            ("POST", "/plugins/x/enable"),
            ("DELETE", "/plugins/x"),
            ("POST", "/swarm/init"),
            ("POST", "/services/create"),
            ("POST", "/secrets/create"),
            ("POST", "/nodes/x/update"),
        ):
            self.assertIn("admin only", self.refuse(method, path))
        # Areas pyd has no route for: no handler runs (404); a route added later is admin-only
        # until it declares otherwise (see RouteDeclarationTests).
        for path in ("/session", "/grpc", "/something-new"):
            self.assertIsNone(route_for("POST", path))

    def test_ordinary_endpoints_allowed(self) -> None:
        """Images (pull, push, load, import, tag, rm, prune), networks, volumes, auth, events."""
        for method, path, args in (
            ("POST", "/images/create", {b"fromImage": [b"busybox"]}),
            ("POST", "/images/create", {b"fromSrc": [b"-"], b"changes": [b"USER root"]}),
            ("POST", "/images/load", None),
            ("POST", "/images/busybox/push", None),
            ("POST", "/images/busybox/tag", {b"repo": [b"x"]}),
            ("DELETE", "/images/busybox", None),
            ("POST", "/images/prune", None),
            ("POST", "/networks/create", None),
            ("POST", "/networks/n/connect", None),
            ("POST", "/volumes/prune", None),
            ("DELETE", "/volumes/v", None),
            ("POST", "/containers/prune", None),
            ("POST", "/auth", None),
            ("GET", "/events", None),
            ("GET", "/images/get", None),
            ("GET", "/plugins", None),
        ):
            self.allow(method, path, args=args)


class AuthorizerTests(SynchronousTestCase):
    """The guard itself: admin is decided at once; refusals are logged and fail the Deferred."""

    class Channel:
        pass

    class Req:
        def __init__(self, body: Any) -> None:
            self.channel = AuthorizerTests.Channel()
            self.channel.pyd_identity = Identity("operator", "CN=op", "tls")
            self.transport = None
            inner = FakeRequest(body)
            self.content = inner.content
            self.args: dict[bytes, list[bytes]] = {}
            self.pyd_route = route_for("POST", "/containers/create")

        def getHeader(self, name: str) -> None:
            return None

    def test_operator_refusal_fails_the_deferred(self) -> None:
        """An operator's privileged create fails with Forbidden; an ordinary one succeeds."""
        auth = Authorizer(Policy())
        req = self.Req({"HostConfig": {"Privileged": True}})
        req.channel.pyd_policy = auth.policy
        d = auth(req, "POST", "/containers/create")
        assert isinstance(d, Deferred)
        self.failureResultOf(d, Forbidden)
        ok = self.Req({"HostConfig": {}})
        ok.channel.pyd_policy = auth.policy
        d2 = auth(ok, "POST", "/containers/create")
        assert d2 is not None
        self.assertIsNone(self.successResultOf(d2))


class UnixGroupsTests(SynchronousTestCase):
    """Unix-socket roles use every group of the peer."""

    def test_supplementary_groups_count(self) -> None:
        """A gid entry matches a supplementary group; uid entries win; among groups the most
        powerful role wins; root stays admin."""
        p = Policy(unix_roles={"gid:100": "viewer", "gid:2000": "operator", "uid:1005": "viewer"})
        self.assertEqual(p.role_for_peer(1001, 1001, (100,)), "viewer")
        self.assertEqual(p.role_for_peer(1001, 100, (2000, 100)), "operator")
        self.assertEqual(p.role_for_peer(1005, 1005, (2000,)), "viewer")
        self.assertEqual(p.role_for_peer(1006, 1006, (5, 6)), "admin")
        self.assertEqual(p.role_for_peer(0, 100, (100,)), "admin")

    def test_proc_status_groups(self) -> None:
        """/proc/<pid>/status Groups: are read only when its Uid is the peer's."""
        text = "Name:\tsh\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nGroups:\t4 27 100 \n"
        self.assertEqual(groups_from_status(text, 1000), (4, 27, 100))
        self.assertIsNone(groups_from_status(text, 1001))
        self.assertEqual(groups_from_status("Uid:\t5\t5\t5\t5\nGroups:\t\n", 5), ())

    def test_names_in_unix_roles(self) -> None:
        """user:NAME and group:NAME keys become uid:N and gid:N; unknown names are dropped."""
        keys = unix_group_keys(
            {"user:root": "viewer", "group:root": "operator", "group:no-such-group-x": "viewer"}
        )
        self.assertEqual(keys, {"uid:0": "viewer", "gid:0": "operator"})
        self.assertEqual(
            unix_group_keys({"gid:5": "viewer", "user:7": "viewer"}),
            {"gid:5": "viewer", "uid:7": "viewer"},
        )

    def test_peer_groups_of_a_socket(self) -> None:
        """SO_PEERGROUPS gives the groups the peer had when the socket was made."""
        import socket

        from pyd.api.identity import peer_groups

        old = os.getgroups()
        os.setgroups([42421, 42422])
        try:
            a, b = socket.socketpair(socket.AF_UNIX)
        finally:
            os.setgroups(old)
        with a, b:
            self.assertEqual(sorted(peer_groups(a, os.getpid(), os.getuid(), 0)), [42421, 42422])


class VisibilityTests(_Base):
    """What viewers and operators see of admin-tier containers (redaction)."""

    def test_admin_tier_containers_hide_env_and_execs(self) -> None:
        """Env and exec ids of an admin-tier container are blanked in inspect, its exec events
        lose their command and exec id; an ordinary container's are shown as they are."""
        v = RoleVisibility("operator", self.policy, self.lookup)
        priv, plain = self.lookup.by_ref["priv"], self.lookup.by_ref["plain"]
        self.assertTrue(run_sync(v.hides(priv)))
        self.assertFalse(run_sync(v.hides(plain)))
        self.assertTrue(run_sync(v.hides_id("f" * 64)))

        class Req:
            pyd_visibility = v

        out = {"Config": {"Env": ["TOKEN=x", "PATH=/bin"]}, "ExecIDs": ["e1"]}
        run_sync(redact_inspect(Req(), priv, out))
        self.assertEqual(out, {"Config": {"Env": ["TOKEN=[redacted]", "PATH=[redacted]"]},
                               "ExecIDs": None})  # fmt: skip
        out = {"Config": {"Env": ["TOKEN=x"]}, "ExecIDs": ["e1"]}
        run_sync(redact_inspect(Req(), plain, out))
        self.assertEqual(out["ExecIDs"], ["e1"])
        ev = Event(
            1, "container", "exec_create: sh -c secret", priv.id, {"execID": "e1"}, "local", 0
        )
        seen = run_sync(redact_event(v, ev))
        assert seen is not None
        self.assertEqual((seen.action, seen.attributes), ("exec_create", {}))
        mine = attrs.evolve(ev, actor_id=plain.id)
        self.assertEqual(run_sync(redact_event(v, mine)), mine)


class AllowListTests(_Base):
    """The operator's HostConfig rules are an allow-list (issue 12, "Structure")."""

    ADMIN_ONLY = {
        "Privileged", "Devices", "DeviceCgroupRules", "DeviceRequests", "CgroupParent",
        "Annotations", "Runtime", "Cgroup", "StorageOpt",
    }  # fmt: skip

    def test_every_field_is_decided(self) -> None:
        """Every HostConfig field the engine's parser knows is either on the operator's list
        or one of the admin-only fields named here: a field the parser learns fails this test
        until someone decides (until then it is admin-only)."""
        from pyd.api.authz import OPERATOR_HOST_CONFIG
        from pyd.engine.spec import FIELDS

        fields = {f.split(".", 1)[1] for f in FIELDS if f.startswith("HostConfig.")}
        self.assertEqual(fields - set(OPERATOR_HOST_CONFIG), self.ADMIN_ONLY)
        self.assertEqual(set(OPERATOR_HOST_CONFIG) - fields, set())

    def test_admin_only_fields_refused_unless_zero(self) -> None:
        """Each admin-only field with a value is refused; with its zero value it is not."""
        values: dict[str, Any] = {
            "Privileged": True,
            "Devices": [
                {
                    "PathOnHost": "/dev/sda",
                    "PathInContainer": "/dev/sda",
                    "CgroupPermissions": "rwm",
                }
            ],
            "DeviceCgroupRules": ["b 8:* rwm"],
            "DeviceRequests": [{"Driver": "nvidia", "Count": -1}],
            "CgroupParent": "/system.slice",
            "Annotations": {"run.oci.hooks.stdout": "/x"},
            "Runtime": "runc",
            "Cgroup": "host",
            "StorageOpt": {"size": "1G"},
        }
        self.assertEqual(set(values), self.ADMIN_ONLY)
        for key, value in values.items():
            msg = self.refuse(
                "POST", "/containers/create", {"Image": "busybox", "HostConfig": {key: value}}
            )
            self.assertTrue(
                key in msg
                or msg.split(" may not ")[1]
                in (
                    "create privileged containers",
                    "set OCI annotations (the runtime acts on some of them)",
                ),
                msg,
            )
        self.create_allowed(
            {
                "Privileged": False,
                "Devices": [],
                "CgroupParent": "",
                "Annotations": {},
                "Runtime": "",
                "StorageOpt": {},
                "DeviceRequests": None,
            }
        )

    def test_unknown_field_of_a_stored_container_makes_it_admin_tier(self) -> None:
        """A stored HostConfig field nobody listed (a later version's) counts as admin-only."""
        self.lookup.add(container("future", {"SomeFutureHostAccess": "/dev/kmsg"}))
        self.assertIn("admin only", self.refuse("POST", "/containers/future/exec", {}))

    def test_namespace_values_listed(self) -> None:
        """Namespace modes other than the listed ones are refused (not only "host")."""
        for key, value in (("UTSMode", "x"), ("UsernsMode", "keep-id"), ("PidMode", "self"),
                           ("CgroupnsMode", "host"), ("IpcMode", "host")):  # fmt: skip
            self.create_refused({key: value}, key)
        self.create_allowed({"IpcMode": "shareable", "CgroupnsMode": "private"})


class RouteDeclarationTests(SynchronousTestCase):
    """Each route declares its least role where it is defined (pyd.api.base.role)."""

    def test_every_route_declares_a_role(self) -> None:
        """No handler of any router is left to the default (admin-only) by omission."""
        from tests.unit.test_authz import router_classes

        missing = []
        for cls in router_classes():
            for rule in cls.app.url_map.iter_rules():
                endpoint = str(rule.endpoint).removesuffix("_branch")
                if not hasattr(getattr(cls, endpoint, None), "pyd_role"):
                    missing.append(f"{cls.__name__}.{endpoint} {rule.rule}")
        self.assertEqual(missing, [])

    def test_undeclared_route_is_admin_only(self) -> None:
        """A handler without a declaration is admin-only."""
        from klein import Klein

        from pyd.api.base import match_route

        class NewRouter:
            app = Klein()
            prefixes = ("new",)

            @app.route("/new/thing", methods=["GET", "POST"])
            def thing(self, request: Any) -> bytes:
                return b""

        for method in ("GET", "POST"):
            route = match_route([NewRouter], method, "/new/thing")
            assert route is not None
            self.assertEqual(route.least_role, "admin")


class TypedSpecRuleTests(_Base):
    """The rules read the typed create spec's records (L{check_spec}), whatever wire form
    produced them."""

    def judge(self, **sections: Any) -> str | None:
        """Run the create rules over a spec whose sections are replaced by C{sections};
        return the refusal's rule (None: allowed)."""
        from pyd.api.operator_rules import Ctx, check_spec

        spec = attrs.evolve(parse_create({"Image": "busybox"}), **sections)
        ctx = Ctx("operator", self.policy, self.lookup)
        result = self.successResultOf(
            Deferred.fromCoroutine(check_spec(ctx, spec, 0)).addErrback(
                lambda f: f.trap(Forbidden) and f.value
            )
        )
        return None if result is None else str(result.message).split(" may not ", 1)[1]

    def test_every_spec_field_is_named(self) -> None:
        """Each HostConfig field the parser knows has one place in the spec (SPEC_FIELDS), and
        every attribute of the spec's HostConfig sections is a field the rules judge or one
        named as judged elsewhere: a record attribute added later fails here until decided."""
        from pyd.api.operator_rules import SPEC_FIELDS, SPEC_NOT_JUDGED
        from pyd.engine.spec import FIELDS

        known = {f.split(".", 1)[1] for f in FIELDS if f.startswith("HostConfig.")}
        self.assertEqual(set(SPEC_FIELDS), known)
        spec = parse_create({"Image": "busybox"})
        places = set(SPEC_FIELDS.values())
        self.assertEqual(len(places), len(SPEC_FIELDS))
        attributes = {
            (section, a.name)
            for section in {s for s, _ in places}
            for a in attrs.fields(type(getattr(spec, section)))
        }
        self.assertEqual(attributes - places, set(SPEC_NOT_JUDGED))

    def test_records_refused(self) -> None:
        """Privilege, host namespaces, devices, capabilities beyond the allow-list, host binds
        outside the allowed roots, unmasked kernel paths, host sysctls and low ports, each set on
        its record, are refused with the rule that names the HostConfig field."""
        from pyd.engine.spec import PortBinding
        from pyd.engine.spec.records import (
            DeviceMapping,
            Devices,
            Namespaces,
            Runtime,
            Security,
        )

        mounts = parse_create({"Image": "busybox"}).mounts
        network = parse_create({"Image": "busybox"}).network
        for sections, rule in (
            ({"security": Security(privileged=True)}, "create privileged containers"),
            ({"namespaces": Namespaces(pid="host")}, "use the host's namespace (PidMode=host)"),
            ({"namespaces": Namespaces(network="f00dhostnet")}, "the host network"),
            ({"namespaces": Namespaces(ipc="container:priv")}, "join the namespaces"),
            (
                {"devices": Devices(devices=(DeviceMapping("/dev/sda", "/dev/sda", "rwm"),))},
                "give containers host devices (Devices)",
            ),
            ({"devices": Devices(cgroup_rules=("b 8:* rwm",))}, "(DeviceCgroupRules)"),
            ({"security": Security(cap_add=("SYS_ADMIN",))}, "add capability SYS_ADMIN"),
            (
                {"security": Security(security_opt=(("seccomp", "unconfined"),))},
                "use unconfined security options (seccomp=unconfined)",
            ),
            ({"security": Security(masked_paths=())}, "MaskedPaths without Docker's defaults"),
            ({"mounts": attrs.evolve(mounts, binds=("/etc:/e",))}, "bind-mount host path /etc"),
            ({"mounts": attrs.evolve(mounts, volumes_from=("hostbind",))}, "use volumes from"),
            ({"runtime": Runtime(sysctls={"kernel.core_pattern": "|x"})}, "set sysctl kernel."),
            ({"runtime": Runtime(runtime="runc")}, "choose the OCI runtime (Runtime=runc)"),
            (
                {
                    "network": attrs.evolve(
                        network, port_bindings={"80/tcp": (PortBinding("", "22"),)}
                    )
                },
                "publish host port 22",
            ),
        ):
            got = self.judge(**sections)
            self.assertIsNotNone(got, sections)
            assert got is not None
            self.assertIn(rule, got)

    def test_records_allowed(self) -> None:
        """Their allowed neighbours pass: default caps re-added, namespaced sysctls, binds under
        the allowed root, Docker's masked paths given explicitly, a high port, container:X of an
        ordinary container, no-new-privileges."""
        from pyd.drivers.runtime.spec import MASKED_PATHS
        from pyd.engine.spec import PortBinding
        from pyd.engine.spec.records import Namespaces, Runtime, Security

        spec = parse_create({"Image": "busybox"})
        self.assertIsNone(
            self.judge(
                security=Security(
                    cap_add=("CHOWN", "NET_ADMIN"),
                    security_opt=(("no-new-privileges", "true"),),
                    masked_paths=(*MASKED_PATHS, "/proc/extra"),
                ),
                namespaces=Namespaces(network="container:plain", ipc="shareable"),
                runtime=Runtime(sysctls={"net.ipv4.ip_forward": "1"}, shm_size=1 << 20),
                mounts=attrs.evolve(spec.mounts, binds=(f"{self.allowed}:/s:ro",)),
                network=attrs.evolve(
                    spec.network, port_bindings={"80/tcp": (PortBinding("", "8080"),)}
                ),
            )
        )

    def test_update_devices_typed(self) -> None:
        """docker update reads devices as the engine does (Go's field names, any case)."""
        self.assertIn(
            "host devices (Devices)",
            self.refuse(
                "POST",
                "/containers/plain/update",
                {"devices": [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda"}]},
            ),
        )
        self.allow("POST", "/containers/plain/update", {"Memory": 1 << 30, "Devices": []})

    def test_stored_container_read_as_typed(self) -> None:
        """A stored container is judged on its spec as the engine reads it to run it: Go's
        case-insensitive keys of an old record count (privileged in any case)."""
        self.lookup.add(container("oldpriv", {"privileged": True}))
        self.assertIn(
            "create privileged containers", self.refuse("POST", "/containers/oldpriv/exec", {})
        )


class LinkTests(_Base):
    """Legacy links hand the child's environment to the parent (ALIAS_ENV_*): an operator may
    link only to what an operator could have created, and link names are names too."""

    def setUp(self) -> None:
        super().setUp()
        # An admin's parent linking to the privileged container (as /app/db).
        app = container("app")
        self.lookup.add(
            attrs.evolve(app, extra={"links": [[self.lookup.by_ref["priv"].id, "/app/db"]]})
        )

    def test_link_to_admin_container_refused(self) -> None:
        """Links to a privileged/host-bind container (by name, alone or with an alias, in
        inspect's /x:/p/a form) are refused; to an ordinary one (or a missing one) allowed."""
        for link in ("priv:secret", "priv", "/hostbind:/mine/h"):
            msg = self.refuse(
                "POST", "/containers/create", {"Image": "busybox", "HostConfig": {"Links": [link]}}
            )
            self.assertIn("link to container", msg)
        self.create_allowed({"Links": ["plain:web", "no-such:x"]})

    def test_link_name_resolves_to_the_child(self) -> None:
        """A link name (app/db) is the privileged child for every rule that names containers:
        joining its namespaces, its volumes, linking to it."""
        self.assertEqual([c.name for c in candidates(self.lookup.all(), "app/db")], ["/priv"])
        self.assertEqual([c.name for c in candidates(self.lookup.all(), "/app/db")], ["/priv"])
        self.assertEqual(candidates(self.lookup.all(), "app/nope"), [])
        self.create_refused({"NetworkMode": "container:app/db"}, "join the namespaces")
        self.create_refused({"Links": ["app/db:x"]}, "link to container priv")

    def test_container_linking_to_admin_is_admin_tier(self) -> None:
        """A container whose registered link is an admin's container holds its environment:
        exec into it is refused (its registered links count, not its request's names)."""
        msg = self.refuse("POST", "/containers/app/exec", {"Cmd": ["env"]})
        self.assertIn("exec into container app", msg)
        self.assertIn("link to container priv", msg)
