"""Conformance scenarios for what L{tests.conformance.api_scenarios} and
L{tests.conformance.field_scenarios} left unchecked (issue 15: every query parameter and body
field on the success path and on an error path; docs/api-coverage.md counts them).

Fields one request each (a host resource, a device, a field dockerd takes but does not act on),
the query parameters of streams that need their own set-up (load, push, attach) and the error
paths of parameters the other scenarios only send in a success.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from urllib.parse import quote

from tests.conformance.api_scenarios import _NONE, _q, _tar
from tests.conformance.steps import Api, Scenario, d
from tests.helpers.images import DEFAULT_TAG as B

# A block device both daemons accept in the Blkio* fields (loop devices exist wherever the
# suite runs as root); /dev/null, a character device, is dockerd's error only at start.
_DEV = "/dev/loop0"

# One create field each (with NetworkMode none, or the user network conf-mn made first), then
# the container's view of it. (The container-wide MacAddress needs a bridge or user network:
# moby 28 handleMACAddressBC refuses it with another mode.)
_CREATE_MORE: tuple[tuple[str, dict[str, object], dict[str, object]], ...] = (
    ("MacAddress", {"MacAddress": "02:42:ac:11:00:09"}, {"NetworkMode": "conf-mn"}),
    ("NetworkDisabled", {"NetworkDisabled": True}, {}),
    ("BlkioDeviceReadBps", {}, {"BlkioDeviceReadBps": [{"Path": _DEV, "Rate": 1048576}]}),
    ("BlkioDeviceReadIOps", {}, {"BlkioDeviceReadIOps": [{"Path": _DEV, "Rate": 100}]}),
    ("BlkioDeviceWriteBps", {}, {"BlkioDeviceWriteBps": [{"Path": _DEV, "Rate": 1048576}]}),
    ("BlkioDeviceWriteIOps", {}, {"BlkioDeviceWriteIOps": [{"Path": _DEV, "Rate": 100}]}),
    ("BlkioWeightDevice", {}, {"BlkioWeightDevice": [{"Path": _DEV, "Weight": 100}]}),
    ("CpuCount", {}, {"CpuCount": 1}),
    ("KernelMemoryTCP", {}, {"KernelMemoryTCP": 1048576}),
    # refused by pyd (PYD_DELIBERATE): last, so that no container made after them is numbered
    # otherwise than in dockerd's transcript
    (
        "DeviceRequests",
        {},
        {"DeviceRequests": [{"Driver": "nope", "Count": 1, "Capabilities": [["gpu"]]}]},
    ),
    ("Cgroup", {}, {"Cgroup": "container:conf-m0"}),
    ("StorageOpt", {}, {"StorageOpt": {"size": "1G"}}),
    ("IOMaximumBandwidth", {}, {"IOMaximumBandwidth": 1048576}),
    ("IOMaximumIOps", {}, {"IOMaximumIOps": 100}),
)

CREATE_MORE = Scenario(
    "containers_create_more",
    (
        Api("POST", "/networks/create", {"Name": "conf-mn"}, fields=("Warning",)),
        *(
            step
            for i, (name, config, host) in enumerate(_CREATE_MORE)
            for step in (
                Api(
                    "POST",
                    f"/containers/create?name=conf-m{i}",
                    {
                        "Image": B,
                        "Cmd": ["sleep", "1000"],
                        **config,
                        "HostConfig": {**_NONE, **host},
                    },
                ),
                Api(
                    "GET",
                    f"/containers/conf-m{i}/json",
                    fields=(f"Config.{name}" if config else f"HostConfig.{name}",),
                ),
            )
        ),
    ),
    (
        *(d("rm", "-f", f"conf-m{i}") for i in range(len(_CREATE_MORE))),
        d("network", "rm", "conf-mn"),
    ),
    keep=("02:42:ac:11:00:09",),
)

# One update field each, on a running container with no settings of its own.
_UPDATE_MORE: tuple[tuple[str, object], ...] = (
    ("BlkioDeviceReadBps", [{"Path": _DEV, "Rate": 1048576}]),
    ("BlkioDeviceReadIOps", [{"Path": _DEV, "Rate": 100}]),
    ("BlkioDeviceWriteBps", [{"Path": _DEV, "Rate": 1048576}]),
    ("BlkioDeviceWriteIOps", [{"Path": _DEV, "Rate": 100}]),
    ("BlkioWeightDevice", [{"Path": _DEV, "Weight": 100}]),
    ("CgroupParent", "conf-parent"),
    ("CpuCount", 1),
    ("CpuPercent", 50),
    ("CpuRealtimeRuntime", 100),
    ("DeviceCgroupRules", ["c 1:3 r"]),
    ("DeviceRequests", [{"Driver": "nope", "Count": 1, "Capabilities": [["gpu"]]}]),
    ("Devices", [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/xnull"}]),
    ("IOMaximumBandwidth", 1048576),
    ("KernelMemoryTCP", 1048576),
    ("MemorySwappiness", 10),
    ("Ulimits", [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]),
)

UPDATE_MORE = Scenario(
    "containers_update_more",
    (
        Api(
            "POST",
            "/containers/create?name=conf-um",
            {"Image": B, "Cmd": ["sleep", "1000"], "HostConfig": _NONE},
        ),
        d("start", "conf-um"),
        *(
            step
            for name, value in _UPDATE_MORE
            for step in (
                Api("POST", "/containers/conf-um/update", {name: value}),
                Api("GET", "/containers/conf-um/json", fields=(f"HostConfig.{name}",)),
            )
        ),
    ),
    (d("rm", "-f", "conf-um"),),
)


def _image_archive(tag: str) -> bytes:
    """A docker-archive (C{docker save}'s format) of a one-layer image tagged C{tag}, with fixed
    bytes (the same image id on both daemons)."""
    layer = _tar({"hello.txt": b"hi\n"})
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2020-09-13T12:26:40Z",
            "config": {"Cmd": ["/hello.txt"], "Env": ["L=1"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": "2020-09-13T12:26:40Z", "created_by": "conf"}],
        },
        sort_keys=True,
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [tag], "Layers": ["l1/layer.tar"]}]
    ).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in (
            ("l1/layer.tar", layer),
            (config_name, config),
            ("manifest.json", manifest),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_600_000_000, 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


_AUTH = (("X-Registry-Auth", "e30="),)  # base64 of {}
_WS = (
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Origin", "http://localhost"),
)
_ARCHIVE = _image_archive("conf/load:1")
_CONTEXT = _tar({"Dockerfile": b"FROM scratch\nLABEL conf=pull\n"})

IMAGES_MORE = Scenario(
    "images_more",
    (
        Api("POST", "/images/load?quiet=1", data=_ARCHIVE),
        Api("GET", "/images/conf/load:1/json", fields=("RepoTags", "Config.Env", "RootFS")),
        Api("POST", "/images/load?quiet=0", data=_ARCHIVE),
        Api("POST", "/images/load?quiet=1", data=_tar({"nope.txt": b"x"})),
        Api("POST", "/images/load?quiet=1", data=b"not a tar"),
        # the CLI always sends X-Registry-Auth (moby 28 ignores a missing one; 20.10 refused)
        Api("POST", "/images/nope/push?tag=1", headers=_AUTH),
        Api(
            "POST",
            "/commit?container=conf-im&repo=conf/cm&tag=1",
            {"MacAddress": "02:42:ac:11:00:0a", "NetworkDisabled": True},
        ),
        Api("POST", "/containers/create?name=conf-im", {"Image": B, "HostConfig": _NONE}),
        Api(
            "POST",
            "/commit?container=conf-im&repo=conf/cm&tag=1",
            {"MacAddress": "02:42:ac:11:00:0a", "NetworkDisabled": True},
            fields=(),
        ),
        Api(
            "GET", "/images/conf/cm:1/json", fields=("Config.MacAddress", "Config.NetworkDisabled")
        ),
        Api("POST", "/build?pull=1&t=conf/pull:1&q=1", data=_CONTEXT, fields=()),
        Api("GET", "/images/conf/pull:1/json", fields=("Config.Labels",)),
        Api("POST", "/build?pull=1&dockerfile=nope", data=_CONTEXT),
        # outputs (BuildKit's exporters) is decoded and, by the classic builder, not used
        Api(
            "POST",
            "/build?t=conf/pull:1&q=1&outputs=" + _q([{"Type": "moby"}]),
            data=_CONTEXT,
            fields=(),
        ),
        Api("POST", "/build?remote=http%3A%2F%2F127.0.0.1%3A1%2Fctx.tar&q=1"),
        Api("POST", "/build/prune?all=1&keep-storage=x"),
        Api("GET", "/events?since=1&until=2&filters=nope"),
        Api("GET", "/events?since=1&until=2&filters=" + _q({"nope": ["x"]})),
        Api("POST", "/containers/conf-im/attach?logs=1&stream=0&stdin=1&stdout=1"),
        Api(
            "GET",
            "/containers/nope/attach/ws?logs=1&stream=1&stdin=1&stdout=1&stderr=1"
            "&detachKeys=ctrl-x",
        ),
        # the handshake of a websocket client (x/net/websocket wants an Origin): 101, then the
        # container's log, as the connection is closed at once
        Api(
            "GET",
            "/containers/conf-im/attach/ws?logs=1&stream=0&stdin=1&stdout=1&stderr=1"
            "&detachKeys=ctrl-x",
            fields=(),
            headers=_WS,
        ),
    ),
    (
        d("rm", "-f", "conf-im"),
        d("rmi", "-f", "conf/load:1", "conf/cm:1", "conf/pull:1"),
    ),
    keep=("02:42:ac:11:00:0a",),
)

MORE_SCENARIOS: tuple[Scenario, ...] = (CREATE_MORE, UPDATE_MORE, IMAGES_MORE)

# Parameters and fields of API 1.42 to 1.50, which dockerd 20.10 does not know: it ignores them
# (a success) where moby 28 decodes them. The transcript is 20.10's; NEWER_DOCKERD in
# tests/conformance/runner.py rewrites each answer 28 gives otherwise (with its moby source),
# and the coverage counts 28's status. Requests that make 20.10 create something 28 refuses come
# last, so that no later object is numbered otherwise.
_AMD64 = _q({"os": "linux", "architecture": "amd64"})
_ARM64 = _q({"os": "linux", "architecture": "arm64"})
_IMG = f"/images/{B}"
_ARCHIVE2 = _image_archive("conf/load2:1")

API_NEWER = Scenario(
    "api_newer",
    (
        # is-automated=true is an empty answer before any registry is asked (moby 28); the
        # registry named is on loopback, where nothing listens (20.10 asks it)
        Api(
            "GET",
            "/images/search?term=127.0.0.1:1/conf&limit=1&filters="
            + _q({"is-automated": ["true"]}),
        ),
        Api("GET", "/images/search?term=127.0.0.1:1/conf&filters=" + _q({"nope": ["x"]})),
        Api("GET", "/images/search?term=127.0.0.1:1/conf&filters=nope"),
        Api("GET", f"{_IMG}/json?platform={_AMD64}", fields=("Os", "Architecture")),
        Api("GET", f"{_IMG}/json?platform=x", fields=("message",)),
        Api("GET", f"{_IMG}/json?platform={_ARM64}", fields=("message",)),
        Api("GET", f"{_IMG}/json?manifests=1", fields=("Os", "Architecture")),
        Api("GET", f"{_IMG}/json?manifests=1&platform={_AMD64}", fields=("message",)),
        Api("GET", f"{_IMG}/history?platform={_AMD64}", fields=("0.Tags",)),
        Api("GET", f"{_IMG}/history?platform=x", fields=("message",)),
        Api("GET", f"{_IMG}/history?platform={_ARM64}", fields=("message",)),
        Api("GET", f"{_IMG}/get?platform={_AMD64}", fields=()),
        Api("GET", f"{_IMG}/get?platform=x", fields=()),
        Api("GET", f"/images/get?names={quote(B, safe='')}&platform={_AMD64}", fields=()),
        Api("GET", f"/images/get?names={quote(B, safe='')}&platform=x", fields=()),
        Api("POST", f"/images/load?quiet=1&platform={_AMD64}", data=_ARCHIVE2),
        Api("POST", "/images/load?quiet=1&platform=x", data=_ARCHIVE2, fields=("message",)),
        Api("DELETE", f"/images/conf/load2:1?platforms={_AMD64}"),
        Api("DELETE", "/images/nope?platforms=x", fields=("message",)),
        Api("DELETE", f"/images/nope?platforms={_AMD64}&platforms={_ARM64}", fields=("message",)),
        Api("POST", f"/images/nope/push?tag=1&platform={_AMD64}", headers=_AUTH),
        Api("POST", "/images/nope/push?tag=1&platform=x", headers=_AUTH, fields=("message",)),
        Api("GET", "/system/df?type=nope", fields=("message",)),
        Api("POST", "/build/prune?reserved-space=1&max-used-space=1&min-free-space=1"),
        Api("POST", "/build/prune?reserved-space=x", fields=("message",)),
        Api("POST", "/build/prune?max-used-space=x", fields=("message",)),
        Api("POST", "/build/prune?min-free-space=x", fields=("message",)),
        Api("PUT", "/volumes/conf-nv?version=1", {"Spec": {"Availability": "active"}}),
        Api(
            "POST",
            "/containers/create?name=conf-an",
            {
                "Image": B,
                "Cmd": ["sleep", "1000"],
                "HostConfig": {**_NONE, "Annotations": {"conf.a": "b"}},
            },
        ),
        Api("GET", "/containers/conf-an/json", fields=("HostConfig.Annotations",)),
        d("start", "conf-an"),
        Api(
            "POST",
            "/volumes/create",
            {"Name": "conf-nv1", "ClusterVolumeSpec": {"Group": "g"}},
            fields=("message",),
        ),
        Api(
            "POST",
            "/volumes/create",
            {"Name": "conf-nv2", "ClusterVolumeSpec": "x"},
            fields=("message",),
        ),
        Api(
            "POST",
            "/containers/conf-an/exec",
            {"Cmd": ["true"], "ConsoleSize": "x"},
            fields=("message",),
        ),
        Api(
            "POST",
            "/containers/create?name=conf-an2",
            {"Image": B, "HostConfig": {**_NONE, "Annotations": "x"}},
            fields=("message",),
        ),
        Api(
            "POST", "/networks/create", {"Name": "conf-nv4", "EnableIPv4": "x"}, fields=("message",)
        ),
    ),
    (
        d("rm", "-f", "conf-an", "conf-an2"),
        d("rmi", "-f", "conf/load2:1"),
        d("volume", "rm", "-f", "conf-nv1", "conf-nv2"),
        d("network", "rm", "conf-nv4"),
    ),
)

MORE_SCENARIOS += (API_NEWER,)

# What inspect shows for the HostConfig fields a create left out: through the API (no field
# sent) and through the CLI (which fills in its own). Its key list shows which fields are left
# out of the JSON (Go's omitempty) rather than null.
_DEFAULTS_SHOWN = tuple(
    f"HostConfig.{k}"
    for k in (
        "<keys>", "Dns", "DnsOptions", "DnsSearch", "PortBindings", "MaskedPaths",
        "ReadonlyPaths", "RestartPolicy", "OomKillDisable", "Init", "Mounts", "Tmpfs",
        "Sysctls", "Annotations", "StorageOpt", "KernelMemory", "KernelMemoryTCP", "Binds",
        "CapAdd", "Links", "ExtraHosts", "VolumesFrom", "GroupAdd", "SecurityOpt",
        "LogConfig", "ShmSize", "IpcMode", "CgroupnsMode", "ConsoleSize", "MemorySwap",
    )
)  # fmt: skip

INSPECT_DEFAULTS = Scenario(
    "inspect_defaults",
    (
        Api("POST", "/containers/create?name=conf-id1", {"Image": B, "HostConfig": _NONE}),
        Api("GET", "/containers/conf-id1/json", fields=_DEFAULTS_SHOWN),
        d("create", "--name", "conf-id2", "--network", "none", B),
        Api("GET", "/containers/conf-id2/json", fields=_DEFAULTS_SHOWN),
        Api(
            "POST",
            "/containers/create?name=conf-id3",
            {"Image": B, "HostConfig": {**_NONE, "Privileged": True, "Memory": 67_108_864}},
        ),
        Api("GET", "/containers/conf-id3/json", fields=_DEFAULTS_SHOWN),
    ),
    (d("rm", "-f", "conf-id1", "conf-id2", "conf-id3"),),
)

MORE_SCENARIOS += (INSPECT_DEFAULTS,)
