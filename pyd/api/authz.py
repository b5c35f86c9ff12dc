"""Roles for API callers: who is calling, and may they make this call (layer: api).

The root calls L{Authorizer} (its C{guard} hook) before dispatching. Who is calling comes from the
connection, once per connection:

  - a mutual-TLS peer: its client certificate. The role is, in order: a C{tls-roles} entry naming
    the subject (full RFC 4514 subject, C{CN=name}, or the bare CN), the role the certificate carries
    (see L{pyd.core.certs}), else C{tls-default-role} (admin unless set, so certificates made with
    openssl as Docker's documentation shows keep working);
  - a Unix-socket peer: its uid, gid and supplementary groups (C{SO_PEERCRED} + C{SO_PEERGROUPS},
    falling back to C{/proc/<pid>/status} and then the user database). uid 0 is always admin; a
    C{unix-roles} entry C{uid:N} wins, else the most powerful role among the C{gid:N} entries of
    all the peer's groups; anyone else who could open the socket is admin, as with dockerd's
    C{docker} group;
  - plain TCP (only with the loudly named opt-in): admin, as the flag says.

What each role may do (docs/security.md has the table, one row per endpoint or option; each
route declares its least role where it is defined, L{pyd.api.base.role}, and the rules below
decide on the route the root matched, C{request.pyd_route}):

  - C{viewer}: GET/HEAD of inspect, list, logs, events, stats, top, changes, version, info, df
    (C{/_ping} is always open). Nothing that returns file contents (export, archive, image save).
  - C{operator}: everything except what gives root on the host. The rules look at the request
    and at the objects it names: a container an operator joins (C{container:X} namespaces), takes
    volumes from, execs into, attaches stdin to or copies into must itself be one the operator
    could have created; a named volume must not be a host path in disguise.
  - C{admin}: everything.

A refusal is a 403 C{{"message": ...}} naming the role and the rule. Every call over TLS is logged
with the certificate's subject.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from pyd.api.base import Route
from pyd.api.exec import exec_config
from pyd.api.wire import create_spec_of, qbool, read_json_object
from pyd.core import certs
from pyd.core.errors import Forbidden, PydError
from pyd.core.records import Container
from pyd.drivers.runtime.spec import DEFAULT_CAPS, MASKED_PATHS, READONLY_PATHS
from pyd.engine.container_config import sysctl_name
from pyd.engine.networks import host_port_range
from pyd.engine.spec import CreateSpec, mount_of, parse_create
from pyd.engine.spec.parse import parse_update
from pyd.engine.volumes import parse_bind, parse_mount

log = Logger()

ROLES = certs.ROLES
_RANK = {"viewer": 0, "operator": 1, "admin": 2}
_MAX_DEPTH = 8  # container:X chains followed before giving up (refused)

_JOINABLE_NS = ("NetworkMode", "PidMode", "IpcMode")
# Capabilities an operator may add: Docker's defaults (re-adding after a drop) plus those that
# act only inside the container's own namespaces or only on resources (denial of service is out
# of scope). Everything else, and names pyd does not know, are admin-only.
_OPERATOR_CAPS = frozenset(
    [c.removeprefix("CAP_") for c in DEFAULT_CAPS]
    + ["NET_ADMIN", "NET_BROADCAST", "IPC_LOCK", "SYS_NICE", "SYS_RESOURCE"]
)
# Sysctls of the container's own namespaces (runc's validator): IPC, mqueue, net (own netns),
# UTS names.
_NS_SYSCTLS = frozenset(
    (
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
        "kernel.domainname",
        "kernel.hostname",
    )
)
_NS_SYSCTL_PREFIXES = ("fs.mqueue.", "net.")
# Options of the local volume driver's C{o=} an operator may use.
_TMPFS_OPTS = frozenset(
    [
        "size",
        "mode",
        "uid",
        "gid",
        "nr_inodes",
        "nr_blocks",
        "huge",
        "mpol",
        "ro",
        "rw",
        "noexec",
        "exec",
        "nosuid",
        "suid",
        "nodev",
        "dev",
        "noatime",
        "relatime",
    ]
)
_BIND_OPTS = frozenset(
    [
        "bind",
        "rbind",
        "ro",
        "rw",
        "noexec",
        "exec",
        "nosuid",
        "suid",
        "nodev",
        "dev",
        "private",
        "rprivate",
        "slave",
        "rslave",
        "noatime",
        "relatime",
    ]
)
_SHARED = ("shared", "rshared")
# Local-volume types whose device names a server, not a host path (C{//server/share}).
_NETWORK_FS = frozenset(("tmpfs", "nfs", "nfs4", "cifs", "smb3"))


@attrs.frozen
class Identity:
    """Who is calling over one connection."""

    role: str
    subject: str  # certificate subject, "uid=N gid=N groups=...", or "tcp"
    transport: str  # "tls", "unix" or "tcp"


@attrs.frozen
class Policy:
    """The role settings from the daemon config (replaced whole on reload)."""

    default_role: str = "admin"
    tls_roles: Mapping[str, str] = attrs.field(factory=dict)
    unix_roles: Mapping[str, str] = attrs.field(factory=dict)
    allowed_bind_paths: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Any) -> Policy:
        """Read C{tls-default-role}, C{tls-roles}, C{unix-roles}, C{allowed-bind-paths}."""
        return cls(
            default_role=config.tls_default_role,
            tls_roles=dict(config.tls_roles),
            unix_roles=unix_group_keys(dict(config.unix_roles)),
            allowed_bind_paths=tuple(
                os.path.normpath(p) for p in config.allowed_bind_paths if p.startswith("/")
            ),
        )

    def role_for_cert(self, cert: Any) -> tuple[str, str]:
        """(role, subject) for a C{cryptography} certificate."""
        subject = certs.subject_of(cert)
        cn = certs.common_name(cert)
        for key in (subject, f"CN={cn}", cn):
            if key and key in self.tls_roles:
                return self.tls_roles[key], subject
        return certs.role_of(cert) or self.default_role, subject

    def role_for_peer(self, uid: int, gid: int, groups: Iterable[int] = ()) -> str:
        """The role of a Unix-socket peer with primary C{gid} and supplementary C{groups}.

        uid 0 is admin; a C{uid:N} entry wins; else the most powerful role among the C{gid:N}
        entries of all the peer's groups (a group entry says what its members may do, so
        membership of a more powerful group is not taken away by a less powerful one); else admin.
        """
        if uid == 0:
            return "admin"
        if f"uid:{uid}" in self.unix_roles:
            return self.unix_roles[f"uid:{uid}"]
        found = [
            self.unix_roles[f"gid:{g}"]
            for g in dict.fromkeys([gid, *groups])
            if f"gid:{g}" in self.unix_roles
        ]
        if found:
            return max(found, key=lambda r: _RANK.get(r, -1))
        return "admin"


@attrs.frozen
class PeerCred:
    """A Unix-socket peer's credentials at connect time."""

    pid: int
    uid: int
    gid: int
    groups: tuple[int, ...] = ()


