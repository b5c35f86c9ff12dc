"""Legacy container links (C{--link name:alias}, C{HostConfig.Links}) on the default bridge
(layer: engine), as dockerd 28.2 keeps them (moby v28.2.2 daemon/daemon_unix.go C{registerLinks},
daemon/container_operations_unix.go C{setupLinkedContainers}/C{addLegacyLinks},
daemon/links/links.go C{ToEnv}, daemon/delete.go C{rmLink}).

A link is registered at create when the container's network mode is not a user-defined network:
the child is looked up then (a missing one is a 400), followed through C{container:} modes, and
kept by id as C{(child id, "/parent/alias")} in the container's C{extra}, so it follows renames.
At start on the default bridge each child must run and be on the default bridge; its address gets
a C{/etc/hosts} line (C{alias hostname [name]}) and the C{ALIAS_PORT_…}, C{ALIAS_NAME},
C{ALIAS_ENV_…} variables are added to the process environment. C{DELETE ?link=1} drops one.
On user-defined networks links are C{EndpointSettings.Links}: resolver aliases seen only by the
linking container (L{pyd.engine.networks.dns}), not handled here.
"""

from __future__ import annotations

import posixpath
from typing import Any

import attrs

from pyd.core.errors import Conflict, InvalidParameter, NotFound
from pyd.core.records import Container
from pyd.engine.containers.base import endpoints_of
from pyd.engine.containers.health import ContainerHealth
from pyd.engine.spec.rules import parse_link

DEFAULT_BRIDGE = "bridge"


def _port_key(port: str) -> tuple[int, str]:
    num, _, proto = port.partition("/")
    return int(num), proto or "tcp"


def link_env(full_alias: str, child_ip: str, child_env: list[str], exposed: list[str]) -> list[str]:
    """moby 28's C{Link.ToEnv}: the variables a link gives the parent's processes."""
    alias = posixpath.basename(full_alias).upper().replace("-", "_")
    ports = [_port_key(p) for p in exposed]
    # TCP first, then by number (withTCPPriority), so that ranges are found in order.
    ports.sort(key=lambda p: (p[1] != "tcp", p[1] if p[1] != "tcp" else "", p[0]))
    env: list[str] = []
    start = end = ports[0] if ports else (0, "")
    for i, (num, proto) in enumerate(ports):
        if i == 0:
            env.append(f"{alias}_PORT={proto}://{child_ip}:{num}")
        prefix = f"{alias}_PORT_{num}_{proto.upper()}"
        env += [
            f"{prefix}={proto}://{child_ip}:{num}",
            f"{prefix}_ADDR={child_ip}",
            f"{prefix}_PORT={num}",
            f"{prefix}_PROTO={proto}",
        ]
        if num == end[0] + 1 and proto == end[1]:
            end = (num, proto)
            if i < len(ports) - 1:
                continue
        if end != start:
            prefix = f"{alias}_PORT_{start[0]}_{start[1].upper()}"
            env += [
                f"{prefix}_START={start[1]}://{child_ip}:{start[0]}",
                f"{prefix}_PORT_START={start[0]}",
                f"{prefix}_END={end[1]}://{child_ip}:{end[0]}",
                f"{prefix}_PORT_END={end[0]}",
            ]
        start = end = (num, proto)
    env.append(f"{alias}_NAME={full_alias}")
    for item in child_env:
        key, sep, val = item.partition("=")
        if not sep or key in ("HOME", "PATH"):
            continue
        env.append(f"{alias}_ENV_{key}={val}")
    return env


@attrs.frozen
class LinkSetup:
    """What a starting container's links add: environment and C{/etc/hosts} lines."""

    env: tuple[str, ...] = ()
    hosts: tuple[tuple[str, str], ...] = ()
    # (child's address, its ExposedPorts keys): what dockerd's link rules open with icc off
    children: tuple[tuple[str, tuple[str, ...]], ...] = ()


def _is_user_mode(mode: str) -> bool:
    return mode not in ("", "default", DEFAULT_BRIDGE, "host", "none") and not mode.startswith(
        "container:"
    )


