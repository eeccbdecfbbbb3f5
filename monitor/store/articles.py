"""Articles: identity, copy candidates, matches and the alerts (outbox rows) they create."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, func, insert, select, text, true
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from monitor.dedup import Candidate
from monitor.match import WatchlistMatch
from monitor.store import search
from monitor.store.tables import Alert, Article, Digest, FeedEntry, Match, Shingle

# Advisory locks, in the two-key form (a key space of their own): (_COPIES, -1) is the copy
# decision, exclusive for an article that decides alone and shared beside the slot locks
# (_COPIES, slot >= 0) of one that does not; (_COPIES, -2) is the story decision.
_COPIES = 0x6D6F6E73  # "mons"
_ALONE, _STORIES = -1, -2
_SLOT_SPACE = 1 << 31
MAX_SLOTS = 256  # an article with more keys than this decides its copies alone (exclusive)
_LOCK_PG = text("SELECT pg_advisory_xact_lock(:ns, :k)")
_WATERMARK_PG = (f"SAVEPOINT monitor_watermark; "
                 f"SELECT pg_try_advisory_xact_lock({_COPIES}, {_ALONE}); "
                 f"SELECT max(id) FROM articles; ROLLBACK TO SAVEPOINT monitor_watermark")
# The shared lock first, then the slots in ascending order (the sorted subquery feeds the
# aggregate), as every transaction takes them: two that want the same slots queue, they
# cannot deadlock. One statement, one round trip.
_LOCK_SLOTS_PG = text(
    "SELECT count(CASE WHEN s < 0 THEN pg_advisory_xact_lock_shared(:ns, s) "
    "ELSE pg_advisory_xact_lock(:ns, s) END) FROM "
    "(SELECT unnest(CAST(:slots AS integer[])) AS s ORDER BY 1) AS sorted")


CANDIDATES = 50  # stored articles ranked by shared shingles, before the shortlist
MAX_QUERY_SHINGLES = 2000  # a text's sampled shingles used in a lookup (about 16,000 words)
POSTINGS_CAP = 64  # articles one shingle may bring in (the newest)


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def partitioned(session: Session) -> bool:
    """Whether articles that cannot be copies of each other are stored at once (PostgreSQL),
    so that ids need not commit in order."""
    return _postgres(session)


def lock_for_dedup(session: Session) -> None:
    """Decide and insert alone, across threads and instances (seeds, backfills, and an article
    with too many keys for ``lock_copies``). SQLite's BEGIN IMMEDIATE already serialises
    writers (the transaction begins here, so the lock is held on return); PostgreSQL takes
    the copy decision's advisory lock exclusively, which waits for every article being stored
    under ``lock_copies`` (they hold it shared) and keeps out every new one.

    The commit waits for the disk on PostgreSQL. Asynchronous commit was tried: the lock was
    held no shorter (``bench/lock.py``), and a server that crashed while the daemons kept
    running would lose stories and articles that every instance had already read into its
    story index and its verification cache, and reuse their ids."""
    if _postgres(session):
        session.execute(_LOCK_PG, {"ns": _COPIES, "k": _ALONE})
    else:
        session.connection()


def copy_slots(canonical: str, content_hash: str, lead_hash: str,
               shingles: Iterable[int]) -> list[int]:
    """The keys under which an article could meet an article it copies or that copies it:
    its canonical URL, its text hash, its lead hash and each of its sampled shingles (a
    near-duplicate shares at least one of those, or it would not be a candidate). Sorted."""
    slots = {h % _SLOT_SPACE for h in shingles}
    for value in (canonical, content_hash, lead_hash):
        if value:
            slots.add(int.from_bytes(hashlib.blake2b(value.encode(), digest_size=4).digest(),
                                     "big") % _SLOT_SPACE)
    return sorted(slots)


def lock_copies(session: Session, slots: list[int], quiet: bool = False) -> bool:
    """Take the copy decision for an article with these ``copy_slots``; True when it is
    partitioned (PostgreSQL): only articles sharing a slot wait for each other, and the story
    decision needs ``lock_stories``. False: the article decides alone (``lock_for_dedup``):
    on SQLite (one writer), with more than ``MAX_SLOTS`` slots (they would fill PostgreSQL's
    lock table), or when ``quiet`` (no other store was in flight a moment ago, as with one
    instance: one lock costs less than the slots and the story lock, and waits for no one).

    The slot locks (and the shared lock beside them) are held to the end of the transaction:
    an article that shares a slot with one being stored waits for its commit and then sees it."""
    if quiet or not partitioned(session) or len(slots) > MAX_SLOTS:
        lock_for_dedup(session)
        return False
    session.execute(_LOCK_SLOTS_PG, {"ns": _COPIES, "slots": [_ALONE, *slots]})
    return True


def watermark(session: Session) -> tuple[int, bool]:
    """(the newest stored article's id, whether every article stored after this moment will
    have a higher id). That holds when no article is being stored now: SQLite (one writer, ids
    in commit order), or PostgreSQL when the copy decision's lock is free for a moment: taken
    then (and let go before this returns), no store is in flight, and every later one takes
    its id later. False: another store is in flight (of this instance too: each store has a
    connection of its own) and may commit a lower id after this one. The pipeline holds its
    own instance's stores off meanwhile, so that with one instance this is True.

    It relies on READ COMMITTED (a new snapshot for each statement: the engine sets it) and on
    the id sequence handing out ids in order (no per-session ``CACHE``; a serial column's has
    none). ``ROLLBACK TO SAVEPOINT`` makes psycopg drop the statements it prepared on this
    connection, as every read session's own rollback does already."""
    if not partitioned(session):
        return newest_id(session) or 0, True
    # One round trip (the simple query protocol runs the statements in order, each on a new
    # snapshot, so the newest id is read after the lock is taken), and the lock is let go at
    # once: a lock taken after a savepoint goes when the savepoint is rolled back to.
    connection = session.connection()
    raw = connection.connection.dbapi_connection
    rows: list[Any] = []
    try:
        with raw.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute(_WATERMARK_PG)
            while True:
                if cursor.description is not None:
                    rows.append(cursor.fetchone())
                if not cursor.nextset():
                    break
    except connection.dialect.loaded_dbapi.Error as e:  # as SQLAlchemy raises it: a storage
        gone = connection.dialect.is_disconnect(e, raw, None)  # error, not the entry's
        if gone:
            connection.invalidate(e)
        raise DBAPIError.instance(_WATERMARK_PG, None, e, connection.dialect.loaded_dbapi.Error,
                                  connection_invalidated=gone) from e
    (alone,), (newest,) = rows
    return int(newest or 0), bool(alone)


