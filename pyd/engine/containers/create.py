"""C{docker create} (layer: engine): the typed create spec to a stored container, namespace donors
(C{container:X}) pinned at create and joined at start, and the runtime spec of a start.
"""

from __future__ import annotations

import os
import shutil
import stat
from typing import Any

import attrs
from twisted.logger import Logger

from pyd.core.errors import (
    Conflict,
    InvalidParameter,
    NotFound,
    SystemError_,
    no_such_container,
)
from pyd.core.ids import VALID_NAME, is_full_id, new_id, random_name
from pyd.core.records import (
    Container,
    ContainerState,
    Image,
    NetworkSetup,
)
from pyd.drivers.inroot import InRoot
from pyd.drivers.runtime import spec as oci
from pyd.engine import confinement, honoured, resolvconf
from pyd.engine.containers import runconfig
from pyd.engine.containers.base import (
    CREATING,
    _normalise_ports,
    _now_nano,
    _read_or,
    _resources_of,
    _write,
)
from pyd.engine.containers.links import ContainerLinks
from pyd.engine.spec import CreateSpec, rules
from pyd.engine.users import resolve_user
from pyd.engine.volumes import parse_volumes_from

log = Logger()


# HostConfig keys whose C{container:X} joins another container's namespaces.
NAMESPACE_JOIN_KEYS = ("NetworkMode", "PidMode", "IpcMode")


