"""C{/images/...} and C{/commit}: the local image store on the wire (layer: api).

Sections: local store (list, inspect, tag, delete, history, prune, save, load, import, commit) —
owned by the images area; registry (C{POST /images/create?fromImage=}, C{POST /images/{name}/push},
C{POST /auth}, C{GET /images/search}) — dispatched to the C{distribution} object owned by the
registry area, given at construction.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import IO, Any, Protocol, cast

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IPushProducer
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from zope.interface import implementer

from pyd.api.base import api_version, lean, make_app, role
from pyd.api.platform_param import platform_param, platforms_param
from pyd.api.rendering import UNREADABLE, render_all, render_one
from pyd.api.streams import PROGRESS_NEWLINE, JSONLines
from pyd.api.wire import (
    check_filters,
    json_body,
    parse_filters,
    qbool,
    qlist,
    qstr,
    read_json_object,
)
from pyd.core import reference as refs
from pyd.core.errors import InvalidParameter, NotFound, PydError
from pyd.core.records import Image
from pyd.engine.commit import CommitService
from pyd.engine.imagechanges import apply_changes
from pyd.engine.images import DeleteItem, ImageService, rfc3339
from pyd.engine.images import platform as plat
from pyd.engine.spec import schema
from pyd.engine.spec.gojson import decode

IMAGE_LIST_FILTERS = {"dangling", "label", "before", "since", "reference", "until"}
PRUNE_FILTERS = {"dangling", "label", "label!", "until"}
# dockerd 28 answers image inspect's Config (API >= 1.50) as an OCI image config (omitempty
# fields) merged over these defaults, keys sorted, after every other field.
_CONFIG_DEFAULTS: dict[str, Any] = {
    "Cmd": None,
    "Entrypoint": None,
    "Env": None,
    "Labels": None,
    "OnBuild": None,
    "User": "",
    "Volumes": None,
    "WorkingDir": "",
}
# the OCI image config fields (plus Docker's extensions) dockerd keeps from an image's config
_OCI_CONFIG_FIELDS = (
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "ArgsEscaped",
    "Healthcheck",
    "OnBuild",
    "Shell",
)
# container.Config as Go marshals it (ContainerConfig of API < 1.45): (field, zero, omitempty)
_CONTAINER_CONFIG_FIELDS: tuple[tuple[str, Any, bool], ...] = (
    ("Hostname", "", False),
    ("Domainname", "", False),
    ("User", "", False),
    ("AttachStdin", False, False),
    ("AttachStdout", False, False),
    ("AttachStderr", False, False),
    ("ExposedPorts", None, True),
    ("Tty", False, False),
    ("OpenStdin", False, False),
    ("StdinOnce", False, False),
    ("Env", None, False),
    ("Cmd", None, False),
    ("Healthcheck", None, True),
    ("ArgsEscaped", False, True),
    ("Image", "", False),
    ("Volumes", None, False),
    ("WorkingDir", "", False),
    ("Entrypoint", None, False),
    ("NetworkDisabled", False, True),
    ("MacAddress", "", True),
    ("OnBuild", None, False),
    ("Labels", None, False),
    ("StopSignal", "", True),
    ("StopTimeout", None, True),
    ("Shell", None, True),
)
ZERO_TIME = "0001-01-01T00:00:00Z"


def _inspect_config(conf: dict[str, Any], version: tuple[int, int]) -> dict[str, Any]:
    """Image inspect's C{Config} as dockerd 28 builds it for API >= 1.50 (see
    L{_CONFIG_DEFAULTS}); older API versions get the whole container.Config, as the daemons
    that spoke them answered (dockerd 20.10, and the build goldens recorded from it)."""
    if version < (1, 50):
        return _container_config(conf)
    out = dict(_CONFIG_DEFAULTS)
    for key in _OCI_CONFIG_FIELDS:
        value = conf.get(key)
        if value or (key == "Healthcheck" and isinstance(value, dict)):
            out[key] = value
    return dict(sorted(out.items()))


def _container_config(conf: dict[str, Any] | None) -> dict[str, Any]:
    """A container.Config as Go marshals it (every non-omitempty field present)."""
    conf = conf or {}
    out: dict[str, Any] = {}
    for key, zero, omitempty in _CONTAINER_CONFIG_FIELDS:
        value = conf.get(key, zero)
        if value is None and zero is not None:
            value = zero
        if omitempty and not value:
            continue
        out[key] = value
    return out


class Distribution(Protocol):
    """What the registry area provides to this router (pull, push, login)."""

    def pull(self, request: IRequest, from_image: str, tag: str | None) -> Deferred[None] | Any:
        """Handle C{POST /images/create?fromImage=...} completely (streams its own response)."""
        ...

    def push(self, request: IRequest, name: str) -> Deferred[None] | Any:
        """Handle C{POST /images/{name}/push} completely."""
        ...

    def login(self, request: IRequest) -> Deferred[bytes] | Any:
        """Handle C{POST /auth}; return the body."""
        ...

    def search(self, request: IRequest) -> Deferred[bytes] | Any:
        """Handle C{GET /images/search}; return the body."""
        ...


_ID_PREFIX = re.compile(r"(?:sha256:)?[0-9a-f]{1,64}")


@functools.lru_cache(maxsize=1024)
def _full_name(ref: str) -> str:
    """The fully qualified name of a familiar reference (remembered: every listing sorts
    each image's names again)."""
    try:
        return str(refs.parse_normalized(ref))
    except InvalidParameter:  # a stored name that no longer parses sorts as it is
        return ref


def lexical(tags: Iterable[str]) -> list[str]:
    """Names in the order dockerd's reference store gives them (moby reference/store.go
    References: sorted by the fully qualified name)."""
    names = list(tags)
    if len(names) < 2:
        return names  # most images have one name: nothing to order
    return sorted(names, key=_full_name)


def image_summary(
    img: Image, containers: int = -1, version: tuple[int, int] = (1, 50)
) -> dict[str, Any]:
    """One entry of C{GET /images/json} (dockerd 28's fields and per-version rules)."""
    tags: list[str] | None = lexical(img.repo_tags) or None
    digests: list[str] | None = list(img.repo_digests) or None
    if version < (1, 43):
        if not tags and not digests:
            tags, digests = ["<none>:<none>"], ["<none>@<none>"]
    else:
        tags, digests = tags or [], digests or []
    out: dict[str, Any] = {
        "Containers": containers,
        "Created": img.created,
        "Id": img.id,
        "Labels": img.container_config.get("Labels"),
        "ParentId": img.parent_id or "",
        "RepoDigests": digests,
        "RepoTags": tags,
        "SharedSize": -1,
        "Size": img.size,
    }
    if version < (1, 44):
        out["VirtualSize"] = img.size
    return out


def _unreadable_summary(img: Image) -> dict[str, Any]:
    """A C{GET /images/json} row for an image whose record cannot be rendered: its id and
    names, so that the listing works and the image can be removed."""
    return {
        "Containers": -1,
        "Created": 0,
        "Id": img.id,
        "Labels": None,
        "ParentId": "",
        "RepoDigests": [d for d in img.repo_digests if isinstance(d, str)],
        "RepoTags": [t for t in img.repo_tags if isinstance(t, str)],
        "SharedSize": -1,
        "Size": 0,
    }


def _unreadable_inspect(img: Image) -> dict[str, Any]:
    """C{inspect} of an image whose record cannot be rendered (see L{_unreadable_summary})."""
    row = _unreadable_summary(img)
    return {
        "Id": img.id,
        "RepoTags": row["RepoTags"],
        "RepoDigests": row["RepoDigests"],
        "Comment": UNREADABLE,
        "Config": {},
        "RootFS": {"Type": "layers"},
    }


def image_inspect(img: Image, layer_dirs: list[str], version: tuple[int, int]) -> dict[str, Any]:
    """C{GET /images/{name}/json} for one image, shaped as dockerd 28 answers it (graph driver
    store): Config last with sorted keys, the deprecated fields only for the API versions
    that still had them (with 20.10's container.Config as Config before 1.50)."""
    cfg = img.config
    conf = dict(cfg.get("config") or {})
    comment = cfg.get("comment") or ""
    history = cfg.get("history") or []
    if not comment and history and isinstance(history[-1], dict):
        comment = history[-1].get("comment") or ""
    out: dict[str, Any] = {
        "Id": img.id,
        "RepoTags": lexical(img.repo_tags),
        "RepoDigests": list(img.repo_digests),
        "Parent": img.parent_id or "",
        "Comment": comment,
    }
    if cfg.get("created"):
        out["Created"] = cfg["created"]
    elif version < (1, 44):
        out["Created"] = ZERO_TIME
    if version < (1, 45):
        if cfg.get("container"):
            out["Container"] = cfg["container"]
        out["ContainerConfig"] = _container_config(cfg.get("container_config"))
    out["DockerVersion"] = cfg.get("docker_version") or ""
    out["Author"] = cfg.get("author") or ""
    if version < (1, 50):
        out["Config"] = _inspect_config(conf, version)
    out["Architecture"] = cfg.get("architecture", "")
    if cfg.get("variant"):
        out["Variant"] = cfg["variant"]
    out["Os"] = cfg.get("os", "")
    if cfg.get("os.version"):
        out["OsVersion"] = cfg["os.version"]
    out["Size"] = img.size
    if version < (1, 44):
        out["VirtualSize"] = img.size
    data: dict[str, str] = {}
    if layer_dirs:
        data["UpperDir"] = layer_dirs[0]
        data["WorkDir"] = os.path.join(os.path.dirname(layer_dirs[0]), "work")
        data["MergedDir"] = os.path.join(os.path.dirname(layer_dirs[0]), "merged")
        if len(layer_dirs) > 1:
            data["LowerDir"] = ":".join(layer_dirs[1:])
    out["GraphDriver"] = {"Data": dict(sorted(data.items())) or None, "Name": "overlay2"}
    out["RootFS"] = {"Type": "layers", "Layers": list(img.diff_ids)}
    if not img.diff_ids:
        del out["RootFS"]["Layers"]
    out["Metadata"] = {
        "LastTagTime": rfc3339(img.last_tag_time / 1e9) if img.last_tag_time else ZERO_TIME
    }
    if version >= (1, 50):
        out["Config"] = _inspect_config(conf, version)
    return out


class ImagesDiskUsage:
    """The image rows of C{/info} and C{GET /system/df} (a L{pyd.engine.system.SystemContributor})."""

    def __init__(self, images: ImageService) -> None:
        self._images = images

    def info_counts(self) -> Deferred[dict[str, Any]]:
        """C{{"Images": n}}."""

        async def run() -> dict[str, Any]:
            return {"Images": await self._images.count()}

        return Deferred.fromCoroutine(run())

    def disk_usage(self) -> Deferred[dict[str, Any]]:
        """Image summaries with their container counts, and C{LayersSize}."""

        async def run() -> dict[str, Any]:
            rows, layers_size = await self._images.usage()
            return {
                "images": [image_summary(img, containers) for img, containers in rows],
                "layers_size": layers_size,
            }

        return Deferred.fromCoroutine(run())


def _delete_json(items: list[DeleteItem]) -> list[dict[str, str]]:
    return [{item.kind: item.value} for item in items]


def _stage_body(request: IRequest) -> IO[bytes]:
    content = request.content
    if content is None:
        import io

        return io.BytesIO(b"")
    content.seek(0)
    return cast(IO[bytes], content)


class ImagesRouter:
    """The image endpoints."""

    app = make_app()
    prefixes = ("images", "commit", "auth")

    def __init__(
        self,
        images: ImageService,
        *,
        commits: CommitService,
        distribution: Distribution,
    ) -> None:
        self._images = images
        self._commits = commits
        self.distribution = distribution

    def resource(self) -> IResource:
        """The Klein resource."""
        return self.app.resource()  # type: ignore[no-any-return]  # Klein's resource() is untyped

    # --- local store -------------------------------------------------------------------------

    @app.route("/images/json", methods=["GET"])
    @role("viewer")
    @lean
    async def list_images(self, request: IRequest) -> bytes:
        """C{docker images}."""
        filters = parse_filters(request)
        version = api_version(request)
        glob = qstr(request, "filter")
        if glob and version < (1, 41):
            # the query docker-py < 1.25 and old CLIs send: a reference filter (moby
            # image_routes.go getImagesJSON; ignored from API 1.41 on)
            filters.setdefault("reference", []).append(glob)
        check_filters(filters, IMAGE_LIST_FILTERS)
        images = await self._images.list_images(all_=qbool(request, "all"), filters=filters)
        rows = render_all(
            "image",
            images,
            lambda i: i.id,
            lambda i: image_summary(i, version=version),
            _unreadable_summary,
        )
        return json_body(request, rows)

    @app.route("/images/<path:name>/json", methods=["GET"])
    @role("viewer")
    @lean
    async def inspect(self, request: IRequest, name: str) -> bytes:
        """C{docker image inspect}."""
        # moby 28 getImagesByName: manifests from API 1.48 (the graph-driver store keeps no
        # manifest list to show), platform from 1.49, not both
        manifests = api_version(request) >= (1, 48) and qbool(request, "manifests")
        want = platform_param(request, (1, 49))
        if manifests and want is not None:
            raise InvalidParameter(
                "conflicting options: manifests and platform options cannot both be set"
            )
        img = await self._images.inspect(name)
        plat.check_image(img, want, name)
        dirs = await self._images.image_layer_dirs(img.id)
        version = api_version(request)
        out = render_one(
            "image", img.id, img, lambda i: image_inspect(i, dirs, version), _unreadable_inspect
        )
        return json_body(request, out)

    @app.route("/images/<path:name>/history", methods=["GET"])
    @role("viewer")
    @lean
    async def history(self, request: IRequest, name: str) -> bytes:
        """C{docker history}."""
        want = platform_param(request, (1, 48))
        if want is not None:
            plat.check_image(await self._images.inspect(name), want, name)
        rows = await self._images.history(name)
        return json_body(
            request,
            [
                {
                    "Comment": r.comment,
                    "Created": r.created,
                    "CreatedBy": r.created_by,
                    "Id": r.id,
                    "Size": r.size,
                    "Tags": lexical(r.tags) if r.tags else None,
                }
                for r in rows
            ],
        )

    @app.route("/images/<path:name>/tag", methods=["POST"])
    @role("operator")
    async def tag(self, request: IRequest, name: str) -> bytes:
        """C{docker tag}: 201 with no body."""
        repo = qstr(request, "repo") or ""
        tag = qstr(request, "tag") or None
        if not repo:
            raise InvalidParameter("repository name must have at least one component")
        await self._images.tag(name, repo, tag)
        request.setResponseCode(201)
        return b""

    @app.route("/images/<path:name>", methods=["DELETE"])
    @role("operator")
    async def delete(self, request: IRequest, name: str) -> bytes:
        """C{docker rmi}."""
        want = plat.single(platforms_param(request, (1, 50)))
        if want is not None:
            plat.check_image(await self._images.inspect(name), want, name)
        items = await self._images.delete(
            name, force=qbool(request, "force"), prune=not qbool(request, "noprune")
        )
        return json_body(request, _delete_json(items))

    @app.route("/images/prune", methods=["POST"])
    @role("operator")
    async def prune(self, request: IRequest) -> bytes:
        """C{docker image prune}."""
        filters = parse_filters(request)
        check_filters(filters, PRUNE_FILTERS)
        report = await self._images.prune(filters)
        return json_body(
            request,
            {
                "ImagesDeleted": _delete_json(list(report.deleted)) or None,
                "SpaceReclaimed": report.space_reclaimed,
            },
        )

    @app.route("/images/get", methods=["GET"])
    @role("operator")
    async def save_many(self, request: IRequest) -> None:
        """C{docker save a b c}."""
        names = qlist(request, "names")
        if not names:
            raise InvalidParameter("no images specified")
        await self._save(request, names)

    @app.route("/images/<path:name>/get", methods=["GET"])
    @role("operator")
    async def save_one(self, request: IRequest, name: str) -> None:
        """C{GET /images/{name}/get}."""
        await self._save(request, [name])

    async def _save(self, request: IRequest, names: list[str]) -> None:
        want = platform_param(request, (1, 48), single=True)
        if want is not None:
            for n in names:
                img = await self._images.inspect(n)
                if not plat.matches(want, plat.image_platform(img.config)):
                    # moby 28 image/tarexport/save.go (a plain error there: a 500)
                    raise InvalidParameter(
                        "no suitable export target found for platform " + want.format()
                    )
        try:
            path = await self._images.save_to_file(names)
        except NotFound:
            # moby image/tarexport/save.go parseNames: a name the reference store does not
            # hold is its ErrDoesNotExist (an id prefix stays "No such image")
            if any(not _ID_PREFIX.fullmatch(n) for n in names):
                raise NotFound("reference does not exist") from None
            raise
        try:
            request.setResponseCode(200)
            request.setHeader(b"Content-Type", b"application/x-tar")
            f = await self._images.open_file(path)
            try:
                await _pump(request, lambda: self._images.read_chunk(f))
            finally:
                await self._images.close_file(f)
        finally:
            await self._images.discard(path)

    @app.route("/images/load", methods=["POST"])
    @role("operator")
    async def load(self, request: IRequest) -> None:
        """C{docker load}: JSON lines C{{"stream": "Loaded image: x\\n"}}."""
        quiet = qbool(request, "quiet", True)
        # moby 28 postImagesLoad (API 1.48): an image of another platform is skipped
        want = platform_param(request, (1, 48), single=True)
        src = _stage_body(request)
        out = JSONLines(request, newline=PROGRESS_NEWLINE)
        try:
            lines: list[str] = []
            await self._images.load(src, lines.append, want)
            for line in lines:
                out.write({"stream": line})
        except PydError as e:
            out.error(e.message)
        finally:
            out.finish()
        _ = quiet  # the CLI shows the same lines either way (progress bars come only from pulls)

    @app.route("/images/create", methods=["POST"])
    @role("operator")
    async def create(self, request: IRequest) -> Any:
        """C{docker import} (C{fromSrc}) here; C{docker pull} (C{fromImage}) goes to the registry area."""
        from_image = qstr(request, "fromImage")
        from_src = qstr(request, "fromSrc")
        if from_image:
            return await self._pull(request, from_image, qstr(request, "tag"))
        if not from_src:
            raise InvalidParameter("fromImage or fromSrc is required")
        return await self._import(request, from_src)

    async def _import(self, request: IRequest, from_src: str) -> None:
        repo = qstr(request, "repo") or ""
        tag = qstr(request, "tag") or None
        message = qstr(request, "message") or ""
        changes = qlist(request, "changes")
        platform = qstr(request, "platform") or ""
        repo_tag = None
        if repo:
            repo_tag = str(refs.parse_repository(repo, tag))
        os_arch = None
        if platform:
            parts = platform.split("/")
            if parts[0] != "linux":
                raise InvalidParameter(f'"{platform}": unknown operating system or architecture')
            os_arch = ("linux", parts[1] if len(parts) > 1 else "amd64")
        config = apply_changes({}, changes)
        if from_src == "-":
            src = _stage_body(request)
            img = await self._images.import_stream(
                src, repo_tag, config, message or "Imported from -", os_arch
            )
        else:
            img = await self._images.import_url(from_src, repo_tag, config, message, os_arch)
        out = JSONLines(request, newline=PROGRESS_NEWLINE)
        out.write({"status": img.id})
        out.finish()

    @app.route("/commit", methods=["POST"])
    @role("operator")
    async def commit(self, request: IRequest) -> bytes:
        """C{docker commit}: 201 C{{"Id": "sha256:..."}}."""
        name = qstr(request, "container") or ""
        if not name:
            raise InvalidParameter("container is required")
        repo = qstr(request, "repo") or ""
        tag = qstr(request, "tag") or None
        repo_tag = str(refs.parse_repository(repo, tag)) if repo else None
        # decoded as a create body (moby's commit route: runconfig DecodeConfig)
        body = decode(read_json_object(request, required=False), schema.CREATE_REQUEST)
        img = await self._commits.commit_container(
            name,
            repo_tag,
            body,
            qlist(request, "changes"),
            author=qstr(request, "author") or "",
            comment=qstr(request, "comment") or "",
            # dockerd: an absent pause means true
            pause=qbool(request, "pause") if qstr(request, "pause") else True,
        )
        return json_body(request, {"Id": img.id}, 201)

    # === registry section (owned by the registry area: pyd/api/distribution.py) ===============

    async def _pull(self, request: IRequest, from_image: str, tag: str | None) -> Any:
        return await ensureDeferred(_as_coro(self.distribution.pull(request, from_image, tag)))

    @app.route("/images/search", methods=["GET"])
    @role("operator")
    async def search(self, request: IRequest) -> Any:
        """C{docker search} (registry area)."""
        return await ensureDeferred(_as_coro(self.distribution.search(request)))

    @app.route("/images/<path:name>/push", methods=["POST"])
    @role("operator")
    async def push(self, request: IRequest, name: str) -> Any:
        """C{docker push} (registry area)."""
        # moby 28 PushImage (API 1.46): the local image must be of the platform asked for
        want = platform_param(request, (1, 46))
        if want is not None:
            tag = qstr(request, "tag") or ""
            ref = refs.parse_normalized(f"{name}:{tag}" if tag else name)
            plat.check_image(await self._images.inspect(str(ref)), want, ref.familiar())
        return await ensureDeferred(_as_coro(self.distribution.push(request, name)))

    @app.route("/auth", methods=["POST"])
    @role("operator")
    async def auth(self, request: IRequest) -> Any:
        """C{docker login} (registry area)."""
        return await ensureDeferred(_as_coro(self.distribution.login(request)))

    # === end of registry section ===============================================================


@implementer(IPushProducer)
class _Pump:
    """A push producer over an async chunk source: honours the transport's pause/resume."""

    def __init__(self) -> None:
        self.paused = False
        self.stopped = False
        self._waiter: Deferred[None] | None = None

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self._wake()

    def stopProducing(self) -> None:
        self.stopped = True
        self._wake()

    def _wake(self) -> None:
        w, self._waiter = self._waiter, None
        if w is not None:
            w.callback(None)

    async def wait(self) -> None:
        while self.paused and not self.stopped:
            self._waiter = Deferred()
            await self._waiter


async def _pump(request: Any, read: Callable[[], Awaitable[bytes]]) -> None:
    """Copy C{read()} chunks to the response until EOF or the client goes away; finish it."""
    producer = _Pump()
    gone: list[bool] = []
    request.notifyFinish().addBoth(lambda _: gone.append(True))
    request.registerProducer(producer, True)
    try:
        while not producer.stopped and not gone:
            await producer.wait()
            chunk = await read()
            if not chunk or gone:
                break
            request.write(chunk)
    finally:
        request.unregisterProducer()
    if not gone:
        request.finish()


async def _as_coro(value: Any) -> Any:
    if isinstance(value, Deferred):
        return await value
    if hasattr(value, "__await__"):
        return await value
    return value
