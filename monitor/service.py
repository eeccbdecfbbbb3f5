"""One monitor instance, the composition root: the database, the fetcher, the document workers,
the matcher, the stories and the channels, built from the settings (and rebuilt on reload); and
one cycle: poll due feeds (here), cut due digests (``cutter``), relay the outbox (``relay``)."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from monitor import notify, seeds
from monitor.alerter import Alerter
from monitor.config import Settings
from monitor.cutter import DigestCutter, Preview
from monitor.digest import Renderer
from monitor.fetch import Fetcher
from monitor.guard import AddressPolicy, Resolver, system_resolver
from monitor.memory import give_back
from monitor.pipeline import Context, FeedResult
from monitor.poller import Poller, entry_threads
from monitor.relay import Relay, RelayReport
from monitor.store import db, outbox, retention
from monitor.store import feeds as feed_store
from monitor.stories.keeper import Stories
from monitor.watchlists import matcher_for, term_warnings, watchlist_of
from monitor.work import DocumentWorkers

log = logging.getLogger("monitor")

PRUNE_EVERY = timedelta(days=1)
SPIKES_EVERY = timedelta(minutes=15)


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
                 resolver: Resolver = system_resolver, write: bool = True,
                 senders: Mapping[str, notify.SenderFactory] | None = None) -> None:
        """``write=False``: only to read (``status``), so a read-only database is no error.
        ``senders``: sender factories by channel instead of the registry's (for tests)."""
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
        # The article stores of this process queue here. SQLite has one writer at a time and
        # makes the others poll for its lock, sleeping up to 100 ms between tries; PostgreSQL
        # keeps an article's slot locks (``articles.lock_copies``) in a shared table of fixed
        # size, so one store at a time per instance bounds what the cluster takes of it.
        self.writer = threading.Lock()
        self.channels: dict[str, list[str]] = {
            w.name: settings.channels_of(w) for w in settings.watchlists
        }
        self.renderer = _renderer(settings)
        self.stopping = threading.Event()
        self._pruned_at: datetime | None = None
        self._spikes_at: datetime | None = None
        self.poller = Poller(self)
        self.cutter = DigestCutter(self)
        self.relayer = Relay(self, senders)
        self.alerter = Alerter(self)
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
        give_back()  # what the migrations, the seeds and the story index's load freed

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
            documents.start()  # now, as ``monitor run`` does, rather than at the next page
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
                       records=records, writer=self.writer)

    def poll(self, *, ignore_schedule: bool = False,
             progress: Callable[[int], None] | None = None) -> list[FeedResult]:
        return self.poller.poll(ignore_schedule=ignore_schedule, progress=progress)

    # -- polling, digests and delivery: their own orchestrators --------------------------------

    def cut_digests(self, *, force: bool = False) -> int:
        return self.cutter.cut_due(force=force)

    def notices(self, session: Session, now: datetime) -> list[str]:
        return self.cutter.notices(session, now)

    def preview(self) -> list[Preview]:
        return self.cutter.preview()

    def relay(self, *, ignore_backoff: bool = False,
              only: set[int] | None = None) -> RelayReport:
        return self.relayer.relay(ignore_backoff=ignore_backoff, only=only)

    def resend(self, digest_id: int) -> RelayReport | None:
        return self.relayer.resend(digest_id)

    def unsent(self) -> int:
        with self.sessions() as session:
            return len(outbox.unsent_digests(session))

    # -- one cycle -----------------------------------------------------------------------------

    def cycle(self, *, ignore_schedule: bool = False,
              progress: Callable[[int], None] | None = None) -> list[FeedResult]:
        results = self.poll(ignore_schedule=ignore_schedule, progress=progress)
        self.last_cut, self.last_relay = 0, RelayReport()
        if not self.stopping.is_set():
            now = self.clock()
            # a spike starts with new mentions; without any, a look now and then is enough
            if any(r.new for r in results) or self._spikes_at is None or \
                    now - self._spikes_at >= SPIKES_EVERY:
                self._spikes_at = now
                self.alerter.run()
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

