"""Spike and breaking-story alerts: the cooldown's memory, and what the alerts are about."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from monitor.store.tables import Article, Match, SpikeAlert, Story

_SPIKES_LOCK = 7_243_002


def lock(session: Session) -> None:
    """One instance at a time decides and records spike alerts (SQLite's BEGIN IMMEDIATE
    already serialises writers; PostgreSQL takes a transaction-scoped advisory lock)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SPIKES_LOCK})


def last(session: Session, watchlist: str, kind: str, key: str) -> SpikeAlert | None:
    return session.scalar(select(SpikeAlert).where(
        SpikeAlert.watchlist == watchlist, SpikeAlert.kind == kind, SpikeAlert.key == key)
        .order_by(SpikeAlert.created_at.desc(), SpikeAlert.id.desc()).limit(1))


def last_alerted(session: Session, watchlist: str | None = None,
                 kind: str = "entity") -> dict[tuple[str, str], datetime]:
    """(watchlist, key) -> when it was last alerted."""
    query = (select(SpikeAlert.watchlist, SpikeAlert.key, func.max(SpikeAlert.created_at))
             .where(SpikeAlert.kind == kind).group_by(SpikeAlert.watchlist, SpikeAlert.key))
    if watchlist is not None:
        query = query.where(SpikeAlert.watchlist == watchlist)
    return {(w, k): at for w, k, at in session.execute(query)}


def record(session: Session, watchlist: str, kind: str, key: str, headline: str, count: int,
           expected: float, score: float, now: datetime) -> int:
    row = SpikeAlert(watchlist=watchlist, kind=kind, key=key, headline=headline, count=count,
                     expected=expected, score=score, created_at=now)
    session.add(row)
    session.flush()
    return row.id


def since(session: Session, watchlist: str, moment: datetime | None) -> list[SpikeAlert]:
    """The watchlist's spike alerts since ``moment`` (None: the last day's)."""
    query = select(SpikeAlert).where(SpikeAlert.watchlist == watchlist)
    if moment is not None:
        query = query.where(SpikeAlert.created_at > moment)
    return list(session.scalars(query.order_by(SpikeAlert.created_at)))


@dataclass
class StoryHead:
    """A story as an alert names it: its title, its first links, its outlets and languages."""

    id: int
    title: str
    links: list[tuple[str, str, str]] = field(default_factory=list)  # (title, link, outlet)
    outlets: set[str] = field(default_factory=set)
    languages: set[str] = field(default_factory=set)


def story_heads(session: Session, story_ids: list[int], since: datetime | None = None
                ) -> dict[int, StoryHead]:
    """Those stories, with the articles stored since ``since`` (all when None), seeds left out."""
    if not story_ids:
        return {}
    heads = {i: StoryHead(i, t) for i, t in session.execute(
        select(Story.id, Story.title).where(Story.id.in_(story_ids)))}
    query = (select(Article.story_id, Article.title, Article.link, Article.outlet,
                    Article.language)
             .where(Article.story_id.in_(story_ids), Article.is_seed.is_(False))
             .order_by(Article.id))
    if since is not None:
        query = query.where(Article.created_at >= since)
    for story_id, title, link, outlet, language in session.execute(query):
        head = heads.get(story_id) if story_id is not None else None
        if head is None:
            continue
        head.links.append((title, link, outlet))
        head.outlets.add(outlet)
        if language:
            head.languages.add(language)
    return heads


def matched_stories(session: Session, watchlist: str, since: datetime) -> list[int]:
    """Stories with an article the watchlist matched since ``since``."""
    rows = session.scalars(select(Article.story_id).join(Match, Match.article_id == Article.id)
                           .where(Match.watchlist == watchlist, Match.created_at >= since,
                                  Article.story_id.is_not(None)).distinct())
    return [r for r in rows if r is not None]


def velocity(session: Session, story_ids: list[int], since: datetime
             ) -> dict[int, tuple[set[str], set[str]]]:
    """Per story, the outlets and languages of its articles with an event time since ``since``
    (published, clamped to arrival)."""
    out: dict[int, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    if not story_ids:
        return {}
    rows = session.execute(select(Article.story_id, Article.outlet, Article.language,
                                  Article.published_at, Article.created_at)
                           .where(Article.story_id.in_(story_ids), Article.is_seed.is_(False),
                                  Article.created_at >= since))
    for story_id, outlet, language, published, created in rows:
        when = min(published, created) if published is not None else created
        if when >= since and story_id is not None:
            outlets, languages = out[story_id]
            outlets.add(outlet)
            if language:
                languages.add(language)
    return dict(out)
