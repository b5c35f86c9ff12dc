"""The engine's door for container creation: one typed create spec (layer: engine).

L{parse_create} turns C{Config}/C{HostConfig}/C{NetworkingConfig} (API 1.24-1.50) into a frozen
L{CreateSpec} with dockerd's validation texts; C{fields.FIELDS} says which wire field lands
where, C{fields.UNPARSED} and C{fields.NOT_APPLIED} what is read but not (yet) acted on.
"""

from pyd.engine.spec.fields import FIELDS, NOT_APPLIED, UNPARSED, given_fields
from pyd.engine.spec.parse import (
    endpoint_of,
    endpoint_settings,
    main_network,
    mount_of,
    mount_request,
    network_request,
    parse_connect,
    parse_create,
    parse_endpoint,
    parse_update,
    resources_of,
    stored_spec,
)
from pyd.engine.spec.records import (
    BindOptions,
    CreateSpec,
    EndpointRequest,
    Mount,
    MountRequest,
    NetworkRequest,
    PortBinding,
    TmpfsOptions,
    VolumeOptions,
    container_ref,
)

__all__ = [
    "FIELDS",
    "NOT_APPLIED",
    "UNPARSED",
    "BindOptions",
    "CreateSpec",
    "EndpointRequest",
    "Mount",
    "MountRequest",
    "NetworkRequest",
    "PortBinding",
    "TmpfsOptions",
    "VolumeOptions",
    "container_ref",
    "endpoint_of",
    "endpoint_settings",
    "given_fields",
    "main_network",
    "mount_of",
    "mount_request",
    "network_request",
    "parse_connect",
    "parse_create",
    "parse_endpoint",
    "parse_update",
    "resources_of",
    "stored_spec",
]