class ContainerCreate(ContainerLinks):
    """Create, namespace donors and the runtime spec."""

    async def create(
        self,
        name: str | None,
        config: dict[str, Any],
        host_config: dict[str, Any],
        networking_config: dict[str, Any] | None = None,
    ) -> tuple[str, list[str]]:
        """L{create_spec} for callers that hold the wire-shaped sections (the builder's step
        containers): they go through the same parser as a client's body."""
        body = {**config, "HostConfig": host_config, "NetworkingConfig": networking_config}
        return await self.create_spec(name, self.parse_create(body))

    async def create_spec(
        self, name: str | None, spec: CreateSpec, platform: str = ""
    ) -> tuple[str, list[str]]:
        """Create a container the way C{POST /containers/create} does; C{platform} (the query
        parameter) must be the image's.

        @return: (id, warnings).
        @raise InvalidParameter: invalid configuration (dockerd's messages); nothing is created.
        @raise NotFound: the image does not exist.
        @raise Conflict: the name is taken.
        """
        if name:
            if not VALID_NAME.match(name):
                raise InvalidParameter(
                    f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )
            name = name if name.startswith("/") else "/" + name
        # the wire sections are kept to answer inspect; the engine fills in its defaults
        config = runconfig.stored_copy(spec.config)
        hc = runconfig.stored_copy(spec.host_config)
        image_ref = spec.process.image
        if not image_ref:
            raise InvalidParameter("config cannot be empty in order to create a container")
        want = rules.parse_platform(platform) if platform else None
        warnings = list(spec.warnings)
        for key in spec.runtime.sysctls:
            rules.sysctl_name(key)
        self.settings.confinement.check(spec)
        more, discard = honoured.check_create(spec, self.settings.limits)
        warnings += more
        await self._blocking.run(honoured.check_block_devices, spec)
        image: Image = await self._images.resolve(image_ref)
        if want is not None:
            _check_platform(image_ref, image, want)
        config = runconfig.merge_image_defaults(config, image)
        if not runconfig.command_of(config):
            raise InvalidParameter("no command specified")
        config["ExposedPorts"] = _normalise_ports(config.get("ExposedPorts"))
        self._pin_namespace_donors(hc)
        mode = self._networks.canonical_mode(hc.get("NetworkMode") or "default")  # pinned
        if mode == "default":
            mode = "bridge"
        hc["NetworkMode"] = mode
        # the stored sections get dockerd's defaults (inspect shows them)
        hc["RestartPolicy"] = {
            "Name": spec.restart.name,
            "MaximumRetryCount": spec.restart.maximum_retry_count,
        }
        hc["LogConfig"] = self._log_config(spec.logging)
        rules.validate_log_config(hc["LogConfig"])
        if not spec.runtime.shm_size:
            hc["ShmSize"] = self.settings.default_shm_size
        # as dockerd: the runtime it will run under is recorded (inspect shows the name)
        hc["Runtime"] = spec.runtime.runtime or self.default_runtime
        hc.update(discard)  # what this host cannot apply is stored as not set (dockerd)
        _adapt_host_config(hc)
        cid = new_id()
        if not config.get("Hostname"):
            config["Hostname"] = self.settings.host_hostname if mode == "host" else cid[:12]
        netcfg = runconfig.stored_copy(spec.networking_config)
        await self._networks.validate(cid, mode, spec.network)
        bundle = self.bundle_dir(cid)
        c = Container(
            id=cid,
            name=name or "",
            image_id=image.id,
            image_ref=image_ref,
            created_nano=_now_nano(self._clock),
            config=config,
            host_config=hc,
            state=ContainerState(),
            extra={
                "bundle": bundle,
                "hosts_path": os.path.join(bundle, "hosts"),
                "hostname_path": os.path.join(bundle, "hostname"),
                "resolv_conf_path": os.path.join(bundle, "resolv.conf"),
                "log_path": os.path.join(bundle, "ctr.log"),
                "platform": "linux",
                # until the create has made everything (the row comes first: the name is
                # UNIQUE); a restart removes a container that still carries it
                CREATING: True,
                **self._cgroup_extra(cid, spec),
            },
            networking_config=netcfg,
        )
        c = await self._insert(c, generated=not name)
        try:
            # After the name is final (a generated one too): links are named /parent/alias.
            links = self.register_links(c.name, mode, spec.network.links)
            await self._blocking.run(os.makedirs, bundle, 0o700, True)
            image_vols = list((image.container_config.get("Volumes") or {}).keys())
            image_vols += [v for v in (config.get("Volumes") or {}) if v not in image_vols]
            from_mounts = []
            for ref in spec.mounts.volumes_from:
                # dockerd parses each entry before it looks the container up: an empty entry
                # or a bad mode is a 400, not a 404 for a container named "".
                other = self.resolve(parse_volumes_from(ref)[0])
                from_mounts.append(list(other.mounts))
            mounts = await self._volumes.resolve_mounts(cid, spec.mounts, image_vols, from_mounts)
            await self._images.create_rw_layer(cid, image.id)
        except BaseException:
            await self._volumes.release(cid, True)
            await self._repo.remove(cid)
            self._cache.pop(cid, None)
            self._specs.forget(cid)
            await self._blocking.run(shutil.rmtree, bundle, True)
            raise
        extra = {k: v for k, v in c.extra.items() if k != CREATING}
        if links:
            extra["links"] = links
        c = await self._save(attrs.evolve(c, mounts=tuple(mounts), extra=extra))
        self._emit(c, "create")
        return cid, warnings

    def _cgroup_extra(self, cid: str, spec: CreateSpec) -> dict[str, str]:
        """C{--cgroup-parent}, else the daemon's C{cgroup-parent}: the container's cgroup is
        C{<parent>/<id>} (cgroupfs semantics; a relative parent is taken from the cgroup root),
        kept with the container (so stats and top find it whatever the daemon's setting is
        later).

        @raise InvalidParameter: a parent with C{..} components (outside the cgroup root).
        """
        parent = spec.resources.cgroup_parent or self.settings.cgroup_parent
        if not parent:
            return {}
        parts = [p for p in parent.split("/") if p not in ("", ".")]
        if ".." in parts or any(not p.isprintable() for p in parts) or not parts:
            raise InvalidParameter(f"invalid cgroup parent: {parent!r}")
        return {"cgroup_path": "/" + "/".join([*parts, cid])}

    async def _insert(self, c: Container, generated: bool) -> Container:
        if not generated:
            await self._repo.add(c)
            self._cache[c.id] = c
            return c
        for attempt in range(10):
            name = "/" + random_name()
            if attempt >= 3:
                name += str(attempt)
            try:
                await self._repo.add(attrs.evolve(c, name=name))
            except Conflict:
                continue
            c = attrs.evolve(c, name=name)
            self._cache[c.id] = c
            return c
        raise Conflict("could not generate a unique container name")

    def _pin_namespace_donors(self, hc: dict[str, Any]) -> None:
        """Turn C{container:X} (network, pid, ipc) into C{container:<X's full id>}, once.

        X is resolved here, at create, and never again: a name or id prefix could name another
        container by the time of a start (a decoy removed, a prefix now unique), and the rules
        that allowed the join were decided on the container X named at create. dockerd stores
        the id the same way (inspect shows C{container:<id>}).

        @raise InvalidParameter: C{No such container: X}.
        """
        for key in NAMESPACE_JOIN_KEYS:
            mode = hc.get(key)
            if not isinstance(mode, str) or not mode.startswith("container:"):
                continue
            ref = mode.split(":", 1)[1]
            if not ref:
                if key == "NetworkMode":
                    raise InvalidParameter(
                        "invalid network mode: container: needs a container name"
                    )
                raise InvalidParameter(f"invalid {key[:-4].upper()} mode: {mode}")
            try:
                donor = self.resolve(ref)
            except NotFound as e:
                # 400, not 404: the CLI takes a 404 from create for a missing image and pulls.
                raise InvalidParameter(str(e)) from e
            hc[key] = "container:" + donor.id

    def donor(self, ref: str) -> Container:
        """The container a stored C{container:<id>} names: by full id only.

        Values stored by a pyd older than the pinning (a name) are looked up by exact name,
        never by id prefix.

        @raise NotFound: it is gone.
        """
        c = self._cache.get(ref)
        if c is None and not is_full_id(ref):
            name = ref if ref.startswith("/") else "/" + ref
            c = next((x for x in self._cache.values() if x.name == name), None)
        if c is None:
            raise no_such_container(ref)
        return c

    def _namespace_joins(self, s: CreateSpec) -> tuple[str, str, str]:
        """The namespaces C{--pid container:X} and C{--ipc container:X} join (dockerd's checks
        and texts: the donor must exist and run; an IPC donor must be C{shareable})."""
        pid_path = ipc_path = shm_source = ""
        joins = s.namespaces.joins()
        if "pid" in joins:
            donor = self._running_donor(joins["pid"])
            pid_path = f"/proc/{donor.state.pid}/ns/pid"
        if "ipc" in joins:
            donor = self._running_donor(joins["ipc"])
            if self.spec_of(donor).namespaces.ipc != "shareable":
                raise InvalidParameter(
                    f"container {donor.id}: non-shareable IPC "
                    "(hint: use IpcMode:shareable for the donor container)"
                )
            ipc_path = f"/proc/{donor.state.pid}/ns/ipc"
            shm_source = os.path.join(self.bundle_dir(donor.id), "shm")
        return pid_path, ipc_path, shm_source

    def _running_donor(self, ref: str) -> Container:
        try:
            donor = self.donor(ref)
        except NotFound as e:
            raise InvalidParameter(str(e)) from e
        if not donor.state.running or not donor.state.pid:
            raise Conflict(f"container {donor.id} is not running")
        if donor.state.status == "restarting":
            raise Conflict(
                f"Container {donor.id} is restarting, wait until the container is running"
            )
        return donor

    def _prepare_spec(
        self,
        c: Container,
        s: CreateSpec,
        rootfs: str,
        net: NetworkSetup | None,
        link_env: tuple[str, ...] = (),
    ) -> oci.RuntimeSpecInput:
        """Blocking part of a start: users, hosts files, spec input (runs in the io pool)."""
        _check_working_dir(rootfs, s.process.working_dir)
        uid, gid, groups, home = resolve_user(rootfs, s.process.user, list(s.security.group_add))
        hostname = s.process.hostname or c.id[:12]
        bundle = self.bundle_dir(c.id)
        mode = s.namespaces.network or "bridge"
        host_net = mode == "host"
        files = []
        hostname_path = os.path.join(bundle, "hostname")
        _write(hostname_path, hostname + "\n")
        files.append((hostname_path, "/etc/hostname"))
        hosts_path = os.path.join(bundle, "hosts")
        if net is not None and net.hosts_entries:
            # The network layer owns the whole file (base block, ExtraHosts, own address).
            hosts_text = "".join(f"{a}\t{n}\n" for a, n in net.hosts_entries)
        else:
            host_hosts = _read_or(self.settings.host_hosts, "") if host_net else None
            hosts_text = runconfig.render_hosts((), list(s.network.extra_hosts), host_hosts)
        _write(hosts_path, hosts_text)
        files.append((hosts_path, "/etc/hosts"))
        resolv_path = os.path.join(bundle, "resolv.conf")
        host_resolv = _read_or(self.settings.host_resolv_conf, "")
        # Networking already folded --dns in; on user networks it names its own resolver
        # (which forwards to the --dns servers), so its answer comes first.
        dns = list(net.dns_servers if net else ()) or list(s.network.dns) or list(self.settings.dns)
        search = (
            list(s.network.dns_search)
            or list(net.dns_search if net else ())
            or list(self.settings.dns_search)
        )
        opts = (
            list(s.network.dns_options)
            or list(net.dns_options if net else ())
            or list(self.settings.dns_options)
        )
        if net is not None and net.resolv_conf:
            # Networking rendered it as dockerd does (127.0.0.11 on user-defined networks).
            resolvconf.write_file(resolv_path, net.resolv_conf)
        else:
            _write(
                resolv_path,
                runconfig.render_resolv_conf(
                    host_resolv, dns, search, opts, keep_localhost=host_net
                ),
            )
        files.append((resolv_path, "/etc/resolv.conf"))
        env = list(s.process.env)
        keys = {e.split("=", 1)[0] for e in env}
        # Link variables come before the container's own, which override them (moby's
        # CreateDaemonEnvironment then ReplaceOrAppendEnvValues).
        env = [e for e in link_env if e.split("=", 1)[0] not in keys] + env
        if "PATH" not in keys:
            env.insert(0, "PATH=" + rules.DEFAULT_PATH)
        if "HOSTNAME" not in keys:
            env.insert(1, "HOSTNAME=" + hostname)
        if s.process.tty and "TERM" not in keys:
            env.append("TERM=xterm")
        if "HOME" not in keys:
            env.append("HOME=" + (home or "/"))
        sec = s.security
        caps = oci.resolve_caps(
            list(sec.cap_add), list(sec.cap_drop), sec.privileged, self.settings.cap_bounding
        )
        conf = self.settings.confinement
        v2 = self.settings.cgroup_v2
        devices, device_rules = confinement.devices_of(s)
        resources = attrs.evolve(_resources_of(s.resources), block_io=honoured.block_io(s))
        ulimits = tuple(self.ulimits_of(c))
        netns: str | None = ""
        if host_net:
            netns = None
        elif net is not None:
            netns = net.netns_path if net.netns_path is not None else None
        init_path = ""
        # HostConfig.Init, else the daemon's init; only in a PID namespace of its own, where
        # the init is PID 1 (dockerd: not with --pid host or container:X)
        wants_init = s.runtime.init if s.runtime.init is not None else self.settings.init
        if wants_init and s.namespaces.pid in ("", "private"):
            init_path = self.settings.init_path
            if not init_path:
                raise InvalidParameter("--init requested but no init binary (tini) is installed")
        args = [*(s.process.entrypoint or ()), *(s.process.cmd or ())]
        return oci.RuntimeSpecInput(
            args=tuple(args),
            env=tuple(env),
            cwd=s.process.working_dir or "/",
            uid=uid,
            gid=gid,
            additional_gids=groups,
            terminal=s.process.tty,
            hostname=hostname,
            domainname=s.process.domainname,
            rootfs=rootfs,
            readonly_rootfs=sec.readonly_rootfs,
            mounts=tuple(c.mounts),
            bind_files=tuple(files),
            netns_path=netns,
            ipc_host=s.namespaces.ipc == "host",
            pid_host=s.namespaces.pid == "host",
            uts_host=s.namespaces.uts == "host",
            resources=resources,
            cgroups_path=self.cgroup_path_of(c),
            caps=caps,
            privileged=sec.privileged,
            ulimits=ulimits,
            sysctls=tuple(s.runtime.sysctls.items()),
            no_new_privileges=conf.no_new_privileges_of(sec),
            init_path=init_path,
            shm_size=s.runtime.shm_size or rules.DEFAULT_SHM,
            seccomp=conf.seccomp_of(sec, caps),
            oom_score_adj=(s.runtime.oom_score_adj or None),
            masked_paths=sec.masked_paths,
            readonly_paths=sec.readonly_paths,
            devices=tuple(devices),
            device_rules=tuple(device_rules),
            writable_cgroups=conf.writable_cgroups(sec),
            annotations=tuple(s.runtime.annotations.items()),
            console_size=s.runtime.console_size if s.process.tty else (0, 0),
            cgroupns_private=(s.namespaces.cgroupns or ("private" if v2 else "host")) == "private",
        )


