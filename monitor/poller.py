"""Polling: claim due feeds (leases) as workers free up, run each through the pipeline, and
write the records of polls that found nothing new in batches. A database fault stops the poll;
the feeds in hand are tried again after ``STORAGE_RETRY``."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import Settings
from monitor.errors import StorageError
from monitor.memory import give_back
from monitor.metrics import POLLS
from monitor.pipeline import Context, FeedResult, process_feed
from monitor.store import db
from monitor.store import feeds as feed_store
from monitor.urls import redact

log = logging.getLogger("monitor")

FEED_LEASE = timedelta(minutes=15)
STORAGE_RETRY = timedelta(minutes=1)  # a poll the database cut short: its feeds again after


class Host(Protocol):
    settings: Settings
    sessions: sessionmaker[Session]
    clock: Callable[[], datetime]
    owner: str
    stopping: threading.Event

    def reap(self) -> int: ...

    def context(self, entries: Executor | None = None,
                records: db.WriteBatch | None = None) -> Context: ...


def entry_threads(settings: Settings) -> int:
    """Entries processed at once: enough to keep every document worker busy while others fetch
    pages or wait to store."""
    processes = settings.documents.processes or os.cpu_count() or 1
    return max(settings.fetch.workers, 4 * processes)


class Poller:
    def __init__(self, host: Host) -> None:
        self.host = host

    def poll(self, *, ignore_schedule: bool = False,
             progress: Callable[[int], None] | None = None) -> list[FeedResult]:
        """Poll due feeds (every active feed with ``ignore_schedule``), each at most once, until
        none is due. Feeds are claimed as workers free up (half the workers at a time), so
        every worker stays busy and no lease runs out while its feed waits for one. The new
        entries of all feeds share one pool of threads, so one feed's many entries use every
        document worker too."""
        self.host.reap()
        if ignore_schedule:
            with self.host.sessions.begin() as session:
                feed_store.make_all_due(session, self.host.clock())
        # due by the start of this poll: every poll moves a feed's next check past it, so each
        # feed is polled at most once, and a feed that falls due meanwhile waits for the next
        started = self.host.clock()
        try:
            return self._poll(started, progress)
        except StorageError:  # feeds in hand are tried again soon, if the database lets us
            with contextlib.suppress(SQLAlchemyError), self.host.sessions.begin() as session:
                feed_store.hold_leases(session, self.host.owner, self.host.clock() + STORAGE_RETRY)
            raise
        finally:
            give_back()  # the pages, feeds and texts of this poll, freed

    def _poll(self, started: datetime,
              progress: Callable[[int], None] | None) -> list[FeedResult]:
        results: list[FeedResult] = []
        workers = self.host.settings.fetch.workers
        records = db.WriteBatch(self.host.sessions)
        with ThreadPoolExecutor(workers, "feed") as pool, \
                ThreadPoolExecutor(entry_threads(self.host.settings), "entry") as entries:
            ctx = self.host.context(entries, records)
            running: set[Future[FeedResult]] = set()
            more = True
            try:
                while more or running:
                    if more and len(running) <= workers // 2 and not self.host.stopping.is_set():
                        with self.host.sessions.begin() as session:
                            jobs = feed_store.claim_due(session, self.host.owner, self.host.clock(),
                                                        FEED_LEASE, workers - len(running),
                                                        due_by=started)
                        more = bool(jobs)
                        running.update(pool.submit(self._poll_one, ctx, job) for job in jobs)
                    if self.host.stopping.is_set():
                        more = False
                    if running:
                        done, running = wait(running, records.every, FIRST_COMPLETED)
                        for future in done:
                            results.append(future.result())
                            if progress is not None:
                                progress(1)
                    if records.due():
                        self._flush(records)
            finally:
                wait(running)  # only after an error: let them end, then record them
                if not self._flush(records):
                    log.error("%d feed poll records not written; those feeds are polled again "
                              "when their leases run out", records.pending)
        return results

    def _flush(self, records: db.WriteBatch) -> bool:
        """Write the gathered feed records; on a database error they stay for the next try."""
        try:
            records.flush()
        except SQLAlchemyError as e:
            log.warning("could not write %d feed poll records, retrying: %s", records.pending,
                        str(e).splitlines()[0][:300])
            return False
        return True

    def _poll_one(self, ctx: Context, job: feed_store.FeedJob) -> FeedResult:
        if self.host.stopping.is_set():
            return FeedResult(job.id, job.url, "skipped", error="shutting down")
        try:
            result = process_feed(ctx, job)
        except SQLAlchemyError as e:  # the database failed, not the feed: the poll stops
            raise StorageError(db.describe(e)) from e
        except Exception as e:  # a bug must not stop the other feeds; it is logged loudly
            log.exception("feed=%s status=crashed", redact(job.url))
            result = FeedResult(job.id, job.url, "failed", error=f"internal error: {e!r}"[:500])
            try:
                with self.host.sessions.begin() as session:
                    now = self.host.clock()
                    feed_store.record_failure(session, job.id, self.host.owner, now,
                                              now + timedelta(seconds=job.interval_seconds),
                                              result.error)
            except SQLAlchemyError as stored:
                raise StorageError(db.describe(stored)) from stored
        POLLS.labels(result.status).inc()
        shown = redact(job.url)
        fields = {"feed": shown, "status": result.status, "new": result.new,
                  "copies": result.copies, "alerts": result.alerts, "left": result.left,
                  "error": redact(result.error) or None}
        if result.status == "failed":
            log.warning("feed=%s status=failed error=%r", shown, redact(result.error),
                        extra={"fields": fields})
        else:
            log.info("feed=%s status=%s new=%d copies=%d alerts=%d left=%d", shown,
                     result.status, result.new, result.copies, result.alerts, result.left,
                     extra={"fields": fields})
        return result