# Linux's SO_PEERGROUPS (4.13+): the peer's supplementary groups, captured at connect() like
# SO_PEERCRED, so no race with the peer exiting or its pid being reused.
_SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)


def _peer_groups_sockopt(sock: Any) -> tuple[int, ...] | None:
    size = 64 * 4
    while size <= 65536 * 4:
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERGROUPS, size)
        except OSError as e:
            if e.errno == errno.ERANGE:
                size *= 8
                continue
            return None
        n = len(raw) // 4
        return tuple(struct.unpack(f"{n}I", raw[: n * 4]))
    return None


def groups_from_status(text: str, uid: int) -> tuple[int, ...] | None:
    """The C{Groups:} of a C{/proc/<pid>/status} text, if its real uid is C{uid} (else None:
    the pid is no longer the peer's)."""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        if int(fields.get("Uid", "").split()[0]) != uid:
            return None
        return tuple(int(g) for g in fields.get("Groups", "").split())
    except (ValueError, IndexError):
        return None


def _groups_from_proc(pid: int, uid: int) -> tuple[int, ...] | None:
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            return groups_from_status(f.read(), uid)
    except OSError:
        return None


def _groups_from_userdb(uid: int, gid: int) -> tuple[int, ...]:
    try:
        name = pwd.getpwuid(uid).pw_name
        return tuple(os.getgrouplist(name, gid))
    except (KeyError, OSError):
        return ()


def peer_groups(sock: Any, pid: int, uid: int, gid: int) -> tuple[int, ...]:
    """The peer's supplementary groups: C{SO_PEERGROUPS}, else C{/proc/<pid>/status}, else the
    user database (C{getgrouplist} of the uid's name)."""
    for groups in (_peer_groups_sockopt(sock), _groups_from_proc(pid, uid)):
        if groups is not None:
            return groups
    return _groups_from_userdb(uid, gid)


def _peer_cred(transport: Any) -> PeerCred | None:
    sock = getattr(transport, "socket", None)
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid, uid, gid = struct.unpack("3i", raw)
    return PeerCred(pid, uid, gid, peer_groups(sock, pid, uid, gid) if uid != 0 else ())


