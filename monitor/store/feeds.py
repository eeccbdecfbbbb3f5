"""Feeds: config sync, due-ness with leases, health records."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Executable, Table, and_, bindparam, or_, select, update
from sqlalchemy.orm import Session

from monitor.store.tables import Feed, FeedEntry, UTCDateTime


@dataclass(frozen=True)
class FeedJob:
    """What a worker needs to poll one feed (a snapshot, not a live row)."""

    id: int
    url: str
    name: str | None
    title: str | None
    interval_seconds: float
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    error_count: int
    cadence_seconds: float | None = None
    newest_entry_at: datetime | None = None
    last_new_entry_at: datetime | None = None
    silent_since: datetime | None = None
    created_at: datetime | None = None
    owner: str = ""  # who holds the lease


def sync_feeds(session: Session, feeds: Iterable[tuple[str, str | None, float]],
               now: datetime) -> None:
    """Make the feeds table follow the config: add new feeds (due now), update names and
    intervals, and deactivate feeds no longer configured (kept, with their history)."""
    wanted = {url: (name, interval) for url, name, interval in feeds}
    existing = {f.url: f for f in session.scalars(select(Feed))}
    for url, (name, interval) in wanted.items():
        row = existing.get(url)
        if row is None:
            session.add(Feed(url=url, name=name, interval_seconds=interval, active=True,
                             next_check_at=now, created_at=now, error_count=0,
                             entries_total=0))
        else:
            if interval != row.interval_seconds and row.error_count == 0 and \
                    row.last_checked_at is not None and row.next_check_at is not None:
                # an edited interval applies now: due one new interval after the last check
                row.next_check_at = max(row.last_checked_at + timedelta(seconds=interval), now)
            row.name, row.interval_seconds = name, interval
            if not row.active:
                row.active, row.next_check_at = True, now
    for url, row in existing.items():
        if url not in wanted and row.active:
            row.active = False


def hold_leases(session: Session, owner: str, until: datetime) -> int:
    """Keep every feed ``owner`` leases until ``until`` and no longer (a poll that the database
    cut short: its feeds are tried again then, not when the full lease runs out)."""
    result = session.execute(update(Feed).where(Feed.lease_owner == owner)
                             .values(lease_until=until))
    return int(getattr(result, "rowcount", 0) or 0)


def claim_due(session: Session, owner: str, now: datetime, lease: timedelta,
              limit: int, due_by: datetime | None = None) -> list[FeedJob]:
    """Lease up to ``limit`` feeds due by ``due_by`` (default: now) to ``owner``; SKIP LOCKED on
    PostgreSQL so instances share the work, and an expired lease (a killed instance) makes a
    feed claimable again."""
    due_by = now if due_by is None else due_by
    query = (
        select(Feed)
        .where(Feed.active.is_(True))
        .where(or_(Feed.lease_until.is_(None), Feed.lease_until < now))
        .where(or_(Feed.next_check_at.is_(None), Feed.next_check_at <= due_by))
        .order_by(Feed.next_check_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = list(session.scalars(query))
    for row in rows:
        row.lease_owner, row.lease_until = owner, now + lease
    return [FeedJob(r.id, r.url, r.name, r.title, r.interval_seconds, r.etag, r.last_modified,
                    r.body_hash, r.error_count, r.cadence_seconds, r.newest_entry_at,
                    r.last_new_entry_at, r.silent_since, r.created_at, owner) for r in rows]


def make_all_due(session: Session, now: datetime) -> None:
    """Every active feed due now (``monitor once``): each is then polled once, as a poll
    always moves its next check past ``now``."""
    session.execute(update(Feed).where(Feed.active.is_(True)).values(next_check_at=now))


def known_entry_keys(session: Session, feed_id: int, keys: list[str]) -> set[str]:
    known: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        known.update(session.scalars(
            select(FeedEntry.entry_key).where(FeedEntry.feed_id == feed_id,
                                              FeedEntry.entry_key.in_(chunk))
        ))
    return known


Write = tuple[Executable, dict[str, Any] | None]  # a statement and its parameters

_FEEDS = cast(Table, Feed.__table__)
_OURS = and_(_FEEDS.c.id == bindparam("b_id"),
             or_(_FEEDS.c.lease_owner == bindparam("b_owner"), _FEEDS.c.lease_owner.is_(None)))
# The two records written for most polls, built once with parameters: statements of one shape
# are compiled once and a batch of them goes out as one executemany.
_UNCHANGED = update(_FEEDS).where(_OURS).values(
    last_checked_at=bindparam("b_now", type_=UTCDateTime()),
    last_success_at=bindparam("b_now", type_=UTCDateTime()),
    next_check_at=bindparam("b_next", type_=UTCDateTime()),
    silent_since=bindparam("b_silent", type_=UTCDateTime()),
    error_count=0, lease_owner=None, lease_until=None)
_FAILED = update(_FEEDS).where(_OURS).values(
    last_checked_at=bindparam("b_now", type_=UTCDateTime()),
    last_error_at=bindparam("b_now", type_=UTCDateTime()),
    next_check_at=bindparam("b_next", type_=UTCDateTime()),
    last_error=bindparam("b_error"), error_count=_FEEDS.c.error_count + 1,
    lease_owner=None, lease_until=None)


def success(feed_id: int, owner: str, now: datetime, next_check: datetime, *,
            title: str | None = None, etag: str | None = None,
            last_modified: str | None = None, body_hash: str | None = None,
            new_entries: int = 0, not_modified: bool = False,
            newest: datetime | None = None, cadence: float | None = None,
            silent_since: datetime | None = None) -> Write:
    """The record of a successful poll; the error count resets (the error text stays for
    history). Dropped if another instance holds the feed now (our lease ran out and it took
    over): then its record wins."""
    ours = {"b_id": feed_id, "b_owner": owner}
    if not_modified and not new_entries:
        return _UNCHANGED, {**ours, "b_now": now, "b_next": next_check,
                            "b_silent": silent_since}
    values: dict[str, object] = dict(
        last_checked_at=now, last_success_at=now, next_check_at=next_check, error_count=0,
        lease_owner=None, lease_until=None, silent_since=silent_since,
    )
    if not not_modified:
        values.update(etag=etag, last_modified=last_modified, body_hash=body_hash)
        if title:
            values["title"] = title
        if newest is not None:
            values["newest_entry_at"] = newest
        if cadence is not None:
            values["cadence_seconds"] = cadence
    if new_entries:
        values["last_new_entry_at"] = now
        values["entries_total"] = Feed.entries_total + new_entries
    return update(_FEEDS).where(_OURS).values(**values), ours


def apply(session: Session, write: Write) -> None:
    """Write one record now (rather than in a batch)."""
    session.execute(*write)


def failure(feed_id: int, owner: str, now: datetime, next_check: datetime,
            reason: str, *, read_again: bool = False) -> Write:
    """The record of a failed poll. ``read_again``: the feed was read but some of its entries
    failed, so its validators are dropped and the next poll reads it whole again."""
    params = {"b_id": feed_id, "b_owner": owner, "b_now": now, "b_next": next_check,
              "b_error": reason[:2000]}
    if read_again:
        return _FAILED.values(etag=None, last_modified=None, body_hash=None), params
    return _FAILED, params


def record_failure(session: Session, feed_id: int, owner: str, now: datetime,
                   next_check: datetime, reason: str) -> None:
    session.execute(*failure(feed_id, owner, now, next_check, reason))


def all_feeds(session: Session) -> list[Feed]:
    return list(session.scalars(select(Feed).order_by(Feed.active.desc(), Feed.url)))
