"""Authorization: may this caller make this call (layer: api).

The root calls L{Authorizer} (its C{guard} hook) before dispatching. Who is calling is decided
once per connection (L{pyd.api.identity}: client certificate, Unix peer credentials, or admin
for plain TCP).

What each role may do (docs/security.md has the table, one row per endpoint or option; each
route declares its least role where it is defined, L{pyd.api.base.role}, and the rules below
decide on the route the root matched, C{request.pyd_route}):

  - C{viewer}: GET/HEAD of inspect, list, logs, events, stats, top, changes, version, info, df
    (C{/_ping} is always open). Nothing that returns file contents (export, archive, image save).
  - C{operator}: everything except what gives root on the host. The rules look at the request
    and at the objects it names: a container an operator joins (C{container:X} namespaces), takes
    volumes from, execs into, attaches stdin to or copies from or into must itself be one the operator
    could have created; a named volume must not be a host path in disguise
    (L{pyd.api.operator_rules}, an allow-list over the parsed request).
  - C{admin}: everything.

A refusal is a 403 C{{"message": ...}} naming the role and the rule. Every call over TLS is logged
with the certificate's subject.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from pyd.api.base import ROLES, Route
from pyd.api.exec import exec_config
from pyd.api.identity import RANK, Identity, Policy, identify
from pyd.api.operator_rules import (
    OPERATOR_HOST_CONFIG,
    Ctx,
    Lookup,
    NoLookup,
    beyond,
    candidates,
    check_devices,
    check_existing,
    check_network,
    check_spec,
    check_unlisted,
    check_volume_create,
    container_refusal,
    deny,
)
from pyd.api.websocket import ws_streams
from pyd.api.wire import create_spec_of, qbool, read_json_object
from pyd.core.errors import Forbidden, PydError
from pyd.core.records import Container
from pyd.drivers.volumes.stage import confine
from pyd.engine.spec import CreateSpec, parse_create, stored_spec
from pyd.engine.spec.parse import devices_of, parse_update

__all__ = [
    "OPERATOR_HOST_CONFIG", "ROLES", "Authorizer", "Identity", "Lookup", "NoLookup", "Policy",
    "RoleVisibility", "ServiceLookup", "candidates", "check", "identify",
]  # fmt: skip

log = Logger()


class ServiceLookup:
    """L{Lookup} over the container, volume and exec services."""

    def __init__(self, containers: Any, volumes: Any, execs: Any, networks: Any = None) -> None:
        self._containers = containers
        self._volumes = volumes
        self._execs = execs
        self._networks = networks

    def containers(self, ref: str) -> list[Container]:
        """What C{ContainerService.resolve} matches on: full id, name, id prefix (all of them)."""
        if self._containers is None or not ref:
            return []
        return candidates(self._containers.list_all(), ref)

    def parse_create(self, body: Any, api_version: tuple[int, int]) -> CreateSpec:
        """C{ContainerService.parse_create} (the handler's parser)."""
        if self._containers is None:
            return parse_create(body, api_version)
        spec: CreateSpec = self._containers.parse_create(body, api_version)
        return spec

    async def volume_options(self, name: str) -> Mapping[str, str] | None:
        """C{VolumeService.inspect}'s options."""
        if self._volumes is None:
            return None
        try:
            vol = await self._volumes.inspect(name)
        except PydError:
            return None
        opts: Mapping[str, str] | None = vol.options
        return opts

    def exec_session(self, exec_id: str) -> tuple[str, bool] | None:
        """C{ExecService.get}."""
        if self._execs is None:
            return None
        try:
            s = self._execs.get(exec_id)
        except PydError:
            return None
        return s.container_id, bool(s.config.privileged)

    def network_driver(self, ref: str) -> str | None:
        """C{NetworkService.resolve}'s driver."""
        if self._networks is None:
            return None
        try:
            driver: str = self._networks.resolve(ref).driver
        except PydError:
            return None
        return driver

    async def bind_root(self, path: str, roots: Sequence[str]) -> tuple[str, str] | None:
        """C{VolumeService.bind_root} (resolved on the volume driver's pool)."""
        if self._volumes is None:
            return confine(path, roots)
        found: tuple[str, str] | None = await self._volumes.bind_root(path, roots)
        return found

    def volume_users(self, name: str) -> list[Container]:
        """Containers whose resolved mounts include volume C{name}."""
        if self._containers is None:
            return []
        return [
            c
            for c in self._containers.list_all()
            if any(m.type == "volume" and m.name == name for m in c.mounts)
        ]


# --- the guard --------------------------------------------------------------------------------


class Authorizer:
    """The L{pyd.api.root.ApiRoot} guard: identify the caller, then check the call."""

    def __init__(self, policy: Policy, lookup: Lookup | None = None) -> None:
        self.policy = policy
        self.lookup: Lookup = lookup or NoLookup()

    def __call__(self, request: Any, method: str, path: str) -> Deferred[None] | None:
        """Refuse the call with L{Forbidden} when the caller's role does not allow it.

        @return: None when decided at once; for operators a Deferred (it may have to look up
            containers and volumes), which fails with L{Forbidden} to refuse.
        """
        channel = request.channel
        ident: Identity | None = getattr(channel, "pyd_identity", None)
        if ident is None or getattr(channel, "pyd_policy", None) is not self.policy:
            ident = identify(request.transport, self.policy)
            channel.pyd_identity = ident
            channel.pyd_policy = self.policy
        request.pyd_identity = ident
        if ident.transport == "tls":
            log.info(
                "remote call by {subject} ({role}): {method} {path}",
                subject=ident.subject,
                role=ident.role,
                method=method,
                path=path,
            )
        if ident.role == "admin":
            request.pyd_visibility = None
            return None
        request.pyd_visibility = RoleVisibility(ident.role, self.policy, self.lookup)
        # What a non-admin binds was admitted under these roots: the engine confines each bind
        # beneath its root for good (never followed by name again; L{pyd.api.wire.confined}).
        request.pyd_bind_roots = tuple(self.policy.allowed_bind_paths)

        def refused(f: Any) -> Any:
            if f.check(Forbidden):
                log.warn(
                    "refused {method} {path} for {subject} ({role}): {why}",
                    method=method,
                    path=path,
                    subject=ident.subject,
                    role=ident.role,
                    why=f.value.message,
                )
            return f

        d = Deferred.fromCoroutine(
            check(ident.role, method, path, request, self.policy, self.lookup)
        )
        d.addErrback(refused)
        return d


class RoleVisibility:
    """L{pyd.api.visibility.Visibility} for a viewer or operator: an admin-tier container (one
    the operator rules would refuse to create) hides its environment and exec instances."""

    def __init__(self, role: str, policy: Policy, lookup: Lookup) -> None:
        self._ctx = Ctx(role, policy, lookup)
        self._known: dict[str, bool] = {}

    async def hides(self, c: Container) -> bool:
        """Whether C{c} is admin-tier (decided once per container and request)."""
        if c.id not in self._known:
            self._known[c.id] = await container_refusal(self._ctx, c, 1) is not None
        return self._known[c.id]

    async def hides_id(self, container_id: str) -> bool:
        """L{hides} by id; a container that is gone is hidden (nothing left to judge by)."""
        found = [c for c in self._ctx.lookup.containers(container_id) if c.id == container_id]
        return True if not found else await self.hides(found[0])


async def check(
    role: str, method: str, path: str, request: Any, policy: Policy, lookup: Lookup | None = None
) -> None:
    """Check one call for a non-admin role. @raise Forbidden: naming the role and the rule.

    The decision is on the route the root matched (C{request.pyd_route}, the one it will
    dispatch to): the least role the route declares where it is defined
    (L{pyd.api.base.role}), then the operator's rules on that route's arguments and body.
    """
    route: Route | None = getattr(request, "pyd_route", _NO_ROUTE)
    if route is _NO_ROUTE:
        raise deny(role, f"{method} {path} (a call the root did not route)")
    if route is None:
        return  # no handler runs: the router answers 404, 405 or a redirect
    if RANK.get(role, -1) < RANK[route.least_role]:
        if role == "viewer":
            raise deny(role, f"{method} {path} (viewers may only inspect, list, and read logs)")
        if role == "operator":
            raise deny(role, f"{method} {path} (admin only)")
        raise deny(role, "do anything (unknown role)")
    if role != "operator":
        return
    ctx = Ctx(role, policy, lookup or NoLookup())
    first, ref, action = route.parts()
    if first == "containers" and ref:
        await _check_container_call(ctx, method, ref, action, request)
    elif first == "exec" and method == "POST" and action == "start":
        await _check_exec_start(ctx, ref)
    elif method != "POST":
        return
    elif (first, action) == ("containers", "create"):
        # The typed spec the handler creates from (parsed once, kept on the request): Go's
        # case-insensitive keys and duplicate-key merging mean the same here as in the engine.
        spec = create_spec_of(request, ctx.lookup.parse_create)
        await check_spec(ctx, spec, 0)
        for net in spec.network.endpoints:
            check_network(ctx, str(net))
    elif first == "networks" and action == "connect":
        check_network(ctx, ref)
    elif (first, action) == ("volumes", "create"):
        await check_volume_create(ctx, _body(request).get("DriverOpts"))
    elif (first, action) == ("build", ""):
        await _check_build(ctx, request)


_NO_ROUTE: Any = object()


async def _check_container_call(ctx: Ctx, method: str, ref: str, action: str, request: Any) -> None:
    if method == "POST" and action == "start":
        body = _body(request)
        if body:  # a HostConfig on start (API < 1.24 clients): typed as a stored one would be
            check_unlisted(ctx, body)
            await check_spec(ctx, stored_spec(None, body), 0)
    elif method == "POST" and action == "update":
        # Read as the engine reads it (Go's types and field names).
        check_devices(ctx, devices_of(parse_update(_body(request))))
    elif method == "POST" and action == "exec":
        if exec_config(_body(request)).privileged:
            raise ctx.deny("run a privileged exec")
        await check_existing(ctx, ref, "exec into")
    elif (action == "attach" and qbool(request, "stdin")) or (
        action == "attach/ws" and ws_streams(request)[0]
    ):
        await check_existing(ctx, ref, "attach stdin to")
    elif method == "PUT" and action == "archive":
        await check_existing(ctx, ref, "copy files into")
    elif method in ("GET", "HEAD") and action == "archive":
        # cp reads through the container's mounts (as dockerd's does): an admin-tier
        # container's binds and bind-backed volumes are host files.
        await check_existing(ctx, ref, "copy files out of")
    elif method == "POST" and action == "rename":
        # Names are what container:X and --volumes-from resolve; an operator who could rename
        # an admin's container into the name of their own could swap it in after the check.
        await check_existing(ctx, ref, "rename")


async def _check_exec_start(ctx: Ctx, exec_id: str) -> None:
    facts = ctx.lookup.exec_session(exec_id)
    if facts is None:
        return
    cid, privileged = facts
    if privileged:
        raise ctx.deny("start a privileged exec")
    await check_existing(ctx, cid, "exec into")


# --- build ----------------------------------------------------------------------------------------


async def _check_build(ctx: Ctx, request: Any) -> None:
    """The RUN steps' containers get exactly what an operator's own container may get."""
    from pyd.api.build import options_from_request
    from pyd.engine.builder.builder import step_host_config

    try:
        opts = options_from_request(request)
    except PydError:
        return  # the build endpoint answers the same 400 itself
    if opts.network_mode == "host":
        raise ctx.deny("build with the host's network namespace (NetworkMode=host)")
    # What the Dockerfile asks for is known only once the build runs: the builder refuses these
    # RUN options with the same rule's words (L{pyd.engine.builder.builder.BuildOptions.refused}).
    request.pyd_build_refused = {
        "network.host": ctx.deny(
            "build with RUN --network=host (the host's network namespace)"
        ).message,
        "security.insecure": ctx.deny(
            "build with RUN --security=insecure (a privileged step)"
        ).message,
    }
    try:
        await check_spec(ctx, stored_spec(None, step_host_config(opts)), 0)
    except Forbidden as e:
        raise ctx.deny(f"build with these options (RUN step containers: {beyond(e)})") from None


# --- helpers --------------------------------------------------------------------------------------


def _body(request: Any) -> dict[str, Any]:
    """The request body as the handler reads it (L{pyd.api.wire.read_json_object}): one parser,
    so duplicate keys, encodings and trailing data mean the same to the rules and the engine.

    @raise InvalidParameter: the handler's own 400 (not JSON, too large, wrong content type).
    """
    return read_json_object(request, required=False)