def identify(transport: Any, policy: Policy) -> Identity:
    """Work out who is at the other end of C{transport} (an HTTP channel's transport)."""
    get_cert = getattr(transport, "getPeerCertificate", None)
    if get_cert is not None:
        peer = get_cert()
        if peer is None:
            # Server-auth-only TLS (--tls without --tlsverify): like dockerd, the caller is trusted.
            return Identity(policy.default_role, "(no client certificate)", "tls")
        role, subject = policy.role_for_cert(peer.to_cryptography())
        return Identity(role, subject, "tls")
    cred = _peer_cred(transport)
    if cred is not None:
        role = policy.role_for_peer(cred.uid, cred.gid, cred.groups)
        subject = f"uid={cred.uid} gid={cred.gid}"
        if cred.groups:
            subject += " groups=" + ",".join(map(str, cred.groups))
        return Identity(role, subject, "unix")
    return Identity("admin", "tcp", "tcp")


def unix_group_keys(names: Mapping[str, str]) -> dict[str, str]:
    """C{unix-roles} with C{user:NAME}/C{group:NAME} keys turned into C{uid:N}/C{gid:N}
    (unknown names are dropped with a warning)."""
    out: dict[str, str] = {}
    for key, role in names.items():
        kind, _, value = key.partition(":")
        try:
            if kind == "user" and not value.isdigit():
                out[f"uid:{pwd.getpwnam(value).pw_uid}"] = role
            elif kind == "group" and not value.isdigit():
                out[f"gid:{grp.getgrnam(value).gr_gid}"] = role
            elif kind in ("user", "group"):
                out[f"{'uid' if kind == 'user' else 'gid'}:{value}"] = role
            else:
                out[key] = role
        except KeyError:
            log.warn("unix-roles: no such {kind} {name}; entry ignored", kind=kind, name=value)
    return out


# --- what the rules need to know about existing objects --------------------------------------


class Lookup(Protocol):
    """Existing objects the operator rules look at (the engine services, through an adapter)."""

    def containers(self, ref: str) -> list[Container]:
        """Every container C{ref} names or may come to name while the call runs: the one with
        that id, the one of that name, and each whose id starts with C{ref} (removing one of
        them changes what C{ref} resolves to, so a rule must hold for all of them)."""
        ...

    def parse_create(self, body: Any, api_version: tuple[int, int]) -> CreateSpec:
        """The engine's door for a create body (C{ContainerService.parse_create}): the rules
        read the typed spec the engine will create from, parsed once per request."""
        ...

    async def volume_options(self, name: str) -> Mapping[str, str] | None:
        """The driver options of volume C{name}; None when it has none or does not exist."""
        ...

    def exec_session(self, exec_id: str) -> tuple[str, bool] | None:
        """(container id, privileged) of exec instance C{exec_id}, or None."""
        ...

    def network_driver(self, ref: str) -> str | None:
        """The driver of network C{ref} (name, id or id prefix), or None."""
        ...

    def volume_users(self, name: str) -> list[Container]:
        """The containers that mount volume C{name}."""
        ...


def candidates(containers: Iterable[Container], ref: str) -> list[Container]:
    """The containers C{ref} may name (see L{Lookup.containers}), as
    C{ContainerService.resolve} matches: exact id, name with or without C{/}, hex id prefix."""
    name = ref if ref.startswith("/") else "/" + ref
    hexref = bool(ref) and all(ch in "0123456789abcdef" for ch in ref)
    return [
        c for c in containers if c.id == ref or c.name == name or (hexref and c.id.startswith(ref))
    ]


class NoLookup:
    """A L{Lookup} that knows no objects (unit tests, a daemon without containers)."""

    def containers(self, ref: str) -> list[Container]:
        """Nothing."""
        return []

    def parse_create(self, body: Any, api_version: tuple[int, int]) -> CreateSpec:
        """L{pyd.engine.spec.parse_create}."""
        return parse_create(body, api_version)

    async def volume_options(self, name: str) -> Mapping[str, str] | None:
        """Nothing."""
        return None

    def exec_session(self, exec_id: str) -> tuple[str, bool] | None:
        """Nothing."""
        return None

    def network_driver(self, ref: str) -> str | None:
        """Nothing."""
        return None

    def volume_users(self, name: str) -> list[Container]:
        """Nothing."""
        return []


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
        self._ctx = _Ctx(role, policy, lookup)
        self._known: dict[str, bool] = {}

    async def hides(self, c: Container) -> bool:
        """Whether C{c} is admin-tier (decided once per container and request)."""
        if c.id not in self._known:
            self._known[c.id] = await _container_refusal(self._ctx, c, 1) is not None
        return self._known[c.id]

    async def hides_id(self, container_id: str) -> bool:
        """L{hides} by id; a container that is gone is hidden (nothing left to judge by)."""
        found = [c for c in self._ctx.lookup.containers(container_id) if c.id == container_id]
        return True if not found else await self.hides(found[0])