def _check_working_dir(rootfs: str, working_dir: str) -> None:
    """dockerd's start refuses a working directory that is something else than a directory in
    the container (its SetupWorkingDirectory; the runtime would say it in its own words). A
    missing one is made by the runtime, as dockerd makes it.

    @raise SystemError_: C{Cannot mkdir: <dir> is not a directory} (dockerd's 500).
    """
    if not working_dir:
        return
    with InRoot(rootfs) as root:
        try:
            mode = root.stat(working_dir).st_mode
        except OSError:
            return
    if not stat.S_ISDIR(mode):
        raise SystemError_(f"Cannot mkdir: {working_dir} is not a directory")


def _check_platform(ref: str, image: Image, want: tuple[str, str, str]) -> None:
    """moby daemon/images/image.go GetImage with a platform: the image must be of it (a
    variant is compared when both name one)."""
    cfg = image.config
    have = rules.parse_platform(
        "/".join(
            p
            for p in (
                str(cfg.get("os") or "linux"),
                str(cfg.get("architecture") or "amd64"),
                str(cfg.get("variant") or ""),
            )
            if p
        )
    )
    if have[:2] != want[:2] or (want[2] and have[2] and want[2] != have[2]):
        raise NotFound(
            f"image with reference {ref} was found but does not match the specified platform: "
            f"wanted {rules.format_platform(*want)}, actual: {rules.format_platform(*have)}"
        )


