"""One feed, top to bottom: fetch -> parse -> (per new entry) fetch page + extract -> dedup ->
match -> store. Expected failures come back as a ``FeedResult`` and are stored on the feed."""

from __future__ import annotations

import hashlib
import itertools
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor import decide, dedup, health
from monitor.config import Settings
from monitor.dedup import Verdict
from monitor.errors import FeedError, FetchError, RetryLater
from monitor.feeds import Entry
from monitor.fetch import Fetched, Fetcher
from monitor.match import Matcher, WatchlistMatch
from monitor.memory import Every
from monitor.metrics import STAGE_SECONDS
from monitor.store import articles
from monitor.store import feeds as feed_store
from monitor.store import stories as stories_store
from monitor.store.db import WriteBatch
from monitor.store.feeds import FeedJob
from monitor.store.tables import Article
from monitor.stories.features import Features
from monitor.stories.keeper import Stories
from monitor.urls import redact
from monitor.work import Analysis, DocumentWorkers, ExtractFailed, analyse, entities

log = logging.getLogger("monitor")

FEED_ACCEPT = ("application/rss+xml, application/atom+xml, application/rdf+xml, "
               "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
MAX_OUTLET = 512


@dataclass
class Context:
    settings: Settings
    sessions: sessionmaker[Session]
    reads: sessionmaker[Session]  # read-only transactions (no write lock on SQLite)
    fetcher: Fetcher
    documents: DocumentWorkers
    matcher: Matcher
    stories: Stories
    channels: dict[str, list[str]]  # watchlist -> active channels it alerts on
    clock: Callable[[], datetime]
    rng: random.Random = field(default_factory=random.Random)
    entries: Executor | None = None  # where new entries are processed (None: one by one here)
    records: WriteBatch | None = None  # where feed records are gathered (None: written at once)
    writer: threading.Lock | None = None  # taken around each article's store (one at a time)


@dataclass
class FeedResult:
    feed_id: int
    url: str
    status: str  # ok | partial | not-modified | unchanged | failed
    new: int = 0
    left: int = 0  # new entries left for the next poll (time budget spent)
    copies: int = 0
    alerts: int = 0
    error: str = ""


@dataclass(frozen=True)
class Stored:
    article_id: int
    copy: bool
    alerts: int


def process_feed(ctx: Context, job: FeedJob) -> FeedResult:
    """Poll one feed. New entries are processed until ``fetch.feed_budget`` is spent; the rest
    wait for the next poll, which is then due at once (validators are not stored, so the
    document is fetched and parsed again)."""
    now = ctx.clock()
    try:
        with STAGE_SECONDS.labels("feed_fetch").time():
            fetched = ctx.fetcher.get(job.url, max_bytes=ctx.settings.fetch.feed_max_bytes,
                                      etag=job.etag, last_modified=job.last_modified,
                                      accept=FEED_ACCEPT)
        if not isinstance(fetched, Fetched):
            return _succeeded(ctx, job, now, "not-modified", not_modified=True)
        body_hash = hashlib.sha256(fetched.body).hexdigest()
        if body_hash == job.body_hash:  # a server that ignores validators
            return _succeeded(ctx, job, now, "unchanged", not_modified=True)
        with STAGE_SECONDS.labels("parse").time():
            parsed = ctx.documents.parse(fetched.body, fetched.url, now, fetched.content_type)
    except RetryLater as e:
        return _failed(ctx, job, now, str(e), wait=e.retry_after)
    except (FetchError, FeedError) as e:
        return _failed(ctx, job, now, str(e))

    result = FeedResult(job.id, job.url, "ok")
    outlet = (job.name or parsed.title or job.title or _host(job.url))[:MAX_OUTLET]
    new, stored_urls = _new_entries(ctx, job, parsed.entries)
    started = time.monotonic()  # the budget is for the entries; at least one always goes

    def one(index: int, key: str, entry: Entry) -> Stored | str:
        if index and time.monotonic() - started > ctx.settings.fetch.feed_budget:
            return "partial"  # left for the next poll
        try:
            return process_entry(ctx, job, key, entry, outlet,
                                 stored_urls.get(entry.canonical))
        except SQLAlchemyError:  # the database, not the entry: the poll stops, retried later
            raise
        except Exception as e:  # a bug on one entry must not hold back the others
            where = redact(entry.link or entry.guid)
            log.exception("feed=%s entry=%s status=crashed", redact(job.url), where)
            return f"entry {where}: internal error: {e!r}"

    items = [(i, key, entry) for i, (key, entry) in enumerate(new.items())]
    outcomes = ctx.entries.map(one, *zip(*items, strict=True)) if ctx.entries and items \
        else (one(*item) for item in items)
    crashed: list[str] = []
    for stored in outcomes:
        if isinstance(stored, str):
            result.left += 1
            if stored == "partial":
                result.status = "partial"
            else:
                crashed.append(stored)
            continue
        result.new += 1
        result.copies += stored.copy
        result.alerts += stored.alerts
    if result.status == "partial":  # validators not stored: read again at the next tick
        _succeeded(ctx, job, now, "partial", title=parsed.title, new=result.new)
    elif crashed:  # a failure of the feed: it backs off, shows in status, is read whole again
        error = (f"{len(crashed)} of {len(items)} new entries could not be processed "
                 f"(first, {crashed[0]})")[:500]
        failed = _failed(ctx, job, now, error, read=True)
        result.status, result.error = failed.status, failed.error
    else:
        _succeeded(ctx, job, now, "ok", title=parsed.title, etag=fetched.etag,
                   last_modified=fetched.last_modified, body_hash=body_hash, new=result.new,
                   newest=_newest(parsed.entries), cadence=_cadence(parsed.entries))
    return result


def _new_entries(ctx: Context, job: FeedJob, entries: list[Entry]
                 ) -> tuple[dict[str, Entry], dict[str, int]]:
    """Entries of this feed not seen before, by identity (first occurrence wins), and the
    stored articles that already have the canonical URL of one of them."""
    by_key: dict[str, Entry] = {}
    for entry in entries:
        by_key.setdefault(entry.key(job.id), entry)
    with ctx.reads() as session:
        known = feed_store.known_entry_keys(session, job.id, list(by_key))
        new = {k: e for k, e in by_key.items() if k not in known}
        return new, articles.by_canonical_urls(session, (e.canonical for e in new.values()))


def process_entry(ctx: Context, job: FeedJob, key: str, entry: Entry, outlet: str,
                  same_url: int | None = None) -> Stored:
    """Store one new entry: as another entry of the article stored under its canonical URL
    (``same_url``, when the caller knows it), else as a new article, original or copy."""
    now = ctx.clock()
    if same_url is not None:  # one article in two feeds, or reposted in this one
        with ctx.sessions.begin() as session:
            articles.add_entry(session, job.id, key, same_url, entry.link, now)
        return Stored(same_url, True, 0)
    stored = store_entry(ctx, job, key, entry, outlet, analyse_entry(ctx, entry), now)
    _tidy()
    return stored


# what the pages, texts and transactions freed goes back to the system every 64th article
_tidy = Every(64)


def store_entry(ctx: Context, job: FeedJob, key: str, entry: Entry, outlet: str,
                found: Analysis, now: datetime) -> Stored:
    """Store an analysed entry as a new article, original or copy, in its story."""
    text, fp, matches = found.text, found.fingerprint, found.matches
    # The copy decision has to see every article stored before this one that it could copy,
    # so it is taken under a lock: on PostgreSQL one per slot (``articles.copy_slots``: the
    # URL, the text and lead hashes, the sampled shingles), so that only possible copies wait
    # for each other, then the story decision under one lock for the cluster; elsewhere one
    # lock for both. Most of its work is done before: the copy lookup and its verification on
    # the articles stored now (ids up to ``seen``). Under the lock it looks again, only at the
    # articles stored since when no store was in flight as ``seen`` was read (no store can
    # then commit an id below it: ``articles.watermark``), at all of them otherwise; the
    # better verdict wins.
    # A copy joins its original's story and needs no sentence vector: only an article with no
    # verdict here is described (in a worker, before the lock). Should the original turn out
    # to be in no story, the transaction is dropped, the article described, and stored then.
    features = found.features
    with STAGE_SECONDS.labels("dedup").time(), ctx.reads() as session:
        with ctx.writer if ctx.writer and articles.partitioned(session) else nullcontext():
            seen, exact = articles.watermark(session)  # (no store of this instance in flight)
        early = copy_verdict(session, text, fp)
    described = early is None
    while True:
        if described and features is found.features:
            with STAGE_SECONDS.labels("features").time():
                features = ctx.documents.describe(entry.title, text, entities(matches),
                                                  found.features) or features
        try:
            return _store(ctx, job, key, entry, outlet, found, features, described, now,
                          early, seen if exact else None)
        except _Undescribed:
            described = True


@contextmanager
def _held() -> Iterator[list[float]]:
    """Times how long the lock every instance waits for is held (from when the body notes
    that it has it to the end of the transaction): stage ``locked``, whose inverse is what it
    allows a whole cluster per second. Partitioned (PostgreSQL), that is the story lock;
    otherwise the copy decision's."""
    taken: list[float] = []
    try:
        yield taken
    finally:
        if taken:
            STAGE_SECONDS.labels("locked").observe(time.perf_counter() - taken[0])


class _Undescribed(Exception):
    """No copy after all: the article needs its sentence vector (the transaction is dropped)."""


def _store(ctx: Context, job: FeedJob, key: str, entry: Entry, outlet: str, found: Analysis,
           features: Features | None, described: bool, now: datetime, early: Verdict | None,
           after: int | None) -> Stored:
    """Store under the lock: the copy decision is ``early`` (taken on every article with an id
    up to ``after``, and on some after it) or one on the articles stored since, whichever is
    better. ``after`` None: an article with a lower id may have been stored since."""
    text, source, fetch_error, fp, matches = (found.text, found.source, found.error,
                                              found.fingerprint, found.matches)
    slots = articles.copy_slots(entry.canonical, fp.content_hash, fp.lead_hash, fp.shingles)
    with STAGE_SECONDS.labels("store").time(), ctx.writer or nullcontext(), \
            _held() as held, ctx.sessions.begin() as session:
        partitioned = articles.lock_copies(session, slots, quiet=after is not None)
        if not partitioned:  # this article decides alone: the cluster waits from here
            held.append(time.perf_counter())
        with STAGE_SECONDS.labels("dedup").time():
            # Only the articles stored since the early lookup, if any; every article when one
            # with a lower id may have been (their texts' verification is cached). One
            # statement, with the canonical URL's.
            looked = articles.look_up(
                session, canonical=entry.canonical, content_hash=fp.content_hash,
                lead_hash=fp.lead_hash, shingles=fp.shingles,
                min_overlap=dedup.min_overlap(len(fp.shingles)), after=after or 0)
            if looked.same_url is not None:  # stored by another worker meanwhile
                articles.add_entry(session, job.id, key, looked.same_url, entry.link, now)
                return Stored(looked.same_url, True, 0)
            late = copy_verdict(session, text, fp, found=looked)
        verdict = max((v for v in (early, late) if v is not None), key=lambda v: v.score,
                      default=None)
        root, root_is_seed = (articles.original_of(session, verdict.original_id)
                              if verdict else (None, False))
        if not described and (root is None or stories_store.story_of(session, root) is None):
            raise _Undescribed  # no copy after all, or of an article in no story (a story
            # of its own needs the vector)
        article_id = articles.insert_article(session, Article(
            feed_id=job.id, guid=entry.guid, link=entry.link,
            canonical_url=entry.canonical or None, title=entry.title, outlet=outlet, text=text,
            text_source=source, fetch_error=fetch_error,
            content_hash=fp.content_hash or None, lead_hash=fp.lead_hash or None,
            shingle_count=len(fp.shingles),
            published_at=entry.published, created_at=now, is_seed=False,
            duplicate_of_id=root, dup_reason=verdict.reason if verdict else None,
            dup_score=verdict.score if verdict else None,
        ), fp.shingles, found.words)
        articles.add_entry(session, job.id, key, article_id, entry.link, now)
        if partitioned:
            articles.lock_stories(session)
            held.append(time.perf_counter())
        with STAGE_SECONDS.labels("story").time():
            ctx.stories.place(session, article_id, entry.title, features,
                              min(entry.published or now, now), now, root)
        alerts = _record_matches(ctx, session, article_id, matches, root, root_is_seed, now)
        engine, info = session.get_bind().engine, session.info
    ctx.stories.committed(info)
    verified = dedup.verified_sketch(text)
    if verified is not None:  # committed (SQLite may give a rolled-back id to another article)
        _remember(engine, article_id, verified)
    return Stored(article_id, verdict is not None, alerts)


# Sketches of stored texts, per database (engine) and by article id: of those verified
# against lately, and of articles stored lately whose text was verified before it was stored
# (a copy: its own copies, arriving soon after, are verified against it). About 5 kB each.
_SKETCHES: WeakKeyDictionary[object, OrderedDict[int, dedup.Sketch]] = WeakKeyDictionary()
_SKETCHES_KEPT = 1024
_SKETCHES_LOCK = threading.Lock()


def _remember(engine: object, article_id: int, sketch: dedup.Sketch) -> None:
    with _SKETCHES_LOCK:
        kept = _SKETCHES.setdefault(engine, OrderedDict())
        kept[article_id] = sketch
        kept.move_to_end(article_id)
        while len(kept) > _SKETCHES_KEPT:
            kept.popitem(last=False)


def _verify(session: Session, text: str, fp: dedup.Fingerprint, article_id: int
            ) -> Verdict | None:
    with _SKETCHES_LOCK:
        kept = _SKETCHES.setdefault(session.get_bind().engine, OrderedDict())
        known = kept.get(article_id)
    if known is not None:  # a stored text does not change (retention only empties it)
        return dedup.verify(text, "", article_id, known)
    stored = articles.text_of(session, article_id)
    if stored:
        found = dedup.sketch(stored)
        _remember(session.get_bind().engine, article_id, found)
        return dedup.verify(text, stored, article_id, found)
    if articles.is_pruned(session, article_id):  # retention kept only its fingerprints
        return dedup.verify_sampled(fp.shingles, articles.shingles_of(session, article_id),
                                    article_id)
    return None


def copy_verdict(session: Session, text: str, fp: dedup.Fingerprint, after: int = 0,
                 found: articles.Found | None = None) -> Verdict | None:
    """Same normalised text, else the stored articles sharing most sampled shingles or the
    same opening words, each verified on its full stored text; the best verdict wins. Only
    articles with ids above ``after`` are looked at (0: every one); ``found``: what
    ``articles.look_up`` found already (with an ``after`` of its own)."""
    shingles = fp.shingles
    if found is None:
        found = articles.look_up(session, content_hash=fp.content_hash, lead_hash=fp.lead_hash,
                                 shingles=shingles, min_overlap=dedup.min_overlap(len(shingles)),
                                 after=after)
    if found.same_text is not None:
        return Verdict(found.same_text, "same-text", 1.0)
    candidates = dedup.shortlist(len(shingles), found.candidates)
    ids = list(dict.fromkeys([c.article_id for c in candidates] + found.same_lead))
    verdicts = [v for article_id in ids if (v := _verify(session, text, fp, article_id))]
    return max(verdicts, key=lambda v: v.score, default=None)


def _record_matches(ctx: Context, session: Session, article_id: int,
                    matches: list[WatchlistMatch], root: int | None, root_is_seed: bool,
                    now: datetime) -> int:
    """Store each match and queue its alerts (``decide.alert_channels``)."""
    alerts = 0
    for match in matches:
        match_id = articles.add_match(session, article_id, match, now)
        channels = decide.alert_channels(  # (a copy of a pruned article counts as a seed's)
            ctx.channels.get(match.watchlist, []), copies_a_seed=root_is_seed,
            story_sent_on=set() if root is None or root_is_seed else
            articles.alerted_in_story(session, root, match.watchlist))
        alerts += articles.add_alerts(session, article_id, match_id, match.watchlist,
                                      channels, now)
    return alerts


def analyse_entry(ctx: Context, entry: Entry) -> Analysis:
    """The entry's text (the page's main text, else the feed's own summary), fingerprinted and
    matched: a fetched page in a document worker, a summary here."""
    with STAGE_SECONDS.labels("page").time():  # the fetch
        page, error = _page(ctx, entry)
    found = None
    if page is not None:
        try:
            with STAGE_SECONDS.labels("analyse").time():  # in a worker, waiting for one too
                found = ctx.documents.analyse(page.body, page.url, entry.title, entry.summary)
        except ExtractFailed as e:
            error = f"page: {e}"
        except Exception as e:  # a worker that broke: the feed's text stands in
            log.error("page=%s status=unexpected error=%r (stored from the feed's text)",
                      redact(page.url), e)
            error = f"page: unexpected error: {e!r}"[:500]
    if found is None:
        found = analyse(ctx.matcher, entry.title, entry.summary,
                        "summary" if entry.summary else "none", error)
    for stage, seconds in zip(("extract", "fingerprint", "match", "features"), found.seconds,
                              strict=True):
        if seconds:
            STAGE_SECONDS.labels(stage).observe(seconds)
    return found


def _page(ctx: Context, entry: Entry) -> tuple[Fetched | None, str | None]:
    """The entry's page, or None and why not (None: the feed's text is all there is)."""
    if entry.shared == "link":
        return None, "link not fetched: other items of the feed link to the same page"
    if not entry.canonical:
        return None, "link not fetched: not an http(s) URL" if entry.link else None
    if not ctx.settings.fetch.fetch_pages:
        return None, None
    try:
        page = ctx.fetcher.get(entry.link, max_bytes=ctx.settings.fetch.page_max_bytes,
                               accept=PAGE_ACCEPT)
    except FetchError as e:
        return None, f"page: {e}"
    except Exception as e:  # whatever the page does, the entry is stored from its feed text
        log.error("page=%s status=unexpected error=%r (stored from the feed's text)",
                  redact(entry.link), e)
        return None, f"page: unexpected error: {e!r}"[:500]
    if not isinstance(page, Fetched):
        return None, "page: 304 unasked"
    return page, None


def _newest(entries: list[Entry]) -> datetime | None:
    dates = [e.published for e in entries if e.published is not None]
    return max(dates) if dates else None


def _cadence(entries: list[Entry]) -> float | None:
    """The feed's usual gap between entries in seconds (median of its entries' dates), or None
    when the document has too few dated entries to say."""
    dates = sorted({e.published for e in entries if e.published is not None})
    if len(dates) < 3:
        return None
    gaps = sorted((b - a).total_seconds() for a, b in itertools.pairwise(dates))
    return max(gaps[len(gaps) // 2], 60.0)


def _host(link: str) -> str:
    try:
        return urlsplit(link).hostname or ""
    except ValueError:
        return ""


def _succeeded(ctx: Context, job: FeedJob, now: datetime, status: str, *,
               not_modified: bool = False, title: str | None = None, etag: str | None = None,
               last_modified: str | None = None, body_hash: str | None = None,
               new: int = 0, newest: datetime | None = None, cadence: float | None = None,
               ) -> FeedResult:
    """Record a poll that read the feed (or learnt it had not changed)."""
    kind = "not-modified" if not_modified else "partial" if status == "partial" else "ok"
    record = _decide(ctx, job, now, decide.Outcome(kind, new=new, newest=newest,
                                                   cadence=cadence))
    if record.newly_silent is not None:
        usual = cadence or job.cadence_seconds
        log.warning("feed=%s status=silent quiet_for=%s usual_gap=%s", redact(job.url),
                    health.describe_gap(record.newly_silent.total_seconds()),
                    health.describe_gap(usual) if usual else "unknown")
    keep = record.keep_validators
    _record(ctx, feed_store.success(
        job.id, job.owner, now, record.next_check, title=title,
        etag=etag if keep else None, last_modified=last_modified if keep else None,
        body_hash=body_hash if keep else None, new_entries=new, not_modified=not_modified,
        newest=newest, cadence=cadence, silent_since=record.silent_since),
        batch=not new)
    return FeedResult(job.id, job.url, status, new=new)


def _failed(ctx: Context, job: FeedJob, now: datetime, reason: str,
            wait: float | None = None, *, read: bool = False) -> FeedResult:
    """Record a failed poll: it backs off. ``read``: the feed was read but an entry failed."""
    record = _decide(ctx, job, now, decide.Outcome("failed", retry_after=wait, read=read))
    _record(ctx, feed_store.failure(job.id, job.owner, now, record.next_check, reason,
                                    read_again=not record.keep_validators), batch=not read)
    return FeedResult(job.id, job.url, "failed", error=reason)


def _decide(ctx: Context, job: FeedJob, now: datetime, outcome: decide.Outcome
            ) -> decide.Record:
    poll = ctx.settings.poll
    return decide.after_poll(job, outcome, now, tick=poll.tick, max_backoff=poll.max_backoff,
                             jitter=ctx.rng.random())


def _record(ctx: Context, write: feed_store.Write, *, batch: bool = True) -> None:
    """A feed's poll record: into the batch (a poll that found nothing new, which is harmless
    to repeat if a crash loses the record), or written now."""
    if batch and ctx.records is not None:
        ctx.records.add(*write)
        return
    with ctx.sessions.begin() as session:
        feed_store.apply(session, write)
