"""Stories: the rows behind the story decider, and the reads of ``monitor stories``.

Assignment runs inside the article's transaction, under the story lock
(``articles.lock_stories``, or ``lock_for_dedup``): one instance at a time decides, and each
first catches up on the stories changed since it last looked. ``version`` counts story changes
across the cluster: each change takes the highest version so far plus one, under that lock, so
versions grow in the order their transactions commit (article ids do not: articles that cannot
be copies of each other are inserted at once on PostgreSQL). The in-memory ``Index`` is only
ever filled from committed rows, so a transaction that rolls back leaves nothing behind.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from monitor.store.articles import insert_one
from monitor.store.tables import Article, Match, Story
from monitor.stories.assign import DIMENSIONS, Index
from monitor.stories.assign import Story as Decided


def _decided(row: Any) -> Decided:
    """The decider's story from a row of ``stories`` (an ORM object or a Core row)."""
    total = np.frombuffer(row.vector_total, dtype=np.float32).copy() \
        if len(row.vector_total) == DIMENSIONS * 4 else np.zeros(DIMENSIONS, np.float32)
    return Decided(row.id, total, row.vector_count, row.first_seen, row.last_seen,
                   set(row.languages), Counter(row.names), set(row.figures), set(row.days))


_STORIES = cast(Table, Story.__table__)
_ARTICLES = cast(Table, Article.__table__)
# Built once: these run for every stored article, and building a statement (or going through
# the ORM's unit of work) cost more than running it.
_DECIDED = (_STORIES.c.id, _STORIES.c.vector_total, _STORIES.c.vector_count,
            _STORIES.c.first_seen, _STORIES.c.last_seen, _STORIES.c.languages, _STORIES.c.names,
            _STORIES.c.figures, _STORIES.c.days, _STORIES.c.version)
_CHANGED = (select(*_DECIDED).where(_STORIES.c.version > bindparam("seen"))
            .order_by(_STORIES.c.version))
_CREATE = insert(_STORIES)
_NEWEST_VERSION = select(func.coalesce(func.max(_STORIES.c.version), 0))


def catch_up(session: Session, index: Index, seen: int, horizon: timedelta) -> int:
    """Bring the index up to date with the stories changed since version ``seen`` (0: load the
    stories active within ``horizon`` of the newest one); the newest version there is (read
    under the story lock, the next change is that plus one)."""
    if seen == 0:
        newest = session.scalar(select(func.max(Story.last_seen)))
        if newest is None:
            return 0
        rows = session.connection().execute(
            select(*_DECIDED).where(_STORIES.c.last_seen >= newest - horizon)
            .order_by(_STORIES.c.version))
        seen = int(session.connection().scalar(_NEWEST_VERSION) or 0)  # (older ones too)
    else:
        rows = session.connection().execute(_CHANGED, {"seen": seen})
    for row in rows:
        index.put(_decided(row))
        seen = max(seen, row.version)
    return seen


def _bytes(total: npt.NDArray[np.floating]) -> bytes:
    return np.asarray(total, dtype=np.float32).tobytes()


def create(session: Session, story: Decided, title: str, version: int, now: datetime) -> int:
    """A new story from the decider's (its id is the row's); the id."""
    return insert_one(session, _CREATE, {
        "title": title, "first_seen": story.first, "last_seen": story.last,
        "article_count": 1, "languages": sorted(story.languages),
        "vector_total": _bytes(story.total), "vector_count": story.count,
        "names": dict(story.names), "figures": sorted(story.figures),
        "days": sorted(story.days), "version": version, "created_at": now})


_SAVE = update(_STORIES).where(_STORIES.c.id == bindparam("sid")).values(
    first_seen=bindparam("first", type_=_STORIES.c.first_seen.type),
    last_seen=bindparam("last", type_=_STORIES.c.last_seen.type),
    article_count=_STORIES.c.article_count + bindparam("added"),
    languages=bindparam("languages", type_=_STORIES.c.languages.type),
    vector_total=bindparam("total"), vector_count=bindparam("count"),
    names=bindparam("names", type_=_STORIES.c.names.type),
    figures=bindparam("figures", type_=_STORIES.c.figures.type),
    days=bindparam("days", type_=_STORIES.c.days.type), version=bindparam("version"))
_PLACE = update(_ARTICLES).where(_ARTICLES.c.id == bindparam("aid")).values(
    story_id=bindparam("sid"), language=bindparam("language"),
    story_trace=bindparam("trace", type_=_ARTICLES.c.story_trace.type))
_STORY_OF = select(_ARTICLES.c.story_id).where(_ARTICLES.c.id == bindparam("aid"))


def save(session: Session, story: Decided, version: int, *, added: int = 1) -> None:
    """Write back a story an article joined."""
    session.connection().execute(_SAVE, {
        "sid": story.id, "first": story.first, "last": story.last, "added": added,
        "languages": sorted(story.languages), "total": _bytes(story.total),
        "count": story.count, "names": dict(story.names), "figures": sorted(story.figures),
        "days": sorted(story.days), "version": version})


