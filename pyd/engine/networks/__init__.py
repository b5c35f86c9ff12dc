"""Networks: predefined and user bridge networks, IPAM, ports, DNS, connect (layer: engine).

L{NetworkService} implements L{pyd.engine.contracts.NetworkProvider} for the container service
and the operations behind C{/networks}. Docker's rules live here; the drivers only do as told:
L{pyd.drivers.network.netlink} (bridges, veths, namespaces), L{pyd.drivers.network.nft} (the one
firewall table, rendered whole from state after every change, and the small DNS table in each
served container's namespace) and L{pyd.drivers.network.dns} (the embedded resolver, answering
at C{127.0.0.11} inside every container attached to a user-defined network, as dockerd's).
State is in SQLite (L{pyd.state.networks}).

Mutations run one at a time under a lock: they are short, and it keeps IPAM, the firewall table
and the kernel in step without finer-grained reasoning.

Modules: C{base} (seams, config, records, the shared core), C{ipam} (predefined networks, the
default bridge's subnet, pools and addresses), C{ports} (published ports), C{dns} (the embedded
resolver and resolv.conf), C{endpoints} (container set-up, connect, disconnect), C{service}
(L{NetworkService}: start, create, list, remove, prune).
"""

from pyd.engine.networks.base import (
    ContainerRef,
    CreateRequest,
    FirewallOps,
    NetlinkOps,
    NetworkConfig,
    NetworkView,
    ProxyOps,
    ResolverOps,
    default_bridge_name,
    host_port_range,
)
from pyd.engine.networks.dns import ServiceNameTable, _read_resolv, _upstreams
from pyd.engine.networks.endpoints import _mac_for
from pyd.engine.networks.ports import _port_key
from pyd.engine.networks.service import NetworkService

__all__ = [
    "ContainerRef",
    "CreateRequest",
    "FirewallOps",
    "NetlinkOps",
    "NetworkConfig",
    "NetworkService",
    "NetworkView",
    "ProxyOps",
    "ResolverOps",
    "ServiceNameTable",
    "_mac_for",
    "_port_key",
    "_read_resolv",
    "_upstreams",
    "default_bridge_name",
    "host_port_range",
]
