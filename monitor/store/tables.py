"""The database schema (SQLAlchemy 2.x). Alembic migrations under monitor/migrations follow it.

Nouns:
- ``feeds``: one row per feed URL, with its health and due-ness (``next_check_at``) and a lease
  (``lease_owner``/``lease_until``) so several instances on PostgreSQL never poll one feed twice.
- ``articles``: one row per article identity. Seeds are articles with ``is_seed``. A copy points
  at its original (``duplicate_of_id``) with the reason and score; nothing is dropped.
- ``entries``: which feed entry (feed, entry key) is which article; one article may be in many
  feeds, and an entry seen once is never processed again.
- ``shingles``: the inverted index of sampled shingle hashes used to find near-duplicates.
- ``matches``: an article matched by a watchlist, with terms, spans and the snippet.
- ``alerts``: the outbox. One row per (watchlist, channel, article), written in the same
  transaction as the match; ``digest_id`` is set when a digest takes it.
- ``digests``: a rendered message for one watchlist and channel, and its delivery state
  (queued -> sending -> sent | failed), claimed with a lease by the relay.
- ``watchlist_state``: when each watchlist's next digest is due.
- ``stories``: one event across outlets and languages. Every stored article belongs to one
  (``articles.story_id``; a copy to its original's); the row keeps what the story decider needs
  (the sum of its articles' sentence vectors, the names, figures and event days they give) and
  ``version``, the number of the last change made to it (story changes are numbered across
  the cluster in the order they commit), so an instance catches up on the stories others
  changed by reading the rows with a higher version.
- ``spike_alerts``: each spike (an entity, ``kind`` "entity") or breaking story (``kind``
  "story", ``key`` its id) alerted for a watchlist, with the figures it was alerted on; the
  cooldown reads the last one. Its message is queued as ``digests`` rows (one per channel), in
  the same transaction, so the relay delivers it exactly as a digest.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import text as sql_text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python on every backend (SQLite stores them naive, as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class Feed(Base):
    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)
    name: Mapped[str | None] = mapped_column(String(512))
    title: Mapped[str | None] = mapped_column(String(1000))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    interval_seconds: Mapped[float] = mapped_column(Float)
    etag: Mapped[str | None] = mapped_column(String(1024))
    last_modified: Mapped[str | None] = mapped_column(String(256))
    body_hash: Mapped[str | None] = mapped_column(String(64))
    next_check_at: Mapped[datetime | None] = mapped_column(index=True)
    last_checked_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_new_entry_at: Mapped[datetime | None]  # when we last found a new entry
    newest_entry_at: Mapped[datetime | None]  # the newest entry date the feed itself gave
    cadence_seconds: Mapped[float | None] = mapped_column(Float)  # its usual gap between entries
    silent_since: Mapped[datetime | None]  # set when it went quiet against that cadence
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    entries_total: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime]


class Article(Base):
    __tablename__ = "articles"
    # the seeds' hashes, read at every start-up (``articles.seed_hashes``), without a scan;
    # alembic does not compare an index's condition: tests/test_scale.py checks it is used
    __table_args__ = (Index("ix_articles_seeds", "content_hash",
                            sqlite_where=sql_text("is_seed = 1"),
                            postgresql_where=sql_text("is_seed")),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int | None] = mapped_column(ForeignKey("feeds.id", ondelete="SET NULL"))
    guid: Mapped[str] = mapped_column(String(2048), default="")
    link: Mapped[str] = mapped_column(String(2048), default="")
    canonical_url: Mapped[str | None] = mapped_column(String(2048), index=True)
    title: Mapped[str] = mapped_column(Text, default="")
    outlet: Mapped[str] = mapped_column(String(512), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    text_source: Mapped[str] = mapped_column(String(16))  # page | summary | seed | none
    fetch_error: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    lead_hash: Mapped[str | None] = mapped_column(String(32), index=True)
    shingle_count: Mapped[int] = mapped_column(Integer, default=0)
    published_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(index=True)
    is_seed: Mapped[bool] = mapped_column(Boolean, default=False)
    seed_path: Mapped[str | None] = mapped_column(String(1024))
    duplicate_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("articles.id", ondelete="SET NULL"), index=True
    )
    dup_reason: Mapped[str | None] = mapped_column(String(32))
    dup_score: Mapped[float | None] = mapped_column(Float)
    language: Mapped[str | None] = mapped_column(String(8))  # ISO 639-1; NULL before 0007
    story_id: Mapped[int | None] = mapped_column(
        ForeignKey("stories.id", ondelete="SET NULL"), index=True)
    # how it joined: [[story id, score], ...] of the stories it was scored against, best first
    story_trace: Mapped[list[list[float]] | None] = mapped_column(JSON, nullable=True)


class Story(Base):
    __tablename__ = "stories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(Text, default="")
    first_seen: Mapped[datetime] = mapped_column(index=True)  # its articles' times
    last_seen: Mapped[datetime] = mapped_column(index=True)
    article_count: Mapped[int] = mapped_column(Integer, default=0)
    languages: Mapped[list[str]] = mapped_column(JSON)
    vector_total: Mapped[bytes] = mapped_column(LargeBinary)  # float32 x 512
    vector_count: Mapped[int] = mapped_column(Integer, default=0)
    names: Mapped[dict[str, int]] = mapped_column(JSON)
    figures: Mapped[list[str]] = mapped_column(JSON)
    days: Mapped[list[int]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(BigInteger, index=True)
    created_at: Mapped[datetime]


class FeedEntry(Base):
    __tablename__ = "entries"
    __table_args__ = (UniqueConstraint("feed_id", "entry_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    entry_key: Mapped[str] = mapped_column(String(64))
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"),
                                            index=True)
    link: Mapped[str] = mapped_column(String(2048), default="")
    created_at: Mapped[datetime]


class Shingle(Base):
    __tablename__ = "shingles"

    hash: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Match(Base):
    __tablename__ = "matches"
    __table_args__ = (UniqueConstraint("watchlist", "article_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    watchlist: Mapped[str] = mapped_column(String(200))
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"),
                                            index=True)
    terms: Mapped[list[str]] = mapped_column(JSON)
    spans: Mapped[list[list[object]]] = mapped_column(JSON)  # [field, start, end, term]
    snippet: Mapped[str] = mapped_column(Text)
    # [start, end] of each match inside the snippet; NULL before 0.5 (terms are found again)
    marks: Mapped[list[list[int]] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime]


class Digest(Base):
    __tablename__ = "digests"
    __table_args__ = (Index("ix_digests_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    watchlist: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # queued | sending | sent | failed
    article_count: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    slack_payload: Mapped[str] = mapped_column(Text)  # JSON list of webhook messages
    parts_sent: Mapped[int] = mapped_column(Integer, default=0)  # Slack messages already posted
    message_id: Mapped[str] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("watchlist", "channel", "article_id"),
        Index("ix_alerts_pending", "watchlist", "channel", "digest_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    watchlist: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(32))
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    match_id: Mapped[int] = mapped_column(ForeignKey("matches.id", ondelete="CASCADE"))
    digest_id: Mapped[int | None] = mapped_column(ForeignKey("digests.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]


class SpikeAlert(Base):
    __tablename__ = "spike_alerts"
    __table_args__ = (Index("ix_spike_alerts_key", "watchlist", "kind", "key", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    watchlist: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # entity | story
    key: Mapped[str] = mapped_column(String(500))  # the entity or term, or the story's id
    headline: Mapped[str] = mapped_column(Text)  # what the message's first line says
    count: Mapped[int] = mapped_column(Integer)  # mentions (entity) or outlets (story)
    expected: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(index=True)


class WatchlistState(Base):
    __tablename__ = "watchlist_state"

    watchlist: Mapped[str] = mapped_column(String(200), primary_key=True)
    next_digest_at: Mapped[datetime | None]
    last_digest_at: Mapped[datetime | None]
    # the schedule (and timezone) next_digest_at was computed with; NULL before 0006
    schedule: Mapped[str | None] = mapped_column(String(300))


def declared(name: str | None, type_: str, _parents: object = None) -> bool:
    """Whether schema comparison looks at a table: not the search index (``store.search``),
    whose SQLite form is an FTS5 table with shadow tables of its own."""
    return not (type_ == "table" and (name or "").startswith("article_search"))