def lock_stories(session: Session) -> None:
    """The story decision (which story an article joins, and the alerts that depend on it)
    has to see every story: one article at a time across the cluster, from here to the
    commit. Under ``lock_for_dedup``, and on SQLite (one writer), the article is alone
    already."""
    if _postgres(session):
        session.execute(_LOCK_PG, {"ns": _COPIES, "k": _STORIES})


_ARTICLES = cast(Table, Article.__table__)


def by_canonical_urls(session: Session, canonicals: Iterable[str]) -> dict[str, int]:
    """The first stored article of each of these canonical URLs that has one."""
    wanted = sorted({c for c in canonicals if c})
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        rows = session.execute(select(_ARTICLES.c.canonical_url, func.min(_ARTICLES.c.id))
                               .where(_ARTICLES.c.canonical_url.in_(wanted[start:start + 500]))
                               .group_by(_ARTICLES.c.canonical_url))
        found.update({url: article_id for url, article_id in rows})
    return found


def add_entry(session: Session, feed_id: int, key: str, article_id: int, link: str,
              now: datetime) -> None:
    session.connection().execute(_INSERT_ENTRY, {
        "feed_id": feed_id, "entry_key": key, "article_id": article_id, "link": link,
        "created_at": now})


# The postings part of ``look_up``, of a fixed shape whatever the number of shingles (so it is
# prepared once): each shingle's newest ``cap`` postings, read from the (hash, article_id)
# key, counted per article in the database, so only the articles sharing enough come back
# (not every posting: a page already stored ten times would bring ten rows per shingle).
# Nothing is read when no article has an id above ``after`` (the EXISTS is evaluated once).
_NEWER = "EXISTS (SELECT 1 FROM articles WHERE id > :after)"
_POSTINGS_PG_SQL = (
    "SELECT p.article_id, count(*) AS n FROM unnest(CAST(:hashes AS bigint[])) AS q(h) "
    "CROSS JOIN LATERAL (SELECT s.article_id FROM shingles s WHERE s.hash = q.h "
    f"ORDER BY s.article_id DESC LIMIT :cap) AS p WHERE {_NEWER} AND p.article_id > :after "
    "GROUP BY p.article_id HAVING count(*) >= :min "
    "ORDER BY n DESC, p.article_id DESC LIMIT :limit")
