"""The daemon gives memory back once it is quiet after work (pyd/daemon/memory.py)."""

from __future__ import annotations

import gc

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pyd.daemon import memory


class SettlerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.counters = [0, 1000]  # gen-0 runs, allocated blocks
        self.released: list[str] = []
        self.trims: list[None] = []
        self.patch(memory, "release_free_memory", lambda: self.trims.append(None))

    def settler(self, *releases: object, longest: float = 30.0) -> memory.Settler:
        def db() -> Deferred[None]:
            self.released.append("db")
            return succeed(None)

        s = memory.Settler(
            self.clock,
            releases=list(releases) or [db],  # type: ignore[list-item]  # test callables
            interval=0.5,
            longest=longest,
            counters=lambda: (self.counters[0], self.counters[1]),
        )
        s.start()
        self.addCleanup(s.stop)
        return s

    def work(self, runs: int = 0, blocks: int = 0) -> None:
        self.counters[0] += runs
        self.counters[1] += blocks

    def test_idle_daemon_is_left_alone(self) -> None:
        """Ticks without activity (small changes in allocated blocks) release nothing."""
        s = self.settler()
        for _ in range(20):
            self.work(blocks=100)
            self.clock.advance(0.5)
        self.assertEqual((s.settled, self.released, self.trims), (0, [], []))

    def test_first_quiet_tick_after_work_settles_once(self) -> None:
        """Work seen by one tick; the next quiet tick collects, releases and trims, once."""
        s = self.settler()
        self.work(runs=3)
        self.clock.advance(0.5)
        self.assertEqual(s.settled, 0)
        self.clock.advance(0.5)
        self.assertEqual((s.settled, self.released, len(self.trims)), (1, ["db"], 1))
        for _ in range(10):
            self.clock.advance(0.5)
        self.assertEqual(s.settled, 1)
        self.work(blocks=50_000)  # a burst that freed what it allocated still shows in blocks
        self.clock.advance(0.5)
        self.clock.advance(0.5)
        self.assertEqual(s.settled, 2)

    def test_busy_daemon_is_settled_every_longest_seconds(self) -> None:
        """Continuous work is settled at least every `longest` seconds."""
        s = self.settler(longest=5.0)
        for _ in range(32):  # 16 s of work: settled at 5.5, 10.5 and 15.5 s
            self.work(runs=1)
            self.clock.advance(0.5)
        self.assertEqual(s.settled, 3)

    def test_trim_waits_for_releases_and_survives_their_failure(self) -> None:
        """The heap is trimmed once the releases (on their threads) are done; a release that
        fails is logged and the loop goes on."""
        pending: Deferred[None] = Deferred()
        s = self.settler(lambda: pending, lambda: fail(RuntimeError("boom")))
        self.work(runs=1)
        self.clock.advance(0.5)
        self.clock.advance(0.5)
        self.assertEqual((s.settled, self.trims), (1, []))
        pending.callback(None)
        self.assertEqual(len(self.trims), 1)
        self.work(runs=1)
        self.clock.advance(0.5)
        self.clock.advance(0.5)
        self.assertEqual(s.settled, 2)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)


class StartUpTests(SynchronousTestCase):
    def test_settle_start_up_freezes_the_start_up_objects(self) -> None:
        """After settle_start_up the objects alive are in the permanent generation."""
        self.addCleanup(gc.unfreeze)
        before = gc.get_freeze_count()
        keep = [object() for _ in range(100)]  # noqa: F841  # alive across the call
        memory.settle_start_up()
        self.assertGreaterEqual(gc.get_freeze_count(), before + 100)

    def test_settle_start_up_and_settle_drop_the_source_lines(self) -> None:
        """The source lines linecache holds (attrs' generated methods among them) are
        forgotten at the end of start-up and at every settling."""
        import linecache

        import attr

        self.addCleanup(gc.unfreeze)
        self.patch(memory, "release_free_memory", lambda: None)

        @attr.s
        class Made:
            x: int = attr.ib()

        self.assertTrue(any("attrs generated" in str(k) for k in linecache.cache))
        memory.settle_start_up()
        self.assertEqual(linecache.cache, {})
        linecache.getlines(__file__)
        self.assertIn(__file__, linecache.cache)
        memory.Settler(Clock(), releases=[]).settle()
        self.assertEqual(linecache.cache, {})
        self.assertEqual(Made(1), Made(1))  # the generated methods still work


class MallocTuningTests(SynchronousTestCase):
    def _recorded_mallopt(self) -> list[tuple[int, int]]:
        """glibc stood in for by a libc whose C{mallopt} records its calls (returned)."""
        calls: list[tuple[int, int]] = []

        class Libc:
            def mallopt(self, param: int, value: int) -> int:
                calls.append((param, value))
                return 1

        self.patch(memory, "_libc", Libc)
        return calls

    def test_thresholds_are_fixed(self) -> None:
        """glibc's trim and mmap thresholds are set (which also stops glibc from raising them
        after a large block is freed), to 2 MiB each."""
        calls = self._recorded_mallopt()
        memory.fix_malloc_thresholds()
        self.assertEqual(sorted(calls), [(-3, 2 << 20), (-1, 2 << 20)])

    def test_one_heap_for_every_thread(self) -> None:
        """glibc keeps one arena: the worker threads allocate from the main heap."""
        calls = self._recorded_mallopt()
        memory.limit_malloc_arenas()
        self.assertEqual(calls, [(-8, 1)])

    def test_thresholds_on_the_real_libc(self) -> None:
        """On this glibc the call is accepted (mallopt answers 1)."""
        libc = memory._libc()
        if libc is None:
            self.skipTest("not glibc")
        self.assertEqual(libc.mallopt(memory._M_TRIM_THRESHOLD, memory.TRIM_THRESHOLD), 1)
