"""Watchlists over stored articles: preview what a changed watchlist would match, and backfill.

``preview`` changes nothing. ``backfill`` records the matches stored articles now have and,
only when asked (``alert=True``), queues them for the next digests: an original once per
watchlist and channel, never a seed or a copy of one, never an article already alerted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from monitor import decide
from monitor.match import Matcher, WatchlistMatch
from monitor.store import articles
from monitor.store import stories as story_store
from monitor.store.tables import Article

if TYPE_CHECKING:
    from monitor.stories.features import Features
    from monitor.stories.keeper import Stories

BATCH = 500


@dataclass
class Change:
    article_id: int
    title: str
    link: str
    before: list[str]  # what the stored match named; [] when there was none
    after: list[str]  # what the watchlist matches now; [] when nothing
    snippet: str


@dataclass
class Report:
    watchlist: str
    scanned: int = 0
    matched: int = 0
    changes: list[Change] = field(default_factory=list)  # new, gone or different
    recorded: int = 0
    alerts: int = 0


def _batches(sessions: sessionmaker[Session], since: datetime | None, *,
             newest_first: bool = False) -> Iterator[list[Article]]:
    """Stored articles with text in batches of ``BATCH``, by id, each read in a short
    session."""
    last: int | None = None
    while True:
        with sessions() as session:
            rows = articles.kept_batch(session, since, last, BATCH, newest_first=newest_first)
        if not rows:
            return
        yield rows
        last = rows[-1].id


def _articles(sessions: sessionmaker[Session], since: datetime | None,
              progress: Callable[[int], None] | None) -> Iterator[Article]:
    for rows in _batches(sessions, since):
        yield from rows
        if progress is not None:
            progress(len(rows))


def count(sessions: sessionmaker[Session], since: datetime | None) -> int:
    with sessions() as session:
        return articles.count_kept(session, since)


def newest_first(sessions: sessionmaker[Session], since: datetime | None) -> Iterator[Article]:
    """Stored articles with text (no seeds), newest first, read in batches."""
    for rows in _batches(sessions, since, newest_first=True):
        yield from rows


def preview(sessions: sessionmaker[Session], matcher: Matcher, watchlist: str,
            since: datetime | None, progress: Callable[[int], None] | None = None) -> Report:
    """Run ``watchlist`` over stored articles and compare with the matches they have."""
    report = Report(watchlist)
    for article, found in _matched(sessions, matcher, watchlist, since, progress, report):
        with sessions() as session:
            stored = articles.match_of(session, watchlist, article.id)
            before = list(stored.terms) if stored is not None else []
        after = found.terms if found else []
        if before != after:
            report.changes.append(Change(article.id, article.title, article.link, before, after,
                                         found.snippet if found else ""))
    return report


def _matched(sessions: sessionmaker[Session], matcher: Matcher, watchlist: str,
             since: datetime | None, progress: Callable[[int], None] | None,
             report: Report) -> Iterator[tuple[Article, WatchlistMatch | None]]:
    for article in _articles(sessions, since, progress):
        report.scanned += 1
        found = next((m for m in matcher.match(article.title, article.text)
                      if m.watchlist == watchlist), None)
        report.matched += found is not None
        yield article, found


def backfill(sessions: sessionmaker[Session], matcher: Matcher, watchlist: str,
             channels: list[str], since: datetime | None, now: datetime, *, alert: bool,
             progress: Callable[[int], None] | None = None) -> Report:
    """Store the matches stored articles have now (new ones added, changed ones brought up to
    date); with ``alert``, queue every matched original not yet alerted on a channel."""
    report = Report(watchlist)
    for article, found in _matched(sessions, matcher, watchlist, since, progress, report):
        if found is None:
            continue
        with sessions.begin() as session:
            row = articles.match_of(session, watchlist, article.id)
            if row is None:
                match_id = articles.add_match(session, article.id, found, now)
                report.recorded += 1
                report.changes.append(Change(article.id, article.title, article.link, [],
                                             found.terms, found.snippet))
            else:
                match_id = row.id
                if list(row.terms) != found.terms or row.snippet != found.snippet:
                    report.changes.append(Change(article.id, article.title, article.link,
                                                 list(row.terms), found.terms, found.snippet))
                    articles.update_match(row, found)
            if not alert:
                continue
            root, root_is_seed = articles.original_of(session, article.id)
            report.alerts += articles.add_alerts(
                session, article.id, match_id, watchlist, decide.alert_channels(
                    channels, copies_a_seed=root_is_seed,
                    story_sent_on=set() if root_is_seed else
                    articles.alerted_in_story(session, root, watchlist)), now)
    return report


def backfill_stories(sessions: sessionmaker[Session], matcher: Matcher, keeper: Stories,
                     describe: Callable[[str, str, tuple[str, ...]], Features], now: datetime,
                     progress: Callable[[int], None] | None = None) -> int:
    """Place every stored article that is in no story (stored before stories existed), oldest
    first, as the pipeline would have: its features, then the decision in its own transaction
    after the articles lock; a copy joins its original's story. How many were placed."""
    from monitor.work import entities

    placed, last = 0, 0
    while True:
        with sessions() as session:
            batch = story_store.unplaced(session, last, BATCH)
        if not batch:
            return placed
        for a in batch:
            features = describe(a.title, a.text, entities(matcher.match(a.title, a.text)))
            with sessions.begin() as session:
                articles.lock_for_dedup(session)
                if story_store.story_of(session, a.id) is None:  # not placed meanwhile
                    keeper.place(session, a.id, a.title, features, a.when, now, a.original)
                    placed += 1
            if progress is not None:
                progress(1)
        last = batch[-1].id
