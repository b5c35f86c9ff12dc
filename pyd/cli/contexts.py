"""The docker CLI's context store, read and written the way the docker CLI does (layer: cli).

A context NAME lives in C{$DOCKER_CONFIG/contexts/meta/<sha256(NAME)>/meta.json} and its TLS
material in C{$DOCKER_CONFIG/contexts/tls/<sha256(NAME)>/docker/{ca,cert,key}.pem}
(C{$DOCKER_CONFIG} defaults to C{~/.docker}). C{pyd hosts} and C{docker --context} therefore share
one inventory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import attrs

TLS_FILES = ("ca.pem", "cert.pem", "key.pem")


def config_dir() -> Path:
    """The docker CLI configuration directory."""
    env = os.environ.get("DOCKER_CONFIG")
    return Path(env) if env else Path.home() / ".docker"


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


@attrs.frozen
class Context:
    """One docker context: its name, endpoint and (optional) TLS files."""

    name: str
    host: str
    description: str = ""
    skip_tls_verify: bool = False
    tls_dir: Path | None = None  # holds ca.pem/cert.pem/key.pem when the context has TLS
    # Kept in the context's Metadata (the docker CLI keeps fields it does not know), so that
    # `pyd fleet --label role=web` can pick hosts by what they are for.
    labels: dict[str, str] = attrs.field(factory=dict)

    @property
    def has_tls(self) -> bool:
        """Whether the context carries TLS material."""
        return self.tls_dir is not None and (self.tls_dir / "ca.pem").exists()


def meta_dir(name: str, base: Path | None = None) -> Path:
    """Where a context's meta.json lives."""
    return (base or config_dir()) / "contexts" / "meta" / _digest(name)


def tls_dir(name: str, base: Path | None = None) -> Path:
    """Where a context's TLS files live."""
    return (base or config_dir()) / "contexts" / "tls" / _digest(name) / "docker"


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def write(
    name: str,
    host: str,
    tls_files: dict[str, bytes] | None = None,
    description: str = "",
    base: Path | None = None,
    labels: dict[str, str] | None = None,
) -> Context:
    """Create or replace a context; C{tls_files} maps ca.pem/cert.pem/key.pem to contents."""
    if name == "default":
        raise ValueError('"default" is a reserved context name')
    metadata: dict[str, object] = {"Description": description}
    if labels:
        metadata["Labels"] = dict(labels)
    meta = {
        "Name": name,
        "Metadata": metadata,
        "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}},
    }
    tdir = tls_dir(name, base)
    if tdir.parent.exists():
        shutil.rmtree(tdir.parent)
    if tls_files:
        for fname in TLS_FILES:
            if fname in tls_files:
                _write(tdir / fname, tls_files[fname], 0o600)
    _write(meta_dir(name, base) / "meta.json", json.dumps(meta).encode(), 0o644)
    # docker-py (docker-compose 1.x) looks for contexts only next to an existing config.json.
    cfg = (base or config_dir()) / "config.json"
    if not cfg.exists():
        _write(cfg, b"{}\n", 0o600)
    return Context(name, host, description, False, tdir if tls_files else None, dict(labels or {}))


def read(name: str, base: Path | None = None) -> Context:
    """Read one context. @raise KeyError: no such context."""
    path = meta_dir(name, base) / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise KeyError(name) from None
    return _from_meta(meta, base)


def _from_meta(meta: dict[str, object], base: Path | None) -> Context:
    name = str(meta["Name"])
    endpoints = meta.get("Endpoints") or {}
    docker = endpoints.get("docker", {}) if isinstance(endpoints, dict) else {}
    md = meta.get("Metadata") or {}
    tdir = tls_dir(name, base)
    labels = md.get("Labels") if isinstance(md, dict) else None
    return Context(
        name=name,
        host=str(docker.get("Host", "")),
        description=str(md.get("Description", "")) if isinstance(md, dict) else "",
        skip_tls_verify=bool(docker.get("SkipTLSVerify", False)),
        tls_dir=tdir if tdir.exists() else None,
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
    )


def list_all(base: Path | None = None) -> list[Context]:
    """Every context in the store, sorted by name."""
    root = (base or config_dir()) / "contexts" / "meta"
    out = []
    if root.is_dir():
        for d in root.iterdir():
            try:
                out.append(_from_meta(json.loads((d / "meta.json").read_text()), base))
            except (OSError, ValueError, KeyError):
                continue
    return sorted(out, key=lambda c: c.name)


DEFAULT_HOST = "unix:///var/run/docker.sock"


def default_context() -> Context:
    """The docker CLI's built-in C{default} context: C{$DOCKER_HOST}, else the local socket
    (with C{$DOCKER_CERT_PATH}'s files when C{$DOCKER_TLS_VERIFY} is set)."""
    host = os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    cert_path = os.environ.get("DOCKER_CERT_PATH")
    tdir = Path(cert_path) if cert_path and os.environ.get("DOCKER_TLS_VERIFY") else None
    return Context("default", host, "Current DOCKER_HOST based configuration", False, tdir)


def current_name(base: Path | None = None) -> str:
    """The context the docker CLI uses now: C{$DOCKER_CONTEXT}, else config.json's
    C{currentContext}, else C{default}."""
    env = os.environ.get("DOCKER_CONTEXT")
    if env:
        return env
    try:
        cfg = json.loads(((base or config_dir()) / "config.json").read_text())
    except (OSError, ValueError):
        return "default"
    current = cfg.get("currentContext") if isinstance(cfg, dict) else None
    return str(current) if current else "default"


def remove(name: str, base: Path | None = None) -> None:
    """Delete a context. @raise KeyError: no such context."""
    mdir = meta_dir(name, base)
    if not mdir.exists():
        raise KeyError(name)
    shutil.rmtree(mdir)
    tdir = tls_dir(name, base).parent
    if tdir.exists():
        shutil.rmtree(tdir)