def place(session: Session, article_id: int, story_id: int, language: str | None,
          trace: list[list[float]]) -> None:
    session.connection().execute(_PLACE, {"aid": article_id, "sid": story_id,
                                          "language": language, "trace": trace})


def story_of(session: Session, article_id: int) -> int | None:
    """The story of a stored article."""
    return session.connection().scalar(_STORY_OF, {"aid": article_id})


# -- reads -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    id: int
    url: str
    title: str
    outlet: str
    language: str | None
    published: datetime | None
    created_at: datetime
    copy_of: str | None  # the original's link, for a copy
    is_seed: bool


@dataclass(frozen=True)
class Listed:
    id: int
    title: str
    first_seen: datetime
    last_seen: datetime
    languages: list[str]
    articles: list[Member]


def recent(session: Session, since: datetime, *, limit: int = 500,
           watchlist: str | None = None) -> list[Listed]:
    """Stories with an article stored since ``since``, newest activity first, each with all its
    stored articles, oldest first (seed documents left out). ``watchlist``: only stories with
    an article it matched."""
    activity = (select(Article.story_id, func.max(Article.created_at).label("active"))
                .where(Article.created_at >= since, Article.story_id.is_not(None),
                       Article.is_seed.is_(False))
                .group_by(Article.story_id).subquery())
    query = (select(Story, activity.c.active).join(activity, activity.c.story_id == Story.id)
             .order_by(activity.c.active.desc(), Story.id.desc()))
    if watchlist is not None:
        query = query.where(Story.id.in_(
            select(Article.story_id).join(Match, Match.article_id == Article.id)
            .where(Match.watchlist == watchlist)))
    rows = session.execute(query.limit(limit)).all()
    members = _members(session, [row.Story.id for row in rows])
    return [Listed(row.Story.id, row.Story.title, row.Story.first_seen, row.Story.last_seen,
                   sorted({m.language for m in members.get(row.Story.id, []) if m.language}),
                   members.get(row.Story.id, []))
            for row in rows]


def _members(session: Session, story_ids: list[int]) -> dict[int, list[Member]]:
    found: dict[int, list[Member]] = {}
    for start in range(0, len(story_ids), 500):
        rows = session.execute(
            select(Article.id, Article.story_id, Article.link, Article.title, Article.outlet,
                   Article.language, Article.published_at, Article.created_at,
                   Article.duplicate_of_id, Article.is_seed)
            .where(Article.story_id.in_(story_ids[start:start + 500]),
                   Article.is_seed.is_(False))
            .order_by(Article.id)).all()
        links = {r.id: r.link for r in rows}
        missing = {r.duplicate_of_id for r in rows if r.duplicate_of_id is not None} - set(links)
        if missing:
            links.update(dict(session.execute(select(Article.id, Article.link)
                                              .where(Article.id.in_(missing))).all()))
        for r in rows:
            copy_of = None if r.duplicate_of_id is None else links.get(r.duplicate_of_id) or ""
            found.setdefault(r.story_id, []).append(Member(
                r.id, r.link, r.title, r.outlet, r.language, r.published_at, r.created_at,
                copy_of, bool(r.is_seed)))
    return found


def load(session: Session, story_id: int) -> Decided | None:
    row = session.get(Story, story_id)
    return _decided(row) if row is not None else None


@dataclass(frozen=True)
class Why:
    story_id: int | None
    story_title: str
    language: str | None
    copy_of: int | None
    trace: list[tuple[int, float]]
    nearest: list[tuple[int, float, str]]  # the trace with each story's title


def why(session: Session, article_id: int) -> Why | None:
    """How a stored article was placed in its story, for ``explain --article``."""
    article = session.get(Article, article_id)
    if article is None:
        return None
    trace = [(int(i), float(score)) for i, score in article.story_trace or []]
    titles = dict(session.execute(select(Story.id, Story.title)
                                  .where(Story.id.in_([i for i, _ in trace]))).all())
    story = session.get(Story, article.story_id) if article.story_id is not None else None
    return Why(article.story_id, story.title if story else "", article.language,
               article.duplicate_of_id, trace,
               [(i, score, titles.get(i, "")) for i, score in trace])


@dataclass(frozen=True)
class Unplaced:
    id: int
    title: str
    text: str
    when: datetime  # published, clamped to arrival
    created_at: datetime
    original: int | None  # the article it copies


def unplaced(session: Session, after: int, size: int) -> list[Unplaced]:
    """Stored articles in no story (stored before stories existed), by id, after ``after``."""
    rows = session.execute(
        select(Article.id, Article.title, Article.text, Article.published_at,
               Article.created_at, Article.duplicate_of_id)
        .where(Article.story_id.is_(None), Article.id > after)
        .order_by(Article.id).limit(size)).all()
    return [Unplaced(r.id, r.title, r.text, min(r.published_at or r.created_at, r.created_at),
                     r.created_at, r.duplicate_of_id) for r in rows]


def count_unplaced(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Article)
                          .where(Article.story_id.is_(None))) or 0
