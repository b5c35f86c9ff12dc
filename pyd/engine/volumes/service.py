"""The volume service (layer: engine): the volume API (create, ls, inspect, rm, prune, df rows) and
the container mounts of L{pyd.engine.contracts.VolumeProvider}: named and anonymous volumes made
or found, copy-up of the image's content, bind sources, mounts released when a container stops.
Volume rules follow moby's C{daemon/volume/service}.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from twisted.logger import Logger

from pyd.core.errors import (
    Conflict,
    InvalidParameter,
    NotFound,
    PydError,
    SystemError_,
)
from pyd.core.ids import go_quote, new_id
from pyd.core.locks import KeyedLock
from pyd.core.records import MountSpec, Volume
from pyd.core.seams import EventSink
from pyd.drivers.volumes.local import LocalVolumeDriver, Unlinked, VolumeDriverError
from pyd.drivers.volumes.stage import SubpathError, clean_subpath
from pyd.engine.spec import (
    MountRequest,
    mount_request,
)
from pyd.engine.volumes import confine
from pyd.engine.volumes.checks import (
    DEFAULT_DRIVER,
    NAME_RE,
    check_driver,
    check_name,
    check_options,
)
from pyd.engine.volumes.filters import _bool_filter, _label_filters_match, _name_match
from pyd.engine.volumes.mounts import (
    _clean,
    _go_bool,
    _Pending,
    _read_write,
    _sort_key,
    _tmpfs_spec,
    host_path,
    needs_mount,
    parse_bind,
    parse_mount,
    parse_volumes_from,
    validate_tmpfs_destination,
)
from pyd.state.volumes import VolumeRepository, in_use_message

log = Logger()


ANONYMOUS_LABEL = "com.docker.volume.anonymous"


class _DirectoryFailed(Exception):
    """A volume's directories could not be made (on the DB thread, before its row)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


_LIST_FILTERS = {"dangling", "name", "driver", "label"}


_PRUNE_FILTERS = {"label", "label!", "all"}


# What a copy-up meets when a container sharing the volume renames or replaces what it writes.
_CHANGED_DURING_COPY = frozenset(
    (errno.ENOENT, errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.ENOTEMPTY,
     errno.EXDEV)
)  # fmt: skip


@attrs.frozen
class VolumeUsage:
    """A volume with its disk usage, for C{docker system df -v}."""

    volume: Volume
    size: int
    ref_count: int


