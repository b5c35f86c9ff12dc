"""crun's compiled seccomp filters, kept to hand to the next container (layer: drivers).

crun turns a container's OCI seccomp section into a BPF program at every C{crun create}
(libseccomp; about 9 ms of a `docker run` for moby's default profile on these machines) and
leaves the program in its state directory as C{seccomp.bpf}. Most containers of a host share
one profile, so after the first create with a given section the driver keeps the program crun
made and passes it to later creates of the same section through crun's annotation
C{run.oci.seccomp_bpf_data} (base64 of the raw filter: crun then loads it and skips the
compilation). The program is crun's own output for the identical section, read from crun's
state directory under the daemon's exec root (root only), and kept in memory only: a daemon
restart compiles again.

Only for crun (runc has no such annotation) and only for sections whose whole meaning is the
filter: a section with C{flags} or a notification listener is compiled every time, since
crun ignores the section when given the annotation; so is the filter of a container that
carries crun annotations of its own (C{run.oci.*}, which an admin may set).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections import OrderedDict
from typing import Any

from pyd.drivers.runtime.oci import OciRuntime

ANNOTATION = "run.oci.seccomp_bpf_data"
# Distinct profiles kept (a host uses one or two; a custom profile per container would churn).
_MAX = 16
# crun's filters run to a few KiB; anything far larger is not what we expect there.
_MAX_BYTES = 1 << 20


def _crun(rt: OciRuntime) -> bool:
    return os.path.basename(rt.path) == "crun"


class FilterCache:
    """The compiled filter of each seccomp section crun has compiled (most recent first)."""

    def __init__(self) -> None:
        self._filters: OrderedDict[str, str] = OrderedDict()

    @staticmethod
    def key(spec: dict[str, Any], rt: OciRuntime) -> str | None:
        """What identifies C{spec}'s filter for C{rt}, or None when it must be compiled."""
        section = (spec.get("linux") or {}).get("seccomp")
        if not section or not _crun(rt):
            return None
        if section.get("flags") or section.get("listenerPath") or section.get("listenerMetadata"):
            return None
        # A container's own crun annotations may change how its filter is made or replace it
        # (run.oci.seccomp_bpf_data, run.oci.seccomp_fail_unknown_syscall...): such a filter
        # is neither reused for it nor kept for others.
        if any(k.startswith("run.oci.") for k in spec.get("annotations") or {}):
            return None
        text = json.dumps(section, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(f"{rt.path}\0{text}".encode()).hexdigest()

    def with_filter(self, spec: dict[str, Any], key: str | None) -> dict[str, Any]:
        """C{spec} carrying the compiled filter of its section when one is kept (a copy; the
        section stays, for whoever reads config.json)."""
        data = self._filters.get(key) if key else None
        if data is None:
            return spec
        self._filters.move_to_end(key)  # type: ignore[arg-type]  # data is not None: key is a str
        return {**spec, "annotations": {**(spec.get("annotations") or {}), ANNOTATION: data}}

    def known(self, key: str | None) -> bool:
        """Whether the filter of C{key} is kept."""
        return key is not None and key in self._filters

    @staticmethod
    def read(rt: OciRuntime, container_id: str) -> str | None:
        """The filter crun compiled for C{container_id}, base64 (blocking: reads crun's state
        directory); None when the file is missing or odd."""
        try:
            fd = os.open(
                os.path.join(rt.root, container_id, "seccomp.bpf"),
                os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
            )
        except OSError:
            return None
        try:
            data = os.read(fd, _MAX_BYTES + 1)
        finally:
            os.close(fd)
        # a BPF program is a whole number of 8-byte instructions
        if not data or len(data) > _MAX_BYTES or len(data) % 8:
            return None
        return base64.b64encode(data).decode()

    def keep(self, key: str, data: str) -> None:
        """Keep C{data} as the filter of C{key} (on the reactor thread, as every other use)."""
        self._filters[key] = data
        self._filters.move_to_end(key)
        while len(self._filters) > _MAX:
            self._filters.popitem(last=False)
