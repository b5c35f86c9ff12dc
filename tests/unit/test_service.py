"""Service-level helpers: the reactor stall watchdog and the log level control."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from pyd.daemon.logs import LogLevelControl, StallWatchdog


class WatchdogTests(SynchronousTestCase):
    """Stalls over the threshold are logged, normal ticks are not."""

    def test_stall_logged(self) -> None:
        """A tick arriving 300 ms late logs a warning naming the delay."""
        clock = Clock()
        dog = StallWatchdog(clock)
        with capturedLogs() as events:
            dog.start()
            clock.advance(0.05)
            clock.advance(0.05)
            self.assertEqual([e for e in events if e.get("log_level") == LogLevel.warn], [])
            clock.advance(0.35)
        warns = [e for e in events if e.get("log_level") == LogLevel.warn]
        self.assertEqual(len(warns), 1)
        self.assertAlmostEqual(warns[0]["ms"], 300, delta=1)
        dog.stop()


class LogLevelTests(SynchronousTestCase):
    """The level filter can change at run time."""

    def test_set_level(self) -> None:
        """info filters debug events; switching to debug lets them through."""
        from twisted.logger import PredicateResult

        ctl = LogLevelControl("info")
        debug_event = {"log_level": LogLevel.debug, "log_namespace": "pyd.x"}
        self.assertEqual(ctl.predicate(debug_event), PredicateResult.no)
        ctl.set_level("debug")
        self.assertEqual(ctl.predicate(debug_event), PredicateResult.maybe)
