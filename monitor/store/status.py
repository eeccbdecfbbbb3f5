"""What the operator reads about the store: ``monitor status`` (feeds, counts, digests), the
totals behind ``/metrics``, the recent matches behind the Atom feeds, and a ping for
``/healthz``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, text, true
from sqlalchemy.orm import Session

from monitor.store import feeds as feed_store
from monitor.store import outbox
from monitor.store.tables import Alert, Article, Digest, Feed, Match, Story, WatchlistState


@dataclass(frozen=True)
class Status:
    feeds: list[Feed]
    counts: dict[str, int]  # label -> how many, in the order shown
    last_sent: dict[tuple[str, str], datetime]  # (watchlist, channel) -> when
    failed: list[Digest]  # failed for good
    incomplete: list[Digest]  # sent, but a part was refused (an SMTP recipient)
    unsent: list[Digest]  # queued or being sent
    next_due: dict[str, datetime | None]  # watchlist -> its next scheduled digest (stored)
    pending: dict[tuple[str, str], int]  # (watchlist, channel) -> alerts waiting for a digest


def read(session: Session) -> Status:
    def count(*where: ColumnElement[bool]) -> int:
        query = select(func.count()).select_from(Article)
        return int(session.scalar(query.where(*where)) or 0)

    unsent = outbox.unsent_digests(session)
    counts = {
        "articles": count(Article.is_seed.is_(False)),
        "seeds": count(Article.is_seed == true()),  # ix_articles_seeds
        "copies": count(Article.duplicate_of_id.is_not(None)),
        "matches": int(session.scalar(select(func.count()).select_from(Match)) or 0),
        "alerts pending": int(session.scalar(select(func.count()).select_from(Alert)
                                             .where(Alert.digest_id.is_(None))) or 0),
        "digests unsent": len(unsent),
    }
    pending = session.execute(select(Alert.watchlist, Alert.channel, func.count())
                              .where(Alert.digest_id.is_(None))
                              .group_by(Alert.watchlist, Alert.channel)).all()
    return Status(feed_store.all_feeds(session), counts, outbox.last_sent(session),
                  outbox.failed_digests(session),
                  [d for d in outbox.delivery_troubles(session) if d.status == "sent"], unsent,
                  {w.watchlist: w.next_digest_at for w in session.scalars(select(WatchlistState))},
                  {(w, c): int(n) for w, c, n in pending})


@dataclass(frozen=True)
class Totals:
    feeds: int  # active
    failing: int  # active and failing now
    originals: int
    copies: int
    matches: list[tuple[str, int]]  # (watchlist, count)
    digests: list[tuple[str, str, str, int]]  # (watchlist, channel, status, count)


def totals(session: Session) -> Totals:
    def count(model: type[Feed] | type[Article], *where: ColumnElement[bool]) -> int:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    matches = session.execute(select(Match.watchlist, func.count())
                              .group_by(Match.watchlist)).all()
    digests = session.execute(select(Digest.watchlist, Digest.channel, Digest.status,
                                     func.count())
                              .group_by(Digest.watchlist, Digest.channel, Digest.status)).all()
    return Totals(
        count(Feed, Feed.active.is_(True)),
        count(Feed, Feed.active.is_(True), Feed.error_count > 0),
        count(Article, Article.is_seed.is_(False), Article.duplicate_of_id.is_(None)),
        count(Article, Article.is_seed.is_(False), Article.duplicate_of_id.is_not(None)),
        [(w, int(n)) for w, n in matches],
        [(w, c, st, int(n)) for w, c, st, n in digests])


def recent_matches(session: Session, watchlist: str, limit: int) -> list[tuple[Article, Match]]:
    """The watchlist's newest matches with their articles, newest first."""
    rows = session.execute(select(Article, Match).join(Match, Match.article_id == Article.id)
                           .where(Match.watchlist == watchlist)
                           .order_by(Match.created_at.desc(), Match.id.desc())
                           .limit(limit)).all()
    return [(a, m) for a, m in rows]


def story_titles(session: Session, story_ids: list[int]) -> dict[int, str]:
    if not story_ids:
        return {}
    return dict(session.execute(select(Story.id, Story.title)
                                .where(Story.id.in_(story_ids))).all())


def ping(session: Session) -> None:
    """Raises when the database does not answer."""
    session.execute(text("SELECT 1"))
