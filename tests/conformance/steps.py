"""The steps a conformance scenario is made of (CLI invocations, API requests, waits).

See L{tests.conformance.scenarios} for the scenarios themselves.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Cli:
    """C{docker <argv>}: its stdout, stderr and exit status."""

    argv: tuple[str, ...]
    stdin: str | None = None


@attrs.frozen
class Api:
    """One Engine API request (unversioned path): its status and JSON body (or C{fields} of it;
    C{fields=()}: the status alone, for a body that is not JSON such as a tar). C{data} is sent
    as it is (a tar) instead of a JSON C{body}. C{headers} are sent as well (what a client
    such as the CLI always sends, e.g. C{X-Registry-Auth}), and shown in the transcript."""

    method: str
    path: str
    body: object = None
    fields: tuple[str, ...] | None = None
    data: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class Wait:
    """Poll C{docker inspect -f template name} until it prints C{value} (bounded)."""

    name: str
    template: str
    value: str


Step = Cli | Api | Wait


@attrs.frozen
class Scenario:
    """A named script of steps; C{cleanup} runs afterwards whatever happened."""

    name: str
    steps: tuple[Step, ...]
    cleanup: tuple[Step, ...] = ()
    keep: tuple[str, ...] = ()
    # Needs the daemon's default bridge (the recorder then uses a dockerd with one, run inside a
    # network namespace of its own).
    bridge: bool = False
    # Needs a registry on loopback: C{{registry}} in a step's arguments, path or body is its
    # address, which the transcript shows as C{<registry>}.
    registry: bool = False


def d(*argv: str, stdin: str | None = None) -> Cli:
    """A CLI step."""
    return Cli(tuple(argv), stdin)


def rm_f(*names: str) -> tuple[Step, ...]:
    """Cleanup: force-remove C{names}."""
    return (d("rm", "-f", *names),)
