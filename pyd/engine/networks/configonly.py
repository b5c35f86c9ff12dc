"""Configuration-only networks (layer: engine): dockerd's rules for C{--config-only} and
C{--config-from} (libnetwork network.go C{validateConfiguration}, C{applyConfigurationTo}).

A configuration-only network stores an IPAM configuration, driver options and labels and creates
nothing (driver C{null}, scope C{local}, no bridge, no address allocated); a network created
C{--config-from} it takes them, and may give only what is its own (internal, attachable).
"""

from __future__ import annotations

import attrs

from pyd.core.errors import Forbidden, NotFound
from pyd.core.records import Network
from pyd.engine.networks.base import CreateRequest

NOT_ON_CONFIG_ONLY = "cannot create endpoint on configuration-only network"


def check(req: CreateRequest) -> None:
    """What may be combined with C{ConfigOnly}/C{ConfigFrom}, with libnetwork's texts (all
    Forbidden: 403).

    @raise Forbidden: an operator field on a configuration network, a configuration network
        made from another, or a network made from one that gives its own configuration.
    """
    if req.config_only and (req.ingress or req.internal or req.attachable or req.scope):
        raise Forbidden(
            "configuration network can only contain network specific fields. Network operator "
            "fields like [ ingress | internal | attachable | scope ] are not supported."
        )
    if not req.config_from:
        return
    if req.config_only:
        raise Forbidden("a configuration network cannot depend on another configuration network")
    if (
        req.ipam_driver not in ("", "default")
        or not req.enable_ipv4  # moby 28: a configuration decides the families
        or req.enable_ipv6
        or req.labels
        or req.ipam_options
        or req.pools
    ):
        raise Forbidden(
            "user specified configurations are not supported if the network depends on a "
            "configuration network"
        )
    if req.options:
        raise Forbidden(
            "network driver options are not supported if the network depends on a "
            "configuration network"
        )


def find(networks: list[Network], name: str) -> Network:
    """The configuration network C{--config-from} names: by name only, and only a
    configuration-only one (libnetwork getConfigNetwork).

    @raise NotFound: C{configuration network "NAME" does not exist}.
    """
    for n in networks:
        if n.config_only and n.name == name:
            return n
    raise NotFound(f'configuration network "{name}" does not exist')


def apply(config: Network, req: CreateRequest) -> CreateRequest:
    """C{req} with the configuration network's settings (its families, IPAM, driver options
    and labels), as libnetwork's applyConfigurationTo gives them; internal and attachable stay
    the request's own."""
    return attrs.evolve(
        req,
        enable_ipv4=config.enable_ipv4,
        enable_ipv6=config.enable_ipv6,
        ipam_driver=config.ipam_driver or req.ipam_driver,
        ipam_options=dict(config.ipam_options) if config.ipam_options else req.ipam_options,
        pools=config.pools or req.pools,
        options=dict(config.options),
        labels=dict(config.labels) or req.labels,
    )
