"""Swarm and plugin endpoints on a node that is not in a swarm and has no plugins (layer: api).

pyd is a single-host engine: it answers the swarm-mode endpoints (C{/swarm}, C{/nodes},
C{/services}, C{/tasks}, C{/secrets}, C{/configs}) exactly as a dockerd outside a swarm does, with
a 503 and dockerd's text, so C{docker node ls} and docker-py's C{client.swarm} fail the way their
users know. Joining or creating a swarm is not supported (501). C{GET /plugins} lists no plugins;
installing one is not supported (501).
"""

from __future__ import annotations

from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from pyd.api.base import make_app, role
from pyd.api.wire import json_body
from pyd.core.errors import NotFound, Unavailable, Unsupported

NOT_A_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to '
    "connect this node to swarm and try again."
)
NO_SWARM = "pyd does not support swarm mode: it manages containers on this host only"
NO_PLUGINS = "pyd does not support engine plugins"

ALL_METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD"]


class ClusterRouter:
    """The swarm-mode and plugin endpoints of a standalone engine."""

    app = make_app()
    prefixes = ("swarm", "nodes", "services", "tasks", "secrets", "configs", "plugins")

    def resource(self) -> IResource:
        """The Klein resource."""
        return self.app.resource()  # type: ignore[no-any-return]  # Klein's resource() is untyped

    @app.route("/swarm/init", methods=["POST"])
    @app.route("/swarm/join", methods=["POST"])
    @role("admin")
    def create_or_join(self, request: IRequest) -> bytes:
        """C{docker swarm init|join}: 501."""
        raise Unsupported(NO_SWARM)

    @app.route("/swarm/leave", methods=["POST"])
    @role("admin")
    def leave(self, request: IRequest) -> bytes:
        """C{docker swarm leave} outside a swarm: dockerd's 503."""
        raise Unavailable("This node is not part of a swarm")

    @app.route("/swarm", methods=ALL_METHODS, branch=True)
    @app.route("/nodes", methods=ALL_METHODS, branch=True)
    @app.route("/services", methods=ALL_METHODS, branch=True)
    @app.route("/tasks", methods=ALL_METHODS, branch=True)
    @app.route("/secrets", methods=ALL_METHODS, branch=True)
    @app.route("/configs", methods=ALL_METHODS, branch=True)
    @role("admin", reads="operator")
    def not_a_manager(self, request: IRequest) -> bytes:
        """Every other swarm-mode call: dockerd's 503 outside a swarm."""
        raise Unavailable(NOT_A_MANAGER)

    @app.route("/plugins", methods=["GET"])
    @role("viewer")
    def plugins(self, request: IRequest) -> bytes:
        """C{docker plugin ls}: none."""
        return json_body(request, [])

    @app.route("/plugins/<path:rest>", methods=ALL_METHODS)
    @role("admin", reads="operator")
    def plugin_operation(self, request: IRequest, rest: str) -> bytes:
        """Inspecting, enabling or removing a named plugin: none exists (404); installing one
        (C{pull}, C{create}, C{privileges}): 501."""
        parts = [p for p in rest.split("/") if p]
        if parts and parts[0] in ("pull", "create", "privileges"):
            raise Unsupported(NO_PLUGINS)
        if len(parts) >= 2 and parts[-1] in ("json", "enable", "disable", "set", "push", "upgrade"):
            raise NotFound(f'plugin "{"/".join(parts[:-1])}" not found')
        if request.method == b"DELETE" and parts:
            raise NotFound(f'plugin "{"/".join(parts)}" not found')
        raise Unsupported(NO_PLUGINS)
