"""The outbox: pending alerts, digests cut from them, and the relay's claims on digests."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.digest import Copy, Item, StoryInfo, safe_link
from monitor.store.tables import Alert, Article, Digest, Match, Story, WatchlistState


@dataclass(frozen=True)
class DigestJob:
    id: int
    watchlist: str
    channel: str
    subject: str
    body_text: str
    body_html: str
    slack_payload: str
    message_id: str
    attempts: int
    parts_sent: int


def pending_alerts(session: Session, watchlist: str, channel: str) -> list[int]:
    return list(session.scalars(
        select(Alert.id).where(Alert.watchlist == watchlist, Alert.channel == channel,
                               Alert.digest_id.is_(None)).order_by(Alert.id)
    ))


def pending_terms(session: Session, watchlist: str, channels: Collection[str]) -> set[str]:
    """The terms of every match still waiting for a digest of this watchlist on ``channels``."""
    rows = session.scalars(select(Match.terms).join(Alert, Alert.match_id == Match.id)
                           .where(Alert.watchlist == watchlist, Alert.digest_id.is_(None),
                                  Alert.channel.in_(list(channels))))
    return {str(term) for terms in rows for term in terms}


def pending_counts(session: Session) -> dict[tuple[str, str], int]:
    rows = session.execute(select(Alert.watchlist, Alert.channel, func.count())
                           .where(Alert.digest_id.is_(None))
                           .group_by(Alert.watchlist, Alert.channel))
    return {(w, c): n for w, c, n in rows}


def digest_items(session: Session, alert_ids: list[int]) -> list[Item]:
    """Everything a digest shows for these alerts, with known copies as "also in"."""
    rows = session.execute(
        select(Article, Match).join(Alert, Alert.article_id == Article.id)
        .join(Match, Match.id == Alert.match_id).where(Alert.id.in_(alert_ids))
        .order_by(Article.published_at.desc().nulls_last(), Article.id)
    ).all()
    ids = [a.id for a, _ in rows]
    copies: dict[int, list[Copy]] = defaultdict(list)
    if ids:
        for copy in session.scalars(select(Article).where(Article.duplicate_of_id.in_(ids),
                                                           Article.is_seed.is_(False))
                                    .order_by(Article.id)):
            assert copy.duplicate_of_id is not None
            copies[copy.duplicate_of_id].append(Copy(copy.outlet, safe_link(copy.link)))
    return [
        Item(article_id=a.id, title=a.title, link=safe_link(a.link), outlet=a.outlet,
             published=a.published_at, terms=list(m.terms), snippet=m.snippet,
             marks=[(int(a), int(b)) for a, b in m.marks or []], also_in=copies.get(a.id, []),
             language=a.language, story_id=a.story_id)
        for a, m in rows
    ]


def story_info(session: Session, items: list[Item], watchlist: str, channel: str
               ) -> dict[int, StoryInfo]:
    """For the stories of a digest's items: title, languages and outlets of all their articles
    (seeds left out), and when this watchlist and channel first reported each, if it did."""
    ids = sorted({i.story_id for i in items if i.story_id is not None})
    if not ids:
        return {}
    reported = dict(session.execute(
        select(Article.story_id, func.min(Digest.created_at))
        .join(Alert, Alert.article_id == Article.id).join(Digest, Digest.id == Alert.digest_id)
        .where(Article.story_id.in_(ids), Alert.watchlist == watchlist,
               Alert.channel == channel, Digest.status.in_(("sent", "queued", "sending")))
        .group_by(Article.story_id)).all())
    members = session.execute(
        select(Article.story_id, Article.language, Article.outlet)
        .where(Article.story_id.in_(ids), Article.is_seed.is_(False))).all()
    languages: dict[int, set[str]] = defaultdict(set)
    outlets: dict[int, set[str]] = defaultdict(set)
    for story_id, language, outlet in members:
        assert story_id is not None
        if language:
            languages[story_id].add(language)
        outlets[story_id].add(outlet)
    titles = dict(session.execute(select(Story.id, Story.title).where(Story.id.in_(ids))).all())
    return {i: StoryInfo(titles.get(i, ""), sorted(languages[i]), len(outlets[i]) or 1,
                         reported.get(i)) for i in ids}


def insert_digest(session: Session, watchlist: str, channel: str, count: int,
                  now: datetime) -> Digest:
    row = Digest(watchlist=watchlist, channel=channel, status="building", article_count=count,
                 subject="", body_text="", body_html="", slack_payload="[]", message_id="",
                 parts_sent=0,
                 attempts=0, next_attempt_at=now, created_at=now)
    session.add(row)
    session.flush()
    return row


def assign_alerts(session: Session, alert_ids: list[int], digest_id: int) -> None:
    session.execute(update(Alert).where(Alert.id.in_(alert_ids)).values(digest_id=digest_id))


def claim_digests(session: Session, owner: str, now: datetime, lease: timedelta, *,
                  ignore_backoff: bool = False, exclude: Collection[int] = (),
                  only: Collection[int] | None = None, limit: int = 50) -> list[DigestJob]:
    """Lease sendable digests: queued and due (or any queued when ``ignore_backoff``), or
    'sending' under an expired lease (the sender died before recording the result)."""
    queued = Digest.status == "queued"
    if not ignore_backoff:
        queued = and_(queued, or_(Digest.next_attempt_at.is_(None),
                                  Digest.next_attempt_at <= now))
    stale = and_(Digest.status == "sending", Digest.lease_until < now)
    query = select(Digest).where(or_(queued, stale))
    if exclude:
        query = query.where(Digest.id.not_in(list(exclude)))
    if only is not None:
        query = query.where(Digest.id.in_(list(only)))
    rows = list(session.scalars(query.order_by(Digest.id)
                                .limit(limit).with_for_update(skip_locked=True)))
    for row in rows:
        row.status, row.lease_owner, row.lease_until = "sending", owner, now + lease
        row.attempts += 1
    return [DigestJob(r.id, r.watchlist, r.channel, r.subject, r.body_text, r.body_html,
                      r.slack_payload, r.message_id, r.attempts, r.parts_sent) for r in rows]


def _finish(session: Session, digest_id: int, owner: str, **values: object) -> bool:
    result = session.execute(
        update(Digest).where(Digest.id == digest_id, Digest.lease_owner == owner,
                             Digest.status == "sending")
        .values(lease_owner=None, lease_until=None, **values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_part(session: Session, digest_id: int, owner: str, parts_sent: int) -> None:
    session.execute(update(Digest).where(Digest.id == digest_id, Digest.lease_owner == owner)
                    .values(parts_sent=parts_sent))


def mark_sent(session: Session, digest_id: int, owner: str, now: datetime,
              warning: str | None = None) -> bool:
    """Sent; ``warning`` says what part did not get through (refused recipients)."""
    return _finish(session, digest_id, owner, status="sent", sent_at=now,
                   last_error=warning[:2000] if warning else None)


def mark_retry(session: Session, digest_id: int, owner: str, error: str,
               next_attempt: datetime) -> bool:
    return _finish(session, digest_id, owner, status="queued", last_error=error[:2000],
                   next_attempt_at=next_attempt)


def mark_failed(session: Session, digest_id: int, owner: str, error: str) -> bool:
    return _finish(session, digest_id, owner, status="failed", last_error=error[:2000])


def requeue(session: Session, digest_id: int) -> Digest | None:
    """Queue a failed or sent digest again, whole, for a re-send; None if there is no such
    digest or it is already queued or being sent."""
    row = session.get(Digest, digest_id, with_for_update=True)
    if row is None or row.status not in ("failed", "sent"):
        return None
    row.status, row.attempts, row.parts_sent = "queued", 0, 0
    row.next_attempt_at, row.lease_owner, row.lease_until = None, None, None
    return row


def unsent_digests(session: Session) -> list[Digest]:
    return list(session.scalars(select(Digest).where(Digest.status.in_(("queued", "sending")))
                                .order_by(Digest.id)))


def failed_digests(session: Session, limit: int = 20) -> list[Digest]:
    return list(session.scalars(select(Digest).where(Digest.status == "failed")
                                .order_by(Digest.id.desc()).limit(limit)))


def delivery_troubles(session: Session, since: datetime | None = None) -> list[Digest]:
    """Deliveries the operator should hear of: the newest sent digest of each watchlist and
    channel when it went out incomplete (refused recipients), and digests waiting for a retry
    after failing more than once."""
    newest = (select(Digest.watchlist, Digest.channel, func.max(Digest.id).label("id"))
              .where(Digest.status == "sent").group_by(Digest.watchlist, Digest.channel)
              .subquery())
    incomplete = select(Digest).join(newest, Digest.id == newest.c.id).where(
        Digest.last_error.is_not(None))
    if since is not None:
        incomplete = incomplete.where(Digest.created_at >= since)
    retrying = select(Digest).where(Digest.status.in_(("queued", "sending")),
                                    Digest.last_error.is_not(None), Digest.attempts >= 2)
    rows = [*session.scalars(incomplete), *session.scalars(retrying)]
    return sorted(rows, key=lambda d: d.id)


def last_sent(session: Session) -> dict[tuple[str, str], datetime]:
    rows = session.execute(select(Digest.watchlist, Digest.channel, func.max(Digest.sent_at))
                           .where(Digest.status == "sent")
                           .group_by(Digest.watchlist, Digest.channel))
    return {(w, c): t for w, c, t in rows if t is not None}


def watchlist_state(session: Session, watchlist: str, *, lock: bool = False
                    ) -> WatchlistState | None:
    """The watchlist's schedule state. With ``lock``, the row is created if missing and then
    locked, so instances cutting digests take turns even before the first digest (a row that
    does not exist yet cannot be locked)."""
    query = select(WatchlistState).where(WatchlistState.watchlist == watchlist)
    if lock:
        if session.scalar(query) is None:
            try:
                with session.begin_nested():
                    session.add(WatchlistState(watchlist=watchlist, next_digest_at=None,
                                               last_digest_at=None))
            except IntegrityError:
                pass  # another instance created it meanwhile: lock theirs
        query = query.with_for_update()
    return session.scalar(query)


def set_watchlist_state(session: Session, watchlist: str, next_digest_at: datetime | None,
                        last_digest_at: datetime | None, schedule: str | None = None) -> None:
    """Store the next due time (None: due at the first alert), the time of the last digest
    (None: unchanged) and the schedule the due time follows."""
    row = session.get(WatchlistState, watchlist)
    if row is None:
        session.add(WatchlistState(watchlist=watchlist, next_digest_at=next_digest_at,
                                   last_digest_at=last_digest_at, schedule=schedule))
    else:
        row.next_digest_at = next_digest_at
        if last_digest_at is not None:
            row.last_digest_at = last_digest_at
        if schedule is not None:
            row.schedule = schedule