class VolumeService:
    """Volume rules: creation, lookup, removal, prune, mounts of containers."""

    def __init__(
        self,
        repo: VolumeRepository,
        driver: LocalVolumeDriver,
        events: EventSink,
    ) -> None:
        self._repo = repo
        self._driver = driver
        self._events = events
        self._locks = KeyedLock()  # one per volume name
        self._pruning = False
        # volume name -> containers that prepared it and have not been seen stopping
        self._active: dict[str, set[str]] = {}

    def _emit(self, action: str, name: str, attributes: dict[str, str]) -> None:
        """Record a volume event without waiting for it: the DB thread stores it in order,
        before any later request's read, and the reply need not wait for the round trip."""
        d = self._events.emit("volume", action, name, attributes)
        d.addErrback(lambda f: log.failure("volume event {action} not stored", f, action=action))

    # --- start-up ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Finish interrupted removals; adopt volume directories whose row a crash lost, and make
        the directory of a row that has none again."""
        staged = await self._driver.sweep_staged()
        if staged:
            log.info("removed the subpath staging mounts of {n} containers", n=staged)
        swept = await self._driver.sweep_trash()
        if swept:
            log.info("finished {n} interrupted volume removals", n=swept)
        rows = await self._repo.all()
        known = {v.name for v in rows}
        scanned = await self._driver.scan()
        on_disk = {found.name for found in scanned}
        for vol in rows:
            if vol.driver == DEFAULT_DRIVER and vol.name not in on_disk:
                # A new volume's directory is not fsynced before its row commits (it was empty):
                # after a power loss that dropped it, the volume is made again, empty.
                await self._driver.create(vol.name, vol.options)
                log.warn("made the missing directory of volume {name} again", name=vol.name)
        for found in scanned:
            if found.name in known or not NAME_RE.match(found.name):
                continue
            vol = Volume(
                name=found.name,
                driver=DEFAULT_DRIVER,
                mountpoint=self._driver.data_path(found.name),
                created=found.created,
                labels=None,
                options=found.options,
            )
            await self._repo.get_or_add(vol)
            log.warn("adopted volume directory {name} that had no record", name=found.name)

    # --- the volume API ------------------------------------------------------------------------

    async def create(
        self,
        name: str = "",
        driver: str = "",
        options: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        bind_roots: Sequence[str] | None = None,
    ) -> Volume:
        """C{POST /volumes/create}: a new volume, or the existing one of that name.

        Without a name the volume gets a 64-hex name and the anonymous label (as dockerd).

        @param bind_roots: an operator's allowed-bind-paths: a bind volume's device is confined
            beneath the one it lies under (L{confine}); None (an admin's) follows it by name.
        @raise NotFound: a driver other than C{local}.
        @raise InvalidParameter: bad name or options.
        """
        vol, _ = await self._get_or_create(name, driver, options, labels, bind_roots)
        return vol

    async def _get_or_create(
        self,
        name: str,
        driver: str,
        options: Mapping[str, str] | None,
        labels: Mapping[str, str] | None,
        bind_roots: Sequence[str] | None = None,
    ) -> tuple[Volume, bool]:
        anonymous = not name
        if anonymous:
            name = new_id()
            lab = dict(labels or {})
            lab[ANONYMOUS_LABEL] = ""
            labels = lab
        check_driver(name, driver)
        check_name(name)

        async def locked() -> tuple[Volume, bool]:
            existing = await self._repo.get(name)
            if existing is not None:
                return existing, False
            check_options(name, options)
            vol = Volume(
                name=name,
                driver=DEFAULT_DRIVER,
                mountpoint=self._driver.data_path(name),
                created=0,
                labels=None if labels is None else dict(labels),
                options=None if options is None else dict(options),
                anonymous=anonymous,
            )
            # stored with the row (one round trip; no DB work left to slow the next request)
            event = self._events.stage("volume", "create", name, {"driver": DEFAULT_DRIVER})
            if options:
                # confined and made on the io threads (a bind device, an fsynced opts.json)
                confined = await confine.volume_device(self._driver, options, bind_roots)
                try:
                    created = await self._driver.create(name, options)
                except OSError as e:
                    raise self._create_failed(name, e) from e
                vol = attrs.evolve(
                    vol, created=created, bind_root=confined[0], bind_subpath=confined[1]
                )
                stored, made = await self._repo.get_or_add(vol, event.write)
            else:
                # a plain volume's directories are made on the DB thread, right before its row:
                # one thread hop for the whole create
                try:
                    stored, made = await self._repo.get_or_add(vol, event.write, self._made)
                except _DirectoryFailed as e:
                    raise self._create_failed(name, e.error) from e.error
            if made:
                event.publish()
            return stored, made

        result: tuple[Volume, bool] = await self._locks.run(name, locked)
        return result

    def _made(self, vol: Volume) -> Volume:
        """C{vol} with its directories made (blocking: called on the DB thread)."""
        try:
            created = self._driver.make_now(vol.name)
        except OSError as e:  # told apart from the database's own errors
            raise _DirectoryFailed(e) from e
        return attrs.evolve(vol, created=created)

    def _create_failed(self, name: str, e: OSError) -> SystemError_:
        return SystemError_(
            f"create {name}: error while creating volume path "
            f"'{self._driver.volume_dir(name)}': {e.strerror or e}"
        )

    async def inspect(self, name: str) -> Volume:
        """C{GET /volumes/NAME}. @raise NotFound: C{get NAME: no such volume}."""
        vol = await self._repo.get(name)
        if vol is None:
            raise NotFound(f"get {name}: no such volume")
        return vol

    async def list_volumes(self, filters: Mapping[str, list[str]] | None = None) -> list[Volume]:
        """C{GET /volumes} with filters dangling, driver, label, name."""
        filters = dict(filters or {})
        for key in filters:
            if key not in _LIST_FILTERS:
                raise InvalidParameter(f"invalid filter '{key}'")
        dangling = _bool_filter(filters, "dangling")
        vols = await self._repo.all()
        refs = await self._repo.ref_counts() if dangling is not None else {}
        out = []
        for v in vols:
            if filters.get("driver") and v.driver not in filters["driver"]:
                continue
            if "name" in filters and not _name_match(filters["name"], v.name):
                continue
            if not _label_filters_match(filters, v.labels):
                continue
            if dangling is not None and (refs.get(v.name, 0) == 0) != dangling:
                continue
            out.append(v)
        return out

    async def remove(self, name: str, force: bool = False) -> None:
        """C{DELETE /volumes/NAME}.

        @raise NotFound: C{get NAME: no such volume} (not with C{force}).
        @raise Conflict: C{remove NAME: volume is in use - [ids]}, even with C{force}.
        """

        async def locked() -> None:
            vol = await self._repo.get(name)
            if vol is None:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            if needs_mount(vol):
                # Refused before anything is unmounted under a container that uses it; a plain
                # volume is left to the delete's own check (same transaction as the delete),
                # which saves a round trip per `docker volume rm`.
                refs = await self._repo.refs(name)
                if refs:
                    raise Conflict(in_use_message(name, refs))
                if await self._driver.is_mounted(name):
                    try:
                        await self._driver.unmount(name)
                    except VolumeDriverError as e:
                        raise SystemError_(f"remove {name}: {e}") from e
            # The event is stored with the row's deletion (one round trip): from then on the
            # volume is gone from every read, whatever becomes of its directory. A plain
            # volume's directory is renamed away on the DB thread right after the commit (one
            # thread hop); only content left to delete takes the io threads.
            event = self._events.stage("volume", "destroy", name, {"driver": vol.driver})
            unlinked: Unlinked | Exception | None = None
            if needs_mount(vol):
                deleted = await self._repo.delete(name, event.write)
            else:
                deleted, unlinked = await self._repo.delete_then(
                    name, lambda v: self._driver.unlink_now(v.name), event.write
                )
            if deleted is None:
                return
            self._active.pop(name, None)
            event.publish()
            try:
                if needs_mount(vol):
                    await self._driver.remove(name)
                elif isinstance(unlinked, Exception):
                    raise unlinked
                elif unlinked is not None and unlinked.empty:
                    # nothing in it to wait for: its two rmdirs run after the answer
                    self._driver.purge(unlinked.trash).addErrback(
                        lambda f: log.failure("volume {name} directory not deleted", f, name=name)
                    )
                elif unlinked is not None:
                    await self._driver.purge(unlinked.trash)
            except (OSError, VolumeDriverError) as e:
                # The row is gone; the directory is adopted again at the next start.
                if not force:
                    raise SystemError_(f"remove {name}: {e}") from e
                log.warn("could not delete volume directory {name}: {err}", name=name, err=e)

        await self._locks.run(name, locked)

    async def prune(self, filters: Mapping[str, list[str]] | None = None) -> tuple[list[str], int]:
        """C{POST /volumes/prune}: unused local volumes without mount options; anonymous only
        unless C{all=true} (the router adds that for API < 1.42).

        @return: (deleted names, bytes reclaimed).
        """
        filters = {k: list(v) for k, v in (filters or {}).items()}
        for key in filters:
            if key not in _PRUNE_FILTERS:
                raise InvalidParameter(f"invalid filter '{key}'")
        if self._pruning:
            raise Conflict("a prune operation is already running")
        all_values = filters.pop("all", [])
        prune_all = False
        if len(all_values) > 1:
            raise InvalidParameter(
                f"invalid filter 'all=[{' '.join(all_values)}]': only one value is expected"
            )
        if len(all_values) == 1:
            parsed = _go_bool(all_values[0])
            if parsed is None:
                raise InvalidParameter(
                    f"invalid filter 'all': strconv.ParseBool: parsing "
                    f"{go_quote(all_values[0])}: invalid syntax"
                )
            prune_all = parsed
        if not prune_all:
            filters.setdefault("label", []).append(ANONYMOUS_LABEL)
        self._pruning = True
        try:
            refs = await self._repo.ref_counts()
            deleted: list[str] = []
            reclaimed = 0
            for v in await self._repo.all():
                if v.driver != DEFAULT_DRIVER or refs.get(v.name) or v.options:
                    continue
                if not _label_filters_match(filters, v.labels):
                    continue
                size = await self._driver.size(v.name)
                try:
                    await self.remove(v.name)
                except PydError as e:
                    log.warn("could not remove volume {name}: {err}", name=v.name, err=e)
                    continue
                reclaimed += max(size, 0)
                deleted.append(v.name)
            self._emit("prune", "", {"reclaimed": str(reclaimed)})
            return deleted, reclaimed
        finally:
            self._pruning = False

    async def usage(self) -> list[VolumeUsage]:
        """Local volumes without mount options, with size and reference count (df)."""
        refs = await self._repo.ref_counts()
        out = []
        for v in await self._repo.all():
            if v.driver != DEFAULT_DRIVER or v.options:
                continue
            out.append(VolumeUsage(v, await self._driver.size(v.name), refs.get(v.name, 0)))
        return out

    async def bind_root(self, path: str, roots: Sequence[str]) -> tuple[str, str] | None:
        """The allowed root holding host C{path} (symlinks resolved) and its path beneath it;
        None: under none of C{roots}. Resolved on the driver's pool, never on the reactor."""
        found: tuple[str, str] | None = await self._driver.confine(path, tuple(roots))
        return found

    # --- VolumeProvider -------------------------------------------------------------------------

    async def resolve_mounts(
        self,
        container_id: str,
        req: MountRequest,
        image_volumes: Sequence[str],
        volumes_from: Sequence[Sequence[MountSpec]] = (),
    ) -> list[MountSpec]:
        """Parse every mount source of a create request, create the volumes, record the uses.

        Follows dockerd's order: validation of Mounts and Tmpfs, then --volumes-from, Binds
        (which override volumes-from), Mounts, the anonymous volumes of the image and of
        C{-v /path}, and the C{--tmpfs} mounts.
        """
        tmpfs = req.tmpfs
        raw_mounts = req.mounts
        volume_driver = req.volume_driver
        # 1. validation that dockerd does before anything is created
        sources = [m.source for m in raw_mounts if m.type == "bind"]
        existing = {s: await self._driver.exists(s) for s in sources if s.startswith("/")}
        parsed_mounts = [parse_mount(m, lambda s: existing.get(s, False)) for m in raw_mounts]
        for dest in tmpfs:
            validate_tmpfs_destination(str(dest))
        tmpfs_dests = {_clean(str(d)) for d in tmpfs}

        points: dict[str, _Pending] = {}
        # 2. --volumes-from
        for i, spec in enumerate(req.volumes_from):
            _ref, mode = parse_volumes_from(spec)
            rw_ok = _read_write(mode)
            for m in volumes_from[i] if i < len(volumes_from) else ():
                if not m.listed:
                    continue
                points[m.destination] = _Pending(
                    m.type,
                    m.destination,
                    rw=m.rw and rw_ok,
                    source=m.name if m.type == "volume" else m.source,
                    mode=m.mode,
                    propagation=m.propagation,
                    options=m.options,
                    driver=m.driver,
                    existing=m,
                )
        # 3. Binds
        bound: set[str] = set()
        for raw in req.binds:
            p = parse_bind(raw, volume_driver)
            if p.destination in bound or p.destination in tmpfs_dests:
                raise InvalidParameter(f"Duplicate mount point: {p.destination}")
            if p.type == "volume" and p.source:
                check_driver(p.source, p.driver)
                check_name(p.source)
            bound.add(p.destination)
            points[p.destination] = p
        # 4. Mounts
        for wire, p in zip(raw_mounts, parsed_mounts, strict=True):
            if p.destination in bound:
                raise InvalidParameter(f"Duplicate mount point: {wire.target}")
            if p.type == "volume":
                check_driver(p.source, p.driver)
                if p.source:
                    check_name(p.source)
                    check_options(p.source, p.volume_options)
            bound.add(p.destination)
            points[p.destination] = p
        # 5. anonymous volumes: image VOLUME and -v /path
        for raw_dest in image_volumes:
            dest = _clean(str(raw_dest))
            if dest in points or dest in tmpfs_dests:
                continue
            points[dest] = _Pending("volume", dest, mode="", copy_up=True, driver=volume_driver)

        # side effects from here on; anonymous volumes made here go again if anything fails
        made: list[str] = []
        try:
            specs = await self._materialise(container_id, points, tmpfs, made, req.bind_roots)
        except BaseException:
            for name in made:
                try:
                    await self.remove(name, force=True)
                except PydError as e:
                    log.warn("could not remove volume {name}: {err}", name=name, err=e)
            raise
        specs.sort(key=_sort_key)
        return specs

    async def _materialise(
        self,
        container_id: str,
        points: dict[str, _Pending],
        tmpfs: Mapping[str, Any],
        made: list[str],
        bind_roots: Sequence[str] | None = None,
    ) -> list[MountSpec]:
        specs: list[MountSpec] = []
        uses: list[tuple[str, str]] = []
        for p in points.values():
            if p.type == "volume":
                if p.existing is not None:
                    vol = await self.inspect(p.source)
                    spec = attrs.evolve(p.existing, rw=p.rw, copy_up=False)
                else:
                    vol, created = await self._get_or_create(
                        p.source, p.driver, p.volume_options, p.volume_labels, bind_roots
                    )
                    if created and vol.anonymous:
                        made.append(vol.name)
                    spec = MountSpec(
                        type="volume",
                        source=vol.mountpoint,
                        destination=p.destination,
                        rw=p.rw,
                        name=vol.name,
                        driver=vol.driver,
                        mode=p.mode,
                        propagation="",
                        options=p.options,
                        copy_up=p.copy_up,
                        subpath=clean_subpath(p.subpath) if p.subpath else "",
                    )
                uses.append((vol.name, p.destination))
                specs.append(spec)
            elif p.type == "bind":
                if p.existing is not None:
                    specs.append(attrs.evolve(p.existing, rw=p.rw))
                    continue
                spec = MountSpec(
                    type="bind",
                    source=p.source,
                    destination=p.destination,
                    rw=p.rw,
                    mode=p.mode,
                    propagation=p.propagation,
                    options=p.options,
                )
                if bind_roots is not None:  # an operator's: confined beneath its allowed root
                    root, rel = await confine.confine(self._driver, p.source, bind_roots)
                    spec = attrs.evolve(spec, root=root, subpath=rel)
                if p.create_source and spec.root:
                    await confine.ensure_source(self._driver, spec)
                elif p.create_source:
                    await self._driver.ensure_dir(p.source)
                specs.append(spec)
            elif p.existing is not None:
                specs.append(attrs.evolve(p.existing, rw=p.rw))
            else:
                specs.append(
                    MountSpec(
                        type="tmpfs",
                        source="",
                        destination=p.destination,
                        rw=p.rw,
                        options=p.options,
                        listed=p.listed,
                    )
                )
        for dest, data in tmpfs.items():
            t = _tmpfs_spec(_clean(str(dest)), [o for o in str(data or "").split(",") if o], False)
            specs.append(
                MountSpec(
                    type="tmpfs",
                    source="",
                    destination=t.destination,
                    rw=t.rw,
                    options=t.options,
                    listed=False,
                )
            )
        if uses:
            await self._repo.add_uses(container_id, uses)
        return specs

    async def prepare(
        self, container_id: str, mounts: Sequence[MountSpec], rootfs: str
    ) -> list[MountSpec]:
        """Before a start: mount volumes that have mount options, copy image content into empty
        volumes (unless nocopy), mount volume subpaths by descriptor on private staging points,
        and emit the C{mount} events.

        @return: C{mounts} as the runtime gets them: a subpath volume's source is its staging
            point (the subpath opened once inside the volume, never a name a container could
            swap); everything else as given.
        @raise InvalidParameter: a subpath that leaves its volume (dockerd's text).
        @raise NotFound: a subpath that does not exist.
        """
        # a failed earlier start (or a crash) may have left staging points behind
        if _may_stage(mounts):
            await self._driver.release_staged(container_id)
        try:
            return await self._prepare(container_id, mounts, rootfs)
        except BaseException:
            await self._driver.release_staged(container_id)
            raise

    async def _prepare(
        self, container_id: str, mounts: Sequence[MountSpec], rootfs: str
    ) -> list[MountSpec]:
        if any(m.type == "bind" for m in mounts):
            await self._create_bind_sources(container_id, mounts)
        out: list[MountSpec] = []
        for index, m in enumerate(mounts):
            if m.type == "bind" and m.root:
                out.append(await confine.stage(self._driver, container_id, index, m))
                continue
            if m.type != "volume":
                out.append(m)
                continue
            if rootfs:
                existing_file = await self._driver.file_in_rootfs(rootfs, m.destination)
                if existing_file:
                    raise InvalidParameter(
                        "cannot mount volume over existing file, file exists " + existing_file
                    )
            vol = await self.inspect(m.name)

            async def locked(vol: Volume = vol, m: MountSpec = m, index: int = index) -> str:
                if needs_mount(vol) and not await self._driver.is_mounted(vol.name):
                    o = vol.options or {}
                    try:
                        if vol.bind_root:
                            await confine.mount_volume(self._driver, vol)
                        else:
                            await self._driver.mount(
                                vol.name, o.get("type", ""), o.get("device", ""), o.get("o", "")
                            )
                    except VolumeDriverError as e:
                        raise SystemError_(
                            f"error while mounting volume '{vol.mountpoint}': {e}"
                        ) from e
                self._active.setdefault(vol.name, set()).add(container_id)
                if m.copy_up and rootfs:
                    try:
                        await self._driver.populate(rootfs, m.destination, vol.mountpoint)
                    except OSError as e:
                        if e.errno in _CHANGED_DURING_COPY:
                            # another container using the volume changed it under the copy
                            raise Conflict(
                                "failed to populate volume: the volume changed during the copy"
                            ) from e
                        reason = (e.strerror or "error").lower()
                        raise SystemError_(f"failed to populate volume: {reason}") from e
                if not m.subpath:
                    return ""
                try:
                    staged: str = await self._driver.stage_subpath(
                        container_id, index, vol.name, m.subpath, "bind" not in m.options
                    )
                except SubpathError as e:
                    raise confine.subpath_error(e) from None
                return staged

            staged: str = await self._locks.run(vol.name, locked)
            out.append(attrs.evolve(m, source=staged) if staged else m)
            self._emit(
                "mount",
                vol.name,
                {
                    "driver": vol.driver,
                    "container": container_id,
                    "destination": m.destination,
                    "read/write": "true" if m.rw else "false",
                    "propagation": m.propagation,
                },
            )
        return out

    async def _create_bind_sources(self, container_id: str, mounts: Sequence[MountSpec]) -> None:
        """Like dockerd at every start: a missing C{-v /host:/path} source (or a C{--mount}
        bind with CreateMountpoint) is created as a directory; other missing sources are not."""
        req = mount_request(await self._repo.host_config(container_id))
        creatable: set[str] = set()
        for raw in req.binds:
            try:
                p = parse_bind(raw)
            except InvalidParameter:
                continue
            if p.type == "bind":
                creatable.add(p.source)
        for wire in req.mounts:
            if wire.bind is not None and wire.bind.create_mountpoint:
                creatable.add(host_path(wire.source))
        for m in mounts:
            if m.type != "bind" or m.source not in creatable:
                continue
            if m.root:
                await confine.ensure_source(self._driver, m)
            elif not await self._driver.exists(m.source):
                await self._driver.ensure_dir(m.source)

    async def unstage(self, container_id: str) -> None:
        """The runtime holds its own copies of the container's mounts (or the start failed):
        detach and remove the subpath staging points. Idempotent; a failure is logged, never
        fails the start (the next start, removal or daemon start tries again)."""
        try:
            await self._driver.release_staged(container_id)
        except OSError as e:
            log.warn("could not remove the staging mounts of {cid}: {err}", cid=container_id, err=e)

    async def container_stopped(self, container_id: str) -> None:
        """The container stopped: emit C{unmount} per volume and unmount volume filesystems no
        running container uses any more. Idempotent.

        Subpath staging points are not touched here: they went when the runtime created the
        container (L{unstage}), and a die event handled late must not take those of a restart.
        """
        seen: set[str] = set()
        for name, _dest in await self._repo.uses_of(container_id):
            if name in seen:
                continue
            seen.add(name)
            active = self._active.get(name)
            if active is not None:
                active.discard(container_id)
            vol = await self._repo.get(name)
            if vol is None:
                continue
            self._emit("unmount", name, {"driver": vol.driver, "container": container_id})
            await self._maybe_unmount(vol, container_id)

    async def _maybe_unmount(self, vol: Volume, leaving: str) -> None:
        if not needs_mount(vol):
            return

        async def locked() -> None:
            others = set(await self._repo.active_users(vol.name, exclude=leaving))
            others |= self._active.get(vol.name, set()) - {leaving}
            if others or not await self._driver.is_mounted(vol.name):
                return
            try:
                await self._driver.unmount(vol.name)
            except VolumeDriverError as e:
                log.warn("{err}", err=e)

        await self._locks.run(vol.name, locked)

    async def release(
        self,
        container_id: str,
        remove_anonymous: bool,
        mounts: Sequence[MountSpec] | None = None,
    ) -> None:
        """On container removal: forget its uses, unmount what nothing uses any more, and delete
        its anonymous volumes when asked (those another container uses stay)."""
        if _may_stage(mounts):
            await self._driver.release_staged(container_id)
        if mounts is not None and not any(m.type == "volume" for m in mounts):
            # Every use row has a volume MountSpec in the saved mounts (written after the uses
            # by create; a create cut short passes None): nothing to forget, and the round trip
            # would cost a bulk `docker rm` one of its six per container.
            return
        names = await self._repo.remove_uses(container_id)
        for name in names:
            active = self._active.get(name)
            if active is not None:
                active.discard(container_id)
            vol = await self._repo.get(name)
            if vol is None:
                continue
            await self._maybe_unmount(vol, container_id)
            if remove_anonymous and vol.anonymous:
                try:
                    await self.remove(name)
                except Conflict:
                    pass  # another container uses it: an implementation detail, as in dockerd
                except PydError as e:
                    log.warn("could not remove volume {name}: {err}", name=name, err=e)


def _may_stage(mounts: Sequence[MountSpec] | None) -> bool:
    """Whether a container's mounts can have staging points (a volume subpath, a confined
    bind); None (mounts not saved yet) may. Without any, the staging area's io round trip is
    skipped at start and removal."""
    return mounts is None or any(m.subpath or m.root for m in mounts)
