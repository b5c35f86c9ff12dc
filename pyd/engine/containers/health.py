"""Health checks (layer: engine): probes run in the container on the configured interval, the
streak of failures, and the health events.
"""

from __future__ import annotations

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from pyd.core.records import (
    Container,
    HealthLogEntry,
)
from pyd.drivers.runtime.conmon import (
    RuntimeFailed,
)
from pyd.engine.containers.base import _now_nano
from pyd.engine.containers.logs import ContainerLogs
from pyd.engine.spec import rules
from pyd.engine.spec.records import Health

log = Logger()


class ContainerHealth(ContainerLogs):
    """Health probes."""

    # --- health checks ---------------------------------------------------------------------------

    def _health_config(self, c: Container) -> Health | None:
        hc = self.spec_of(c).process.healthcheck
        if hc is None or not hc.test or hc.test[0] == "NONE":
            return None
        return hc

    def _schedule_health(self, cid: str, first: bool = False) -> None:
        c = self._cache.get(cid)
        run = self._runs.get(cid)
        if c is None or run is None:
            return
        hc = self._health_config(c)
        if hc is None:
            return
        interval = (hc.interval or rules.HEALTH_DEFAULTS["Interval"]) / 1e9
        start_period = hc.start_period / 1e9
        start_interval = (hc.start_interval or rules.HEALTH_DEFAULTS["StartInterval"]) / 1e9
        in_start = self._clock.seconds() - run.started_at < start_period
        delay = start_interval if (in_start and c.state.health_status == "starting") else interval
        run.health_call = self._clock.callLater(delay, self._probe, cid)

    def _probe(self, cid: str) -> None:
        async def go() -> None:
            c = self._cache.get(cid)
            run = self._runs.get(cid)
            if c is None or run is None or c.state.status != "running":
                if c is not None and c.state.status == "paused":
                    self._schedule_health(cid)
                return
            spec = self.spec_of(c)
            hc = self._health_config(c)
            if hc is None:
                return
            test = list(hc.test)
            if test[0] == "CMD-SHELL":
                args = ["/bin/sh", "-c", " ".join(test[1:])]
            elif test[0] == "CMD":
                args = test[1:]
            else:
                args = test
            timeout = (hc.timeout or rules.HEALTH_DEFAULTS["Timeout"]) / 1e9
            retries = hc.retries or rules.HEALTH_DEFAULTS["Retries"]
            start_period = hc.start_period / 1e9
            t0 = _now_nano(self._clock)
            try:
                code, output = await self.runtime.exec_sync(
                    cid,
                    args,
                    env=list(spec.process.env),
                    user=spec.process.user,
                    timeout=timeout,
                    runtime=self.oci_runtime(c),
                )
                ran = True
            except RuntimeFailed as e:
                code, output, ran = -1, e.message.encode(), False
            for hook in self.on_health_probe:
                hook(ran)
            t1 = _now_nano(self._clock)
            c = self._cache.get(cid)
            if c is None or self._runs.get(cid) is not run:
                return
            st = c.state
            entry = HealthLogEntry(t0, t1, code, output.decode("utf-8", "replace")[:4096])
            log_entries = (*st.health_log, entry)[-5:]
            status = st.health_status
            streak = st.health_failing_streak
            if code == 0:
                status, streak = "healthy", 0
            else:
                in_start = (self._clock.seconds() - run.started_at) < start_period
                if not in_start or status != "starting":
                    streak += 1
                    if streak >= retries:
                        status = "unhealthy"
            changed = status != st.health_status
            c = await self._save(
                attrs.evolve(
                    c,
                    state=attrs.evolve(
                        st,
                        health_status=status,
                        health_failing_streak=streak,
                        health_log=log_entries,
                    ),
                )
            )
            if changed:
                self._emit(c, f"health_status: {status}")
            self._schedule_health(cid)

        d = Deferred.fromCoroutine(go())
        d.addErrback(lambda f: log.failure("health check of {cid} failed", f, cid=cid))