_POSTINGS_SQLITE_SQL = (
    "SELECT s.article_id, count(*) AS n FROM json_each(:hashes) AS q "
    "JOIN shingles s ON s.hash = q.value "
    "WHERE s.article_id >= coalesce((SELECT t.article_id FROM shingles t WHERE t.hash = q.value "
    "ORDER BY t.article_id DESC LIMIT 1 OFFSET :cap - 1), -9223372036854775808) "
    f"AND {_NEWER} AND s.article_id > :after GROUP BY s.article_id HAVING count(*) >= :min "
    "ORDER BY n DESC, s.article_id DESC LIMIT :limit")


@dataclass(frozen=True)
class Found:
    """What ``look_up`` found: the first article stored under the canonical URL (any id), and
    among the articles with ids above ``after`` the first of the same text, the candidates
    sharing sampled shingles (``copy_candidates``) and those opening with the same words
    (candidates for a short repost)."""

    same_url: int | None
    same_text: int | None
    candidates: list[Candidate]
    same_lead: list[int]


def _look_up_sql(postings: str) -> str:
    return (
        "SELECT 'u', (SELECT id FROM articles WHERE canonical_url = :url ORDER BY id LIMIT 1), "
        "0, 0 "
        "UNION ALL SELECT 'h', (SELECT id FROM articles WHERE content_hash = :content "
        "AND id > :after ORDER BY id LIMIT 1), 0, 0 "
        "UNION ALL SELECT * FROM (SELECT 'l' AS k, id, 0 AS n, 0 AS size FROM articles "
        "WHERE lead_hash = :lead "
        "AND id > :after ORDER BY id LIMIT :leads) AS l "
        "UNION ALL SELECT 's', c.article_id, c.n, a.shingle_count "
        f"FROM ({postings}) AS c JOIN articles a ON a.id = c.article_id")


_LOOK_UP_PG = text(_look_up_sql(_POSTINGS_PG_SQL))
_LOOK_UP_SQLITE = text(_look_up_sql(_POSTINGS_SQLITE_SQL))


def look_up(session: Session, *, content_hash: str, lead_hash: str, shingles: Iterable[int],
            min_overlap: int, after: int = 0, canonical: str = "", leads: int = 5,
            limit: int = CANDIDATES) -> Found:
    """The copy decision's lookups, in one statement: what ``Found`` says. One round trip to
    PostgreSQL (under the copy lock, most of the time went in round trips), one statement's
    overhead on SQLite. The shingle postings are read only when an article with an id above
    ``after`` exists; the other parts are index probes."""
    values = sorted(set(shingles))[:MAX_QUERY_SHINGLES]
    params: dict[str, Any] = {
        "url": canonical or None, "content": content_hash or None, "lead": lead_hash or None,
        "after": after, "leads": leads, "cap": POSTINGS_CAP, "min": min_overlap,
        "limit": limit}
    if _postgres(session):
        rows = session.connection().execute(_LOOK_UP_PG, {"hashes": values, **params})
    else:
        rows = session.connection().execute(_LOOK_UP_SQLITE,
                                            {"hashes": json.dumps(values), **params})
    same_url: int | None = None
    same_text: int | None = None
    candidates: list[Candidate] = []
    same_lead: list[int] = []
    for kind, article_id, overlap, size in rows:
        if article_id is None:
            continue
        if kind == "u":
            same_url = int(article_id)
        elif kind == "h":
            same_text = int(article_id)
        elif kind == "l":
            same_lead.append(int(article_id))
        else:
            candidates.append(Candidate(int(article_id), int(size), int(overlap)))
    candidates.sort(key=lambda c: (-c.overlap, -c.article_id))  # as the postings ranked them
    same_lead.sort()
    return Found(same_url, same_text, candidates, same_lead)


def copy_candidates(session: Session, shingles: Iterable[int], min_overlap: int,
                    limit: int = CANDIDATES, after: int = 0) -> list[Candidate]:
    """Stored articles (ids above ``after``) sharing at least ``min_overlap`` sampled shingles
    with the new text, the ``limit`` sharing most. Each shingle contributes at most
    ``POSTINGS_CAP`` articles, the newest: a 5-gram found in thousands of articles ("said in
    a statement on") says little and would make the lookup as slow as its list is long."""
    return look_up(session, content_hash="", lead_hash="", shingles=shingles,
                   min_overlap=min_overlap, after=after, limit=limit).candidates