class ContainerLinks(ContainerHealth):
    """Registration, start-time effects, inspect view and removal of legacy links."""

    def register_links(
        self, parent_name: str, mode: str, links: tuple[str, ...]
    ) -> list[list[str]]:
        """The links a create registers (C{[child id, "/parent/alias"]}), checked as dockerd's
        C{registerLinks}; none on a user-defined network (the endpoint's Links serve there).

        @raise InvalidParameter: a bad link, a missing child (dockerd's C{could not get container
            for X: No such container: X}), a child with host networking.
        """
        if _is_user_mode(mode):
            for value in links:
                parse_link(value)
            return []
        if mode == "host" and links:
            raise InvalidParameter(
                "conflicting options: host type networking can't be used with links. "
                "This would result in undefined behavior"
            )
        out: list[list[str]] = []
        taken: set[str] = set()
        for value in links:
            name, alias = parse_link(value)
            child = self._link_child(name)
            hops = 0
            while (child.host_config.get("NetworkMode") or "").startswith("container:"):
                target = str(child.host_config["NetworkMode"]).split(":", 1)[1]
                child = self._link_child(target)
                hops += 1
                if hops > 32:
                    break
            if (child.host_config.get("NetworkMode") or "") == "host":
                raise InvalidParameter(
                    "conflicting options: host type networking can't be used with links. "
                    "This would result in undefined behavior"
                )
            full = posixpath.join(parent_name, alias)
            if full in taken or self._name_taken(full):
                continue  # dockerd logs the clash and ignores the link
            taken.add(full)
            out.append([child.id, full])
        return out

    def _link_child(self, name: str) -> Container:
        try:
            return self.resolve(name)
        except NotFound as e:
            raise InvalidParameter(f"could not get container for {name}: {e}") from e

    def _name_taken(self, full: str) -> bool:
        return any(c.name == full for c in self._cache.values()) or any(
            full == link[1] for c in self._cache.values() for link in links_of(c)
        )

    def links_shown(self, c: Container) -> list[str] | None:
        """C{HostConfig.Links} as inspect shows it: C{/child:/parent/alias} (current names)."""
        shown = []
        for child_id, full in links_of(c):
            child = self._cache.get(child_id)
            if child is not None:
                shown.append(f"{child.name}:{full}")
        return shown or None

    def link_names(self, c: Container) -> list[str]:
        """The link names (C{/parent/alias}) other containers know C{c} by (C{Names} in list)."""
        return self.link_names_by_child().get(c.id, [])

    def link_names_by_child(self) -> dict[str, list[str]]:
        """Every container's link names, by child id, sorted: one pass over the containers, so
        that a listing of N containers does not scan all of them again for each one."""
        out: dict[str, list[str]] = {}
        for other in self._cache.values():
            for child_id, full in links_of(other):
                out.setdefault(child_id, []).append(full)
        for names in out.values():
            names.sort()
        return out

    def resolve_link_name(self, name: str) -> Container | None:
        """The child a link name (C{/parent/alias}) stands for, if one does."""
        for other in self._cache.values():
            for child_id, full in links_of(other):
                if full == name and child_id in self._cache:
                    return self._cache[child_id]
        return None

    def link_setup(self, c: Container, mode: str) -> LinkSetup:
        """What C{c}'s links add at its start (only on the default bridge, as dockerd).

        @raise Conflict: a child not running (dockerd's C{Cannot link to a non running
            container: /child AS /parent/alias}) or not on the default bridge.
        """
        links = links_of(c)
        if mode != DEFAULT_BRIDGE or not links:
            return LinkSetup()
        env: list[str] = []
        hosts: list[tuple[str, str]] = []
        children: list[tuple[str, tuple[str, ...]]] = []
        for child_id, full in links:
            child = self._cache.get(child_id)
            if child is None:
                continue  # removed since: dockerd dropped the link with it
            ip = _bridge_ip(child)
            on_bridge = any(e.network_name == DEFAULT_BRIDGE for e in endpoints_of(child))
            if not on_bridge and (child.host_config.get("NetworkMode") or "") != DEFAULT_BRIDGE:
                raise Conflict(
                    f"Cannot link to {child.name}, as it does not belong to the default network"
                )
            if not child.state.running:
                raise Conflict(f"Cannot link to a non running container: {child.name} AS {full}")
            if ip:
                hosts.append((ip, _hosts_names(child, full)))
                children.append((ip, tuple(child.config.get("ExposedPorts") or {})))
            env += link_env(
                full,
                ip,
                [str(x) for x in child.config.get("Env") or []],
                list(child.config.get("ExposedPorts") or {}),
            )
        return LinkSetup(tuple(env), tuple(hosts), tuple(children))

    async def update_link_parents(self, child: Container) -> None:
        """After C{child} started: the running containers linking to it get its (new) address
        in their C{/etc/hosts} line, as dockerd's C{addLegacyLinks} updates its parents."""
        ip = _bridge_ip(child)
        if not ip:
            return
        for parent in list(self._cache.values()):
            hosts_path = str(parent.extra.get("hosts_path") or "")
            if not parent.state.running or not hosts_path:
                continue
            for child_id, full in links_of(parent):
                if child_id == child.id:
                    names = _hosts_names(child, full)
                    await self._blocking.run(_set_line_address, hosts_path, names, ip)

    async def remove_link(self, ref: str) -> None:
        """C{DELETE /containers/{parent/alias}?link=1}: drop that link (dockerd's C{rmLink}).

        @raise NotFound: no container by that name.
        @raise InvalidParameter: a container's own name (dockerd's text; a 500 there).
        """
        self.resolve(ref)
        name = ref if ref.startswith("/") else "/" + ref
        parent_name, _ = posixpath.split(name)
        if parent_name == "/":
            raise InvalidParameter("Conflict, cannot remove the default link name of the container")
        parent = next((p for p in self._cache.values() if p.name == parent_name), None)
        if parent is None:
            raise InvalidParameter(f"Cannot get parent {parent_name} for link name {name}")
        gone = [link for link in links_of(parent) if link[1] == name]
        kept = [list(link) for link in links_of(parent) if link[1] != name]
        await self._save(attrs.evolve(parent, extra={**parent.extra, "links": kept}))
        hosts_path = str(parent.extra.get("hosts_path") or "")
        for child_id, full in gone:
            child = self._cache.get(child_id)
            ip = _bridge_ip(child) if child is not None else ""
            if child is None or not ip or not parent.state.running or not hosts_path:
                continue
            # dockerd rebuilds the running parent's /etc/hosts without the link's line.
            line = f"{ip}\t{_hosts_names(child, full)}\n"
            await self._blocking.run(_drop_line, hosts_path, line)


