"""What a caller may see of another's containers: redaction for viewers and operators (layer: api).

The guard (L{pyd.api.authz.Authorizer}) puts a L{Visibility} on every request of a caller who is
not an admin (C{request.pyd_visibility}); handlers that show an admin-tier container's secrets ask
it. The rule (docs/security.md, "What viewers and operators see"): of a container the operator
could not have created, a viewer or operator sees neither its environment (C{Config.Env}) nor its
exec instances (C{ExecIDs}, C{GET /exec/{id}/json}, and the command lines and exec ids in
C{exec_*} events). Admins see everything.
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs

from pyd.core.records import Container, Event

REDACTED = "[redacted]"


class Visibility(Protocol):
    """The caller's view of other containers."""

    async def hides(self, c: Container) -> bool:
        """Whether C{c}'s environment and exec instances are hidden from the caller."""
        ...

    async def hides_id(self, container_id: str) -> bool:
        """L{hides} for a container named by id (hidden when it is gone: nothing to judge)."""
        ...


def visibility(request: Any) -> Visibility | None:
    """The request's L{Visibility}; None: the caller sees everything (an admin)."""
    v: Visibility | None = getattr(request, "pyd_visibility", None)
    return v


async def redact_inspect(request: Any, c: Container, out: dict[str, Any]) -> None:
    """Blank C{Config.Env} and C{ExecIDs} of container inspect when the caller may not see them."""
    v = visibility(request)
    if v is None or not await v.hides(c):
        return
    cfg = out.get("Config")
    if isinstance(cfg, dict) and cfg.get("Env"):
        cfg["Env"] = [e.split("=", 1)[0] + "=" + REDACTED for e in cfg["Env"]]
    out["ExecIDs"] = None


async def redact_event(v: Visibility, ev: Event) -> Event | None:
    """An event as the caller may see it: an C{exec_*} event of a hidden container loses its
    command line and exec id; None: not shown at all (never, today)."""
    if ev.type != "container" or not ev.action.startswith("exec_"):
        return ev
    if not await v.hides_id(ev.actor_id):
        return ev
    kept = {k: val for k, val in ev.attributes.items() if k != "execID"}
    return attrs.evolve(ev, action=ev.action.split(":", 1)[0], attributes=kept)
