"""C{/containers/...}: create, list, inspect, lifecycle, wait, logs, prune (layer: api).

Attach, exec, top, stats, archive, changes, export and resize are served by other routers that
share the C{containers} prefix (the root picks the router whose routes match).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from pyd.api.base import api_version, lean, make_app, role
from pyd.api.container_views import inspect_json, list_json
from pyd.api.list_entries import ListEntries
from pyd.api.rendering import UNREADABLE, render_one
from pyd.api.streams import STDERR, STDOUT, Flow, frame_header
from pyd.api.timeparse import parse_time_nano, rfc3339_nano
from pyd.api.visibility import redact_inspect
from pyd.api.wire import (
    check_filters,
    confined,
    create_spec_of,
    encode_json,
    json_body,
    json_bytes,
    no_content,
    parse_filters,
    qbool,
    qint,
    qstr,
    read_json_object,
)
from pyd.core.errors import InvalidParameter
from pyd.core.records import Container
from pyd.core.seams import Clock
from pyd.engine import containers as engine
from pyd.engine.containers import ContainerService, LogsRequest
from pyd.engine.containers.logfiles import LogEntry, LogTail
from pyd.engine.filters import labels_match
from pyd.engine.spec.rules import go_atoi

log = Logger()


LIST_FILTERS = {
    "id", "name", "label", "status", "exited", "ancestor", "before", "since", "volume",
    "network", "health", "is-task", "publish", "expose",
}  # fmt: skip


STATUSES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")


HEALTHS = ("none", "starting", "healthy", "unhealthy")


class ContainersDiskUsage:
    """C{/info} counts and the container rows of C{GET /system/df} (a SystemContributor)."""

    def __init__(self, service: ContainerService, clock: Clock) -> None:
        self._svc = service
        self._clock = clock

    def info_counts(self) -> Deferred[dict[str, Any]]:
        """Containers, running, paused, stopped."""
        return self._svc.info_counts()

    def disk_usage(self) -> Deferred[dict[str, Any]]:
        """Every container as C{docker ps -s} shows it."""

        async def run() -> dict[str, Any]:
            now = int(self._clock.seconds() * 1_000_000_000)
            containers = self._svc.list_all()
            rows = []
            for c, (rw, rootfs) in zip(
                containers, await self._svc.sizes_of(containers), strict=True
            ):
                row = list_json(c, now)
                row["SizeRw"], row["SizeRootFs"] = rw, rootfs
                rows.append(row)
            return {"containers": rows}

        return Deferred.fromCoroutine(run())


class ContainersRouter:
    """The container endpoints."""

    app = make_app()
    prefixes = ("containers",)

    def __init__(self, service: ContainerService, clock: Clock) -> None:
        self._svc = service
        self._clock = clock
        self._entries = ListEntries()

    def resource(self) -> IResource:
        """The Klein resource (the root also offers C{/containers} to the stream routers)."""
        return self.app.resource()  # type: ignore[no-any-return]  # Klein's resource() is untyped

    def _now(self) -> int:
        return int(self._clock.seconds() * 1_000_000_000)

    # --- create / list / inspect ----------------------------------------------------------------

    @app.route("/containers/create", methods=["POST"])
    @role("operator")
    async def create(self, request: IRequest) -> bytes:
        """C{POST /containers/create?name=}."""
        spec = confined(request, create_spec_of(request, self._svc.parse_create))
        name = qstr(request, "name") or None
        cid, warnings = await self._svc.create_spec(name, spec, qstr(request, "platform") or "")
        return json_body(request, {"Id": cid, "Warnings": warnings}, 201)

    @app.route("/containers/json", methods=["GET"])
    @role("viewer")
    @lean
    async def list_containers(self, request: IRequest) -> bytes:
        """C{GET /containers/json}."""
        filters = parse_filters(request)
        check_filters(filters, LIST_FILTERS)
        all_ = qbool(request, "all")
        limit = qint(request, "limit", 0) or 0
        size = qbool(request, "size")
        now = self._now()
        items = self._svc.list_all()
        # dockerd's foldFilter: exited codes are numbers; status values are states (and imply
        # all=1); health values are health states
        for x in filters.get("exited", []):
            try:
                go_atoi(x)
            except ValueError as e:
                raise InvalidParameter(f"invalid filter 'exited={x}': {e}") from e
        if filters.get("status"):
            for s in filters["status"]:
                if s not in STATUSES:
                    raise InvalidParameter(
                        f"invalid filter 'status={s}': invalid value for state ({s}): "
                        f"must be one of {', '.join(STATUSES)}"
                    )
            all_ = True
        for h in filters.get("health", []):
            if h not in HEALTHS:
                raise InvalidParameter(
                    f"invalid filter 'health={h}': invalid value for health ({h}): "
                    f"must be one of {', '.join(HEALTHS)}"
                )
        before = since = None
        if filters.get("before"):
            before = self._svc.resolve(filters["before"][0]).created_nano
        if filters.get("since"):
            since = self._svc.resolve(filters["since"][0]).created_nano
        # each entry encoded (L{ListEntries}), or a dict when its sizes are to be added
        out: list[Any] = []
        listed = []
        link_names = self._svc.link_names_by_child()
        for c in items:
            if not all_ and limit <= 0 and not c.state.running and c.state.status != "restarting":
                continue
            if before is not None and c.created_nano >= before:
                continue
            if since is not None and c.created_nano <= since:
                continue
            try:
                if not _match(c, filters):
                    continue
                # Link names (/parent/alias) are names of the linked container too (dockerd).
                names = sorted([c.name, *link_names.get(c.id, ())])
                if size:
                    item: Any = list_json(c, now)
                    item["Names"] = names
                else:
                    item = self._entries.encoded(c, names, now)
            except Exception:  # noqa: BLE001 - one bad record must not fail every listing
                log.failure("container {cid} cannot be rendered", cid=c.id)
                item = _unreadable_item(c)
            out.append(item)
            listed.append(c)
            if limit > 0 and len(out) >= limit:
                break
        if size:
            for item, (rw, rootfs) in zip(out, await self._svc.sizes_of(listed), strict=True):
                item["SizeRw"], item["SizeRootFs"] = rw, rootfs
        if all_ and not filters and limit <= 0 and before is None and since is None:
            self._entries.keep_only({c.id for c in items})
        else:
            self._entries.bound(len(out))
        return json_bytes(
            request,
            b"[" + b",".join(e if isinstance(e, bytes) else encode_json(e) for e in out) + b"]",
        )

    @app.route("/containers/<path:ref>/json", methods=["GET"])
    @role("viewer")
    @lean
    async def inspect(self, request: IRequest, ref: str) -> bytes:
        """C{GET /containers/{id}/json}."""
        c = self._svc.resolve(ref)
        out = render_one("container", c.id, c, inspect_json, _unreadable_inspect)
        if self._svc.exec_ids is not None:
            out["ExecIDs"] = self._svc.exec_ids(c.id) or None
        if self._svc.settings.default_ulimits:
            # as dockerd's inspect: the daemon's default-ulimits merged in
            out["HostConfig"]["Ulimits"] = [
                {"Name": n, "Hard": h, "Soft": s} for n, s, h in self._svc.ulimits_of(c)
            ]
        # Rebuilt from the registered links (moby inspect.go): /child:/parent/alias, current names.
        out["HostConfig"]["Links"] = self._svc.links_shown(c)
        if not c.host_config.get("CgroupnsMode"):
            # the mode the container runs with (the engine's default, as dockerd stores it)
            out["HostConfig"]["CgroupnsMode"] = (
                "private" if self._svc.settings.cgroup_v2 else "host"
            )
        await redact_inspect(request, c, out)
        paths = await self._svc.graph_paths(c)
        if paths:
            out["GraphDriver"]["Data"] = paths
        if qbool(request, "size"):
            out["SizeRw"], out["SizeRootFs"] = await self._svc.sizes(c)
        return json_body(request, out)

    # --- lifecycle ------------------------------------------------------------------------------

    @app.route("/containers/<string:ref>/start", methods=["POST"])
    @role("operator")
    async def start(self, request: IRequest, ref: str) -> bytes:
        """C{POST /containers/{id}/start}."""
        await self._svc.start(ref)
        return no_content(request)

    @app.route("/containers/<string:ref>/stop", methods=["POST"])
    @role("operator")
    async def stop(self, request: IRequest, ref: str) -> bytes:
        """C{POST /containers/{id}/stop?t=&signal=}."""
        await self._svc.stop(ref, qint(request, "t"), qstr(request, "signal") or None)
        return no_content(request)

    @app.route("/containers/<string:ref>/restart", methods=["POST"])
    @role("operator")
    async def restart(self, request: IRequest, ref: str) -> bytes:
        """C{POST /containers/{id}/restart?t=&signal=}."""
        await self._svc.restart(ref, qint(request, "t"), qstr(request, "signal") or None)
        return no_content(request)

    @app.route("/containers/<string:ref>/kill", methods=["POST"])
    @role("operator")
    async def kill(self, request: IRequest, ref: str) -> bytes:
        """C{POST /containers/{id}/kill?signal=}."""
        await self._svc.kill(ref, qstr(request, "signal") or None)
        return no_content(request)

    @app.route("/containers/<string:ref>/pause", methods=["POST"])
    @role("operator")
    async def pause(self, request: IRequest, ref: str) -> bytes:
        """C{POST /containers/{id}/pause}."""
        await self._svc.pause(ref)
        return no_content(request)

    @app.route("/containers/<string:ref>/unpause", methods=["POST"])
    @role("operator")
    async def unpause(self, request: IRequest, ref: str) -> bytes:
        """C{POST /containers/{id}/unpause}."""
        await self._svc.unpause(ref)
        return no_content(request)

    @app.route("/containers/<string:ref>/rename", methods=["POST"])
    @role("operator")
    async def rename(self, request: IRequest, ref: str) -> bytes:
        """C{POST /containers/{id}/rename?name=}."""
        await self._svc.rename(ref, qstr(request, "name") or "")
        return no_content(request)

    @app.route("/containers/<string:ref>/update", methods=["POST"])
    @role("operator")
    async def update(self, request: IRequest, ref: str) -> bytes:
        """C{POST /containers/{id}/update}."""
        body = read_json_object(request, required=False)
        warnings = await self._svc.update(ref, body)
        # dockerd 28 answers null when there is nothing to warn about (a nil Go slice).
        return json_body(request, {"Warnings": warnings or None})

    @app.route("/containers/<path:ref>", methods=["DELETE"])
    @role("operator")
    async def remove(self, request: IRequest, ref: str) -> bytes:
        """C{DELETE /containers/{id}?force=&v=&link=}."""
        if qbool(request, "link"):
            await self._svc.remove_link(ref)
            return no_content(request)
        await self._svc.remove(ref, force=qbool(request, "force"), volumes=qbool(request, "v"))
        return no_content(request)

    @app.route("/containers/prune", methods=["POST"])
    @role("operator")
    async def prune(self, request: IRequest) -> bytes:
        """C{POST /containers/prune?filters=}."""
        filters = parse_filters(request)
        check_filters(filters, {"until", "label", "label!"})
        until = None
        if filters.get("until"):
            until = _until(filters["until"][0], self._now())
        labels = list(filters.get("label", [])) + [
            x.replace("=", "!=", 1) if "=" in x else x + "!=" for x in filters.get("label!", [])
        ]
        result = await self._svc.prune(until, labels)
        return json_body(
            request,
            {
                "ContainersDeleted": list(result.deleted) or None,
                "SpaceReclaimed": result.space_reclaimed,
            },
        )

    # --- wait -----------------------------------------------------------------------------------

    @app.route("/containers/<string:ref>/wait", methods=["POST"])
    @role("operator")
    async def wait(self, request: Any, ref: str) -> bytes:
        """C{POST /containers/{id}/wait?condition=}: headers at once, the body at the exit."""
        condition = qstr(request, "condition") or "not-running"
        d = self._svc.wait(ref, condition)
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", b"application/json")
        request.write(b"")

        def on_finish(_: object) -> None:
            if not d.called:
                d.cancel()

        request.notifyFinish().addBoth(on_finish)
        try:
            r = await d
        except CancelledError:
            return b""
        err = {"Message": r.error} if r.error else None
        return json.dumps({"Error": err, "StatusCode": r.status_code}).encode() + b"\n"

    # --- logs -----------------------------------------------------------------------------------

    @app.route("/containers/<string:ref>/logs", methods=["GET"])
    @role("viewer")
    async def logs(self, request: Any, ref: str) -> Any:
        """C{GET /containers/{id}/logs}: k8s-file log as stdcopy frames (raw with a TTY)."""
        stdout = qbool(request, "stdout")
        stderr = qbool(request, "stderr")
        if not stdout and not stderr:
            raise InvalidParameter("Bad parameters: you must choose at least one stream")
        since = qstr(request, "since") or ""
        until = qstr(request, "until") or ""
        tail_s = (qstr(request, "tail") or "all").strip()
        tail: int | None = None
        if tail_s and tail_s != "all":
            try:
                tail = int(tail_s)
            except ValueError:
                tail = None
            if tail is not None and tail < 0:
                tail = None
        req = LogsRequest(
            follow=qbool(request, "follow"),
            stdout=stdout,
            stderr=stderr,
            since_nano=parse_time_nano(since) if since and since != "0" else 0,
            until_nano=parse_time_nano(until) if until and until != "0" else None,
            tail=tail,
        )
        c, log_tail = await self._svc.open_logs(ref, req)
        try:
            return await self._write_logs(request, c, req, log_tail)
        finally:
            log_tail.close()

    async def _write_logs(
        self,
        request: Any,
        c: Container,
        req: LogsRequest,
        tail: LogTail,
    ) -> bytes:
        timestamps = qbool(request, "timestamps")
        tty = bool(c.config.get("Tty"))
        request.setResponseCode(200)
        if tty or api_version(request) < (1, 42):
            request.setHeader(b"Content-Type", b"application/vnd.docker.raw-stream")
        else:
            request.setHeader(b"Content-Type", b"application/vnd.docker.multiplexed-stream")
        request.write(b"")
        # Back-pressure: the log is read in bounded batches, each only once the client took
        # the one before, so a client that stops reading costs one batch, not the log.
        flow = Flow(request)

        def write(batch: list[LogEntry]) -> None:
            # One HTTP chunk per ~64 KiB, not one per log line.
            if flow.stopped or not batch:
                return
            parts: list[bytes] = []
            add = parts.append
            size = 0
            for e in batch:
                data = e.data
                if timestamps:
                    data = rfc3339_nano(e.time_nano).encode() + b" " + data
                if not tty:
                    # header and payload side by side: the join copies each byte once
                    add(frame_header(STDOUT if e.stream == "stdout" else STDERR, len(data)))
                    size += 8
                add(data)
                size += len(data)
                if size >= 65536:
                    request.write(b"".join(parts))
                    parts.clear()
                    size = 0
            if parts:
                request.write(b"".join(parts))

        try:
            while True:
                await flow.ready()
                if flow.stopped:
                    return b""
                batch, more = await self._svc.next_logs(tail, req)
                write(batch)
                if not more:
                    break
            if req.follow:
                await self._svc.follow_logs(
                    c, req, tail, write, lambda: flow.stopped, ready=flow.ready
                )
        finally:
            flow.release()
        return b""


def _unreadable_inspect(c: Container) -> dict[str, Any]:
    """C{inspect} of a record that cannot be rendered: its id, name, image and state, so that
    clients see it and can remove it (C{docker rm -f})."""
    return {
        "Id": c.id,
        "Created": rfc3339_nano(c.created_nano),
        "Name": c.name if c.name.startswith("/") else "/" + c.name,
        "Image": c.image_id,
        "State": {"Status": c.state.status, "Running": c.state.running, "Error": UNREADABLE},
        "Config": {},
        "HostConfig": {},
        "NetworkSettings": {"Networks": {}},
        "Mounts": [],
    }


def _unreadable_item(c: Container) -> dict[str, Any]:
    """A listing row for a record that cannot be rendered: its id, name and state, so that
    the listing works and the container can be removed."""
    return {
        "Id": c.id,
        "Names": [c.name if c.name.startswith("/") else "/" + c.name],
        "Image": "",
        "ImageID": c.image_id,
        "Command": "",
        "Created": c.created_nano // 1_000_000_000,
        "Ports": [],
        "Labels": {},
        "State": c.state.status,
        "Status": UNREADABLE,
        "HostConfig": {"NetworkMode": ""},
        "NetworkSettings": {"Networks": {}},
        "Mounts": [],
    }


def _until(value: str, now_nano: int) -> int:
    v = value.strip()
    units = {"s": 1, "m": 60, "h": 3600}
    if v and v[-1] in units and v[:-1].replace(".", "", 1).isdigit():
        return now_nano - int(float(v[:-1]) * units[v[-1]] * 1e9)
    return parse_time_nano(v)


def _match(c: Container, f: dict[str, list[str]]) -> bool:
    if f.get("id") and not any(c.id.startswith(x) for x in f["id"]):
        return False
    if f.get("name"):
        import re

        name = c.name.lstrip("/")
        ok = False
        for pat in f["name"]:
            try:
                if re.search(pat.lstrip("/"), name) or re.search(pat, c.name):
                    ok = True
            except re.error:
                ok = pat.lstrip("/") in name
        if not ok:
            return False
    if f.get("label") and not labels_match(c.config.get("Labels") or {}, f["label"]):
        return False
    if f.get("status") and c.state.status not in f["status"]:
        return False
    if f.get("exited"):
        # dockerd: not running (restarting counts as running) and started at least once
        if c.state.running or c.state.status == "restarting" or not c.state.has_been_started:
            return False
        if c.state.exit_code not in {int(x) for x in f["exited"]}:
            return False
    if f.get("ancestor"):
        ok = False
        for a in f["ancestor"]:
            ref = a if ":" in a or a.startswith("sha256:") else a + ":latest"
            img = c.config.get("Image") or ""
            img_n = img if ":" in img else img + ":latest"
            if (
                a == img
                or ref == img_n
                or c.image_id == a
                or c.image_id == "sha256:" + a
                or (
                    len(a) >= 4
                    and c.image_id.removeprefix("sha256:").startswith(a.removeprefix("sha256:"))
                )
            ):
                ok = True
        if not ok:
            return False
    if f.get("volume"):
        ok = False
        for v in f["volume"]:
            for m in c.mounts:
                if v in (m.name, m.source, m.destination):
                    ok = True
        if not ok:
            return False
    if f.get("network"):
        names = {e.network_name for e in engine.endpoints_of(c)} | {
            e.network_id for e in engine.endpoints_of(c)
        }
        names.add(c.host_config.get("NetworkMode") or "bridge")
        if not any(
            n in names or any(x.startswith(n) for x in names if len(n) >= 12) for n in f["network"]
        ):
            return False
    if f.get("health"):
        h = c.state.health_status or "none"
        if h not in f["health"]:
            return False
    return True
