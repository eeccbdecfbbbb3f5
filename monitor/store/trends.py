"""The mentions behind trends and spikes: the original articles each watchlist matched lately,
with their outlet, story and event time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.store.tables import Article, Match


@dataclass(frozen=True)
class Mention:
    term: str  # the entity, term or rule of the watchlist that matched
    article_id: int
    story_id: int | None
    outlet: str
    when: datetime  # published, clamped to arrival


def mentions(session: Session, watchlist: str, since: datetime) -> list[Mention]:
    """Every (term, original article) of the watchlist's matches stored since ``since``."""
    rows = session.execute(
        select(Match.terms, Article.id, Article.story_id, Article.outlet, Article.published_at,
               Article.created_at)
        .join(Article, Article.id == Match.article_id)
        .where(Match.watchlist == watchlist, Match.created_at >= since,
               Article.duplicate_of_id.is_(None), Article.is_seed.is_(False))).all()
    found: list[Mention] = []
    for terms, article_id, story_id, outlet, published, created in rows:
        when = min(published, created) if published is not None else created
        found.extend(Mention(str(t), article_id, story_id, outlet, when) for t in terms)
    return found
