"""What C{POST /volumes/create} accepts (layer: engine): the driver, the name and the local
driver's options, with dockerd's texts (moby's C{volume/local} and C{daemon/volume/service})."""

from __future__ import annotations

import re
from collections.abc import Mapping

from pyd.core.errors import InvalidParameter, NotFound
from pyd.core.ids import go_quote
from pyd.drivers.volumes.local import mount_options_error

DEFAULT_DRIVER = "local"

RESTRICTED_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+\Z")

_VALID_OPTS = ("type", "o", "device", "size")

_MANDATORY_OPTS = (("device", ("type",)), ("type", ("device",)), ("o", ("device", "type")))


def check_driver(name: str, driver: str) -> None:
    """Only the C{local} driver (or none named) exists."""
    if driver not in ("", DEFAULT_DRIVER):
        raise NotFound(
            f"create {name}: error looking up volume plugin {driver}: "
            f"plugin {go_quote(driver)} not found"
        )


def check_name(name: str) -> None:
    """A local volume's name: two or more of L{RESTRICTED_NAME_CHARS}."""
    if len(name) == 1:
        raise InvalidParameter(
            f"create {name}: volume name is too short, names should be at least two "
            "alphanumeric characters"
        )
    if not NAME_RE.match(name):
        raise InvalidParameter(
            f"create {name}: {go_quote(name)} includes invalid characters for a local volume "
            f"name, only {go_quote(RESTRICTED_NAME_CHARS)} are allowed. If you intended to "
            "pass a host directory, use absolute path"
        )


def check_options(name: str, options: Mapping[str, str] | None) -> None:
    """The local driver's options: known keys, each with what it needs, safe mount options."""
    if not options:
        return
    for key in options:
        if key not in _VALID_OPTS:
            raise InvalidParameter(f"create {name}: invalid option: {go_quote(key)}")
    if options.get("size"):
        raise InvalidParameter(f"create {name}: quota size requested but no quota support")
    for opt, required in _MANDATORY_OPTS:
        if opt in options:
            for req in required:
                if req not in options:
                    raise InvalidParameter(
                        f"create {name}: missing required option: {go_quote(req)}"
                    )
    why = mount_options_error(
        str(options.get("type") or ""), str(options.get("device") or ""),
        str(options.get("o") or ""),
    )  # fmt: skip
    if why:
        raise InvalidParameter(f"create {name}: {why}")
