"""The robustness limits as options: per-layer and build-context sizes, the free-space
reserve on the data root's filesystem, connection caps and timeouts (layer: config).

Enforcement lives where the work is done (extraction, the listeners); this module only parses.
"""

from __future__ import annotations

from typing import Any

from pyd.config.base import ConfigError, Option, _int

_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def _bytes(v: Any, key: str) -> int:
    """A byte count: an integer, or C{64MiB}/C{512m}/C{2g} (binary units, like go-units
    RAMInBytes); 0 means no limit."""
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    if isinstance(v, str):
        s = v.strip().lower().removesuffix("b").removesuffix("i")
        num, unit = (s[:-1], s[-1]) if s and s[-1] in _SIZE_UNITS else (s, "")
        if num.replace(".", "", 1).isdigit():
            return int(float(num) * _SIZE_UNITS[unit])
    raise ConfigError(f"invalid value for {key}: expected a size like 64MiB, got {v!r}")


def _reserve(v: Any, key: str) -> str:
    """The free-space reserve: C{N%} of the filesystem or a size (see L{free_reserve_bytes});
    empty is the default (5 % or 2 GiB, whichever is smaller), C{0} turns it off."""
    if not isinstance(v, str | int) or isinstance(v, bool):
        raise ConfigError(f"invalid value for {key}: expected a size or a percentage, got {v!r}")
    s = str(v).strip()
    if s.endswith("%"):
        num = s[:-1]
        if not num.replace(".", "", 1).isdigit() or not 0 <= float(num) < 100:
            raise ConfigError(f"invalid value for {key}: a percentage is 0% to 99%, got {v!r}")
        return s
    if s:
        _bytes(s, key)
    return s


def free_reserve_bytes(value: str, fs_size: int) -> int:
    """Bytes to keep free on a filesystem of C{fs_size} bytes (C{value} as L{_reserve} keeps it)."""
    if not value:
        return min(fs_size // 20, 2 << 30)
    if value.endswith("%"):
        return int(fs_size * float(value[:-1]) / 100)
    return _bytes(value, "min-free-space")


def _seconds(v: Any, key: str) -> float:
    if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0:
        return float(v)
    if isinstance(v, str):
        s = v.strip().removesuffix("s")
        if s.replace(".", "", 1).isdigit():
            return float(s)
    raise ConfigError(f"invalid value for {key}: expected seconds, got {v!r}")


LIMIT_OPTIONS: tuple[Option, ...] = (
    Option(
        "max-layer-size",
        "max_layer_size",
        _bytes,
        0,
        "max-layer-size",
        doc="Most bytes one image layer may expand to (pull, load, import, and the local archives "
        "one build ADD unpacks, together), e.g. 64MiB; 0: no limit. A refused layer leaves nothing "
        "behind",
    ),
    Option(
        "max-build-context-size",
        "max_build_context_size",
        _bytes,
        0,
        "max-build-context-size",
        doc="Most bytes a build context may expand to (its entries' data); 0: no limit",
    ),
    Option(
        "min-free-space",
        "min_free_space",
        _reserve,
        "",
        "min-free-space",
        doc="Free space kept on the data root's filesystem (N% or a size; empty: 5% or 2GiB, "
        "whichever is smaller; 0: none): layer extraction (pull, load, import), a build's context "
        "upload, each RUN/COPY/ADD step and ADD's unpacking stop below it, and container log "
        "writing stops until the space is back",
    ),
    Option(
        "max-connections-per-peer",
        "max_connections_per_peer",
        _int,
        1024,
        "max-connections-per-peer",
        doc="Open API connections one peer (a Unix uid, a TCP address) may hold; 0: no limit",
    ),
    Option(
        "max-handshaking-connections",
        "max_handshaking_connections",
        _int,
        256,
        "max-handshaking-connections",
        doc="TCP connections that may be in the TLS handshake at once; 0: no limit",
    ),
    Option(
        "handshake-timeout",
        "handshake_timeout",
        _seconds,
        10.0,
        "handshake-timeout",
        doc="Seconds a TCP client has to finish the TLS handshake",
    ),
    Option(
        "header-timeout",
        "header_timeout",
        _seconds,
        30.0,
        "header-timeout",
        doc="Seconds a client has to send a request's headers (idle: the next request)",
    ),
)