_TEXT = select(_ARTICLES.c.text).where(_ARTICLES.c.id == bindparam("aid"))


def text_of(session: Session, article_id: int) -> str:
    return session.connection().scalar(_TEXT, {"aid": article_id}) or ""


PRUNED = "pruned"  # text_source of an article whose text retention removed


_LINK = select(_ARTICLES.c.duplicate_of_id, _ARTICLES.c.is_seed, _ARTICLES.c.text_source) \
    .where(_ARTICLES.c.id == bindparam("aid"))


def original_of(session: Session, article_id: int) -> tuple[int, bool]:
    """The root of a copy chain, and whether it is already known: a seed, or an article so old
    that retention pruned it (its copies are recognised and not alerted)."""
    current = article_id
    for _ in range(50):
        row = session.connection().execute(_LINK, {"aid": current}).one()
        if row.duplicate_of_id is None:
            return current, bool(row.is_seed) or row.text_source == PRUNED
        current = row.duplicate_of_id
    return current, False


def is_pruned(session: Session, article_id: int) -> bool:
    return session.scalar(select(Article.text_source).where(Article.id == article_id)) == PRUNED


def shingles_of(session: Session, article_id: int) -> frozenset[int]:
    return frozenset(session.scalars(select(Shingle.hash).where(Shingle.article_id == article_id)))


_ADD_SHINGLES_PG = text("INSERT INTO shingles (hash, article_id) "
                        "SELECT DISTINCT h, :id FROM unnest(CAST(:hashes AS bigint[])) AS q(h)")
_ADD_SHINGLES_SQLITE = text("INSERT INTO shingles (hash, article_id) "
                            "SELECT DISTINCT value, :id FROM json_each(:hashes)")


def insert_one(session: Session, statement: Any, values: dict[str, Any]) -> int:
    """Run a Core insert of one row (built once) on the session's connection; the row's id.
    (No RETURNING: SQLite before 3.35 lacks it.)"""
    result = cast(CursorResult[Any], session.connection().execute(statement, values))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


_INSERT_ARTICLE = insert(_ARTICLES)
_INSERT_ENTRY = insert(cast(Table, FeedEntry.__table__))


def insert_article(session: Session, article: Article, shingles: Iterable[int],
                   words: Sequence[str] = ()) -> int:
    """Store a new (transient) article, its shingles and its search words; its id. A Core
    insert of the values set on it: the unit of work costs more than the statement for one
    row."""
    values = {column.key: getattr(article, column.key) for column in _ARTICLES.columns
              if column.key in article.__dict__}
    article_id = insert_one(session, _INSERT_ARTICLE, values)
    article.id = article_id
    add_shingles(session, article_id, shingles)
    if words:
        search.add(session, article_id, words, fresh=True)
    return article_id


def add_shingles(session: Session, article_id: int, shingles: Iterable[int]) -> None:
    """The article's sampled shingles into the index, in one statement."""
    values = list(set(shingles))
    if not values:
        return
    if _postgres(session):
        session.connection().execute(_ADD_SHINGLES_PG, {"id": article_id, "hashes": values})
    else:
        session.connection().execute(_ADD_SHINGLES_SQLITE,
                                     {"id": article_id, "hashes": json.dumps(values)})


def alerted_in_story(session: Session, root: int, watchlist: str) -> set[str]:
    """Channels on which an article of this story (the root or any of its copies) went out."""
    return set(session.scalars(
        select(Alert.channel).join(Article, Article.id == Alert.article_id)
        .where(Alert.watchlist == watchlist,
               (Article.id == root) | (Article.duplicate_of_id == root))))


_INSERT_MATCH = insert(cast(Table, Match.__table__))


def add_match(session: Session, article_id: int, match: WatchlistMatch, now: datetime) -> int:
    return insert_one(session, _INSERT_MATCH, {
        "watchlist": match.watchlist, "article_id": article_id, "terms": match.terms,
        "spans": [[s.field, s.start, s.end, s.term] for s in match.spans],
        "snippet": match.snippet, "marks": [list(m) for m in match.marks], "created_at": now})


