"""Conformance scenarios for the fields L{tests.conformance.api_scenarios} leaves out: one request
per field that needs a setting of its own (a host resource, a Windows-only field, a build
parameter), and the version checks of the system endpoints.

Each request stands alone (its own container name): what both daemons answer for it, success
or refusal, is compared.
"""

from __future__ import annotations

from tests.conformance.api_scenarios import _NONE, _q, _tar
from tests.conformance.steps import Api, Scenario, Step, d
from tests.helpers.images import DEFAULT_TAG as B

# One HostConfig field each, on top of NetworkMode none.
_CREATE_ONE: tuple[tuple[str, object], ...] = (
    ("PortBindings", {"80/tcp": [{"HostPort": "18080"}]}),
    ("CpuRealtimePeriod", 1000),
    ("CpuRealtimeRuntime", 100),
    ("CpuPercent", 50),
)

CREATE_ONE_FIELD = Scenario(
    "containers_create_fields",
    tuple(
        Api(
            "POST",
            f"/containers/create?name=conf-f{i}",
            {"Image": B, "HostConfig": {**_NONE, name: value}},
        )
        for i, (name, value) in enumerate(_CREATE_ONE)
    ),
    tuple(d("rm", "-f", f"conf-f{i}") for i in range(len(_CREATE_ONE))),
)

# One update field each, on a container that has no CPU settings yet.
_UPDATE_ONE: tuple[tuple[str, object], ...] = (
    ("NanoCpus", 500_000_000),
    ("OomKillDisable", True),
    ("CpuRealtimePeriod", 1000),
    ("IOMaximumIOps", 100),
    ("Init", True),
)

UPDATE_ONE_FIELD = Scenario(
    "containers_update_fields",
    (
        Api(
            "POST",
            "/containers/create?name=conf-uf",
            {"Image": B, "Cmd": ["sleep", "1000"], "HostConfig": _NONE},
        ),
        d("start", "conf-uf"),
        *(Api("POST", "/containers/conf-uf/update", {name: value}) for name, value in _UPDATE_ONE),
        Api("GET", "/containers/conf-uf/json", fields=("HostConfig.NanoCpus",)),
        Api("POST", "/containers/nope/update", {"Init": True}),
    ),
    (d("rm", "-f", "conf-uf"),),
)

_CONTEXT = _tar(
    {
        "Dockerfile": f"FROM {B} AS base\nARG A=0\nLABEL a=$A\nRUN true\nFROM base AS final\n".encode(),
        "other.Dockerfile": f"FROM {B}\nRUN false\n".encode(),
    }
)
_BUILD_ALL = (
    "/build?dockerfile=Dockerfile&t=conf/b:1&extrahosts=h1:10.9.8.7&q=1&nocache=1"
    "&cachefrom=" + _q(["conf/none:1"]) + "&rm=1&forcerm=1&memory=67108864&memswap=134217728"
    "&cpushares=512&cpusetcpus=0&cpuperiod=100000&cpuquota=50000&buildargs="
    + _q({"A": "1"})
    + "&shmsize=67108864&labels="
    + _q({"conf": "b"})
    + "&networkmode=none&platform=linux"
    "&target=base&version=1"
)

BUILD_API = Scenario(
    "build_api",
    (
        Api("POST", _BUILD_ALL, data=_CONTEXT, fields=()),
        Api(
            "GET",
            "/images/conf/b:1/json",
            fields=("RepoTags", "Config.Labels"),
        ),
        # a stream of the build's output: compared by the build goldens (tests/helpers/
        # build_golden.py) through the CLI, here only its status
        Api("POST", "/build?dockerfile=other.Dockerfile&t=conf/b:2&q=1", data=_CONTEXT, fields=()),
        Api("POST", "/build?t=conf/B:1", data=_CONTEXT),
        Api("POST", "/build?buildargs=x", data=_CONTEXT),
        Api("POST", "/build?labels=x", data=_CONTEXT),
        Api("POST", "/build?cachefrom=x", data=_CONTEXT),
        Api("POST", "/build?shmsize=x", data=_CONTEXT),
        Api("POST", "/build?memory=x", data=_CONTEXT, fields=()),
        Api("POST", "/build?memswap=x", data=_CONTEXT, fields=()),
        Api("POST", "/build?cpushares=x", data=_CONTEXT, fields=()),
        Api("POST", "/build?cpuperiod=x", data=_CONTEXT, fields=()),
        Api("POST", "/build?cpuquota=x", data=_CONTEXT, fields=()),
        Api("POST", "/build?cpusetcpus=x", data=_CONTEXT, fields=()),
        Api("POST", "/build?networkmode=nope", data=_CONTEXT, fields=()),
        Api("POST", "/build?platform=nope", data=_CONTEXT),
        Api("POST", "/build?target=nope", data=_CONTEXT),
        Api("POST", "/build?dockerfile=nope", data=_CONTEXT),
        # every parameter that takes any value, in a build that fails (an unknown Dockerfile)
        Api(
            "POST",
            _BUILD_ALL.replace("dockerfile=Dockerfile", "dockerfile=nope"),
            data=_CONTEXT,
        ),
        Api("POST", "/build?version=3", data=_CONTEXT),
        Api("POST", "/build?squash=1", data=_CONTEXT),
        Api("POST", "/build?outputs=x&version=1", data=_CONTEXT),
        Api("POST", "/build/prune?all=1&keep-storage=1&filters=" + _q({"until": ["1h"]})),
        Api("POST", "/build/prune?keep-storage=x"),
        Api("POST", "/build/prune?filters=" + _q({"nope": ["x"]})),
    ),
    (d("rmi", "-f", "conf/b:1", "conf/b:2"),),
    keep=("10.9.8.7",),
)

