"""Who is calling: roles from the connection (layer: api).

Once per connection, L{identify} turns the peer into an L{Identity}: a mutual-TLS peer by its
client certificate (a C{tls-roles} entry for its subject, the role the certificate carries, else
C{tls-default-role}), a Unix-socket peer by its uid, gid and supplementary groups
(C{SO_PEERCRED} + C{SO_PEERGROUPS}, then C{/proc/<pid>/status}, then the user database), plain
TCP as admin. L{Policy} holds the role settings of the daemon config. What a role may do is
L{pyd.api.authz}'s business.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import socket
import struct
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from twisted.logger import Logger

log = Logger()

RANK = {"viewer": 0, "operator": 1, "admin": 2}


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
        # imported here: cryptography loads with the TLS stack, on the first TLS listener
        from pyd.core import certs

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
            return max(found, key=lambda r: RANK.get(r, -1))
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
    if sock is None:
        return None
    # the connection guard read SO_PEERCRED when the connection was made (fixed at connect;
    # only a Unix socket has one)
    known = getattr(transport, "pyd_peercred", None)
    if isinstance(known, tuple):
        pid, uid, gid = known
    elif sock.family != socket.AF_UNIX:
        return None
    else:
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
