"""Host binds confined beneath the allowed-bind-paths directory they were admitted under
(layer: engine).

An operator may bind host paths under C{allowed-bind-paths} only, and may also write there
(through such a bind): between the check at create and the mount at start, C{x} can become
C{x -> /}. So an operator's bind is never followed by name after admission: create records the
allowed root and the path beneath it (L{pyd.core.records.MountSpec.root}/C{subpath}); every start
opens that path beneath the root (C{RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS}: a link that leaves the
root is refused) and mounts it by descriptor on a staging point (L{pyd.drivers.volumes.stage}),
and a missing source is created beneath the root. The cp helper's view of a stopped container
clones the same path the same way. An operator's bind volume (C{type=none,o=bind,device=...})
records its device's root at create (L{pyd.core.records.Volume.bind_root}) and is mounted on its
C{_data} by descriptor the same way. An admin's binds and volumes keep dockerd's behaviour
(followed by name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from pyd.core.errors import Forbidden, InvalidParameter, NotFound, PydError
from pyd.core.records import MountSpec, Volume
from pyd.drivers.volumes.stage import SubpathError


def subpath_error(e: SubpathError) -> PydError:
    """The client's error for a path that leaves its root (400) or is missing (404)."""
    if e.kind == "escape":
        return InvalidParameter(e.message)
    return NotFound(e.message)


async def confine(driver: Any, source: str, roots: Sequence[str]) -> tuple[str, str]:
    """The allowed root of an operator's bind C{source} and its path beneath it.

    @raise Forbidden: C{source} is under none of C{roots} (any more: it changed since the check).
    """
    found: tuple[str, str] | None = await driver.confine(source, tuple(roots))
    if found is None:
        raise Forbidden(f"bind-mount host path {source} (not under allowed-bind-paths)")
    return found


async def ensure_source(driver: Any, m: MountSpec) -> None:
    """Create a missing confined bind source as a directory, beneath its root.

    @raise InvalidParameter: a link on the way leaves the root.
    """
    try:
        await driver.ensure_dir_beneath(m.root, m.subpath)
    except SubpathError as e:
        raise subpath_error(e) from None


async def stage(driver: Any, container_id: str, index: int, m: MountSpec) -> MountSpec:
    """C{m} with its source opened beneath its root and mounted on a staging point.

    @raise InvalidParameter: the source now leaves its root (a link swapped in since create).
    @raise NotFound: the source is missing.
    """
    try:
        staged: str = await driver.stage_beneath(
            container_id, index, m.root, m.subpath, "bind" not in m.options
        )
    except SubpathError as e:
        raise subpath_error(e) from None
    return attrs.evolve(m, source=staged)


def _o_keys(options: Mapping[str, str]) -> set[str]:
    return {o.strip().split("=", 1)[0] for o in str(options.get("o") or "").split(",")}


async def volume_device(
    driver: Any, options: Mapping[str, str] | None, roots: Sequence[str] | None
) -> tuple[str, str]:
    """For an operator's bind volume (C{o=bind}/C{rbind}), the allowed root of its device and
    the path beneath it; C{("", "")} for any other volume or an admin's.

    @raise Forbidden: the device is under none of C{roots}.
    """
    if roots is None or not options or not _o_keys(options) & {"bind", "rbind"}:
        return "", ""
    return await confine(driver, str(options.get("device") or ""), roots)


async def mount_volume(driver: Any, vol: Volume) -> None:
    """Mount a confined bind volume's device, opened beneath its root, on its C{_data}.

    @raise InvalidParameter: the device now leaves its root; NotFound: it is missing.
    """
    keys = _o_keys(vol.options or {})
    try:
        await driver.mount_beneath(
            vol.name,
            vol.bind_root,
            vol.bind_subpath,
            recursive="rbind" in keys,
            flags=frozenset(keys & {"ro", "nosuid", "nodev", "noexec"}),
        )
    except SubpathError as e:
        raise subpath_error(e) from None
