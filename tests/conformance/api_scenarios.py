"""Conformance scenarios endpoint by endpoint: each query parameter and body field of API 1.50 on
the success path and on an error path (what docs/api-coverage.md's generated table counts).

Mostly raw API requests, which name their parameters exactly. The error path of a body field is
a request with a value of the wrong JSON type for it (L{type_errors}, generated from the spec):
dockerd answers with Go's decoding error, naming the field, which pyd's decoder
(L{pyd.engine.spec}) must reproduce. Names are fixed (C{conf-...}); containers use
C{"NetworkMode": "none"} (the recording dockerd has no bridge).
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from tests.conformance.steps import Api, Scenario, Step, d, rm_f
from tests.helpers import apispec
from tests.helpers.images import DEFAULT_TAG as B

_SPEC = apispec.load()


def _tar(files: Mapping[str, bytes]) -> bytes:
    """A tar of C{files} with fixed metadata (the same bytes for both daemons)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_600_000_000, 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _q(value: object) -> str:
    return quote(json.dumps(value, separators=(",", ":")), safe="")


def _props(schema: Mapping[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _props(_SPEC["definitions"][ref.rsplit("/", 1)[1]])
    out: dict[str, Any] = dict(schema.get("properties") or {})
    for part in schema.get("allOf") or ():
        out.update(_props(part))
    return out


def _type(schema: Mapping[str, Any]) -> str:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _type(_SPEC["definitions"][ref.rsplit("/", 1)[1]])
    if "allOf" in schema:
        return "object"
    return str(schema.get("type", "object"))


def wrong_value(schema: Mapping[str, Any]) -> object:
    """A JSON value of another type than the field's (a number for a string, else a string)."""
    return 7 if _type(schema) == "string" else "x"


def body_fields(method: str, template: str) -> dict[str, Any]:
    """The top-level fields of an operation's JSON body, by the spec."""
    for p in _SPEC["paths"][template][method.lower()]["parameters"]:
        if p.get("in") == "body":
            return _props(p["schema"])
    raise KeyError(f"{method} {template} takes no body")


def definition_fields(name: str) -> dict[str, Any]:
    """The properties of a spec definition."""
    return _props({"$ref": f"#/definitions/{name}"})


def type_errors(
    method: str,
    path: str,
    fields: Mapping[str, Any],
    base: Mapping[str, Any] | None = None,
    under: str | None = None,
    skip: Iterable[str] = (),
    name_key: str | None = None,
) -> tuple[Step, ...]:
    """One request per field, with C{base}'s fields and that field set to a wrong type (under
    the C{under} key when given). With C{name_key}, each request names its object
    C{conf-t-<field>}: a daemon that took a value would not make the next requests conflict."""
    out: list[Step] = []
    for name, schema in sorted(fields.items()):
        if name in skip:
            continue
        bad = {name: wrong_value(schema)}
        body = {**(base or {}), **({under: bad} if under else bad)}
        if name_key is not None and name != name_key:
            body[name_key] = f"conf-t-{name.lower()}"
        out.append(Api(method, path, body))
    return tuple(out)


_NONE = {"NetworkMode": "none"}

# Create-only fields that do not go with L{_HOST}'s (host namespaces, a parent's volumes).
_HOST2 = {
    "NetworkMode": "none",
    "Privileged": True,
    "AutoRemove": True,
    "PidMode": "host",
    "UTSMode": "host",
    "UsernsMode": "host",
    "VolumesFrom": ["conf-p2:ro"],
    "CgroupParent": "conf-parent",
    "Isolation": "default",
    "NanoCpus": 500_000_000,
    "PublishAllPorts": True,
    "ContainerIDFile": "/nope",
}
_CREATE = "/containers/create"

# Every field of Config and HostConfig set to a value both daemons accept on this host.
_CONFIG = {
    "Image": B,
    "Hostname": "conf-h",
    "Domainname": "example.org",
    "User": "0:0",
    "AttachStdin": True,
    "AttachStdout": True,
    "AttachStderr": True,
    "ExposedPorts": {"80/tcp": {}},
    "Tty": True,
    "OpenStdin": True,
    "StdinOnce": True,
    "Env": ["A=1"],
    "Cmd": ["exec sleep 1000"],
    "Healthcheck": {"Test": ["CMD", "true"], "Interval": 3_600_000_000_000, "Retries": 2},
    "ArgsEscaped": True,
    "Volumes": {"/data": {}},
    "WorkingDir": "/tmp",
    "Entrypoint": ["sh", "-c"],
    "OnBuild": ["RUN true"],
    "Labels": {"conf": "1"},
    "StopSignal": "SIGUSR1",
    "StopTimeout": 2,
    "Shell": ["/bin/sh", "-c"],
}
_HOST = {
    "NetworkMode": "none",
    "Binds": ["conf-cv:/v:ro"],
    "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
    "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2},
    "VolumeDriver": "local",
    "Mounts": [{"Type": "tmpfs", "Target": "/m"}],
    "ConsoleSize": [24, 80],
    "CapAdd": ["NET_ADMIN"],
    "CapDrop": ["MKNOD"],
    "CgroupnsMode": "private",
    "Dns": ["10.0.0.2"],
    "DnsOptions": ["ndots:1"],
    "DnsSearch": ["example.org"],
    "ExtraHosts": ["h2:10.1.2.3"],
    "GroupAdd": ["10"],
    "IpcMode": "private",
    "OomScoreAdj": 100,
    "ReadonlyRootfs": True,
    "SecurityOpt": ["no-new-privileges"],
    "Tmpfs": {"/run/t": "size=1m"},
    "ShmSize": 2_097_152,
    "Sysctls": {"kernel.shm_rmid_forced": "1"},
    "Runtime": "runc",
    "MaskedPaths": ["/proc/kcore"],
    "ReadonlyPaths": ["/proc/sys"],
    "Init": True,
    "CpuShares": 512,
    "Memory": 67_108_864,
    "MemoryReservation": 33_554_432,
    "MemorySwap": 134_217_728,
    "MemorySwappiness": 10,
    "CpuPeriod": 100_000,
    "CpuQuota": 50_000,
    "CpusetCpus": "0",
    "CpusetMems": "0",
    "BlkioWeight": 500,
    "Devices": [
        {"PathOnHost": "/dev/null", "PathInContainer": "/dev/xnull", "CgroupPermissions": "rwm"}
    ],
    "DeviceCgroupRules": ["c 1:3 r"],
    "PidsLimit": 100,
    "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
    "OomKillDisable": True,
}

CONTAINERS_CREATE = Scenario(
    "containers_create",
    (
        Api("POST", "/containers/create?name=conf-all", {**_CONFIG, "HostConfig": _HOST}),
        Api(
            "GET",
            "/containers/conf-all/json",
            fields=(
                *(f"Config.{k}" for k in sorted(_CONFIG)),
                *(f"HostConfig.{k}" for k in sorted(_HOST)),
            ),
        ),
        d("start", "conf-all"),
        d(
            "exec",
            "conf-all",
            "sh",
            "-c",
            # the main process's limits (an exec's soft limit follows the daemon's own, which
            # differs between runs of either daemon)
            "cat /etc/hostname; id -G; grep 'open files' /proc/1/limits; cat /etc/hosts",
        ),
        Api("POST", "/containers/create?name=conf-all", {"Image": B}),
        Api("POST", "/containers/create?name=conf-p&platform=linux%2Farm64", {"Image": B}),
        Api("POST", "/containers/create?name=conf-p&platform=nope", {"Image": B}),
        Api(
            "POST",
            "/containers/create?name=conf-p2&platform=linux",
            {"Image": B, "HostConfig": _NONE},
        ),
        Api("GET", "/containers/conf-p2/json", fields=("Platform",)),
        Api("POST", "/containers/create?name=conf-all2", {"Image": B, "HostConfig": _HOST2}),
        Api(
            "GET",
            "/containers/conf-all2/json",
            fields=tuple(f"HostConfig.{k}" for k in sorted(_HOST2)),
        ),
        *type_errors(
            "POST",
            _CREATE,
            body_fields("POST", "/containers/create"),
            {"Image": B},
            skip=("HostConfig", "NetworkingConfig"),
        ),
        *type_errors(
            "POST",
            _CREATE,
            definition_fields("HostConfig"),
            {"Image": B},
            under="HostConfig",
            # API 1.43 added it: dockerd 20.10 does not decode it
            skip=("Annotations",),
        ),
        # StrSlice takes a string or a list of strings: a number is its error
        Api("POST", _CREATE, {"Image": B, "Entrypoint": 7}),
        Api("POST", _CREATE, {"Image": B, "Shell": 7}),
        Api("POST", _CREATE, {"Image": B, "HostConfig": "x"}),
        Api("POST", _CREATE, {"Image": B, "NetworkingConfig": "x"}),
    ),
    (*rm_f("conf-all", "conf-all2", "conf-p", "conf-p2"), d("volume", "rm", "-f", "conf-cv")),
    keep=("10.0.0.2", "10.1.2.3", "127.0.0.1"),
)

_IMAGE_CONFIG_KEYS = (
    "User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
    "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell",
)  # fmt: skip

_SLEEPER = {"Image": B, "Cmd": ["sleep", "1000"], "HostConfig": _NONE}

CONTAINERS_API = Scenario(
    "containers_api",
    (
        Api("POST", "/containers/create?name=conf-a", {**_SLEEPER, "Labels": {"conf": "a"}}),
        Api("POST", "/containers/conf-a/start?detachKeys=ctrl-x"),
        Api("POST", "/containers/conf-a/start?detachKeys=ctrl-x"),
        Api("POST", "/containers/nope/start?detachKeys=ctrl-x"),
        Api(
            "GET",
            "/containers/json?all=1&limit=1&size=1&filters=" + _q({"label": ["conf=a"]}),
            fields=("0.Names", "0.Labels", "0.State", "0.Command"),
        ),
        Api("GET", "/containers/json?size=1&filters=" + _q({"nope": ["x"]})),
        Api("GET", "/containers/json?all=1&limit=x"),
        Api("GET", "/containers/json?size=x&all=x", fields=("0.Names",)),
        Api("GET", "/containers/conf-a/json?size=1", fields=("Name", "State.Status")),
        Api("GET", "/containers/nope/json?size=1"),
        Api("POST", "/containers/conf-a/rename?name=conf-b"),
        Api("POST", "/containers/conf-b/rename?name=conf-b"),
        Api("POST", "/containers/conf-b/rename?name="),
        Api("POST", "/containers/nope/rename?name=conf-c"),
        Api("POST", "/containers/conf-b/pause"),
        Api("POST", "/containers/conf-b/pause"),
        Api("POST", "/containers/conf-b/unpause"),
        Api("POST", "/containers/conf-b/unpause"),
        Api("POST", "/containers/nope/pause"),
        Api("POST", "/containers/nope/unpause"),
        Api("GET", "/containers/conf-b/stats?stream=0&one-shot=1", fields=("name", "id")),
        Api("GET", "/containers/nope/stats?stream=0&one-shot=1"),
        Api("POST", "/containers/conf-b/stop?t=0&signal=SIGKILL"),
        Api("POST", "/containers/conf-b/stop?t=0&signal=SIGKILL"),
        Api("POST", "/containers/nope/stop?t=1&signal=SIGTERM"),
        Api("POST", "/containers/conf-b/wait?condition=not-running", fields=("StatusCode",)),
        Api("POST", "/containers/conf-b/wait?condition=nope"),
        Api("POST", "/containers/nope/wait?condition=not-running"),
        Api("POST", "/containers/conf-b/restart?t=0&signal=SIGKILL"),
        Api("GET", "/containers/conf-b/json", fields=("State.Status",)),
        Api("POST", "/containers/conf-b/restart?t=x"),
        Api("POST", "/containers/nope/restart?t=0&signal=SIGKILL"),
        Api("POST", "/containers/conf-b/stop?t=x"),
        Api("POST", "/containers/conf-b/kill?signal=SIGKILL"),
        Api(
            "POST",
            "/containers/create?name=conf-l",
            {
                "Image": B,
                # stdout and stderr are separate pipes: their lines' relative order is not
                # defined, so no step asks for both streams of this container
                "Cmd": ["sh", "-c", "echo one; echo two; echo three; echo err >&2"],
                "HostConfig": _NONE,
            },
        ),
        Api("POST", "/containers/conf-l/start"),
        Api("POST", "/containers/conf-l/wait?condition=not-running", fields=("StatusCode",)),
        Api("GET", "/containers/conf-l/logs?stdout=1&follow=1&timestamps=0&tail=2"),
        Api("GET", "/containers/conf-l/logs?stderr=1"),
        Api("GET", "/containers/conf-l/logs?stdout=1&since=0&until=4000000000"),
        Api("GET", "/containers/conf-l/logs?stderr=1&timestamps=1", fields=()),
        Api("GET", "/containers/conf-l/logs"),
        Api("POST", "/containers/conf-l/attach?logs=1&stdout=1&stream=0&detachKeys=ctrl-x"),
        Api("GET", "/containers/conf-l/logs?stdout=1&since=x"),
        Api("GET", "/containers/conf-l/logs?stdout=1&until=x"),
        Api("GET", "/containers/conf-l/logs?stdout=1&tail=x"),
        Api("GET", "/containers/nope/logs?stdout=1&stderr=1&follow=1&timestamps=1&tail=1"),
        Api("POST", "/containers/nope/attach?logs=1&stream=1&stdin=1&stdout=1&stderr=1"),
        Api("DELETE", "/containers/conf-l?v=1&force=1"),
        Api("DELETE", "/containers/conf-l?v=1&force=1"),
        Api("DELETE", "/containers/conf-b?force=x"),
        Api("POST", "/containers/create?name=conf-pr", {**_SLEEPER, "Labels": {"conf": "pr"}}),
        Api(
            "POST",
            "/containers/prune?filters=" + _q({"label": ["conf=pr"]}),
            fields=("ContainersDeleted",),
        ),
        Api("POST", "/containers/prune?filters=" + _q({"nope": ["x"]})),
        Api("GET", "/containers/json?all=1", fields=("0.Names", "1.Names")),
    ),
    rm_f("conf-a", "conf-b", "conf-l", "conf-pr"),
)

_FILE = _tar({"hello.txt": b"hi\n"})

CONTAINERS_FILES = Scenario(
    "containers_files",
    (
        Api("POST", "/containers/create?name=conf-f", _SLEEPER),
        Api("HEAD", "/containers/conf-f/archive?path=/etc/passwd"),
        Api("HEAD", "/containers/conf-f/archive?path=/nope"),
        Api("HEAD", "/containers/nope/archive?path=/etc"),
        Api("GET", "/containers/conf-f/archive?path=/etc/passwd", fields=()),
        Api("GET", "/containers/conf-f/archive?path=/nope"),
        Api("GET", "/containers/conf-f/archive"),
        Api(
            "PUT",
            "/containers/conf-f/archive?path=/tmp&noOverwriteDirNonDir=1&copyUIDGID=1",
            data=_FILE,
        ),
        Api(
            "PUT",
            "/containers/conf-f/archive?path=/nope&noOverwriteDirNonDir=1&copyUIDGID=1",
            data=_FILE,
        ),
        Api("PUT", "/containers/nope/archive?path=/tmp", data=_FILE),
        Api("GET", "/containers/conf-f/changes"),
        Api("GET", "/containers/nope/changes"),
        Api("GET", "/containers/conf-f/export", fields=()),
        Api("GET", "/containers/nope/export"),
        d("start", "conf-f"),
        d("exec", "conf-f", "cat", "/tmp/hello.txt"),
    ),
    rm_f("conf-f"),
)

EXEC_API = Scenario(
    "exec_api",
    (
        Api("POST", "/containers/create?name=conf-x", _SLEEPER),
        Api("POST", "/containers/conf-x/exec", {"Cmd": ["true"]}),
        d("start", "conf-x"),
        Api(
            "POST",
            "/containers/conf-x/exec",
            {
                "Cmd": ["sleep", "1000"],
                "AttachStdout": True,
                "AttachStderr": True,
                "AttachStdin": True,
                "Tty": True,
                "ConsoleSize": [30, 100],
                "DetachKeys": "ctrl-x",
                "Env": ["A=1"],
                "User": "1",
                "WorkingDir": "/tmp",
            },
        ),
        Api(
            "POST", "/exec/{last_id}/start", {"Detach": True, "Tty": True, "ConsoleSize": [30, 100]}
        ),
        Api(
            "GET",
            "/exec/{last_id}/json",
            fields=(
                "ProcessConfig",
                "OpenStdin",
                "OpenStdout",
                "OpenStderr",
                "Running",
                "DetachKeys",
                "CanRemove",
            ),
        ),
        Api("POST", "/exec/{last_id}/resize?h=30&w=100"),
        Api("GET", "/containers/conf-x/top?ps_args=-o%20pid,comm", fields=("Titles",)),
        Api("POST", "/exec/{last_id}/resize?h=x&w=100"),
        Api("POST", "/containers/conf-x/exec", {"Cmd": ["true"], "Privileged": True}),
        d(
            "exec",
            "-u",
            "1",
            "-w",
            "/tmp",
            "-e",
            "A=1",
            "conf-x",
            "sh",
            "-c",
            "echo $A $(id -u) $(pwd)",
        ),
        Api("POST", "/exec/nope/start", {"Detach": True, "Tty": True, "ConsoleSize": [30, 100]}),
        Api("POST", "/exec/nope/resize?h=30&w=100"),
        Api("GET", "/exec/nope/json"),
        Api("POST", "/containers/conf-x/exec", {"Cmd": []}),
        *type_errors(
            "POST",
            "/containers/conf-x/exec",
            body_fields("POST", "/containers/{id}/exec"),
            {"Cmd": ["true"]},
            # API 1.42 added it: dockerd 20.10 does not decode it
            skip=("ConsoleSize",),
        ),
        Api("POST", "/exec/nope/start", {"Detach": "x"}),
        Api("POST", "/exec/nope/start", {"Tty": "x"}),
    ),
    rm_f("conf-x"),
)

_UPDATE = {
    "CpuShares": 256,
    "Memory": 67_108_864,
    "MemoryReservation": 33_554_432,
    "MemorySwap": 134_217_728,
    "CpuPeriod": 100_000,
    "CpuQuota": 50_000,
    "CpusetCpus": "0",
    "CpusetMems": "0",
    "PidsLimit": 50,
    "BlkioWeight": 300,
    "RestartPolicy": {"Name": "unless-stopped"},
}

CONTAINERS_UPDATE = Scenario(
    "containers_update",
    (
        Api("POST", "/containers/create?name=conf-up", _SLEEPER),
        Api("POST", "/containers/conf-up/update", _UPDATE, ("message",)),
        Api(
            "GET",
            "/containers/conf-up/json",
            fields=tuple(f"HostConfig.{k}" for k in sorted(_UPDATE)),
        ),
        d("start", "conf-up"),
        Api("POST", "/containers/conf-up/update", {"NanoCpus": 500_000_000}),
        Api(
            "POST",
            "/containers/conf-up/update",
            {"CpuQuota": 0, "CpuPeriod": 0, "NanoCpus": 500_000_000},
        ),
        Api("POST", "/containers/conf-up/update", {"Memory": 1024}),
        Api("POST", "/containers/conf-up/update", {"RestartPolicy": {"Name": "nope"}}),
        *type_errors(
            "POST", "/containers/conf-up/update", body_fields("POST", "/containers/{id}/update")
        ),
    ),
    rm_f("conf-up"),
)

IMAGES_API = Scenario(
    "images_api",
    (
        Api("POST", f"/images/{B}/tag?repo=conf/img&tag=1"),
        Api("POST", f"/images/{B}/tag?repo=conf/IMG&tag=1"),
        Api("POST", "/images/nope:1/tag?repo=conf/img&tag=2"),
        Api(
            "GET",
            "/images/json?all=1&digests=1&shared-size=1&filters=" + _q({"reference": ["conf/*"]}),
            fields=("0.RepoTags", "0.Containers"),
        ),
        Api(
            "GET",
            "/images/json?all=1&digests=1&shared-size=1&manifests=1&filters=" + _q({"nope": ["x"]}),
        ),
        Api(
            "GET",
            "/images/json?manifests=1&filters=" + _q({"reference": ["conf/*"]}),
            fields=("0.RepoTags",),
        ),
        Api("GET", "/images/conf/img:1/json", fields=("RepoTags", "Os", "Architecture")),
        Api("GET", "/images/nope:1/json"),
        Api("GET", "/images/conf/img:1/history", fields=("0.Tags",)),
        Api("GET", "/images/nope:1/history"),
        Api("GET", "/images/conf/img:1/get", fields=()),
        Api("GET", "/images/nope:1/get"),
        Api("GET", "/images/get?names=conf%2Fimg%3A1&names=" + quote(B, safe=""), fields=()),
        Api("GET", "/images/get?names=nope%3A1"),
        Api(
            "POST",
            "/commit?container=conf-c&repo=conf/commit&tag=1&comment=c1&author=me&pause=1"
            "&changes=" + quote("ENV C=1", safe=""),
            {"Env": ["B=2"], "Labels": {"l": "1"}, "Cmd": ["sh"]},
        ),
        Api("POST", "/containers/create?name=conf-c", {**_SLEEPER, "Cmd": ["true"]}),
        Api(
            "POST",
            "/commit?container=conf-c&repo=conf/commit&tag=1&comment=c1&author=me&pause=1"
            "&changes=" + quote("ENV C=1", safe=""),
            {"Env": ["B=2"], "Labels": {"l": "1"}, "Cmd": ["sh"]},
            fields=(),
        ),
        Api(
            "GET",
            "/images/conf/commit:1/json",
            fields=("Comment", "Author", "Config.Env", "Config.Labels", "Config.Cmd"),
        ),
        Api("POST", "/commit?container=conf-c&repo=conf/commit&tag=1&changes=NOPE%20x"),
        *type_errors(
            "POST", "/commit?container=conf-c&repo=conf/bad", body_fields("POST", "/commit")
        ),
        Api("POST", "/commit?container=conf-c&repo=conf/bad", {"Entrypoint": 7}),
        Api("POST", "/commit?container=conf-c&repo=conf/bad", {"Shell": 7}),
        Api("POST", "/commit?container=conf-c&repo=conf/full&tag=1", _CONFIG, fields=()),
        Api(
            "GET",
            "/images/conf/full:1/json",
            # the fields an image's config keeps (API 1.50 shows no others)
            fields=tuple(f"Config.{k}" for k in sorted(_IMAGE_CONFIG_KEYS)),
        ),
        Api("DELETE", "/images/conf/full:1", fields=()),
        Api(
            "POST",
            "/images/create?fromSrc=-&repo=conf/imp&tag=1&message=imported&platform=linux"
            "&changes=" + quote("ENV I=1", safe=""),
            data=_FILE,
            fields=(),
        ),
        Api("GET", "/images/conf/imp:1/json", fields=("Comment", "Config.Env", "RepoTags")),
        Api(
            "POST",
            "/images/create?fromSrc=-&repo=conf/imp&tag=1&message=m&platform=linux&changes=NOPE",
            data=_FILE,
        ),
        Api("DELETE", "/images/conf/img:1?force=0&noprune=1"),
        Api("DELETE", "/images/conf/img:1?force=1&noprune=1"),
        Api("DELETE", "/images/conf/commit:1?force=1"),
        Api("DELETE", "/images/conf/imp:1"),
        Api(
            "POST",
            "/images/prune?filters=" + _q({"dangling": ["true"]}),
            fields=(),  # Go's map order: which image comes first varies
        ),
        Api("POST", "/images/prune?filters=" + _q({"nope": ["x"]})),
        Api("GET", "/distribution/nope%20x/json"),
        Api("POST", "/auth", {"username": 7}),
        Api("POST", "/auth", {"password": 7}),
        Api("POST", "/auth", {"email": 7}),
        Api("POST", "/auth", {"serveraddress": 7}),
    ),
    rm_f("conf-c"),
)

NETWORKS_API = Scenario(
    "networks_api",
    (
        Api(
            "POST",
            "/networks/create",
            {
                "Name": "conf-na",
                "Driver": "bridge",
                "Internal": True,
                "Attachable": True,
                "Labels": {"conf": "n"},
                "Options": {"com.docker.network.driver.mtu": "1400"},
                "EnableIPv6": False,
                "EnableIPv4": True,
                "Scope": "local",
                "IPAM": {
                    "Driver": "default",
                    "Config": [{"Subnet": "172.28.9.0/24"}],
                    "Options": {"a": "b"},
                },
            },
            fields=("Warning",),
        ),
        Api(
            "GET",
            "/networks/conf-na?verbose=1&scope=local",
            fields=(
                "Name",
                "Driver",
                "Internal",
                "Attachable",
                "Labels",
                "Options",
                "IPAM.Driver",
                "IPAM.Options",
                "IPAM.Config.0.Subnet",
                "Scope",
                "EnableIPv6",
            ),
        ),
        Api("GET", "/networks/conf-na?scope=swarm"),
        Api("GET", "/networks/nope?verbose=1"),
        Api("GET", "/networks?filters=" + _q({"label": ["conf=n"]}), fields=("0.Name",)),
        Api("GET", "/networks?filters=" + _q({"nope": ["x"]})),
        Api("POST", "/networks/create", {"Name": "conf-nb", "Driver": "nope"}),
        Api("POST", "/networks/create", {"Name": "conf-nc", "Ingress": True}),
        *type_errors(
            "POST",
            "/networks/create",
            body_fields("POST", "/networks/create"),
            name_key="Name",
            # API 1.47 added it: dockerd 20.10 does not decode it
            skip=("EnableIPv4",),
        ),
        Api("POST", "/containers/create?name=conf-nx", _SLEEPER),
        Api("POST", "/networks/none/disconnect", {"Container": "conf-nx", "Force": True}),
        Api(
            "POST",
            "/networks/conf-na/connect",
            {
                "Container": "conf-nx",
                "EndpointConfig": {"Aliases": ["al"], "IPAMConfig": {"IPv4Address": "172.28.9.9"}},
            },
        ),
        Api(
            "GET",
            "/containers/conf-nx/json",
            fields=(
                "NetworkSettings.Networks.conf-na.Aliases",
                "NetworkSettings.Networks.conf-na.IPAMConfig",
            ),
        ),
        Api("POST", "/networks/conf-na/connect", {"Container": "nope"}),
        Api("POST", "/networks/conf-na/connect", {"Container": 7}),
        Api("POST", "/networks/conf-na/connect", {"Container": "conf-nx", "EndpointConfig": "x"}),
        Api("POST", "/networks/conf-na/disconnect", {"Container": "conf-nx", "Force": True}),
        Api("POST", "/networks/conf-na/disconnect", {"Container": "conf-nx", "Force": "x"}),
        Api("POST", "/networks/conf-na/disconnect", {"Container": 7}),
        Api("DELETE", "/networks/conf-na"),
        Api("DELETE", "/networks/conf-na"),
        Api("POST", "/networks/create", {"Name": "conf-np", "Labels": {"conf": "p"}}, fields=()),
        Api("POST", "/networks/prune?filters=" + _q({"label": ["conf=p"]})),
        Api("POST", "/networks/prune?filters=" + _q({"nope": ["x"]})),
    ),
    (
        *rm_f("conf-nx"),
        d("network", "rm", "conf-na", "conf-nb", "conf-nc", "conf-nd", "conf-ne", "conf-np"),
        d(
            "network",
            "rm",
            *(f"conf-t-{n.lower()}" for n in body_fields("POST", "/networks/create")),
        ),
    ),
    keep=("172.28.9.0/24", "172.28.9.9"),
)

VOLUMES_API = Scenario(
    "volumes_api",
    (
        Api(
            "POST",
            "/volumes/create",
            {
                "Name": "conf-va",
                "Driver": "local",
                "Labels": {"conf": "v"},
                "DriverOpts": {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"},
            },
            fields=("Name", "Driver", "Labels", "Options", "Scope"),
        ),
        Api("POST", "/volumes/create", {"Name": "conf-va", "Driver": "other"}),
        Api("POST", "/volumes/create", {"Name": "conf-vb", "Driver": "nope"}),
        Api("POST", "/volumes/create", {"Name": "a b"}),
        Api("POST", "/volumes/create", {"Name": "conf-vc", "DriverOpts": {"nope": "x"}}),
        *type_errors(
            "POST",
            "/volumes/create",
            body_fields("POST", "/volumes/create"),
            name_key="Name",
            # API 1.42 added it: dockerd 20.10 does not decode it
            skip=("ClusterVolumeSpec",),
        ),
        Api("GET", "/volumes/conf-va", fields=("Name", "Labels", "Options")),
        Api("GET", "/volumes/nope"),
        Api("GET", "/volumes?filters=" + _q({"label": ["conf=v"]}), fields=("Volumes.0.Name",)),
        Api("GET", "/volumes?filters=" + _q({"nope": ["x"]})),
        Api(
            "POST",
            "/containers/create?name=conf-vx",
            {**_SLEEPER, "HostConfig": {**_NONE, "Binds": ["conf-va:/v"]}},
        ),
        Api("DELETE", "/volumes/conf-va"),
        Api("DELETE", "/volumes/conf-va?force=1"),
        Api("DELETE", "/volumes/nope?force=1"),
        Api("DELETE", "/containers/conf-vx"),
        Api("DELETE", "/volumes/conf-va"),
        Api(
            "POST",
            "/volumes/create",
            {"Name": "conf-vp", "Labels": {"conf": "p"}},
            fields=("Name",),
        ),
        Api("POST", "/volumes/prune?filters=" + _q({"label": ["conf=none"]})),
        Api("POST", "/volumes/prune?filters=" + _q({"nope": ["x"]})),
    ),
    (*rm_f("conf-vx"), d("volume", "rm", "-f", "conf-va", "conf-vb", "conf-vc", "conf-vp")),
)

SYSTEM_API = Scenario(
    "system_api",
    (
        Api("GET", "/_ping"),
        Api("HEAD", "/_ping"),
        Api("GET", "/version", fields=("Os", "Arch")),
        Api(
            "GET",
            "/info",
            fields=("Containers", "ContainersRunning", "OSType", "Swarm.LocalNodeState"),
        ),
        Api("GET", "/system/df?type=container&type=volume", fields=("Containers", "Volumes")),
        Api("GET", "/events?since=1&until=2&filters=" + _q({"type": ["container"]})),
        Api("GET", "/events?since=x"),
        Api("GET", "/events?until=x"),
        Api("GET", "/nope"),
    ),
)

# Swarm mode and plugins: a dockerd outside a swarm refuses, pyd must refuse alike. (Never
# POST /swarm/init or /swarm/join to the recording dockerd: it would make a swarm.)
_REFUSED: tuple[tuple[str, str, object], ...] = (
    ("GET", "/swarm", None),
    ("POST", "/swarm/leave?force=1", None),
    ("POST", "/swarm/update?version=1", {}),
    ("POST", "/swarm/unlock", {"UnlockKey": "x"}),
    ("GET", "/swarm/unlockkey", None),
    ("GET", "/nodes", None),
    ("GET", "/nodes/x", None),
    ("DELETE", "/nodes/x", None),
    ("POST", "/nodes/x/update?version=1", {}),
    ("GET", "/services", None),
    ("POST", "/services/create", {"Name": "x"}),
    ("GET", "/services/x", None),
    ("DELETE", "/services/x", None),
    ("POST", "/services/x/update?version=1", {}),
    ("GET", "/services/x/logs?stdout=1", None),
    ("GET", "/tasks", None),
    ("GET", "/tasks/x", None),
    ("GET", "/tasks/x/logs?stdout=1", None),
    ("GET", "/secrets", None),
    ("POST", "/secrets/create", {"Name": "x", "Data": ""}),
    ("GET", "/secrets/x", None),
    ("DELETE", "/secrets/x", None),
    ("POST", "/secrets/x/update?version=1", {}),
    ("GET", "/configs", None),
    ("POST", "/configs/create", {"Name": "x", "Data": ""}),
    ("GET", "/configs/x", None),
    ("DELETE", "/configs/x", None),
    ("POST", "/configs/x/update?version=1", {}),
    ("GET", "/plugins", None),
    ("GET", "/plugins/x/json", None),
    ("DELETE", "/plugins/x", None),
    ("POST", "/plugins/x/enable?timeout=0", None),
    ("POST", "/plugins/x/disable", None),
    ("POST", "/plugins/x/set", []),
    ("POST", "/plugins/x/push", None),
)

REFUSED = Scenario(
    "refused",
    tuple(Api(m, p, b) for m, p, b in _REFUSED),
)

API_SCENARIOS: tuple[Scenario, ...] = (
    CONTAINERS_CREATE,
    CONTAINERS_API,
    CONTAINERS_FILES,
    CONTAINERS_UPDATE,
    EXEC_API,
    IMAGES_API,
    NETWORKS_API,
    VOLUMES_API,
    SYSTEM_API,
    REFUSED,
)