def _hosts_names(child: Container, full: str) -> str:
    # moby addLegacyLinks: the alias, the child's hostname, and its name unless that is the alias.
    alias = posixpath.basename(full)
    names = alias + " " + str(child.config.get("Hostname") or child.id[:12])
    if alias != child.name[1:]:
        names += " " + child.name[1:]
    return names


def _bridge_ip(c: Container) -> str:
    return next((e.ipv4 for e in endpoints_of(c) if e.network_name == DEFAULT_BRIDGE), "")


def _drop_line(path: str, line: str) -> None:
    """Remove C{line} from the daemon-owned hosts file at C{path} (in place: it is bind-mounted,
    so the inode must stay; blocking)."""
    try:
        with open(path, "r+") as f:
            text = f.read()
            if line not in text:
                return
            f.seek(0)
            f.write(text.replace(line, "", 1))
            f.truncate()
    except OSError:
        return  # the parent stopped meanwhile: its next start writes a fresh file


def _set_line_address(path: str, names: str, ip: str) -> None:
    """Give the hosts file's C{<addr>\t<names>} lines the address C{ip} (in place; blocking)."""
    try:
        with open(path, "r+") as f:
            lines = f.read().split("\n")
            changed = [
                f"{ip}\t{names}" if line.partition("\t")[2] == names else line for line in lines
            ]
            if changed == lines:
                return
            f.seek(0)
            f.write("\n".join(changed))
            f.truncate()
    except OSError:
        return  # the parent stopped meanwhile: its next start writes a fresh file


def links_of(c: Container) -> list[tuple[str, str]]:
    """C{c}'s registered links: C{(child id, "/parent/alias")}."""
    raw: Any = c.extra.get("links") or []
    return [(str(x[0]), str(x[1])) for x in raw]
