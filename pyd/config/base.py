"""Configuration building blocks: value converters and the L{Option} row (layer: config).

Every converter takes the raw value (from JSON or a flag's text) and the key, and returns the typed
value or raises L{ConfigError} naming the key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
ROLES = ("viewer", "operator", "admin")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key."""


def _str(v: Any, key: str) -> str:
    if not isinstance(v, str):
        raise ConfigError(f"invalid value for {key}: expected a string, got {v!r}")
    return v


def _bool(v: Any, key: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "1", "false", "0"):
        return v.lower() in ("true", "1")
    raise ConfigError(f"invalid value for {key}: expected a boolean, got {v!r}")


def _int(v: Any, key: str) -> int:
    if isinstance(v, bool):
        raise ConfigError(f"invalid value for {key}: expected an integer, got {v!r}")
    try:
        return int(v)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid value for {key}: expected an integer, got {v!r}") from e


def _strlist(v: Any, key: str) -> tuple[str, ...]:
    if isinstance(v, str):
        return (v,)
    if not isinstance(v, list | tuple) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"invalid value for {key}: expected a list of strings, got {v!r}")
    return tuple(v)


def _strmap(v: Any, key: str) -> dict[str, str]:
    if isinstance(v, list | tuple):  # flag form: k=v entries
        out: dict[str, str] = {}
        for item in v:
            k, sep, val = str(item).partition("=")
            if not sep:
                raise ConfigError(f"invalid value for {key}: {item!r} is not key=value")
            out[k] = val
        return out
    if not isinstance(v, dict):
        raise ConfigError(f"invalid value for {key}: expected an object, got {v!r}")
    return {str(k): str(x) for k, x in v.items()}


def _pools(v: Any, key: str) -> tuple[tuple[str, int], ...]:
    items = v if isinstance(v, list | tuple) else [v]
    out = []
    for item in items:
        if isinstance(item, str):  # flag form: base=10.10.0.0/16,size=24
            fields = dict(p.split("=", 1) for p in item.split(",") if "=" in p)
        elif isinstance(item, dict):
            fields = item
        else:
            raise ConfigError(f"invalid value for {key}: {item!r}")
        if "base" not in fields or "size" not in fields:
            raise ConfigError(f"invalid value for {key}: each pool needs base and size")
        out.append((str(fields["base"]), _int(fields["size"], key)))
    return tuple(out)


def _level(v: Any, key: str) -> str:
    s = _str(v, key).lower()
    # dockerd (logrus) also takes trace and panic; pyd's nearest levels stand in for them.
    s = {"warning": "warn", "trace": "debug", "panic": "fatal"}.get(s, s)
    if s not in LOG_LEVELS:
        raise ConfigError(f"invalid value for {key}: {v!r} (use one of {', '.join(LOG_LEVELS)})")
    return s


def _role(v: Any, key: str) -> str:
    s = _str(v, key)
    if s not in ROLES:
        raise ConfigError(f"invalid value for {key}: {v!r} (use one of {', '.join(ROLES)})")
    return s


def _any_map(v: Any, key: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ConfigError(f"invalid value for {key}: expected an object")
    return dict(v)


@attrs.frozen
class Option:
    """One configuration option: its daemon.json key, attribute, flag(s), type and default."""

    key: str
    attr: str
    convert: Callable[[Any, str], Any]
    default: Any
    flag: str | None = None  # long flag name, None = file only
    short: str | None = None
    repeat: bool = False  # flag may be given several times (list)
    is_flag: bool = False  # boolean switch without a value
    reload: bool = False  # SIGHUP applies a change
    doc: str = ""
    # dockerd's keys pyd gives no meaning to: why (non-empty = accepted without effect, and a
    # notice is logged when the key is set).
    inert: str = ""
    # Values pyd can run with (None: all); any other value stops the start with C{refuse}.
    accepts: Callable[[Any], bool] | None = None
    refuse: str = ""
    # An empty string in the file means the default (dockerd's reading of e.g. "data-root": "").
    blank_is_default: bool = False

    @property
    def effect(self) -> str:
        """What pyd does with the key, as docs/configuration.md says it."""
        if self.inert and self.accepts is not None:
            return f"accepted without effect ({self.inert}); other values refused: {self.refuse}"
        if self.inert:
            return f"accepted without effect: {self.inert}"
        if self.accepts is not None:
            return f"honoured as far as accepted; other values refused: {self.refuse}"
        return "honoured"

    def check(self, value: Any) -> str | None:
        """Refuse a value pyd cannot honour; return the notice to log for an inert key.

        @raise ConfigError: naming the key, the value and why.
        """
        if self.accepts is not None and not self.accepts(value):
            raise ConfigError(f"{self.key}: pyd cannot honour {value!r}: {self.refuse}")
        if self.inert:
            return f"{self.key} is accepted without effect: {self.inert}"
        return None


def _mtu(v: Any, key: str) -> int:
    n = _int(v, key)
    if n < 0:
        raise ConfigError(f"invalid default MTU: {n}")
    return n or 1500  # dockerd: 0 means the default


def _nonneg(v: Any, key: str) -> int:
    n = _int(v, key)
    if n < 0:
        raise ConfigError(f"invalid value for {key}: {n} (must not be negative)")
    return n


def _log_format(v: Any, key: str) -> str:
    s = _str(v, key) or "text"
    if s not in ("text", "json"):
        raise ConfigError(f"invalid log format: {s}")
    return s


def _proxy_url(v: Any, key: str) -> str:
    """An C{http://[user:password@]host[:port]} proxy URL ("" = none)."""
    s = _str(v, key).strip()
    if not s:
        return s
    scheme, sep, rest = s.partition("://")
    if (sep and scheme != "http") or not (rest if sep else s).split("@")[-1].split("/")[0]:
        raise ConfigError(
            f"invalid value for {key}: only http://[user:password@]host[:port] proxies are "
            "supported"
        )
    return s


def _empty(v: Any) -> bool:
    """Accepts C{""}, C{[]}, C{{}}, C{False}, C{0}: the setting is off."""
    return not v
