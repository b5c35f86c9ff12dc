"""Roles for API callers: who is calling, and may they make this call (layer: api).

The root calls L{Authorizer} (its C{guard} hook) before dispatching. Who is calling comes from the
connection, once per connection:

  - a mutual-TLS peer: its client certificate. The role is, in order: a C{tls-roles} entry naming
    the subject (full RFC 4514 subject, C{CN=name}, or the bare CN), the role the certificate carries
    (see L{pyd.core.certs}), else C{tls-default-role} (admin unless set, so certificates made with
    openssl as Docker's documentation shows keep working);
  - a Unix-socket peer: its uid/gid from C{SO_PEERCRED}. uid 0 is always admin; C{unix-roles} maps
    C{uid:N} or C{gid:N} (the peer's primary group) to a role; anyone else who could open the
    socket is admin, as with dockerd's C{docker} group;
  - plain TCP (only with the loudly named opt-in): admin, as the flag says.

What each role may do:

  - C{viewer}: GET/HEAD of inspect, list, logs, events, stats, top, changes, version, info, df
    (C{/_ping} is always open). Nothing that returns file contents (export, archive, image save).
  - C{operator}: everything except what gives root on the host: privileged containers or exec,
    host bind mounts (and local volumes backed by host paths) outside C{allowed-bind-paths}, the
    host's pid/ipc/network/uts/userns namespaces, added capabilities, devices, unconfined security
    options, host-network builds, plugins and swarm.
  - C{admin}: everything.

A refusal is a 403 C{{"message": ...}} naming the role and the rule. Every call over TLS is logged
with the certificate's subject.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from twisted.logger import Logger

from pyd.core import certs
from pyd.core.errors import Forbidden

log = Logger()

ROLES = certs.ROLES
_MAX_INSPECT = 4 << 20

_VIEWER_READS = re.compile(
    r"^/(?:"
    r"containers/json"
    r"|containers/[^/]+/(?:json|logs|stats|top|changes)"
    r"|images/json"
    r"|images/.+/(?:json|history)"
    r"|networks|networks/[^/]+"
    r"|volumes|volumes/[^/]+"
    r"|exec/[^/]+/json"
    r"|distribution/.+/json"
    r"|events|version|info|system/df|plugins"
    r")/?$"
)
_ADMIN_ONLY_PREFIXES = ("plugins", "swarm", "nodes", "services", "tasks", "secrets", "configs")
_HOST_NS = ("PidMode", "IpcMode", "NetworkMode", "UsernsMode", "UTSMode")


@attrs.frozen
class Identity:
    """Who is calling over one connection."""

    role: str
    subject: str  # certificate subject, "uid=N gid=N", or "tcp"
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
            unix_roles=dict(config.unix_roles),
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

    def role_for_peer(self, uid: int, gid: int) -> str:
        """The role of a Unix-socket peer."""
        if uid == 0:
            return "admin"
        for key in (f"uid:{uid}", f"gid:{gid}"):
            if key in self.unix_roles:
                return self.unix_roles[key]
        return "admin"


def _peer_cred(transport: Any) -> tuple[int, int] | None:
    sock = getattr(transport, "socket", None)
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, gid = struct.unpack("3i", raw)
    return uid, gid


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
        uid, gid = cred
        return Identity(policy.role_for_peer(uid, gid), f"uid={uid} gid={gid}", "unix")
    return Identity("admin", "tcp", "tcp")


class Authorizer:
    """The L{pyd.api.root.ApiRoot} guard: identify the caller, then check the call."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def __call__(self, request: Any, method: str, path: str) -> None:
        """Refuse the call with L{Forbidden} when the caller's role does not allow it."""
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
            return
        try:
            check(ident.role, method, path, request, self.policy)
        except Forbidden:
            log.warn(
                "refused {method} {path} for {subject} ({role})",
                method=method,
                path=path,
                subject=ident.subject,
                role=ident.role,
            )
            raise


def _deny(role: str, rule: str) -> Forbidden:
    return Forbidden(f"pyd authorization: role {role} may not {rule}")


