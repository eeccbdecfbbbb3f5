"""The daemon loop: APScheduler 3.x (UTC, explicit job defaults) runs one cycle every tick.

Due-ness lives in our tables (feeds.next_check_at, watchlist_state.next_digest_at), so the
scheduler only says "look now"; a restart catches up instead of skipping. No business logic here.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy.exc import SQLAlchemyError

from monitor import ops
from monitor.errors import StorageError
from monitor.metrics import CYCLES
from monitor.reload import Reloader
from monitor.service import Service
from monitor.store.db import describe
from monitor.urls import redact

log = logging.getLogger("monitor")
SHUTDOWN_GRACE = 8.0


class Throttled:
    """The log of a storage fault that lasts (a full disk, a database gone): one line when it
    starts, the same fault again at most once every ``every`` seconds with how many cycles
    failed meanwhile, and one line when a cycle completes again (at most as often)."""

    def __init__(self, every: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self._message: str | None = None  # the fault last logged
        self._logged = -every  # when
        self._held = 0  # failed cycles not logged since
        self._failing = False
        self._recovered = -every  # when a recovery was last logged

    def failed(self, message: str) -> None:
        now = self.clock()
        self._failing = True
        if message == self._message and now - self._logged < self.every:
            self._held += 1
            return
        again = f" ({self._held} more failed cycles not logged)" if self._held else ""
        log.error("cycle failed, retrying every tick: %s%s", redact(message), again)
        self._message, self._logged, self._held = message, now, 0

    def answered(self) -> None:
        now = self.clock()
        if self._failing and now - self._recovered >= self.every:
            log.info("a cycle completed again after a storage fault")
            self._recovered = now
        self._failing = False


def run_daemon(service: Service, reloader: Reloader | None = None, *,
               stop: threading.Event | None = None,
               on_start: Callable[[BaseScheduler], None] | None = None) -> bool:
    """Run cycles until SIGTERM/SIGINT (or ``stop``); SIGHUP, or an edit of the config's files,
    reloads the config at the next cycle. Tells systemd READY, then WATCHDOG while the scheduler
    really ticks; serves the HTTP endpoint when enabled. Returns False when work was abandoned at
    shutdown (safe: every stored step is a transaction and leases expire)."""
    tick = service.settings.poll.tick
    stop = stop or threading.Event()
    liveness = ops.Liveness(heartbeat=min(5.0, tick), cycle_limit=max(20 * tick, 1800.0))
    notifier = ops.SystemdNotifier()
    storage = Throttled()
    idle = threading.Event()
    idle.set()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        service.stopping.set()
        stop.set()

    def on_hangup(_signum: int, _frame: FrameType | None) -> None:
        if reloader is None or stop.is_set():
            return
        log.info("signal SIGHUP: reloading the config")
        reloader.requested.set()
        # at once, rather than at the next tick; stopping or not started yet: the flag is enough
        with contextlib.suppress(JobLookupError, SchedulerNotRunningError, NameError):
            scheduler.modify_job("cycle", next_run_time=datetime.now(UTC))

    def cycle() -> None:
        idle.clear()
        liveness.cycle_started()
        CYCLES.inc()
        try:
            if reloader is not None:
                fresh = reloader.check()
                if fresh is not None:
                    service.apply(fresh)
            results = service.cycle()
            failed = sum(r.status == "failed" for r in results)
            if results:
                log.info("cycle feeds=%d failed=%d", len(results), failed)
        except StorageError as e:
            storage.failed(str(e))
        except SQLAlchemyError as e:
            storage.failed(describe(e))
        else:
            storage.answered()
        finally:
            liveness.cycle_ended()
            idle.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGHUP, on_hangup)
    scheduler = BackgroundScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1,
                      "misfire_grace_time": max(1, math.ceil(tick))},  # a positive integer
    )
    scheduler.add_job(cycle, "interval", seconds=tick, id="cycle",
                      next_run_time=datetime.now(UTC))
    scheduler.add_job(liveness.beat, "interval", seconds=liveness.heartbeat, id="heartbeat",
                      next_run_time=datetime.now(UTC))
    scheduler.start()
    endpoint = None
    if service.settings.http.enabled:
        from monitor import trending
        from monitor.desk.pages import Desk

        endpoint = ops.serve(service.settings.http.listen, service.sessions, liveness,
                             lambda: [w.name for w in service.settings.watchlists],
                             service.settings.http.atom_items,
                             lambda s: trending.current(s, service.settings, datetime.now(UTC),
                                                        service.settings.spikes.rules()),
                             Desk(service.sessions, lambda: service.settings),
                             lambda: service.settings.http.token)
    notifier.send("READY=1")
    notifier.run_watchdog(liveness)
    if on_start is not None:
        on_start(scheduler)
    log.info("monitor running: %d feeds, %d watchlists, tick %.0fs",
             len(service.settings.feeds), len(service.settings.watchlists), tick)
    stop.wait()
    notifier.send("STOPPING=1")
    notifier.stop()
    scheduler.shutdown(wait=False)
    if endpoint is not None:
        endpoint.close()
    finished = idle.wait(SHUTDOWN_GRACE)
    log.info("monitor stopped%s", "" if finished else " (abandoned the cycle in hand)")
    return finished
