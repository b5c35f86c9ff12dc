"""Watching directories for files written or renamed in (layer: drivers).

Used for conmon's log rotation: conmon's writes to C{ctr.log} are C{IN_MODIFY ctr.log} on the
directory, its rename of C{ctr.log.tmp} over C{ctr.log} C{IN_MOVED_TO ctr.log}. The kernel
merges repeated identical events while they are unread, so a busy log costs few wake-ups. One
inotify instance serves every watch; without inotify, the files' inodes and sizes are polled.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from pyd.core.seams import IWatchReactor

log = Logger()


class DirWatcher:
    """C{watch(directory, callback)} calls C{callback(name)} when file C{name} in it changed."""

    def __init__(self, reactor: IWatchReactor, poll_interval: float = 0.5) -> None:
        self._reactor = reactor
        self._notifier: Any = None
        self._callbacks: dict[str, Callable[[str], None]] = {}
        self._poll_interval = poll_interval
        self._poller: Any = None
        self._inodes: dict[str, dict[str, tuple[int, int]]] = {}
        self._inotify_failed = False

    def _ensure(self) -> Any:
        if self._notifier is None and not self._inotify_failed:
            try:
                from twisted.internet import inotify

                notifier = inotify.INotify(self._reactor)
                notifier.startReading()
                self._notifier = notifier
            except Exception as e:  # noqa: BLE001 - no inotify: poll
                log.warn("inotify unavailable ({err}); polling log directories", err=e)
                self._inotify_failed = True
        return self._notifier

    def watch(self, directory: str, callback: Callable[[str], None]) -> Callable[[], None]:
        """Start watching C{directory}; return the function that stops it (idempotent)."""
        notifier = self._ensure()
        self._callbacks[directory] = callback
        if notifier is not None:
            from twisted.internet import inotify
            from twisted.python.filepath import FilePath

            def on_event(_watch: Any, path: Any, _mask: int) -> None:
                cb = self._callbacks.get(directory)
                if cb is None:
                    return
                name = path.basename()
                cb(name.decode() if isinstance(name, bytes) else name)

            try:
                notifier.watch(
                    FilePath(directory.encode()),
                    mask=inotify.IN_MOVED_TO | inotify.IN_MODIFY,
                    callbacks=[on_event],
                )
            except Exception as e:  # noqa: BLE001 - e.g. the watch limit: poll this one
                log.warn("inotify watch of {dir} failed ({err}); polling", dir=directory, err=e)
                self._poll_dir(directory)
        else:
            self._poll_dir(directory)

        def cancel() -> None:
            from twisted.python.filepath import FilePath

            if self._callbacks.pop(directory, None) is None:
                return
            self._inodes.pop(directory, None)
            if self._notifier is not None:
                try:
                    self._notifier.ignore(FilePath(directory.encode()))
                except Exception:  # noqa: BLE001 - not watched, or the directory is gone
                    pass

        return cancel

    def _poll_dir(self, directory: str) -> None:
        self._inodes[directory] = self._scan(directory)
        if self._poller is None:
            from twisted.internet.task import LoopingCall

            self._poller = LoopingCall(self._poll)
            self._poller.clock = self._reactor
            self._poller.start(self._poll_interval, now=False)

    @staticmethod
    def _scan(directory: str) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        try:
            for entry in os.scandir(directory):
                try:
                    out[entry.name] = (entry.inode(), entry.stat(follow_symlinks=False).st_size)
                except OSError:
                    continue
        except OSError:  # the directory went away: it holds nothing
            pass
        return out

    def _poll(self) -> None:
        for directory, before in list(self._inodes.items()):
            now = self._scan(directory)
            self._inodes[directory] = now
            cb = self._callbacks.get(directory)
            if cb is None:
                continue
            for name, key in now.items():
                if before.get(name) != key:
                    cb(name)

    def close(self) -> None:
        """Stop everything (daemon shutdown)."""
        self._callbacks.clear()
        self._inodes.clear()
        if self._notifier is not None:
            self._notifier.loseConnection()
            self._notifier = None
        if self._poller is not None and self._poller.running:
            self._poller.stop()
        self._poller = None