def check(role: str, method: str, path: str, request: Any, policy: Policy) -> None:
    """Check one call for a non-admin role. @raise Forbidden: naming the role and the rule."""
    path = path.rstrip("/") or "/"
    if role == "viewer":
        if method in ("GET", "HEAD") and _VIEWER_READS.match(path):
            return
        raise _deny(role, f"{method} {path} (viewers may only inspect, list, and read logs)")
    if role != "operator":
        raise _deny(role, "do anything (unknown role)")
    first = path.split("/")[1] if path.count("/") else ""
    if first in _ADMIN_ONLY_PREFIXES and method not in ("GET", "HEAD"):
        raise _deny(role, f"manage {first} (admin only)")
    if method != "POST":
        return
    parts = path.split("/")
    if path == "/containers/create":
        _check_create(role, _body(request, role), policy)
    elif len(parts) == 4 and parts[1] == "containers" and parts[3] == "start":
        body = _body(request, role)
        if body:
            _check_host_config(role, body, policy)
    elif len(parts) == 4 and parts[1] == "containers" and parts[3] == "exec":
        body = _body(request, role)
        if body.get("Privileged"):
            raise _deny(role, "run a privileged exec")
    elif len(parts) == 4 and parts[1] == "containers" and parts[3] == "update":
        _check_devices(role, _body(request, role))
    elif path == "/volumes/create":
        _check_driver_opts(role, _body(request, role).get("DriverOpts"), policy)
    elif path == "/build":
        mode = request.args.get(b"networkmode", [b""])[0].decode("utf-8", "replace")
        if mode == "host":
            raise _deny(role, "build with the host's network namespace")


def _body(request: Any, role: str) -> dict[str, Any]:
    content = getattr(request, "content", None)
    if content is None:
        return {}
    content.seek(0)
    raw = content.read(_MAX_INSPECT + 1)
    content.seek(0)
    if not raw.strip():
        return {}
    if len(raw) > _MAX_INSPECT:
        raise _deny(role, "send a request body too large to inspect")
    try:
        value = json.loads(raw)
    except ValueError:
        raise _deny(role, "send a request body that cannot be inspected") from None
    return value if isinstance(value, dict) else {}


def _check_create(role: str, body: Mapping[str, Any], policy: Policy) -> None:
    hc = body.get("HostConfig")
    if isinstance(hc, dict):
        _check_host_config(role, hc, policy)


def _check_host_config(role: str, hc: Mapping[str, Any], policy: Policy) -> None:
    if hc.get("Privileged"):
        raise _deny(role, "create privileged containers")
    for key in _HOST_NS:
        if str(hc.get(key) or "") == "host":
            raise _deny(role, f"use the host's namespace ({key}=host)")
    if hc.get("CapAdd"):
        raise _deny(role, "add capabilities (CapAdd)")
    _check_devices(role, hc)
    for opt in hc.get("SecurityOpt") or ():
        norm = str(opt).replace(":", "=", 1).replace(" ", "")
        if norm in (
            "seccomp=unconfined",
            "apparmor=unconfined",
            "label=disable",
            "systempaths=unconfined",
        ):
            raise _deny(role, f"use unconfined security options ({opt})")
    masked = hc.get("MaskedPaths")
    if isinstance(masked, list) and not masked:
        raise _deny(role, "unmask kernel paths (MaskedPaths empty)")
    for bind in hc.get("Binds") or ():
        source = str(bind).split(":", 1)[0]
        if source.startswith("/"):
            _check_path(role, source, policy)
    for mount in hc.get("Mounts") or ():
        if not isinstance(mount, dict):
            continue
        kind = mount.get("Type") or "volume"
        if kind == "bind":
            _check_path(role, str(mount.get("Source") or ""), policy)
        elif kind == "volume":
            opts = ((mount.get("VolumeOptions") or {}).get("DriverConfig") or {}).get("Options")
            _check_driver_opts(role, opts, policy)


def _check_devices(role: str, cfg: Mapping[str, Any]) -> None:
    for key in ("Devices", "DeviceCgroupRules", "DeviceRequests"):
        if cfg.get(key):
            raise _deny(role, f"give containers host devices ({key})")


def _check_driver_opts(role: str, opts: Any, policy: Policy) -> None:
    if not isinstance(opts, dict):
        return
    device = str(opts.get("device") or "")
    if device.startswith("/"):
        _check_path(role, device, policy)


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


def _check_path(role: str, path: str, policy: Policy) -> None:
    if not path_allowed(path, policy.allowed_bind_paths):
        raise _deny(role, f"bind-mount host path {path} (not under allowed-bind-paths)")
