"""User and group resolution against a container's own C{/etc/passwd} and C{/etc/group} (layer: engine).

C{docker run -u}, the image's C{USER}, C{GroupAdd}, C{docker exec -u} and C{docker cp -a} name
users that only the container's files define. Those files belong to the image or to a running
container, so they are hostile input:

  - they are read through the path-safety layer (L{pyd.drivers.inroot}) on a descriptor of the
    container's root: the kernel resolves C{/etc/passwd} inside it, so a link out of the root, a
    magic link, or a running container swapping C{/etc} for a link to C{/} while we read
    (C{docker exec -u}) all land inside the container, never on the host's files;
  - only regular files are read: a device node or a FIFO there is never opened (it would read a
    host disk, or block the daemon) and counts as a missing file;
  - at most L{ACCOUNTS_LIMIT} bytes each, and lines that are not well-formed (non-numeric or
    out-of-range ids) are skipped rather than guessed at.

Every failure is an L{InvalidParameter} with dockerd's text (C{unable to find user ...: no matching
entries in passwd file}), followed by why the file was not used when it exists but is not usable.
Blocking: call from the io pool.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence

import attrs

from pyd.core.errors import InvalidParameter, SystemError_
from pyd.drivers.inroot import InRoot

ACCOUNTS_LIMIT = 4 << 20
MAX_ID = (1 << 31) - 1  # dockerd (moby/sys/user): ids are 0..2147483647
_RANGE = f"uids and gids must be in range 0-{MAX_ID}"


@attrs.frozen
class Account:
    name: str
    uid: int
    gid: int
    home: str


@attrs.frozen
class Group:
    name: str
    gid: int
    members: tuple[str, ...]


@attrs.frozen
class Accounts:
    """What the container's files say, and why a file was not used (C{""}: read, or absent)."""

    users: tuple[Account, ...] = ()
    groups: tuple[Group, ...] = ()
    passwd_note: str = ""
    group_note: str = ""


def _id(field: str) -> int | None:
    if not field.isascii() or not field.isdigit():
        return None
    n = int(field)
    return n if n <= MAX_ID else None


def parse_passwd(text: str) -> tuple[Account, ...]:
    """Well-formed C{name:pw:uid:gid:gecos:home:shell} lines (others skipped)."""
    out = []
    for line in text.splitlines():
        p = line.split(":")
        if len(p) < 7 or not p[0]:
            continue
        uid, gid = _id(p[2]), _id(p[3])
        if uid is None or gid is None:
            continue
        out.append(Account(p[0], uid, gid, p[5] or "/"))
    return tuple(out)


def parse_group(text: str) -> tuple[Group, ...]:
    """Well-formed C{name:pw:gid[:members]} lines (others skipped)."""
    out = []
    for line in text.splitlines():
        g = line.split(":")
        if len(g) < 3 or not g[0]:
            continue
        gid = _id(g[2])
        if gid is None:
            continue
        members = tuple(m for m in g[3].split(",") if m) if len(g) > 3 else ()
        out.append(Group(g[0], gid, members))
    return tuple(out)


def _read(root: InRoot, path: str) -> tuple[str, str]:
    """(text, note): the file's text, or "" and why it was not used ("" when it is absent)."""
    try:
        data = root.read_small(path, ACCOUNTS_LIMIT)
    except OSError as e:
        if e.errno == errno.EFBIG:
            return "", f"{path} is larger than {ACCOUNTS_LIMIT >> 20} MiB"
        if e.errno == errno.ELOOP:
            return "", f"{path} is a loop of symbolic links"
        return "", f"{path} cannot be read"
    if data is None:
        try:
            root.lstat(path)
        except OSError:
            return "", ""  # absent: as dockerd, numeric ids still work
        return "", f"{path} is not a regular file"
    return data.decode("utf-8", "replace"), ""


def read_accounts(root: InRoot) -> Accounts:
    """The container's C{/etc/passwd} and C{/etc/group}, read safely (see the module docstring)."""
    passwd, pnote = _read(root, "/etc/passwd")
    group, gnote = _read(root, "/etc/group")
    return Accounts(parse_passwd(passwd), parse_group(group), pnote, gnote)


def _why(note: str) -> str:
    return f" ({note})" if note else ""


def _numeric(spec: str) -> int | None:
    """A numeric user or group spec; out of range is dockerd's error."""
    if not spec.isascii() or not spec.isdigit():
        return None
    n = int(spec)
    if n > MAX_ID:
        raise InvalidParameter(_RANGE)
    return n


def resolve_in(
    acc: Accounts, user: str, group_add: Sequence[str] = ()
) -> tuple[int, int, tuple[int, ...], str]:
    """Resolve C{User} (name, uid, name:group, uid:gid) and C{GroupAdd} against C{acc}.

    @return: (uid, gid, additional gids (the primary gid first, as dockerd), home).
    @raise InvalidParameter: unknown user or group, or an id out of range (dockerd's texts).
    """
    spec_user, _, spec_group = (user or "").partition(":")
    spec_user = spec_user or "0"
    want_uid = _numeric(spec_user)
    found = next(
        (
            a
            for a in acc.users
            if (a.uid == want_uid if want_uid is not None else a.name == spec_user)
        ),
        None,
    )
    if found is not None:
        uid, gid, home, uname = found.uid, found.gid, found.home, found.name
    elif want_uid is not None:
        uid, gid, home, uname = want_uid, 0, "/", ""
    else:
        raise InvalidParameter(
            f"unable to find user {spec_user}: no matching entries in passwd file"
            + _why(acc.passwd_note)
        )
    if spec_group:
        want_gid = _numeric(spec_group)
        g = _find_group(acc, spec_group, want_gid)
        if g is not None:
            gid = g.gid
        elif want_gid is not None:
            gid = want_gid
        else:
            raise InvalidParameter(
                f"unable to find group {spec_group}: no matching entries in group file"
                + _why(acc.group_note)
            )
    extra: list[int] = []
    if uname and not spec_group:
        for g in acc.groups:
            if uname in g.members and g.gid != gid and g.gid not in extra:
                extra.append(g.gid)
    for ga in group_add:
        want = _numeric(ga)
        g = next((x for x in acc.groups if x.name == ga or x.gid == want), None)
        if g is not None:
            extra.append(g.gid)
        elif want is not None:
            extra.append(want)
        else:
            raise InvalidParameter(
                f"Unable to find group {ga}: no matching entries in group file"
                + _why(acc.group_note)
            )
    # dockerd (daemon/oci_linux.go getUser) lists the primary group first among the
    # additional ones: `id` shows groups=<gid>(name),...
    return uid, gid, (gid, *(g for g in extra if g != gid)), home


def _find_group(acc: Accounts, spec: str, want: int | None) -> Group | None:
    return next(
        (g for g in acc.groups if (g.gid == want if want is not None else g.name == spec)), None
    )


def resolve_user(
    rootfs: str | InRoot, user: str, group_add: Sequence[str] = ()
) -> tuple[int, int, tuple[int, ...], str]:
    """L{resolve_in} against the files of the container root C{rootfs} (a host path the daemon
    owns, or an open L{InRoot}). Blocking.

    @raise InvalidParameter: unknown user or group (dockerd's texts).
    @raise SystemError_: the root itself cannot be opened.
    """
    if isinstance(rootfs, InRoot):
        return resolve_in(read_accounts(rootfs), user, group_add)
    try:
        root = InRoot(rootfs)
    except OSError as e:
        raise SystemError_("cannot open the container's root filesystem") from e
    with root:
        return resolve_in(read_accounts(root), user, group_add)
