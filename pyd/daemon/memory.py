"""The daemon's resident memory at rest (layer: daemon): glibc's arenas, the heap freed after
start-up and after each burst of work, and the collector's view of the start-up objects.

What a fresh daemon holds is almost all module code and data, imported once and kept for the
process's life. What a burst of work (hundreds of containers created and removed, a build, a
large log read) leaves behind is mostly not live objects: it is cyclic garbage the collector has
not reached yet, heap that glibc keeps after it was freed, and SQLite's page cache. L{Settler}
gives those back once the daemon is quiet again (see docs/performance.md, issue 21's third
pass).
"""

from __future__ import annotations

import ctypes
import gc
import linecache
import sys
from collections.abc import Callable, Sequence

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()

# glibc's mallopt parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# fixed instead of glibc's sliding ones (see fix_malloc_thresholds)
TRIM_THRESHOLD = 2 * 1024 * 1024
MMAP_THRESHOLD = 2 * 1024 * 1024


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return None


def drop_source_lines() -> None:
    """Forget the source lines C{linecache} holds: the generated methods attrs registers
    there for each class it makes (~200 at start: 0.9 MB with the files read for tracebacks
    and warnings). Only a traceback through a generated C{__init__} or C{__eq__} shows them,
    and it still names the method and its line number."""
    linecache.clearcache()


def release_free_memory() -> None:
    """Give the free heap back to the system (glibc keeps it otherwise, resident)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def fix_malloc_thresholds() -> None:
    """Keep glibc's trim and mmap thresholds fixed at 2 MiB. By default glibc starts them at
    128 KiB and raises them when a large block it mapped is freed (up to 32 and 64 MiB): from
    then on the free top of a thread arena's heap is given back only when it exceeds the
    raised threshold, and L{release_free_memory} cannot trim a thread arena's top. After the
    standard workload the second arena kept ~2.8 MiB resident with 0.2 MB in use. Fixed, a
    thread arena gives back a free top over 2 MiB as it is freed, and blocks of 2 MiB or more
    are mapped on their own. The 1 MiB buffers of the streams stay in the heaps: at 256 KiB
    a `docker logs` of 64 MiB cost the daemon 330 ms of CPU instead of 210
    (docs/performance.md)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def limit_malloc_arenas(arenas: int = 1) -> None:
    """Keep glibc to C{arenas} heaps (before the thread pools start). By default each thread
    that allocates gets an arena of its own; memory freed in a thread's arena after a burst of
    work (copies, tar streams, SQLite) stays resident, and L{release_free_memory} gives back
    little of it. The daemon's threads hold the GIL for most allocations, so they do not
    contend for fewer arenas. One heap for every thread: the standard workload of
    C{bench.memory} ended ~0.3-0.5 MiB lower than with two (fresh ~0.2 MiB lower too; three
    runs each, docs/performance.md, issue 21 session 9)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(_M_ARENA_MAX, arenas)


def settle_start_up() -> None:
    """Once start-up is over (before listening): move every object alive to the collector's
    permanent generation (C{gc.freeze}) and trim the heap. The ~100,000 objects of the imported
    modules live as long as the process; a full collection no longer walks them, so
    L{Settler}'s collections cost a few milliseconds instead of a few hundred. Only the young
    generations are collected first: a full collection here would stall the start by as much
    (100-250 ms on a loaded machine) to free the few hundred cyclic objects start-up left."""
    drop_source_lines()
    gc.collect(1)
    gc.freeze()
    release_free_memory()


def _activity() -> tuple[int, int]:
    """Runs of the collector's youngest generation, and allocated memory blocks."""
    return gc.get_stats()[0]["collections"], sys.getallocatedblocks()


def _log_release(failure: Failure) -> None:
    # a release is an optimisation: its failure is logged and never stops the loop
    log.failure("releasing memory", failure)


class Settler:
    """Gives memory back once the daemon is quiet after work.

    Every C{interval} seconds it looks at two cheap counters: the collector's youngest
    generation runs (one per ~700 container objects allocated) and the number of allocated
    memory blocks. A tick that sees activity marks the daemon busy; the first quiet tick after
    that collects garbage (the young generations only hold what was made since start-up, see
    L{settle_start_up}), runs each of C{releases} (the database's page cache) and trims the
    heap. A daemon busy for C{longest} seconds in a row is settled anyway.
    """

    def __init__(
        self,
        clock: IReactorTime,
        releases: Sequence[Callable[[], object]] = (),
        interval: float = 0.5,
        longest: float = 30.0,
        quiet_blocks: int = 2000,
        counters: Callable[[], tuple[int, int]] | None = None,
    ) -> None:
        self._clock = clock
        self._releases = tuple(releases)
        self.interval = interval
        self.longest = longest
        self.quiet_blocks = quiet_blocks
        self._loop = LoopingCall(self._tick)
        self._loop.clock = clock
        self._counters = counters or _activity
        self._last = self._counters()
        self._busy_since: float | None = None
        self.settled = 0  # how many times it released (tests, debugging)

    def _tick(self) -> None:
        now = self._clock.seconds()
        counters = self._counters()
        runs, blocks = counters[0] - self._last[0], abs(counters[1] - self._last[1])
        self._last = counters
        active = runs > 0 or blocks >= self.quiet_blocks
        if active and self._busy_since is None:
            self._busy_since = now
        if self._busy_since is None:
            return
        if not active or now - self._busy_since >= self.longest:
            self._busy_since = None if not active else now
            self.settle()

    def settle(self) -> Deferred[None]:
        """Collect, release what each of the releases holds (on their threads), then trim the
        heap; fires when done."""
        drop_source_lines()
        gc.collect()
        self._last = self._counters()  # what the collection freed is not work
        self.settled += 1
        done = DeferredList(
            [maybeDeferred(release).addErrback(_log_release) for release in self._releases]
        )

        def trim(_: object) -> None:
            release_free_memory()
            self._last = self._counters()

        return done.addCallback(trim)

    def start(self) -> None:
        """Begin watching."""
        self._last = self._counters()
        self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        """Stop watching."""
        if self._loop.running:
            self._loop.stop()