def _deny(role: str, rule: str) -> Forbidden:
    return Forbidden(f"pyd authorization: role {role} may not {rule}")


@attrs.frozen
class _Ctx:
    role: str
    policy: Policy
    lookup: Lookup

    def deny(self, rule: str) -> Forbidden:
        return _deny(self.role, rule)


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
        raise _deny(role, f"{method} {path} (a call the root did not route)")
    if route is None:
        return  # no handler runs: the router answers 404, 405 or a redirect
    if _RANK.get(role, -1) < _RANK[route.least_role]:
        if role == "viewer":
            raise _deny(role, f"{method} {path} (viewers may only inspect, list, and read logs)")
        if role == "operator":
            raise _deny(role, f"{method} {path} (admin only)")
        raise _deny(role, "do anything (unknown role)")
    if role != "operator":
        return
    ctx = _Ctx(role, policy, lookup or NoLookup())
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
        await _check_host_config(ctx, spec.host_config, 0)
        for net in spec.network.endpoints:
            _check_network(ctx, str(net))
    elif first == "networks" and action == "connect":
        _check_network(ctx, ref)
    elif (first, action) == ("volumes", "create"):
        _check_volume_create(ctx, _body(request).get("DriverOpts"))
    elif (first, action) == ("build", ""):
        await _check_build(ctx, request)


_NO_ROUTE: Any = object()


def _check_network(ctx: _Ctx, ref: str) -> None:
    if ref == "host" or ctx.lookup.network_driver(ref) == "host":
        raise ctx.deny(f"connect containers to the host network ({ref})")


async def _check_container_call(
    ctx: _Ctx, method: str, ref: str, action: str, request: Any
) -> None:
    if method == "POST" and action == "start":
        body = _body(request)
        if body:  # a HostConfig on start (API < 1.24 clients)
            await _check_host_config(ctx, body, 0)
    elif method == "POST" and action == "update":
        # Read as the engine reads it (Go's types and field names).
        _check_devices(ctx, parse_update(_body(request)))
    elif method == "POST" and action == "exec":
        if exec_config(_body(request)).privileged:
            raise ctx.deny("run a privileged exec")
        await _check_existing(ctx, ref, "exec into")
    elif action in ("attach", "attach/ws") and qbool(request, "stdin"):
        await _check_existing(ctx, ref, "attach stdin to")
    elif method == "PUT" and action == "archive":
        await _check_existing(ctx, ref, "copy files into")
    elif method in ("GET", "HEAD") and action == "archive":
        # cp reads through the container's mounts (as dockerd's does): an admin-tier
        # container's binds and bind-backed volumes are host files.
        await _check_existing(ctx, ref, "copy files out of")
    elif method == "POST" and action == "rename":
        # Names are what container:X and --volumes-from resolve; an operator who could rename
        # an admin's container into the name of their own could swap it in after the check.
        await _check_existing(ctx, ref, "rename")


async def _check_exec_start(ctx: _Ctx, exec_id: str) -> None:
    facts = ctx.lookup.exec_session(exec_id)
    if facts is None:
        return
    cid, privileged = facts
    if privileged:
        raise ctx.deny("start a privileged exec")
    await _check_existing(ctx, cid, "exec into")


async def _check_existing(ctx: _Ctx, ref: str, what: str) -> None:
    """Refuse C{what} on a container the operator could not have created: on any container
    C{ref} may resolve to by the time the handler resolves it (none: "No such container")."""
    for c in ctx.lookup.containers(ref):
        why = await _container_refusal(ctx, c, 1)
        if why:
            raise ctx.deny(f"{what} container {_name(c)} ({why})")


def _beyond(e: Forbidden) -> str:
    """The rule of a refusal, for a message about another object."""
    return "made with what an operator may not: " + e.message.split(" may not ", 1)[-1]


def _name(c: Container) -> str:
    return c.name.lstrip("/") or c.id[:12]


async def _container_refusal(ctx: _Ctx, c: Container, depth: int) -> str | None:
    """Why container C{c} is beyond what the operator may create (None: it is not)."""
    if depth > _MAX_DEPTH:
        return "its container: namespace chain is too long to check"
    hc = dict(c.host_config)
    # Its mounts as resolved at create (binds, volumes, volumes-from), not its request.
    hc.pop("Binds", None)
    hc.pop("Mounts", None)
    hc.pop("VolumesFrom", None)
    # Neither a low published port nor a cgroup parent is a way into the container's powers.
    hc.pop("PortBindings", None)
    hc.pop("CgroupParent", None)
    try:
        await _check_host_config(ctx, hc, depth)
        await _check_resolved_mounts(ctx, c)
    except Forbidden as e:
        return _beyond(e)
    return None