# The version checks every endpoint shares, on the endpoints that have no other error.
_VERSIONED: tuple[Step, ...] = tuple(
    Api(m, f"/v1.99{p}") for m, p in (("GET", "/_ping"), ("HEAD", "/_ping"), ("GET", "/info"),
                                     ("GET", "/version"), ("GET", "/system/df"))
)  # fmt: skip

SYSTEM_VERSIONS = Scenario("system_versions", _VERSIONED)

# Push, pull, distribution and login against a registry on loopback (no authentication).
DISTRIBUTION_API = Scenario(
    "distribution_api",
    (
        Api(
            "POST",
            "/auth",
            {
                "username": "u",
                "password": "p",
                "email": "u@example.org",
                "serveraddress": "{registry}",
            },
        ),
        Api("POST", f"/images/{B}/tag?repo={{registry}}/conf/img&tag=1"),
        d("push", "{registry}/conf/img:1"),
        d("push", "{registry}/conf/nope:1"),
        # platform (API 1.46): moby 28 pushes once the local image is of it
        Api(
            "POST",
            "/images/{registry}/conf/img/push?tag=1&platform="
            + _q({"os": "linux", "architecture": "amd64"}),
            fields=(),
            headers=(("X-Registry-Auth", "e30="),),
        ),
        Api(
            "GET",
            "/distribution/{registry}/conf/img:1/json",
            fields=("Descriptor.mediaType", "Platforms"),
        ),
        Api("GET", "/distribution/{registry}/conf/nope:1/json"),
        Api("DELETE", "/images/{registry}/conf/img:1", fields=()),
        d("pull", "{registry}/conf/img:1"),
        Api("GET", "/images/{registry}/conf/img:1/json", fields=("RepoTags",)),
        Api("POST", "/images/create?fromImage={registry}/conf/nope&tag=1"),
        Api("GET", "/images/search?term={registry}/conf&limit=1"),
    ),
    (d("rmi", "-f", "{registry}/conf/img:1"),),
    registry=True,
)

# Issue 15: builds that share steps (a cached prefix, an earlier stage) make the first tag's
# image the parent of the later build's steps. Untagging it by name answers 200 with only the
# Untagged line (with children it is not dangling, so the quiet delete keeps it); deleting the
# later image takes the shared steps along: the Deleted lines (images and layers) are compared.
_SHARED = _tar(
    {
        "a.Dockerfile": f"FROM {B}\nRUN echo a > /a\nENV X=1\n".encode(),
        "b.Dockerfile": f"FROM {B}\nRUN echo a > /a\nENV X=1\nRUN echo b > /b\n".encode(),
        "Dockerfile": f"FROM {B} AS s1\nRUN echo s1 > /s1\nFROM s1\nRUN echo s2 > /s2\n".encode(),
    }
)
_DEL_TAGS = ("conf/del-a:1", "conf/del-b:1", "conf/del-s1:1", "conf/del-m:1")

IMAGE_DELETE_CHILDREN = Scenario(
    "image_delete_children",
    (
        Api("POST", "/build?dockerfile=a.Dockerfile&t=conf/del-a:1&q=1", data=_SHARED, fields=()),
        Api("POST", "/build?dockerfile=b.Dockerfile&t=conf/del-b:1&q=1", data=_SHARED, fields=()),
        d("rmi", "conf/del-a:1"),
        d("rmi", "conf/del-b:1"),
        Api("POST", "/build?target=s1&t=conf/del-s1:1&q=1", data=_SHARED, fields=()),
        Api("POST", "/build?t=conf/del-m:1&q=1", data=_SHARED, fields=()),
        d("rmi", "-f", "conf/del-s1:1"),
        Api("DELETE", "/images/conf/del-m:1"),
    ),
    (d("rmi", "-f", *_DEL_TAGS),),
)

FIELD_SCENARIOS: tuple[Scenario, ...] = (
    CREATE_ONE_FIELD,
    UPDATE_ONE_FIELD,
    BUILD_API,
    SYSTEM_VERSIONS,
    DISTRIBUTION_API,
    IMAGE_DELETE_CHILDREN,
)
