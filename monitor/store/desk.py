"""What the web desk reads: stories with their filters, one story, one article, the feeds and the
digests. Read-only; every query is bounded (a limit, a time window or a primary key)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, load_only

from monitor.store.stories import Member, _members
from monitor.store.tables import Article, Digest, Feed, Match, SpikeAlert, Story


@dataclass(frozen=True)
class StoryRow:
    id: int
    title: str
    first_seen: datetime
    last_seen: datetime
    active: datetime  # its newest article's arrival
    languages: list[str]
    articles: list[Member]  # oldest first, seeds left out

    @property
    def outlets(self) -> list[str]:
        return sorted({m.outlet for m in self.articles if m.outlet})


def stories(session: Session, since: datetime, *, limit: int = 50, watchlist: str | None = None,
            language: str | None = None, entity: str | None = None) -> list[StoryRow]:
    """Stories with an article stored since ``since``, newest activity first. Filters: an
    article of the story matched by ``watchlist`` (naming ``entity``, when given), an article
    in ``language``. The articles are read newest first until ``limit`` stories are found, so
    the time does not grow with the window."""
    query = (select(Article.id, Article.story_id, Article.created_at)
             .where(Article.created_at >= since, Article.is_seed.is_(False))
             .order_by(Article.created_at.desc()))
    if language:
        query = query.where(Article.language == language)
    active: dict[int, datetime] = {}
    rows = session.execute(query.execution_options(yield_per=500))
    for chunk in rows.partitions():
        chunk = [r for r in chunk if r.story_id is not None and r.story_id not in active]
        if watchlist or entity:  # the chunk's matches, by article (indexed by article id)
            matched = select(Match.article_id, Match.terms).where(
                Match.article_id.in_([r.id for r in chunk]))
            if watchlist:
                matched = matched.where(Match.watchlist == watchlist)
            terms: dict[int, list[str]] = {}
            for article_id, names in session.execute(matched):
                terms.setdefault(article_id, []).extend(names or [])
            chunk = [r for r in chunk if r.id in terms and (not entity or entity in terms[r.id])]
        for r in chunk:
            active.setdefault(r.story_id, r.created_at)
            if len(active) >= limit:
                break
        if len(active) >= limit:
            break
    rows.close()
    found = {s.id: s for s in session.scalars(select(Story).where(Story.id.in_(active)))}
    members = _members(session, list(active))
    return [_row(found[i], when, members.get(i, [])) for i, when in active.items() if i in found]


def _row(story: Story, active: datetime, members: list[Member]) -> StoryRow:
    return StoryRow(story.id, story.title, story.first_seen, story.last_seen, active,
                    sorted({m.language for m in members if m.language}), members)


def story(session: Session, story_id: int) -> StoryRow | None:
    found = session.get(Story, story_id)
    if found is None:
        return None
    members = _members(session, [story_id]).get(story_id, [])
    return _row(found, max((m.created_at for m in members), default=found.last_seen), members)


def matched_terms(session: Session, article_ids: list[int]) -> dict[int, list[tuple[str, str]]]:
    """(watchlist, term) each article was matched for, by article."""
    out: dict[int, list[tuple[str, str]]] = {}
    if not article_ids:
        return out
    for article_id, watchlist, terms in session.execute(
            select(Match.article_id, Match.watchlist, Match.terms)
            .where(Match.article_id.in_(article_ids)).order_by(Match.id)):
        out.setdefault(article_id, []).extend((watchlist, t) for t in terms or [])
    return out


@dataclass(frozen=True)
class ArticleView:
    article: Article
    feed: str  # the feed's name or address ("" for none)
    story_title: str
    original_title: str  # of the article it copies ("" for an original)
    copies: list[tuple[int, str, str]]  # (id, outlet, title) of its copies


def article(session: Session, article_id: int) -> ArticleView | None:
    found = session.get(Article, article_id)
    if found is None or found.is_seed:
        return None
    feed = session.get(Feed, found.feed_id) if found.feed_id is not None else None
    story_row = session.get(Story, found.story_id) if found.story_id is not None else None
    original = session.get(Article, found.duplicate_of_id) \
        if found.duplicate_of_id is not None else None
    copies = [(i, o, t) for i, o, t in session.execute(
        select(Article.id, Article.outlet, Article.title)
        .where(Article.duplicate_of_id == article_id).order_by(Article.id).limit(200))]
    session.expunge(found)
    return ArticleView(found, (feed.name or feed.url) if feed else "",
                       story_row.title if story_row else "",
                       original.title if original is not None else "", copies)


def feeds(session: Session) -> list[Feed]:
    rows = list(session.scalars(select(Feed).order_by(Feed.active.desc(), Feed.name, Feed.url)))
    session.expunge_all()
    return rows


def digests(session: Session, limit: int = 200) -> list[Digest]:
    """The newest digests, their bodies not read."""
    rows = list(session.scalars(select(Digest).options(load_only(
        Digest.watchlist, Digest.channel, Digest.status, Digest.article_count, Digest.subject,
        Digest.attempts, Digest.next_attempt_at, Digest.last_error, Digest.created_at,
        Digest.sent_at)).order_by(Digest.id.desc()).limit(limit)))
    session.expunge_all()
    return rows


def spike_alerts(session: Session, since: datetime, limit: int = 100) -> list[SpikeAlert]:
    rows = list(session.scalars(select(SpikeAlert).where(SpikeAlert.created_at >= since)
                                .order_by(SpikeAlert.created_at.desc()).limit(limit)))
    session.expunge_all()
    return rows


def languages(session: Session, since: datetime) -> list[str]:
    """The languages of the articles stored since ``since``, most frequent first."""
    return [str(lang) for lang, _ in session.execute(
        select(Article.language, func.count()).where(Article.created_at >= since,
                                                      Article.language.is_not(None))
        .group_by(Article.language).order_by(func.count().desc()))]
