"""C{POST /build} (the classic builder) and C{POST /build/prune} (layer: api).

The CLI without buildx sends the legacy C{/build?...&version=1} with the context as a tar body and
the options as query parameters (JSON-in-query for buildargs, labels, cachefrom, ulimits). Errors found
before the build starts (bad options, a bad context, a Dockerfile syntax error) are plain HTTP errors;
after that the response is a JSON-lines stream (C{stream}, C{aux}, C{errorDetail}).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from pyd.api.base import make_app, role
from pyd.api.distribution import auth_from_json
from pyd.api.errors import public_message
from pyd.api.streams import PROGRESS_NEWLINE, JSONLines
from pyd.api.wire import json_body, parse_filters, qbool, qint, qint_or_zero, qlist, qstr
from pyd.core.errors import InvalidParameter, PydError
from pyd.core.records import RegistryAuth
from pyd.engine.builder.builder import BuildFailed, BuildOptions, BuildService
from pyd.engine.spec.gojson import go_syntax_error
from pyd.engine.spec.rules import go_atoi, parse_extra_host

log = Logger()

_NAME_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)"
_REF = re.compile(
    rf"^(?:{_DOMAIN}/)?{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*(?::[\w][\w.-]{{0,127}})?$"
)


def validate_tag(ref: str) -> None:
    """dockerd's check of a C{-t} value.

    @raise InvalidParameter: not a valid reference.
    """
    if "@" in ref:
        raise InvalidParameter("invalid reference format: tag cannot contain a digest")
    if not _REF.match(ref):
        name = ref.rsplit(":", 1)[0] if ref.count(":") and "/" not in ref.rsplit(":", 1)[1] else ref
        if name.lower() != name and _REF.match(ref.lower()):
            raise InvalidParameter(
                f"invalid reference format: repository name ({name}) must be lowercase"
            )
        raise InvalidParameter("invalid reference format")


# The filters BuildKit's prune takes (moby builder/builder-next/builder.go)
_PRUNE_FILTERS = frozenset(
    ("until", "unused-for", "id", "parent", "type", "description", "inuse", "shared", "private")
)

# How dockerd (api/server/router/build/build_routes.go newImageBuildOptions) words a JSON
# parameter that does not decode: its prefix, and the Go type the value decodes into
_JSON_PARAMS = {
    "buildargs": ("error reading build args: ", "map[string]*string"),
    "labels": ("error reading labels: ", "map[string]string"),
    "cachefrom": ("", "[]string"),
    "ulimits": ("error reading ulimit settings: ", "[]*units.Ulimit"),
    "outputs": ("", "[]types.ImageBuildOutput"),
}


def _json_param(request: IRequest, name: str, kind: type) -> Any:
    raw = qstr(request, name)
    if not raw:
        return kind()
    prefix, go_type = _JSON_PARAMS[name]
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise InvalidParameter(prefix + go_syntax_error(raw, e)) from None
    if value is None:
        return kind()
    if not isinstance(value, kind):
        found = "object" if isinstance(value, dict) else type(value).__name__
        found = {"list": "array", "str": "string", "int": "number", "float": "number"}.get(
            found, found
        )
        raise InvalidParameter(
            f"{prefix}json: cannot unmarshal {found} into Go value of type {go_type}"
        )
    return value


def registry_config(request: IRequest) -> dict[str, RegistryAuth]:
    """C{X-Registry-Config}: base64url JSON of C{{registry: AuthConfig}} (ignored if malformed,
    as dockerd does)."""
    header = request.getHeader("x-registry-config")
    if not header:
        return {}
    s = "".join(header.split()).rstrip("=")
    s += "=" * (-len(s) % 4)
    try:
        doc = json.loads(base64.urlsafe_b64decode(s))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {str(k): auth_from_json(v) for k, v in doc.items() if isinstance(v, dict)}


def options_from_request(request: IRequest) -> BuildOptions:
    """Decode every legacy C{/build} query parameter.

    @raise InvalidParameter: malformed values.
    """
    version = qstr(request, "version") or "1"
    if version == "2":
        raise InvalidParameter(
            "BuildKit is not supported by this daemon: use the classic builder (DOCKER_BUILDKIT=0)"
        )
    if version != "1":
        # build_routes.go parseVersion's text (a 500 there; the value is the client's)
        raise InvalidParameter(f'invalid version "{version}"')
    if qstr(request, "remote"):
        raise InvalidParameter("remote build contexts are not supported: send the context as a tar")
    tags = tuple(t for t in qlist(request, "t") if t)
    for t in tags:
        validate_tag(t)
    build_args = _json_param(request, "buildargs", dict)
    labels = _json_param(request, "labels", dict)
    cache_from = _json_param(request, "cachefrom", list)
    ulimits = _json_param(request, "ulimits", list)
    _json_param(request, "outputs", list)  # decoded (and refused when malformed) as dockerd does
    extra_hosts: list[str] = []
    for h in qlist(request, "extrahosts"):
        extra_hosts.extend(x for x in h.split(",") if x)
    for h in extra_hosts:
        parse_extra_host(h)  # dockerd's texts; names with newlines never reach /etc/hosts
    return BuildOptions(
        tags=tags,
        dockerfile=qstr(request, "dockerfile") or "Dockerfile",
        target=qstr(request, "target") or "",
        build_args={str(k): (None if v is None else str(v)) for k, v in build_args.items()},
        labels={str(k): str(v) for k, v in labels.items()},
        no_cache=qbool(request, "nocache"),
        pull=qbool(request, "pull"),
        # dockerd: forcerm implies rm, and an empty rm is true
        rm=qbool(request, "forcerm") or not qstr(request, "rm") or qbool(request, "rm"),
        force_rm=qbool(request, "forcerm"),
        quiet=qbool(request, "q"),
        cache_from=tuple(str(c) for c in cache_from),
        network_mode=qstr(request, "networkmode") or "",
        extra_hosts=tuple(h.replace("=", ":", 1) if ":" not in h else h for h in extra_hosts),
        # dockerd reads these with Int64ValueOrZero: what is not an integer is 0
        memory=qint_or_zero(request, "memory"),
        memory_swap=qint_or_zero(request, "memswap"),
        # ParseInt's error is unclassified in dockerd (a 500); the client's value is at fault
        shm_size=qint(request, "shmsize", 0, "strconv.ParseInt") or 0,
        cpu_shares=qint_or_zero(request, "cpushares"),
        cpu_period=qint_or_zero(request, "cpuperiod"),
        cpu_quota=qint_or_zero(request, "cpuquota"),
        cpuset_cpus=qstr(request, "cpusetcpus") or "",
        cpuset_mems=qstr(request, "cpusetmems") or "",
        cgroup_parent=qstr(request, "cgroupparent") or "",
        ulimits=tuple(u for u in ulimits if isinstance(u, dict)),
        platform=qstr(request, "platform") or "",
        squash=qbool(request, "squash"),
        registry_auth=registry_config(request),
        # Set by the authorization guard for callers below admin (RUN options it refuses).
        refused=dict(getattr(request, "pyd_build_refused", None) or {}),
    )


class _Progress:
    """L{pyd.engine.builder.builder.BuildProgress} over a JSON-lines response."""

    def __init__(self, out: JSONLines) -> None:
        self._out = out

    def stream(self, text: str) -> None:
        self._out.write({"stream": text})

    def aux(self, image_id: str) -> None:
        self._out.write({"aux": {"ID": image_id}})

    def pull_status(self, status: Any) -> None:
        if isinstance(status, dict):
            self._out.write(status)
            return
        out: dict[str, Any] = {}
        if getattr(status, "status", ""):
            out["status"] = status.status
        if getattr(status, "detail", False):
            detail = {}
            if getattr(status, "current", None):
                detail["current"] = status.current
            if getattr(status, "total", None):
                detail["total"] = status.total
            out["progressDetail"] = detail
        if getattr(status, "id", ""):
            out["id"] = status.id
        if out:
            self._out.write(out)

    @property
    def cancelled(self) -> bool:
        return self._out.closed


class BuildRouter:
    """The build endpoints."""

    app = make_app()
    prefixes = ("build",)

    def __init__(self, builds: BuildService) -> None:
        self._builds = builds

    def resource(self) -> IResource:
        """The Klein resource."""
        return self.app.resource()  # type: ignore[no-any-return]  # Klein's resource() is untyped

    @app.route("/build", methods=["POST"])
    @role("operator")
    async def build(self, request: IRequest) -> None:
        """Run a classic build, streaming its output."""
        options = options_from_request(request)
        body = request.content
        if body is not None:
            body.seek(0)
        prepared = await self._builds.prepare(body, options)
        out = JSONLines(request, newline=PROGRESS_NEWLINE)
        try:
            await self._builds.run(prepared, _Progress(out))
        except BuildFailed as e:
            detail: dict[str, Any] = {"message": e.message}
            if e.code is not None:
                detail["code"] = e.code
            out.write({"errorDetail": detail, "error": e.message})
        except PydError as e:
            out.error(e.message)
        except CancelledError:  # the client went away: nobody to tell
            pass
        except Exception as e:  # noqa: BLE001 - reported in-band; the traceback is logged
            log.failure("build failed")
            out.error("build failed: " + public_message(e))
        out.finish()

    @app.route("/build/prune", methods=["POST"])
    @role("operator")
    async def prune(self, request: IRequest) -> bytes:
        """Remove the builder's leftover scratch data."""
        for key in ("keep-storage", "reserved-space", "max-used-space", "min-free-space"):
            v = qstr(request, key)
            if v:
                try:
                    go_atoi(v)
                except ValueError as e:
                    raise InvalidParameter(
                        f"{key} is in bytes and expects an integer, got {v}: {e}"
                    ) from None
        for key in parse_filters(request):
            if key not in _PRUNE_FILTERS:
                raise InvalidParameter(f"failed to prune build cache: invalid filter '{key}'")
        ids, size = await self._builds.prune()
        # a Go slice that nothing was appended to: null
        return json_body(request, {"CachesDeleted": ids or None, "SpaceReclaimed": size})

    @app.route("/build/cancel", methods=["POST"])
    @role("operator")
    def cancel(self, request: IRequest) -> bytes:
        """BuildKit's cancel: nothing to do for the classic builder."""
        return json_body(request, {})
