"""One monitor instance: the database, the fetcher, the matcher and the channels, and the three
things a cycle does: poll due feeds, cut due digests, relay the outbox."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from monitor import decide, notify, seeds
from monitor.config import Settings, WatchlistSettings
from monitor.digest import DigestData, Renderer, dumps_slack, group, message_id, sender_domain
from monitor.errors import DeliveryError, PermanentDeliveryError, StorageError
from monitor.fetch import Fetcher
from monitor.guard import AddressPolicy, Resolver, system_resolver
from monitor.ops import POLLS
from monitor.pipeline import Context, FeedResult, process_feed
from monitor.schedule import parse_quiet_hours, parse_schedule
from monitor.store import db, outbox, retention
from monitor.store import feeds as feed_store
from monitor.store.outbox import DigestJob
from monitor.stories.keeper import Stories
from monitor.text import clean
from monitor.urls import redact
from monitor.watchlists import matcher_for, term_warnings, watchlist_of
from monitor.work import DocumentWorkers

log = logging.getLogger("monitor")

NOTICE_WINDOW = timedelta(days=7)
MAX_NOTICES = 10
FEED_LEASE = timedelta(minutes=15)
DIGEST_LEASE = timedelta(minutes=5)
STORAGE_RETRY = timedelta(minutes=1)  # a poll the database cut short: its feeds again after
PRUNE_EVERY = timedelta(days=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Preview:
    watchlist: str
    channel: str
    text: str
    html: str


@dataclass
class RelayReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def entry_threads(settings: Settings) -> int:
    """Entries processed at once: enough to keep every document worker busy while others fetch
    pages or wait to store."""
    processes = settings.documents.processes or os.cpu_count() or 1
    return max(settings.fetch.workers, 4 * processes)


def _fetcher(settings: Settings, clock: Callable[[], datetime], resolver: Resolver) -> Fetcher:
    f = settings.fetch
    return Fetcher(
        policy=AddressPolicy.from_settings(f.allow_private_addresses, f.allowed_hosts),
        user_agent=f.user_agent, timeout=f.timeout, connect_timeout=f.connect_timeout,
        max_redirects=f.max_redirects, per_host=f.per_host,
        max_connections=f.workers + entry_threads(settings), resolver=resolver, clock=clock,
    )


def _documents(settings: Settings) -> DocumentWorkers:
    d = settings.documents
    return DocumentWorkers(processes=d.processes, timeout=d.timeout, memory_mib=d.memory_limit,
                           watchlists=[watchlist_of(w) for w in settings.watchlists],
                           snippet_chars=settings.digest.snippet_chars)


def _renderer(settings: Settings) -> Renderer:
    templates = settings.resolve(settings.digest.templates) if settings.digest.templates \
        else None
    return Renderer(templates, settings.channels.email.subject)


class Service:
    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = utcnow,
                 resolver: Resolver = system_resolver, write: bool = True) -> None:
        """``write=False``: only to read (``status``), so a read-only database is no error."""
        self.settings = settings
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{db.pid_namespace()}:{id(self):x}"
        self.engine, self.sessions = db.open_database(settings.storage.url, write=write)
        self.reads = db.readers(self.engine)
        self._resolver = resolver
        self.fetcher = _fetcher(settings, clock, resolver)
        self.documents = _documents(settings)
        self.matcher = matcher_for(settings)
        self.stories = Stories()
        self.channels: dict[str, list[str]] = {
            w.name: settings.channels_of(w) for w in settings.watchlists
        }
        self.renderer = _renderer(settings)
        self.stopping = threading.Event()
        self._pruned_at: datetime | None = None
        self.last_cut = 0  # digests cut by the last cycle
        self.last_relay = RelayReport()  # and what its relay did

    def close(self) -> None:
        self.fetcher.close()
        self.documents.close()
        self.engine.dispose()

    # -- start-up ------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Make the feeds table follow the config and load new seed documents; say which
        terms are common words."""
        for warning in term_warnings(self.settings):
            log.warning("%s", warning)
        now = self.clock()
        interval = self.settings.poll.interval
        with self.sessions.begin() as session:
            feed_store.sync_feeds(session, [(f.url, f.name, f.interval or interval)
                                            for f in self.settings.feeds], now)
        seeds.load_seeds(self.sessions, self.settings.seed_paths(), now,
                         self.stories, self.documents.describe)

    def apply(self, new: Settings) -> None:
        """Take a reloaded config: watchlists, channels, feeds, seeds, fetch and templates
        apply from the next step on; what needs a restart is said so."""
        old = self.settings
        for key, before, after in (("storage.url", old.storage.url, new.storage.url),
                                   ("poll.tick", old.poll.tick, new.poll.tick)):
            if before != after:
                log.warning("reload: %s changed; it applies at the next restart", key)
        new = new.model_copy(update={"storage": old.storage,
                                     "poll": new.poll.model_copy(update={"tick": old.poll.tick})})
        # everything is built before anything is swapped: a failure leaves the old set whole
        matcher = matcher_for(new)
        renderer = _renderer(new)
        channels = {w.name: new.channels_of(w) for w in new.watchlists}
        if new.fetch != old.fetch:
            self.fetcher.close()
            self.fetcher = _fetcher(new, self.clock, self._resolver)
        documents = _documents(new)  # the workers match too: new watchlists, new workers
        if documents.spec != self.documents.spec:
            self.documents.close()
            self.documents = documents
        self.settings, self.matcher, self.channels, self.renderer = (new, matcher, channels,
                                                                     renderer)
        self.prepare()
        log.info("reloaded: %d feeds, %d watchlists", len(new.feeds), len(new.watchlists))

    def reap(self) -> int:
        """Free the leases of processes of this host that died (kill -9, crash), so their feeds
        and digests are taken up now rather than when the leases expire."""
        with self.sessions.begin() as session:
            released = db.release_dead_leases(session, socket.gethostname(), _alive)
        if released:
            log.warning("released %d leases of processes on this host that died (a digest that "
                        "was being sent goes out again)", released)
        return released

    def context(self, entries: Executor | None = None,
                records: db.WriteBatch | None = None) -> Context:
        return Context(self.settings, self.sessions, self.reads, self.fetcher, self.documents,
                       self.matcher, self.stories, self.channels, self.clock, entries=entries,
                       records=records)

    # -- polling -------------------------------------------------------------------------------

    def poll(self, *, ignore_schedule: bool = False,
             progress: Callable[[int], None] | None = None) -> list[FeedResult]:
        """Poll due feeds (every active feed with ``ignore_schedule``), each at most once, until
        none is due. Feeds are claimed as workers free up (half the workers at a time), so
        every worker stays busy and no lease runs out while its feed waits for one. The new
        entries of all feeds share one pool of threads, so one feed's many entries use every
        document worker too."""
        self.reap()
        if ignore_schedule:
            with self.sessions.begin() as session:
                feed_store.make_all_due(session, self.clock())
        # due by the start of this poll: every poll moves a feed's next check past it, so each
        # feed is polled at most once, and a feed that falls due meanwhile waits for the next
        started = self.clock()
        try:
            return self._poll(started, progress)
        except StorageError:  # feeds in hand are tried again soon, if the database lets us
            with contextlib.suppress(SQLAlchemyError), self.sessions.begin() as session:
                feed_store.hold_leases(session, self.owner, self.clock() + STORAGE_RETRY)
            raise

    def _poll(self, started: datetime,
              progress: Callable[[int], None] | None) -> list[FeedResult]:
        results: list[FeedResult] = []
        workers = self.settings.fetch.workers
        records = db.WriteBatch(self.sessions)
        with ThreadPoolExecutor(workers, "feed") as pool, \
                ThreadPoolExecutor(entry_threads(self.settings), "entry") as entries:
            ctx = self.context(entries, records)
            running: set[Future[FeedResult]] = set()
            more = True
            try:
                while more or running:
                    if more and len(running) <= workers // 2 and not self.stopping.is_set():
                        with self.sessions.begin() as session:
                            jobs = feed_store.claim_due(session, self.owner, self.clock(),
                                                        FEED_LEASE, workers - len(running),
                                                        due_by=started)
                        more = bool(jobs)
                        running.update(pool.submit(self._poll_one, ctx, job) for job in jobs)
                    if self.stopping.is_set():
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
        if self.stopping.is_set():
            return FeedResult(job.id, job.url, "skipped", error="shutting down")
        try:
            result = process_feed(ctx, job)
        except SQLAlchemyError as e:  # the database failed, not the feed: the poll stops
            raise StorageError(db.describe(e)) from e
        except Exception as e:  # a bug must not stop the other feeds; it is logged loudly
            log.exception("feed=%s status=crashed", redact(job.url))
            result = FeedResult(job.id, job.url, "failed", error=f"internal error: {e!r}"[:500])
            try:
                with self.sessions.begin() as session:
                    now = self.clock()
                    feed_store.record_failure(session, job.id, self.owner, now,
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

    # -- digests -------------------------------------------------------------------------------

    def cut_digests(self, *, force: bool = False) -> int:
        """Turn pending alerts into digests for every watchlist that is due (all with
        ``force``). Due-ness is stored, so a restart after downtime finds one digest due."""
        made = 0
        notices: list[str] | None = None
        for wl in self.settings.watchlists:
            now = self.clock()
            schedule = parse_schedule(wl.schedule, wl.timezone)
            quiet = parse_quiet_hours(wl.quiet_hours, wl.timezone) if wl.quiet_hours else None
            key = f"{wl.schedule} ({wl.timezone})"
            with self.sessions.begin() as session:
                state = outbox.watchlist_state(session, wl.name, lock=True)
                last = state.last_digest_at if state else None
                stored = state.next_digest_at if state else None
                due_at = decide.current_due(
                    stored_due=stored, stored_schedule=state.schedule if state else None,
                    schedule=key, last_sent=last, next_after=schedule.next_after)
                if due_at != stored:  # the schedule was edited: its due time follows
                    outbox.set_watchlist_state(session, wl.name, due_at, None, key)
                decision = decide.digest_due(
                    due_at=due_at, now=now, force=force,
                    urgent=self._urgent_pending(session, wl),
                    quiet_now=quiet is not None and quiet.active(now))
                if not decision.cut:
                    continue
                if notices is None:
                    notices = self.notices(session, now)
                count = sum(self._cut_one(session, wl.name, ch, now, notices) for ch in
                            self.channels.get(wl.name, []))
                made += count
                if decide.reschedule_after_cut(decision, cut=count, ever_sent=last is not None):
                    outbox.set_watchlist_state(session, wl.name, schedule.next_after(now, last),
                                               now if count else None, key)
        return made

    def _urgent_pending(self, session: Session, wl: WatchlistSettings) -> bool:
        if not (wl.urgent or wl.urgent_terms):
            return False
        return decide.urgent_pending(
            all_urgent=wl.urgent, urgent_terms=wl.urgent_terms,
            pending_terms=outbox.pending_terms(session, wl.name, self.channels.get(wl.name, [])))

    def notices(self, session: Session, now: datetime) -> list[str]:
        """What the operator must hear about, in every digest until it is fixed: channels whose
        last digest failed for good, feeds failing for ``poll.dead_after``, silent feeds."""
        out = []
        last_sent = outbox.last_sent(session)
        for d in outbox.failed_digests(session):
            if d.created_at >= now - NOTICE_WINDOW and \
                    last_sent.get((d.watchlist, d.channel), d.created_at) <= d.created_at:
                out.append(f"{d.channel} delivery failed for good (digest {d.id}, {d.watchlist}, "
                           f"{d.created_at:%Y-%m-%d %H:%M} UTC): {d.last_error}. Fix it, then "
                           f"run: monitor digest --resend {d.id}")
        for d in outbox.delivery_troubles(session, now - NOTICE_WINDOW):
            if d.status == "sent":
                out.append(f"{d.channel} digest {d.id} ({d.watchlist}) went out incomplete: "
                           f"{d.last_error}")
            else:
                out.append(f"{d.channel} delivery of digest {d.id} ({d.watchlist}) is being "
                           f"retried ({d.attempts} tries): {d.last_error}")
        dead_after = timedelta(seconds=self.settings.poll.dead_after)
        for f in feed_store.all_feeds(session):
            if not f.active:
                continue
            since = f.last_success_at or f.created_at
            if f.error_count and since <= now - dead_after:
                out.append(f"feed {f.name or f.url} has failed since {since:%Y-%m-%d %H:%M} UTC "
                           f"({f.error_count} tries): {f.last_error}")
            elif not f.error_count and f.silent_since is not None:
                out.append(f"feed {f.name or f.url} has been silent since "
                           f"{f.silent_since:%Y-%m-%d %H:%M} UTC")
        if len(out) > MAX_NOTICES:
            out = [*out[:MAX_NOTICES], f"... and {len(out) - MAX_NOTICES} more: monitor status"]
        return [clean(redact(n), 500, single_line=True) for n in out]

    def _cut_one(self, session: Session, watchlist: str, channel: str, now: datetime,
                 notices: list[str]) -> int:
        alert_ids = outbox.pending_alerts(session, watchlist, channel)
        if not alert_ids:
            return 0  # no empty digests
        items = outbox.digest_items(session, alert_ids)
        stories = group(items, outbox.story_info(session, items, watchlist, channel))
        row = outbox.insert_digest(session, watchlist, channel, len(items), now)
        rendered = self.renderer.render(DigestData(watchlist, items, now, notices, stories))
        domain = sender_domain(self.settings.channels.email.sender)
        row.subject, row.body_text, row.body_html = rendered.subject, rendered.text, rendered.html
        row.slack_payload = dumps_slack(rendered.slack)
        row.message_id = message_id(row.id, watchlist, channel, domain)
        row.status = "queued"
        outbox.assign_alerts(session, alert_ids, row.id)
        log.info("digest=%d watchlist=%s channel=%s articles=%d status=queued", row.id,
                 watchlist, channel, len(items))
        return 1

    def preview(self) -> list[Preview]:
        """Everything that would be sent now, rendered; changes nothing."""
        out = []
        with self.sessions() as session:
            for d in outbox.unsent_digests(session):
                out.append(Preview(d.watchlist, d.channel, d.body_text, d.body_html))
            now = self.clock()
            for wl in self.settings.watchlists:
                for channel in self.channels.get(wl.name, []):
                    ids = outbox.pending_alerts(session, wl.name, channel)
                    if ids:
                        items = outbox.digest_items(session, ids)
                        stories = group(items, outbox.story_info(session, items, wl.name,
                                                                 channel))
                        rendered = self.renderer.render(DigestData(wl.name, items, now, [],
                                                                   stories))
                        out.append(Preview(wl.name, channel, rendered.text, rendered.html))
            session.rollback()
        return out

    def resend(self, digest_id: int) -> RelayReport | None:
        """Send a failed (or sent, but lost downstream) digest again, whole; None when there
        is no such digest or it is still queued."""
        with self.sessions.begin() as session:
            row = outbox.requeue(session, digest_id)
            if row is None:
                return None
            log.info("digest=%d status=requeued for re-send", digest_id)
        return self.relay(ignore_backoff=True, only={digest_id})

    # -- delivery ------------------------------------------------------------------------------

    def relay(self, *, ignore_backoff: bool = False,
              only: set[int] | None = None) -> RelayReport:
        """Send queued digests: claim (lease), send, record. A crash between send and record
        leaves the lease to expire and that one digest is sent again: at most one repeat."""
        report = RelayReport()
        tried: set[int] = set()
        self.reap()
        while not self.stopping.is_set():
            with self.sessions.begin() as session:
                jobs = outbox.claim_digests(session, self.owner, self.clock(), DIGEST_LEASE,
                                            ignore_backoff=ignore_backoff, exclude=tried,
                                            only=only)
            if not jobs:
                break
            for job in jobs:
                tried.add(job.id)
                self._deliver(job, report)
        return report

    def _deliver(self, job: DigestJob, report: RelayReport) -> None:
        """Send one digest and record the outcome. Nothing a sender raises escapes: one
        digest's failure never holds back another's."""
        try:
            warning = self._send(job)
        except PermanentDeliveryError as e:
            self._failed(job, report, str(e))
            return
        except DeliveryError as e:
            self._retry(job, report, str(e), e.retry_after)
            return
        except SQLAlchemyError:  # the database, not the digest: the relay stops, the lease runs
            raise
        except Exception as e:  # a bug or an unforeseen answer: retried, never a stuck digest
            self._retry(job, report, f"internal error: {e!r}"[:500], None)
            return
        with self.sessions.begin() as session:
            outbox.mark_sent(session, job.id, self.owner, self.clock(), warning=warning)
        report.sent += 1
        if warning:
            report.errors.append(f"digest {job.id} ({job.watchlist}/{job.channel}): {warning}")
            log.warning("digest=%d watchlist=%s channel=%s status=sent warning=%r", job.id,
                        job.watchlist, job.channel, warning)
        else:
            log.info("digest=%d watchlist=%s channel=%s status=sent", job.id, job.watchlist,
                     job.channel)

    def _send(self, job: DigestJob) -> str | None:
        if job.channel not in self.channels.get(job.watchlist, []):
            raise DeliveryError(f"channel {job.channel} is not configured for watchlist "
                                f"{job.watchlist}")
        return notify.sender(job.channel, self.settings, job.watchlist, self.clock).send(
            job, self._part_recorder(job))

    def _failed(self, job: DigestJob, report: RelayReport, error: str) -> None:
        error = redact(error)
        with self.sessions.begin() as session:
            outbox.mark_failed(session, job.id, self.owner, error)
        report.failed += 1
        report.errors.append(f"digest {job.id} ({job.watchlist}/{job.channel}): {error}")
        log.error("digest=%d channel=%s status=failed error=%r", job.id, job.channel, error)

    def _retry(self, job: DigestJob, report: RelayReport, error: str,
               retry_after: float | None) -> None:
        error = redact(error)
        wait = decide.delivery_retry(job.attempts, retry_after)
        with self.sessions.begin() as session:
            outbox.mark_retry(session, job.id, self.owner, error,
                              self.clock() + timedelta(seconds=wait))
        report.retrying += 1
        report.errors.append(f"digest {job.id} ({job.watchlist}/{job.channel}): {error}")
        log.warning("digest=%d channel=%s status=retrying in=%.0fs error=%r", job.id,
                    job.channel, wait, error)

    def _part_recorder(self, job: DigestJob) -> Callable[[int], None]:
        def record(parts: int) -> None:
            with self.sessions.begin() as session:
                outbox.record_part(session, job.id, self.owner, parts)
        return record

    def unsent(self) -> int:
        with self.sessions() as session:
            return len(outbox.unsent_digests(session))

    # -- one cycle -----------------------------------------------------------------------------

    def cycle(self, *, ignore_schedule: bool = False,
              progress: Callable[[int], None] | None = None) -> list[FeedResult]:
        results = self.poll(ignore_schedule=ignore_schedule, progress=progress)
        self.last_cut, self.last_relay = 0, RelayReport()
        if not self.stopping.is_set():
            self.last_cut = self.cut_digests()
            self.last_relay = self.relay()
        if not self.stopping.is_set() and self.settings.retention.after and (
                self._pruned_at is None or self.clock() - self._pruned_at > PRUNE_EVERY):
            self.prune()
        return results

    def prune(self) -> retention.Pruned:
        """Apply ``retention.after`` now (the daemon does it once a day)."""
        now = self.clock()
        self._pruned_at = now
        with self.sessions.begin() as session:
            pruned = retention.prune(session,
                                     now - timedelta(seconds=self.settings.retention.after))
        if pruned.articles or pruned.matches or pruned.digests:
            log.info("retention: %d articles pruned to their fingerprints, %d matches, "
                     "%d digests and %d alerts deleted", pruned.articles, pruned.matches,
                     pruned.digests, pruned.alerts)
        return pruned