async def _check_resolved_mounts(ctx: _Ctx, c: Container) -> None:
    for m in c.mounts:
        if m.type == "bind":
            _check_path(ctx, m.source)
            if m.propagation in _SHARED:
                raise ctx.deny(f"bind-mount with {m.propagation} propagation")
        elif m.type == "volume" and m.name:
            await _check_named_volume(ctx, m.name)


# --- HostConfig ---------------------------------------------------------------------------------


_LIST_KEYS = (
    "Binds", "Mounts", "VolumesFrom", "CapAdd", "SecurityOpt", "Devices", "DeviceCgroupRules",
    "DeviceRequests", "MaskedPaths", "ReadonlyPaths",
)  # fmt: skip
_MAP_KEYS = ("Sysctls", "PortBindings", "Annotations")


async def _check_host_config(ctx: _Ctx, hc: Mapping[str, Any], depth: int) -> None:
    """The operator's allow-list over a HostConfig (Go's field names, as the engine's parser
    gives them): each field in L{OPERATOR_HOST_CONFIG} passes its rule; any other field is
    admin-only unless it holds its zero value (clients send many fields empty)."""
    # The rules read these as lists and maps; another type would be read differently here and in
    # the engine, so it is refused rather than interpreted (the create parser already refuses
    # them; stored and build host configs come here without it).
    for key in _LIST_KEYS:
        if hc.get(key) is not None and not isinstance(hc[key], list):
            raise ctx.deny(f"send HostConfig.{key} that is not a list")
    for key in _MAP_KEYS:
        if hc.get(key) is not None and not isinstance(hc[key], Mapping):
            raise ctx.deny(f"send HostConfig.{key} that is not an object")
    for key in sorted(hc, key=lambda k: _ORDER.get(k, len(_ORDER))):
        value = hc[key]
        if value is None or (value in _ZERO and key not in _EMPTY_IS_A_VALUE):
            continue
        if key not in OPERATOR_HOST_CONFIG:
            raise ctx.deny(
                _ADMIN_ONLY.get(key, "set HostConfig.{key} (admin only)").format(
                    key=key, value=value
                )
            )
        rule = OPERATOR_HOST_CONFIG[key]
        if rule is not None:
            await rule(ctx, key, value, depth)


async def _rule_namespace(ctx: _Ctx, key: str, value: Any, depth: int) -> None:
    mode = str(value)
    if mode == "host":
        raise ctx.deny(f"use the host's namespace ({key}=host)")
    if key in _JOINABLE_NS and mode.startswith("container:"):
        for other in ctx.lookup.containers(mode.partition(":")[2]):
            why = await _container_refusal(ctx, other, depth + 1)
            if why:
                raise ctx.deny(
                    f"join the namespaces of container {_name(other)} ({key}={mode}: {why})"
                )
        return
    if key == "NetworkMode":
        # A network by name, id or prefix: not the host network in disguise.
        if mode not in _PLAIN_NETWORKS and ctx.lookup.network_driver(mode) == "host":
            raise ctx.deny(f"use the host's namespace (NetworkMode={mode}: the host network)")
        return
    if mode not in _NAMESPACE_VALUES[key]:
        raise ctx.deny(f"set {key}={mode} (operators may use {_NAMESPACE_HELP[key]})")


async def _rule_caps(ctx: _Ctx, key: str, value: Any, depth: int) -> None:
    _check_caps(ctx, value)


async def _rule_security_opts(ctx: _Ctx, key: str, value: Any, depth: int) -> None:
    _check_security_opts(ctx, value)


async def _rule_system_paths(ctx: _Ctx, key: str, value: Any, depth: int) -> None:
    defaults = MASKED_PATHS if key == "MaskedPaths" else READONLY_PATHS
    if not set(defaults) <= set(map(str, value)):
        raise ctx.deny(f"unmask or make writable kernel paths ({key} without Docker's defaults)")


async def _rule_sysctls(ctx: _Ctx, key: str, value: Any, depth: int) -> None:
    _check_sysctls(ctx, value)


async def _rule_ports(ctx: _Ctx, key: str, value: Any, depth: int) -> None:
    _check_ports(ctx, value)


async def _rule_binds(ctx: _Ctx, key: str, value: Any, depth: int) -> None:
    for bind in value:
        await _check_bind_string(ctx, str(bind))


async def _rule_mounts(ctx: _Ctx, key: str, value: Any, depth: int) -> None:
    for mount in value:
        await _check_mount(ctx, mount)