def _adapt_host_config(hc: dict[str, Any]) -> None:
    """Fill in what dockerd stores for a field the create left unset, so that inspect shows it
    as dockerd does: moby 28 daemon/daemon_unix.go adaptContainerSettings (swap twice the memory
    limit, the IPC mode, the OOM killer off, SELinux labels disabled
    for a privileged or host-namespace container) and daemon/create_unix.go (the default masked
    and read-only paths of an unprivileged container). Each is what the runtime spec applies
    for the unset field already. The cgroup namespace mode is not stored (the operator rules
    would read a stored "host" as a request for the host's): inspect shows the default."""
    memory = hc.get("Memory") or 0
    if memory > 0 and not hc.get("MemorySwap"):
        hc["MemorySwap"] = memory * 2
    if not hc.get("IpcMode"):
        hc["IpcMode"] = "private"
    privileged = bool(hc.get("Privileged"))
    opts = list(hc.get("SecurityOpt") or ())
    if not any(o.split("=", 1)[0] == "label" for o in opts) and (
        privileged or hc.get("IpcMode") == "host" or hc.get("PidMode") == "host"
    ):
        hc["SecurityOpt"] = [*opts, "label=disable"]
    if hc.get("OomKillDisable") is None:
        hc["OomKillDisable"] = False
    if not privileged:
        if hc.get("MaskedPaths") is None:
            hc["MaskedPaths"] = list(oci.MASKED_PATHS)
        if hc.get("ReadonlyPaths") is None:
            hc["ReadonlyPaths"] = list(oci.READONLY_PATHS)