def update_match(row: Match, match: WatchlistMatch) -> None:
    """Bring a stored match up to date with what its watchlist finds now."""
    row.terms = match.terms
    row.spans = [[s.field, s.start, s.end, s.term] for s in match.spans]
    row.snippet = match.snippet
    row.marks = [list(m) for m in match.marks]


_INSERT_ALERT = insert(cast(Table, Alert.__table__))


def add_alerts(session: Session, article_id: int, match_id: int, watchlist: str,
               channels: Iterable[str], now: datetime) -> int:
    rows = [{"watchlist": watchlist, "channel": c, "article_id": article_id,
             "match_id": match_id, "created_at": now} for c in channels]
    if rows:
        session.connection().execute(_INSERT_ALERT, rows)
    return len(rows)


def seed_hashes(session: Session) -> set[str]:
    """The content hashes of the stored seeds (from index ``ix_articles_seeds``: the query's
    condition is written as the index's, which SQLite needs to use it)."""
    return set(session.scalars(select(Article.content_hash).where(Article.is_seed == true())))


# -- stored articles, for explain --history, backfill and search -------------------------------


def _kept(since: datetime | None) -> list[Any]:
    """Articles with their text: not seeds, not pruned, stored since ``since``."""
    where = [Article.is_seed.is_(False), Article.text_source != PRUNED]
    return where + ([Article.created_at >= since] if since is not None else [])


def kept_batch(session: Session, since: datetime | None, after: int | None, size: int, *,
               newest_first: bool = False) -> list[Article]:
    """The next ``size`` of those articles by id, after id ``after`` (None: from the start),
    detached from the session."""
    query = select(Article).where(*_kept(since)).limit(size)
    if newest_first:
        query = query.order_by(Article.id.desc())
        if after is not None:
            query = query.where(Article.id < after)
    else:
        query = query.order_by(Article.id).where(Article.id > (after or 0))
    rows = list(session.scalars(query))
    session.expunge_all()
    return rows


_NEWEST = select(func.max(_ARTICLES.c.id))


def newest_id(session: Session) -> int | None:
    found: int | None = session.connection().scalar(_NEWEST)
    return found


def kept_by_ids(session: Session, ids: Sequence[int]) -> list[Article]:
    """Those of ``ids`` that are kept articles (``_kept``), in the order of ``ids``, detached."""
    found = {a.id: a for a in session.scalars(
        select(Article).where(Article.id.in_(ids), *_kept(None)))}
    session.expunge_all()
    return [found[i] for i in ids if i in found]


def count_kept(session: Session, since: datetime | None) -> int:
    return session.scalar(select(func.count()).select_from(Article).where(*_kept(since))) or 0


def match_of(session: Session, watchlist: str, article_id: int) -> Match | None:
    return session.scalar(select(Match).where(Match.watchlist == watchlist,
                                              Match.article_id == article_id))


# -- why an article was (not) alerted, for explain --article -----------------------------------


@dataclass(frozen=True)
class Sent:
    channel: str
    article_id: int  # the article alerted (this one, or another of its story)
    digest_id: int | None  # None: waiting for the next digest
    status: str  # the digest's status: queued | sending | sent | failed ("pending": no digest)
    sent_at: datetime | None


@dataclass(frozen=True)
class Fate:
    root_id: int  # the original of its story (itself when it is one)
    root_title: str
    root_known: bool  # a seed, or pruned: its copies are never alerted
    seed_path: str | None
    matched: bool  # a match of the watchlist is stored for it
    alerts: list[Sent]  # of this article and of the others of its story


def fate(session: Session, article_id: int, watchlist: str) -> Fate:
    """What became of a stored article on a watchlist: its story's original, its stored match,
    and every alert of its story on each channel."""
    root, known = original_of(session, article_id)
    original = session.get(Article, root)
    assert original is not None
    rows = session.execute(
        select(Alert.channel, Alert.article_id, Alert.digest_id, Digest.status, Digest.sent_at)
        .join(Article, Article.id == Alert.article_id)
        .outerjoin(Digest, Digest.id == Alert.digest_id)
        .where(Alert.watchlist == watchlist,
               (Article.id == root) | (Article.duplicate_of_id == root))
        .order_by(Alert.id)).all()
    return Fate(root, original.title, known, original.seed_path,
                match_of(session, watchlist, article_id) is not None,
                [Sent(c, a, d, st or "pending", at) for c, a, d, st, at in rows])