async def _rule_volumes_from(ctx: _Ctx, key: str, value: Any, depth: int) -> None:
    for spec in value:
        for other in ctx.lookup.containers(str(spec).partition(":")[0]):
            try:
                await _check_resolved_mounts(ctx, other)
            except Forbidden as e:
                raise ctx.deny(
                    f"use volumes from container {_name(other)} ({_beyond(e)})"
                ) from None
            for m in other.mounts:
                if m.type == "volume" and m.name and m.rw and str(spec).partition(":")[2] != "ro":
                    await _check_writable_share(ctx, m.name)


async def _rule_isolation(ctx: _Ctx, key: str, value: Any, depth: int) -> None:
    if value not in ("default",):
        raise ctx.deny(f"set Isolation={value} (only default on Linux)")


_Rule = Callable[[_Ctx, str, Any, int], Awaitable[None]]

# What an operator may set in a HostConfig, with the rule the value must pass (None: any value;
# resources, DNS, restart and logging act inside the container or only on its limits, and
# denial of service is out of scope). A field not listed here is admin-only once it holds more
# than its zero value: a field a later API version adds is admin-only until someone decides.
OPERATOR_HOST_CONFIG: dict[str, _Rule | None] = {
    # mounts (host paths under allowed-bind-paths, volumes that are no host bind in disguise)
    "Binds": _rule_binds,
    "Mounts": _rule_mounts,
    "VolumesFrom": _rule_volumes_from,
    "Tmpfs": None,
    "VolumeDriver": None,
    # namespaces: never the host's; container:X only of a container the operator could make
    "NetworkMode": _rule_namespace,
    "PidMode": _rule_namespace,
    "IpcMode": _rule_namespace,
    "UTSMode": _rule_namespace,
    "UsernsMode": _rule_namespace,
    "CgroupnsMode": _rule_namespace,
    # confinement
    "CapAdd": _rule_caps,
    "CapDrop": None,
    "SecurityOpt": _rule_security_opts,
    "MaskedPaths": _rule_system_paths,
    "ReadonlyPaths": _rule_system_paths,
    "ReadonlyRootfs": None,
    "GroupAdd": None,
    "Sysctls": _rule_sysctls,
    "Isolation": _rule_isolation,
    # networking
    "PortBindings": _rule_ports,
    "PublishAllPorts": None,
    "Dns": None,
    "DnsOptions": None,
    "DnsSearch": None,
    "ExtraHosts": None,
    "Links": None,
    # lifecycle, logging, the process
    "RestartPolicy": None,
    "AutoRemove": None,
    "LogConfig": None,
    "ContainerIDFile": None,
    "ConsoleSize": None,
    "Init": None,
    "OomScoreAdj": None,
    "ShmSize": None,
    # resources (the Blkio* device paths name devices to throttle, never to open)
    **dict.fromkeys(
        (
            "CpuShares", "Memory", "NanoCpus", "BlkioWeight", "BlkioWeightDevice",
            "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps",
            "BlkioDeviceWriteIOps", "CpuPeriod", "CpuQuota", "CpuRealtimePeriod",
            "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems", "KernelMemory", "KernelMemoryTCP",
            "MemoryReservation", "MemorySwap", "MemorySwappiness", "OomKillDisable", "PidsLimit",
            "Ulimits", "CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth",
        ),
        None,
    ),
}  # fmt: skip
# Why some admin-only fields are (the refusal names the rule); others: "admin only".
_ADMIN_ONLY = {
    "Privileged": "create privileged containers",
    "Devices": "give containers host devices (Devices)",
    "DeviceCgroupRules": "give containers host devices (DeviceCgroupRules)",
    "DeviceRequests": "give containers host devices (DeviceRequests)",
    "CgroupParent": "choose the cgroup parent (CgroupParent={value})",
    "Annotations": "set OCI annotations (the runtime acts on some of them)",
    "Runtime": "choose the OCI runtime (Runtime={value})",
}
# The order fields are judged in: the refusals that say the most first (a privileged create
# is refused as privileged), then the table's order, then fields no one listed.
_ORDER = {key: i for i, key in enumerate([*_ADMIN_ONLY, *OPERATOR_HOST_CONFIG])}
_ZERO: tuple[Any, ...] = (None, "", 0, False, [], {}, ())
# Fields whose empty value asks for something (an empty MaskedPaths unmasks everything).
_EMPTY_IS_A_VALUE = frozenset(("MaskedPaths", "ReadonlyPaths"))
_PLAIN_NETWORKS = ("default", "bridge", "none")
_NAMESPACE_VALUES = {
    "PidMode": ("",),
    "IpcMode": ("", "none", "private", "shareable"),
    "UTSMode": ("",),
    "UsernsMode": ("",),
    "CgroupnsMode": ("", "private"),
}
_NAMESPACE_HELP = {
    "PidMode": "their own or container:X",
    "IpcMode": "none, private, shareable or container:X",
    "UTSMode": "their own",
    "UsernsMode": "the daemon's default",
    "CgroupnsMode": "private",
}


