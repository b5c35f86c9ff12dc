"""The part of the official Engine API spec (v1.50) the fuzz suite generates requests from.

The spec itself lives outside the repository (shared/reference/engine-api/v1.50.yaml); CI may not
have it, so the operations and the definitions they reference are kept in
tests/data/engine_api_v1.50_fuzz.json, without descriptions and examples. Re-extract it with
C{python -m tests.helpers.apispec [SPEC.yaml]}; tests/component/test_fuzz_api.py checks the copy
against the spec when the spec is at hand.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXTRACT = os.path.join(ROOT, "tests", "data", "engine_api_v1.50_fuzz.json")
SPEC_CANDIDATES = (
    os.path.join(os.path.dirname(ROOT), "shared", "reference", "engine-api", "v1.50.yaml"),
    os.path.join(
        os.path.dirname(os.path.dirname(ROOT)), "shared", "reference", "engine-api", "v1.50.yaml"
    ),
    "/work/shared/reference/engine-api/v1.50.yaml",
)

# What a generator needs from a schema or parameter; the rest (descriptions, examples, Go names)
# is dropped.
_KEEP = {
    "type", "format", "items", "properties", "additionalProperties", "enum", "$ref", "allOf",
    "required", "in", "name", "schema", "minimum", "maximum", "x-nullable", "default",
    "collectionFormat",
}  # fmt: skip


def spec_path() -> str | None:
    """The reference copy of the spec on this machine, if any."""
    for path in SPEC_CANDIDATES:
        if os.path.exists(path):
            return path
    return None


def _strip(value: Any, *, in_properties: bool = False) -> Any:
    if isinstance(value, dict):
        if in_properties:  # a properties map: its keys are field names, keep all
            return {k: _strip(v) for k, v in value.items()}
        out = {}
        for k, v in value.items():
            if k not in _KEEP:
                continue
            out[k] = _strip(v, in_properties=(k == "properties"))
        return out
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _refs(value: Any, into: set[str]) -> None:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str):
            into.add(ref.rsplit("/", 1)[1])
        for v in value.values():
            _refs(v, into)
    elif isinstance(value, list):
        for v in value:
            _refs(v, into)


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    """The operations of C{spec} and the definitions they reach, stripped."""
    paths = {
        p: {m: {"parameters": _strip(op.get("parameters") or [])} for m, op in ops.items()
            if m != "parameters"}
        for p, ops in spec["paths"].items()
    }  # fmt: skip
    wanted: set[str] = set()
    _refs(paths, wanted)
    defs: dict[str, Any] = {}
    while wanted - set(defs):
        for name in sorted(wanted - set(defs)):
            defs[name] = _strip(spec["definitions"][name])
            _refs(defs[name], wanted)
    return {"paths": paths, "definitions": dict(sorted(defs.items()))}


def served_routers() -> list[Any]:
    """The router classes the daemon serves (unbound: their URL maps are class attributes)."""
    from pyd.api import (
        build,
        cluster,
        container_streams,
        containers,
        distribution,
        exec,
        images,
        metrics,
        networks,
        system,
        volumes,
    )

    return [
        containers.ContainersRouter,
        container_streams.ContainerStreamsRouter,
        metrics.MetricsRouter,
        exec.ExecRouter,
        images.ImagesRouter,
        build.BuildRouter,
        distribution.DistributionRouter,
        networks.NetworksRouter,
        volumes.VolumesRouter,
        system.SystemRouter,
        cluster.ClusterRouter,
    ]


def served_route(routers: list[Any], method: str, template: str) -> Any:
    """The route of C{routers} that serves the spec's C{method} C{template} (None: the root
    answers 404)."""
    from pyd.api.base import match_route

    path = re.sub(r"\{[^}]+\}", "x", template)
    first = path.strip("/").split("/")[0]
    return match_route([r for r in routers if first in getattr(r, "prefixes", ())], method, path)


def load_spec_yaml(path: str) -> dict[str, Any]:
    """The spec as the YAML file has it."""
    import yaml

    with open(path) as f:
        loaded: dict[str, Any] = yaml.safe_load(f)
    return loaded


def load() -> dict[str, Any]:
    """The committed extract."""
    with open(EXTRACT) as f:
        loaded: dict[str, Any] = json.load(f)
    return loaded


def dump(value: dict[str, Any]) -> str:
    """The extract as committed (sorted keys, one stable text)."""
    return json.dumps(value, indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    src = sys.argv[1] if len(sys.argv) > 1 else spec_path()
    if src is None:
        raise SystemExit("no v1.50.yaml found; pass its path")
    with open(EXTRACT, "w") as f:
        f.write(dump(extract(load_spec_yaml(src))))
    print(EXTRACT)
