"""Volumes and container mounts: dockerd's rules (layer: engine).

C{mounts} parses what a container asks to mount (C{-v}, C{--mount}, C{--tmpfs}, C{--volumes-from})
with moby's C{daemon/volume/mounts/linux_parser.go} rules and texts; C{service} holds
L{VolumeService}: the volume API (create, ls, inspect, rm, prune, the rows of C{docker system df})
and L{pyd.engine.contracts.VolumeProvider} for the container service (resolve, prepare, release).
"""

from pyd.engine.volumes.checks import DEFAULT_DRIVER
from pyd.engine.volumes.mounts import (
    host_path,
    invalid_spec,
    is_host_path,
    merge_tmpfs_options,
    needs_mount,
    parse_bind,
    parse_mount,
    parse_volumes_from,
    tmpfs_options,
    validate_tmpfs_destination,
)
from pyd.engine.volumes.service import ANONYMOUS_LABEL, VolumeService, VolumeUsage

__all__ = [
    "ANONYMOUS_LABEL",
    "DEFAULT_DRIVER",
    "VolumeService",
    "VolumeUsage",
    "host_path",
    "invalid_spec",
    "is_host_path",
    "merge_tmpfs_options",
    "needs_mount",
    "parse_bind",
    "parse_mount",
    "parse_volumes_from",
    "tmpfs_options",
    "validate_tmpfs_destination",
]
