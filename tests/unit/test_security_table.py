"""docs/security.md's role tables agree with the code (issue 12).

The test reads both tables of "What each role may do" from docs/security.md, finds for each row
its example requests below (a row without examples fails the test, so a new row needs them),
and checks every example against each role: a C{yes} cell must be allowed, a C{no} cell refused,
and a conditional cell ("only if ...", "not into admin-tier containers") must have examples of
both outcomes, each marked with what the rule decides. Admin is never checked (the guard lets it
through before any rule); the test asserts every admin cell says so.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs

from pyd.api.authz import Authorizer, Identity, Policy
from pyd.core.errors import Forbidden, PydError
from tests.unit.test_authz import FakeRequest, route_for, run_check
from tests.unit.test_authz_operator import _Base

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


@attrs.frozen
class Ex:
    """One example request; C{op}: what the operator rule decides ("" = as the cell says)."""

    method: str
    path: str
    body: Any = None
    args: dict[str, str] = attrs.field(factory=dict)
    op: str = ""  # "allow" or "refuse" for conditional cells
    viewer: str = ""  # the same for the viewer column's conditional cell


def create(hc: dict[str, Any], op: str = "") -> Ex:
    return Ex("POST", "/containers/create", {"Image": "busybox", "HostConfig": hc}, op=op)


def vol(opts: dict[str, str], op: str = "") -> Ex:
    return Ex("POST", "/volumes/create", {"Name": "v", "DriverOpts": opts}, op=op)


ALLOWED = "/shared"  # replaced by the test's allowed-bind-paths directory

# Row (the start of its first cell) -> examples.
EXAMPLES: dict[str, list[Ex]] = {
    "`/_ping`, version, info": [
        Ex("GET", "/version"), Ex("GET", "/info"), Ex("GET", "/system/df"), Ex("GET", "/events"),
        Ex("HEAD", "/version"),
    ],
    "list and inspect containers": [
        Ex("GET", "/containers/json"), Ex("GET", "/containers/priv/json"),
        Ex("GET", "/images/json"), Ex("GET", "/images/busybox/json"), Ex("GET", "/networks"),
        Ex("GET", "/networks/bridge"), Ex("GET", "/volumes"), Ex("GET", "/volumes/data"),
        Ex("GET", "/exec/e3/json"), Ex("GET", "/containers/priv/logs"),
        Ex("GET", "/containers/priv/stats"), Ex("GET", "/containers/priv/top"),
        Ex("GET", "/containers/priv/changes"),
    ],
    "read file contents": [
        Ex("GET", "/containers/priv/export"), Ex("GET", "/images/busybox/get"),
        Ex("GET", "/containers/plain/archive", args={"path": "/"}),
        Ex("HEAD", "/containers/plain/archive", args={"path": "/"}),
    ],
    "create/start/stop/kill/rm/exec/attach": [
        create({}), Ex("POST", "/containers/plain/start"), Ex("POST", "/containers/plain/stop"),
        Ex("DELETE", "/containers/plain"), Ex("POST", "/containers/plain/exec", {"Cmd": ["id"]}),
        Ex("POST", "/containers/plain/attach", args={"stdin": "1", "stream": "1"}),
        Ex("POST", "/images/create", args={"fromImage": "busybox"}),
        Ex("POST", "/images/busybox/push"), Ex("POST", "/images/busybox/tag", args={"repo": "x"}),
        Ex("POST", "/build"), Ex("POST", "/networks/create", {"Name": "n"}),
        Ex("POST", "/volumes/create", {"Name": "v"}),
    ],
    "anything that gives root on the host": [create({"Privileged": True})],
    "`--privileged`": [create({"Privileged": True})],
    "`--pid/--ipc/--uts/--userns/--cgroupns host`": [
        create({k: "host"})
        for k in ("PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode", "NetworkMode")
    ] + [create({"NetworkMode": "f00dhostnet"}), Ex("POST", "/networks/host/connect")],
    "`--network/--pid/--ipc container:X`": [
        create({"NetworkMode": "container:hostnet"}, "refuse"),
        create({"PidMode": "container:priv"}, "refuse"),
        create({"IpcMode": "container:hostbind"}, "refuse"),
        create({"NetworkMode": "container:plain"}, "allow"),
        create({"PidMode": "container:plain"}, "allow"),
    ],
    "`--volumes-from X`": [
        create({"VolumesFrom": ["hostbind"]}, "refuse"),
        create({"VolumesFrom": ["usesdisguised"]}, "refuse"),
        create({"VolumesFrom": ["plain:ro"]}, "allow"),
    ],
    "`--cap-add`": [
        create({"CapAdd": ["SYS_ADMIN"]}, "refuse"), create({"CapAdd": ["ALL"]}, "refuse"),
        create({"CapAdd": ["DAC_READ_SEARCH"]}, "refuse"),
        create({"CapAdd": ["NET_ADMIN", "CHOWN", "SYS_NICE"]}, "allow"),
    ],
    "`--device`, `--device-cgroup-rule`, `--gpus`": [
        create({"Devices": [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda",
                             "CgroupPermissions": "rwm"}]}),
        create({"DeviceCgroupRules": ["b 8:* rwm"]}),
        create({"DeviceRequests": [{"Driver": "nvidia", "Count": -1}]}),
    ],
    "`--security-opt seccomp=unconfined`": [
        create({"SecurityOpt": ["seccomp=unconfined"]}),
        create({"SecurityOpt": ["apparmor=unconfined"]}),
        create({"SecurityOpt": ["label=disable"]}),
        create({"MaskedPaths": [], "ReadonlyPaths": []}),
    ],
    "`--security-opt seccomp=<profile.json>`": [
        create({"SecurityOpt": ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']}),
        create({"SecurityOpt": ["apparmor=myprofile"]}),
        create({"SecurityOpt": ["label=type:spc_t"]}),
    ],
    "`MaskedPaths` / `ReadonlyPaths` (API)": [
        create({"MaskedPaths": ["/proc/kcore"]}, "refuse"),
        create({"ReadonlyPaths": []}, "refuse"),
        create({"MaskedPaths": None}, "allow"),
    ],
    "`--sysctl`": [
        create({"Sysctls": {"kernel.core_pattern": "|x"}}, "refuse"),
        create({"Sysctls": {"vm.overcommit_memory": "1"}}, "refuse"),
        create({"Sysctls": {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1"}}, "allow"),
    ],
    "`-v /host/path:...`, `--mount type=bind`": [
        create({"Binds": ["/etc:/x"]}, "refuse"),
        create({"Mounts": [{"Type": "bind", "Source": "/", "Target": "/x"}]}, "refuse"),
        create({"Binds": [f"{ALLOWED}:/x"]}, "allow"),
    ],
    "bind propagation `shared`/`rshared`": [
        create({"Binds": [f"{ALLOWED}:/x:rshared"]}),
        create({"Mounts": [{"Type": "bind", "Source": ALLOWED, "Target": "/x",
                            "BindOptions": {"Propagation": "shared"}}]}),
    ],
    "`bind-recursive=`, `bind-nonrecursive`": [
        create({"Mounts": [{"Type": "bind", "Source": f"{ALLOWED}/new", "Target": "/x",
                            "BindOptions": {"NonRecursive": True, "CreateMountpoint": True}}]}),
    ],
    "`--link NAME:ALIAS`": [
        create({"Links": ["plain:web"]}, "allow"),
        create({"Links": ["no-such:x"]}, "allow"),
        create({"Links": ["priv:x"]}, "refuse"),
        create({"Links": ["/hostbind:/mine/h"]}, "refuse"),
    ],
    "`--mount type=tmpfs`, `--tmpfs`": [
        create({"Mounts": [{"Type": "tmpfs", "Target": "/t"}], "Tmpfs": {"/r": "size=1m"}}),
    ],
    "`--mount type=volume` / `-v NAME:` of a volume an admin created": [
        create({"Binds": ["disguised:/x"]}),
        create({"Mounts": [{"Type": "volume", "Source": "disguised", "Target": "/x"}]}),
    ],
    "a named volume (`-v NAME:`": [
        create({"Binds": ["tools:/t"]}, "refuse"),
        create({"Binds": ["tools:/t:ro"]}, "allow"),
    ],
    "`docker volume create` (local driver)": [
        vol({"type": "none", "o": "bind", "device": "/etc"}, "refuse"),
        vol({"type": "none", "o": "bind,exec", "device": ALLOWED}, "allow"),
    ],
    "`docker volume create --opt type=tmpfs`": [
        vol({"type": "tmpfs", "device": "tmpfs", "o": "size=1m,uid=1000"}),
    ],
    "`docker volume create --opt type=ext4": [
        vol({"type": "ext4", "device": "/dev/sda1"}), vol({"type": "nfs", "o": "addr=1.2.3.4"}),
        vol({"type": "none", "o": "loop", "device": "/x.img"}),
    ],
    "`--mount type=volume` with driver options": [
        create({"Mounts": [{"Type": "volume", "Target": "/x", "VolumeOptions": {"DriverConfig": {
            "Options": {"type": "none", "o": "bind", "device": "/etc"}}}}]}, "refuse"),
        create({"Mounts": [{"Type": "volume", "Target": "/x", "VolumeOptions": {"DriverConfig": {
            "Options": {"type": "tmpfs", "device": "tmpfs"}}}}]}, "allow"),
    ],
    "`--cgroup-parent`": [create({"CgroupParent": "/system.slice"})],
    "`--annotation` (OCI annotations)": [create({"Annotations": {"run.oci.x": "y"}})],
    "`--runtime`, `--storage-opt`, `--cgroup`": [
        create({"Runtime": "runc"}), create({"StorageOpt": {"size": "1G"}}),
        create({"Cgroup": "host"}),
    ],
    "`-p HOSTPORT:...`": [
        create({"PortBindings": {"80/tcp": [{"HostPort": "22"}]}}, "refuse"),
        create({"PortBindings": {"80/tcp": [{"HostPort": "8080"}, {"HostPort": ""}]}}, "allow"),
    ],
    "`--memory`, `--pids-limit -1`": [
        create({"Memory": 1 << 30, "PidsLimit": -1, "Ulimits": [
            {"Name": "nofile", "Soft": 1, "Hard": 2}], "OomScoreAdj": 500, "NanoCpus": 10**9,
            "ShmSize": 1 << 20, "RestartPolicy": {"Name": "always"}}),
    ],
    "`--dns`, `--add-host`, `--link`": [
        create({"Dns": ["1.1.1.1"], "ExtraHosts": ["a:1.2.3.4"], "Init": True,
                "GroupAdd": ["10"], "ReadonlyRootfs": True,
                "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}}}),
    ],
    "`POST /containers/{id}/update`": [
        Ex("POST", "/containers/plain/update", {"Memory": 1 << 30}, op="allow"),
        Ex("POST", "/containers/plain/update", {"Devices": [{"PathOnHost": "/dev/sda"}]},
           op="refuse"),
    ],
    "`docker exec`": [
        Ex("POST", "/containers/priv/exec", {"Cmd": ["id"]}, op="refuse"),
        Ex("POST", "/containers/hostbind/exec", {"Cmd": ["id"], "User": "1000"}, op="refuse"),
        Ex("POST", "/containers/plain/exec", {"Cmd": ["id"], "Privileged": True}, op="refuse"),
        Ex("POST", "/exec/e1/start", {}, op="refuse"),
        Ex("POST", "/containers/plain/exec", {"Cmd": ["id"], "User": "0"}, op="allow"),
        Ex("POST", "/exec/e3/start", {}, op="allow"),
    ],
    "`docker attach` / `start -a -i` with stdin": [
        Ex("POST", "/containers/priv/attach", args={"stdin": "1"}, op="refuse"),
        Ex("GET", "/containers/priv/attach/ws", args={"stdin": "on"}, op="refuse"),
        Ex("POST", "/containers/priv/attach", args={"stdout": "1"}, op="allow"),
    ],
    "`docker cp` into a container (`PUT /archive`)": [
        Ex("PUT", "/containers/priv/archive", args={"path": "/"}, op="refuse"),
        Ex("PUT", "/containers/plain/archive", args={"path": "/"}, op="allow"),
    ],
    "`docker cp` from a container, `HEAD /archive`": [
        Ex("GET", "/containers/hostbind/archive", args={"path": "/"}, op="refuse"),
        Ex("HEAD", "/containers/priv/archive", args={"path": "/"}, op="refuse"),
        Ex("GET", "/containers/plain/archive", args={"path": "/"}, op="allow"),
    ],
    "`export`": [Ex("GET", "/containers/priv/export")],
    "`docker rename`": [
        Ex("POST", "/containers/priv/rename", args={"name": "x"}, op="refuse"),
        Ex("POST", "/containers/plain/rename", args={"name": "x"}, op="allow"),
    ],
    "start/stop/restart/kill/pause/wait/rm/logs/commit": [
        Ex("POST", f"/containers/priv/{a}")
        for a in ("start", "stop", "restart", "kill", "pause", "unpause", "wait")
    ] + [Ex("DELETE", "/containers/priv"), Ex("POST", "/commit", args={"container": "priv"})],
    "`docker build` (classic builder)": [
        Ex("POST", "/build", args={"networkmode": "host"}, op="refuse"),
        Ex("POST", "/build", args={"cgroupparent": "/x"}, op="refuse"),
        Ex("POST", "/build", args={"networkmode": "container:priv"}, op="refuse"),
        Ex("POST", "/build", args={"networkmode": "container:plain"}, op="allow"),
        Ex("POST", "/build", args={"extrahosts": "a:1.2.3.4"}, op="allow"),
    ],
    "`ADD https://...` in a build": [
        Ex("POST", "/images/create", args={"fromSrc": "https://example.invalid/x.tar"}),
        Ex("POST", "/images/create", args={"fromImage": "busybox"}),
    ],
    "`docker load`, `docker import -`": [
        Ex("POST", "/images/load"), Ex("POST", "/images/create", args={"fromSrc": "-"}),
    ],
    "`POST /commit` with `changes`": [
        Ex("POST", "/commit", {"Cmd": ["sh"]}, args={"container": "plain", "changes": "CMD x"}),
    ],
    "networks: create": [
        Ex("POST", "/networks/create", {"Name": "n", "Driver": "bridge"}),
        Ex("POST", "/networks/mynet/connect", {"Container": "plain"}),
        Ex("POST", "/networks/mynet/disconnect", {"Container": "plain"}),
        Ex("POST", "/networks/prune"),
    ],
    "images, containers, volumes, networks prune": [
        Ex("POST", f"/{p}/prune") for p in ("images", "containers", "volumes", "networks")
    ] + [Ex("POST", "/build/prune"), Ex("POST", "/build/cancel"), Ex("POST", "/auth", {})],
    "plugins, swarm, nodes, services": [
        Ex("GET", "/plugins", viewer="allow", op="allow"),
        Ex("GET", "/swarm", viewer="refuse", op="allow"),
        Ex("GET", "/services", viewer="refuse", op="allow"),
        Ex("POST", "/plugins/pull", viewer="refuse", op="refuse"),
        Ex("POST", "/swarm/init", {}, viewer="refuse", op="refuse"),
        Ex("POST", "/session", viewer="refuse", op="refuse"),
        Ex("POST", "/grpc", viewer="refuse", op="refuse"),
        Ex("DELETE", "/secrets/x", viewer="refuse", op="refuse"),
    ],
}  # fmt: skip


def table_rows() -> list[tuple[str, str, str, str]]:
    """(first cell, viewer, operator, admin) of every row of both role tables."""
    rows = []
    text = DOC.read_text()
    section = text[text.index("## What each role may do") : text.index("### Unix socket peers")]
    for line in section.splitlines():
        if not line.startswith("|") or line.startswith(("| ---", "| |", "| endpoint")):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if len(cells) >= 4:
            rows.append((cells[0], cells[1], cells[2], cells[3]))
    return rows


def _expected(cell: str, example: str) -> str:
    plain = cell.replace("*", "").strip()
    if plain == "yes" or plain.startswith("yes (rules below)") or plain.startswith("yes (tmpfs"):
        return "allow"
    if plain == "no" or plain.startswith("no (unless"):
        return "refuse"
    assert example in ("allow", "refuse"), f"conditional cell {cell!r} needs marked examples"
    return example


class SecurityTableTests(_Base):
    """Every row of docs/security.md's role tables, against the rules."""

    def decide(self, role: str, ex: Ex) -> str:
        body = ex.body
        if body is not None:
            body = _fill(body, self.allowed)
        args = {k.encode(): [_fill(v, self.allowed).encode()] for k, v in ex.args.items()}
        if route_for(ex.method, ex.path) is None:
            return "refuse"  # no route: no handler runs (404), whoever calls
        try:
            run_check(role, ex.method, ex.path, FakeRequest(body, args), self.policy, self.lookup)
        except Forbidden:
            return "refuse"
        except PydError:
            return "allow"  # not the rules' refusal: the handler's own 400 (e.g. no body)
        return "allow"

    def test_every_row_has_examples(self) -> None:
        """Each table row is matched by exactly one example key; no example key is stale."""
        rows = table_rows()
        self.assertGreater(len(rows), 40)
        used = set()
        for first, *_ in rows:
            keys = [k for k in EXAMPLES if first.startswith(k)]
            self.assertEqual(len(keys), 1, f"row {first[:60]!r}: examples {keys}")
            used.add(keys[0])
        self.assertEqual(set(EXAMPLES) - used, set())

    def test_rows_agree_with_the_code(self) -> None:
        """Viewer and operator columns decide as the rules do; the admin column says yes."""
        self.lookup.volumes["tools"] = None
        self.lookup.add(_container_using_volume("privtools", "tools", privileged=True))
        self.lookup.execs["e1"] = (self.lookup.by_ref["priv"].id, True)
        self.lookup.execs["e3"] = (self.lookup.by_ref["plain"].id, False)
        failures = []
        for first, viewer, operator, admin in table_rows():
            self.assertEqual(admin, "yes", first)
            (key,) = [k for k in EXAMPLES if first.startswith(k)]
            outcomes = {"viewer": set(), "operator": set()}
            for ex in EXAMPLES[key]:
                for role, cell, mark in (
                    ("viewer", viewer, ex.viewer),
                    ("operator", operator, ex.op),
                ):
                    want = _expected(cell, mark)
                    got = self.decide(role, ex)
                    outcomes[role].add(got)
                    if got != want:
                        failures.append(
                            f"{first[:50]!r} {role}: {ex.method} {ex.path} "
                            f"{ex.body or ''} {ex.args}: {got}, table says {want}"
                        )
            for role, cell in (("viewer", viewer), ("operator", operator)):
                plain = cell.replace("*", "").strip()
                conditional = plain not in ("yes", "no") and not plain.startswith(("yes (", "no ("))
                # A conditional cell: its examples show both sides of the condition.
                if conditional and outcomes[role] != {"allow", "refuse"}:
                    failures.append(
                        f"{first[:50]!r} {role}: conditional, examples only {outcomes[role]}"
                    )
        self.assertEqual(failures, [])

    def test_admin_is_never_checked(self) -> None:
        """The guard lets an admin through before any rule (the admin column)."""
        auth = Authorizer(Policy(), self.lookup)

        class Channel:
            pyd_identity = Identity("admin", "CN=a", "tls")
            pyd_policy = auth.policy

        class Req(FakeRequest):
            channel = Channel()
            transport = None

        req = Req(EXAMPLES["`--privileged`"][0].body)
        self.assertIsNone(auth(req, "POST", "/containers/create"))


def _fill(value: Any, allowed: str) -> Any:
    if isinstance(value, str):
        return value.replace(ALLOWED, allowed)
    if isinstance(value, list):
        return [_fill(v, allowed) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, allowed) for k, v in value.items()}
    return value


def _container_using_volume(name: str, volume: str, privileged: bool) -> Any:
    from pyd.core.records import MountSpec
    from tests.unit.test_authz_operator import container

    return container(
        name,
        {"Privileged": privileged, "Binds": [f"{volume}:/t"]},
        (MountSpec("volume", f"/v/{volume}/_data", "/t", name=volume),),
    )
