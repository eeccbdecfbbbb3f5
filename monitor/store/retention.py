"""Retention: what an old article keeps. Its feed entries (so it is never taken for new), its
canonical link, text hash, lead hash and sampled shingles (so a later copy is recognised) stay;
its text, its matches and its delivery records go."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from monitor.store import search
from monitor.store.articles import PRUNED
from monitor.store.tables import Alert, Article, Digest, Match


def _count(result: Any) -> int:
    return int(result.rowcount or 0)  # a CursorResult for DML


@dataclass
class Pruned:
    articles: int = 0
    matches: int = 0
    digests: int = 0
    alerts: int = 0


def prune(session: Session, cutoff: datetime) -> Pruned:
    """Prune what is older than ``cutoff``. Nothing still to be delivered is touched: a
    pending alert keeps its match and its article whole."""
    out = Pruned()
    done = select(Digest.id).where(Digest.status.in_(("sent", "failed")),
                                   Digest.created_at < cutoff).scalar_subquery()
    out.alerts = _count(session.execute(delete(Alert).where(Alert.digest_id.in_(done))))
    out.digests = _count(session.execute(
        delete(Digest).where(Digest.status.in_(("sent", "failed")), Digest.created_at < cutoff,
                             ~exists().where(Alert.digest_id == Digest.id))))
    out.matches = _count(session.execute(
        delete(Match).where(Match.created_at < cutoff,
                            ~exists().where(Alert.match_id == Match.id))))
    doomed = list(session.scalars(
        select(Article.id).where(Article.created_at < cutoff, Article.is_seed.is_(False),
                                 Article.text_source != PRUNED,
                                 ~exists().where(Alert.article_id == Article.id))))
    for start in range(0, len(doomed), 500):
        ids = doomed[start:start + 500]
        out.articles += _count(session.execute(
            update(Article).where(Article.id.in_(ids)).values(text="", text_source=PRUNED)))
        search.remove(session, ids)  # search reads kept articles only
    return out
