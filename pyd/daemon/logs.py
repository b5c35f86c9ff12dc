"""The daemon's log level (changeable on SIGHUP) and, in debug mode, the reactor stall watchdog
(layer: daemon)."""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)

log = Logger()

LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
    "fatal": LogLevel.critical,
}


class LogLevelControl:
    """Puts a level filter in front of twistd's observers; the level can change at run time."""

    def __init__(self, level: str) -> None:
        self.predicate = LogLevelFilterPredicate(defaultLogLevel=LEVELS[level])
        self._installed: list[tuple[ILogObserver, ILogObserver]] = []

    def set_level(self, level: str) -> None:
        """Apply a new level to every namespace."""
        self.predicate.defaultLogLevel = LEVELS[level]
        self.predicate.clearLogLevels()

    def install(self) -> None:
        """Wrap the observers twistd installed (they exist once the reactor runs)."""
        # LogPublisher keeps its observers private; this is the one place we reach in.
        observers = list(getattr(globalLogPublisher, "_observers", []))
        for obs in observers:
            if isinstance(obs, FilteringLogObserver):
                continue
            wrapped = FilteringLogObserver(obs, [self.predicate])
            globalLogPublisher.removeObserver(obs)
            globalLogPublisher.addObserver(wrapped)
            self._installed.append((obs, wrapped))

    def uninstall(self) -> None:
        """Put twistd's observers back as they were."""
        for obs, wrapped in self._installed:
            globalLogPublisher.removeObserver(wrapped)
            globalLogPublisher.addObserver(obs)
        self._installed.clear()


class StallWatchdog:
    """In debug mode, logs reactor stalls: a 50 ms tick that arrives over 100 ms late."""

    def __init__(self, clock: IReactorTime, interval: float = 0.05, threshold: float = 0.1) -> None:
        from twisted.internet.task import LoopingCall

        self._clock = clock
        self.interval = interval
        self.threshold = threshold
        self._last = 0.0
        self._loop = LoopingCall(self._tick)
        self._loop.clock = clock

    def _tick(self) -> None:
        now = self._clock.seconds()
        late = now - self._last - self.interval
        if self._last and late > self.threshold:
            log.warn("reactor stalled for {ms:.0f} ms", ms=late * 1000)
        self._last = now

    def start(self) -> None:
        """Begin ticking."""
        self._last = 0.0
        self._loop.start(self.interval, now=True)

    def stop(self) -> None:
        """Stop ticking."""
        if self._loop.running:
            self._loop.stop()
