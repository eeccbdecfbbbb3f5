"""The daemon loop: APScheduler 3.x (UTC, explicit job defaults) runs one cycle every tick.

Due-ness lives in our tables (feeds.next_check_at, watchlist_state.next_digest_at), so the
scheduler only says "look now"; a restart catches up instead of skipping. No business logic here.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import StorageError
from monitor.reload import Reloader
from monitor.service import Service

log = logging.getLogger("monitor")
SHUTDOWN_GRACE = 8.0


def run_daemon(service: Service, reloader: Reloader | None = None) -> bool:
    """Run cycles until SIGTERM/SIGINT; SIGHUP, or an edit of the config's files, reloads the
    config at the next cycle. Returns False when work was abandoned at shutdown (safe: every
    stored step is a transaction and leases expire)."""
    tick = service.settings.poll.tick
    stop = threading.Event()
    idle = threading.Event()
    idle.set()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        service.stopping.set()
        stop.set()

    def on_hangup(_signum: int, _frame: FrameType | None) -> None:
        if reloader is not None:
            log.info("signal SIGHUP: reloading the config")
            reloader.requested.set()
            scheduler.modify_job("cycle", next_run_time=datetime.now(UTC))

    def cycle() -> None:
        idle.clear()
        try:
            if reloader is not None:
                fresh = reloader.check()
                if fresh is not None:
                    service.apply(fresh)
            results = service.cycle()
            failed = sum(r.status == "failed" for r in results)
            if results:
                log.info("cycle feeds=%d failed=%d", len(results), failed)
        except (StorageError, SQLAlchemyError) as e:
            log.error("cycle failed, retrying next tick: %s", str(e).splitlines()[0][:300])
        finally:
            idle.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hangup)
    scheduler = BackgroundScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": int(tick)},
    )
    scheduler.add_job(cycle, "interval", seconds=tick, id="cycle",
                      next_run_time=datetime.now(UTC))
    scheduler.start()
    log.info("monitor running: %d feeds, %d watchlists, tick %.0fs",
             len(service.settings.feeds), len(service.settings.watchlists), tick)
    stop.wait()
    scheduler.shutdown(wait=False)
    finished = idle.wait(SHUTDOWN_GRACE)
    log.info("monitor stopped%s", "" if finished else " (abandoned the cycle in hand)")
    return finished