def _check_caps(ctx: _Ctx, caps: Any) -> None:
    for cap in caps or ():
        name = str(cap).upper().removeprefix("CAP_")
        if name not in _OPERATOR_CAPS:
            raise ctx.deny(f"add capability {name} (CapAdd)")


def _check_devices(ctx: _Ctx, cfg: Mapping[str, Any]) -> None:
    for key in ("Devices", "DeviceCgroupRules", "DeviceRequests"):
        if cfg.get(key):
            raise ctx.deny(f"give containers host devices ({key})")


def _check_security_opts(ctx: _Ctx, opts: Any) -> None:
    for opt in opts or ():
        raw = str(opt).strip()
        key, sep, value = raw.partition("=")
        if not sep:
            key, sep, value = raw.partition(":")
        if key == "no-new-privileges":
            continue
        if key == "apparmor" and value == "docker-default":
            continue
        if key == "label" and value.startswith("level:"):
            continue
        if key in ("seccomp", "apparmor", "label", "systempaths") and value in (
            "unconfined",
            "disable",
        ):
            raise ctx.deny(f"use unconfined security options ({raw})")
        raise ctx.deny(
            f"use security option {raw[:80]} (operators may set no-new-privileges, "
            "apparmor=docker-default and label=level: only)"
        )


def _check_ports(ctx: _Ctx, bindings: Any) -> None:
    """Host ports below 1024 are root's on the host (a published one shadows a host service
    such as ssh for traffic from outside); ephemeral and high ports are fine. Host ports are
    read with the engine's own parser (C{+22}, C{ 22}, C{8_1} are its 400, not port 22)."""
    if not isinstance(bindings, Mapping):
        return
    for port, binds in bindings.items():
        for b in binds or ():
            host_port = str((b or {}).get("HostPort") or "") if isinstance(b, Mapping) else ""
            low, _high = host_port_range(host_port)
            if 0 < low < 1024:
                raise ctx.deny(f"publish host port {host_port} (below 1024, for {port})")


def _check_sysctls(ctx: _Ctx, sysctls: Any) -> None:
    if not isinstance(sysctls, Mapping):
        return
    for key in sysctls:
        # The name of the file the runtime writes (the engine refuses the same keys).
        k = sysctl_name(str(key))
        if k in _NS_SYSCTLS or k.startswith(_NS_SYSCTL_PREFIXES):
            continue
        raise ctx.deny(f"set sysctl {k} (not in the container's own namespaces)")


async def _check_bind_string(ctx: _Ctx, bind: str) -> None:
    """One C{Binds} entry, parsed by the engine's own parser (L{parse_bind}): what is a host
    path and what is a volume name is decided once, for the rules and the mount alike.

    @raise InvalidParameter: the engine's own 400 for an entry it would refuse.
    """
    await _check_parsed_mount(ctx, parse_bind(bind))


async def _check_mount(ctx: _Ctx, mount: Mapping[str, Any]) -> None:
    """One C{Mounts} entry, parsed by the engine's own parser (L{parse_mount})."""
    if mount.get("Type") == "volume":
        opts = ((mount.get("VolumeOptions") or {}).get("DriverConfig") or {}).get("Options")
        if opts:
            _check_volume_create(ctx, opts)
    await _check_parsed_mount(ctx, parse_mount(mount_of(mount), None))


async def _check_parsed_mount(ctx: _Ctx, m: Any) -> None:
    if m.type == "bind":
        _check_path(ctx, m.source)
        if m.propagation in _SHARED:
            raise ctx.deny(f"bind-mount with {m.propagation} propagation")
    elif m.type == "volume":
        if m.source:
            await _check_named_volume(ctx, m.source)
            if m.rw:
                await _check_writable_share(ctx, m.source)
    elif m.type != "tmpfs":
        raise ctx.deny(f"use mounts of type {m.type}")


# --- volumes --------------------------------------------------------------------------------------


def _o_list(opts: Mapping[str, Any]) -> list[str]:
    return [o.strip() for o in str(opts.get("o") or "").split(",") if o.strip()]


