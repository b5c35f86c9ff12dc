"""Forwarding a container's log lines to syslog as they are written (layer: engine).

dockerd's "dual logging": with the syslog driver the container still writes its local log (the
cache that `docker logs` reads), and a L{LogForwarder} follows that file and sends each new line.
Its methods block (file reads, sockets): run them in the io pool.
"""

from __future__ import annotations

import datetime
import re
import threading

from pyd.core.records import Container
from pyd.drivers.journald import JournaldSender
from pyd.drivers.syslog import SyslogSender
from pyd.engine.containers.logfiles import LogTail

DEFAULT_TAG = "{{.ID}}"
BATCH = 1 << 20  # bytes of log read at a time
_FIELD = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")


def render_tag(template: str, c: Container, daemon_name: str) -> str:
    """dockerd's log tag template (C{{{.ID}}} by default): ID, FullID, Name, ImageID,
    ImageFullID, ImageName, DaemonName; anything else stays as written."""
    image_full = c.image_id
    fields = {
        "ID": c.id[:12],
        "FullID": c.id,
        "Name": c.name.lstrip("/"),
        "ImageID": image_full.removeprefix("sha256:")[:12],
        "ImageFullID": image_full,
        "ImageName": c.image_ref,
        "DaemonName": daemon_name,
    }
    return _FIELD.sub(lambda m: fields.get(m.group(1), m.group(0)), template or DEFAULT_TAG)


class LogForwarder:
    """Follows one container's log file and sends each new line to syslog."""

    def __init__(self, tail: LogTail, sender: SyslogSender | JournaldSender, tag: str) -> None:
        self.tail = tail
        self.sender = sender
        self.tag = tag
        self.busy = False
        self.again = False
        # the last drain at stop may run while a change's drain is still in another pool thread:
        # two readers of one tail would each take part of the lines
        self._lock = threading.Lock()

    def skip_existing(self) -> None:
        """Start after what the file already holds (a restarted container appends to it)."""
        with self._lock:
            while self.tail.read(BATCH):
                pass

    def drain(self) -> int:
        """Send every complete line written since the last call. @return: how many."""
        sent = 0
        with self._lock:
            while entries := self.tail.read(BATCH):
                for e in entries:
                    when = datetime.datetime.fromtimestamp(e.time_nano / 1e9, datetime.UTC)
                    self.sender.send(e.stream, e.data, when, self.tag, e.ts)
                sent += len(entries)
        return sent

    def close(self) -> None:
        """Release the file and the connection."""
        with self._lock:
            self.tail.close()
            self.sender.close()