def _volume_host_reach(ctx: _Ctx, opts: Mapping[str, Any]) -> str | None:
    """Why a local volume with C{opts} reaches the host (None: it does not)."""
    fstype = str(opts.get("type") or "")
    device = str(opts.get("device") or "")
    olist = _o_list(opts)
    keys = {o.split("=", 1)[0] for o in olist}
    if keys & {"bind", "rbind"}:
        if not device.startswith("/"):
            return f"bind-mount the relative host path {device!r} (local volume o=bind)"
        if not path_allowed(device, ctx.policy.allowed_bind_paths):
            return (
                f"bind-mount host path {device} (local volume o=bind, not under allowed-bind-paths)"
            )
        if keys & set(_SHARED):
            return "bind-mount with shared propagation (local volume)"
        return None
    if fstype in ("overlay", "aufs") or "loop" in keys:
        return (
            f"mount host paths or files through a local volume (type={fstype}, o={opts.get('o')})"
        )
    if device.startswith("/") and fstype not in _NETWORK_FS:
        return f"mount host device or path {device} (local volume type={fstype or 'auto'})"
    return None


def _check_volume_create(ctx: _Ctx, opts: Any) -> None:
    """An operator creates plain volumes, tmpfs volumes, and binds under allowed-bind-paths."""
    if not isinstance(opts, dict) or not opts:
        return
    why = _volume_host_reach(ctx, opts)
    if why:
        raise ctx.deny(why)
    fstype = str(opts.get("type") or "")
    keys = {o.split("=", 1)[0] for o in _o_list(opts)}
    if keys & {"bind", "rbind"}:
        bad = keys - _BIND_OPTS
    elif fstype == "tmpfs":
        bad = keys - _TMPFS_OPTS
    elif not fstype and not opts.get("device") and not keys:
        return  # only e.g. size
    else:
        raise ctx.deny(
            f"create local volumes of type {fstype or '(none)'} (the daemon mounts them as root "
            "on the host; an admin can create them for operators to use)"
        )
    if bad:
        raise ctx.deny(f"use local volume mount options {','.join(sorted(bad))}")


async def _check_named_volume(ctx: _Ctx, name: str) -> None:
    opts = await ctx.lookup.volume_options(name)
    if opts:
        why = _volume_host_reach(ctx, opts)
        if why:
            raise ctx.deny(f"use volume {name} (made with what an operator may not: {why})")


async def _check_writable_share(ctx: _Ctx, name: str) -> None:
    """A volume an admin-tier container mounts may be mounted read-only only: what an operator
    writes there, that container may run with its powers."""
    for c in ctx.lookup.volume_users(name):
        why = await _container_refusal(ctx, c, 1)
        if why:
            raise ctx.deny(
                f"mount volume {name} writable: container {_name(c)} uses it ({why}); "
                "mount it read-only"
            )


# --- build ----------------------------------------------------------------------------------------


async def _check_build(ctx: _Ctx, request: Any) -> None:
    """The RUN steps' containers get exactly what an operator's own container may get."""
    from pyd.api.build import options_from_request
    from pyd.engine.build.builder import step_host_config

    try:
        opts = options_from_request(request)
    except PydError:
        return  # the build endpoint answers the same 400 itself
    if opts.network_mode == "host":
        raise ctx.deny("build with the host's network namespace (NetworkMode=host)")
    # What the Dockerfile asks for is known only once the build runs: the builder refuses these
    # RUN options with the same rule's words (L{pyd.engine.build.builder.BuildOptions.refused}).
    request.pyd_build_refused = {
        "network.host": ctx.deny(
            "build with RUN --network=host (the host's network namespace)"
        ).message,
        "security.insecure": ctx.deny(
            "build with RUN --security=insecure (a privileged step)"
        ).message,
    }
    try:
        await _check_host_config(ctx, step_host_config(opts), 0)
    except Forbidden as e:
        raise ctx.deny(f"build with these options (RUN step containers: {_beyond(e)})") from None


# --- helpers --------------------------------------------------------------------------------------


def _body(request: Any) -> dict[str, Any]:
    """The request body as the handler reads it (L{pyd.api.wire.read_json_object}): one parser,
    so duplicate keys, encodings and trailing data mean the same to the rules and the engine.

    @raise InvalidParameter: the handler's own 400 (not JSON, too large, wrong content type).
    """
    return read_json_object(request, required=False)


def path_allowed(path: str, allowed: Iterable[str]) -> bool:
    """Whether host C{path}, with symlinks resolved, lies under one of C{allowed}."""
    # realpath costs a few lstat calls; it stops a symlink planted under an allowed directory
    # from pointing the mount elsewhere.
    real = os.path.realpath(path)
    for base in allowed:
        real_base = os.path.realpath(base)
        if real == real_base or real.startswith(real_base.rstrip("/") + "/"):
            return True
    return False


def _check_path(ctx: _Ctx, path: str) -> None:
    if not path_allowed(path, ctx.policy.allowed_bind_paths):
        raise ctx.deny(f"bind-mount host path {path} (not under allowed-bind-paths)")
