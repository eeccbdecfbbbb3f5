"""The deciders: pure functions of data and ``now``, apart from the doers that fetch, store and
send. Each answers one question the pipeline asks, and is tested with plain values.

- ``after_poll``: what to record about a feed once it has been polled (next check, back-off,
  silence, whether its validators are kept).
- ``digest_due``: whether a watchlist's digests are cut now, and whether its next due time moves.
- ``alert_channels``: on which channels a new match of an article is queued (the pipeline and
  ``backfill`` ask the same question here).
- ``delivery_retry``: how long a failed delivery waits before its next try.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from monitor.deadline import RETRY_AFTER_BOUNDS
from monitor.health import silence
from monitor.schedule import backoff

DELIVERY_RETRY_CAP = 3600.0  # a failed delivery is tried at least hourly

# -- after a poll ------------------------------------------------------------------------------


class FeedState(Protocol):
    """What is known of a feed before its poll (``store.feeds.FeedJob`` is one)."""

    @property
    def interval_seconds(self) -> float: ...
    @property
    def error_count(self) -> int: ...
    @property
    def cadence_seconds(self) -> float | None: ...
    @property
    def newest_entry_at(self) -> datetime | None: ...
    @property
    def last_new_entry_at(self) -> datetime | None: ...
    @property
    def silent_since(self) -> datetime | None: ...
    @property
    def created_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class Outcome:
    """How a poll went.

    ``kind``: ``ok`` (read; every new entry handled), ``partial`` (read; the time budget ran
    out, the rest wait), ``not-modified`` (304, or the same bytes as last time), ``failed``
    (fetch or parse failed, or an entry could not be processed: ``read`` tells which)."""

    kind: str
    new: int = 0  # new entries stored
    newest: datetime | None = None  # the newest entry date in the document
    cadence: float | None = None  # the usual gap between its entries, in seconds
    retry_after: float | None = None  # the server asked us to wait this long
    read: bool = False  # failed after reading the document (an entry failed)


@dataclass(frozen=True)
class Record:
    ok: bool  # a success (the error count resets) or a failure (it grows)
    next_check: datetime
    keep_validators: bool  # store ETag/Last-Modified/hash: the next poll may be "not modified"
    silent_since: datetime | None = None  # (successes only: a failure leaves it as it was)
    newly_silent: timedelta | None = None  # quiet for this long, and not reported before


def after_poll(feed: FeedState, outcome: Outcome, now: datetime, *, tick: float,
               max_backoff: float, jitter: float) -> Record:
    """The record of a poll. ``jitter`` in [0, 1) spreads next checks: ±5 % of the interval
    after a success, ×0.8-1.2 on the back-off after a failure.

    A failure backs off (the interval doubled per consecutive failure, up to ``max_backoff``,
    at least what the server asked for) and is retried for ever. A poll cut short by its time
    budget is due again at the next tick, its validators dropped so the document is read again;
    so is a feed whose entry failed, but after its back-off."""
    interval = feed.interval_seconds
    if outcome.kind == "failed":
        delay = backoff(interval, feed.error_count + 1, max_backoff, 0.8 + 0.4 * jitter)
        if outcome.retry_after is not None:
            delay = max(delay, outcome.retry_after)
        return Record(False, now + timedelta(seconds=delay), keep_validators=not outcome.read)
    if outcome.kind == "partial":
        next_check = now + timedelta(seconds=min(tick, interval))
    else:
        next_check = now + timedelta(seconds=interval * (0.95 + 0.1 * jitter))
    quiet = None if outcome.new else silence(
        now=now, cadence_seconds=outcome.cadence or feed.cadence_seconds,
        newest_entry_at=max([d for d in (outcome.newest, feed.newest_entry_at) if d],
                            default=None),
        last_new_entry_at=feed.last_new_entry_at, since=feed.created_at)
    return Record(True, next_check, keep_validators=outcome.kind != "partial",
                  silent_since=(feed.silent_since or now) if quiet else None,
                  newly_silent=quiet if quiet and feed.silent_since is None else None)


# -- digests -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestDecision:
    cut: bool  # cut this watchlist's digests now
    reschedule: bool  # and store its next due time


def digest_due(*, due_at: datetime | None, now: datetime, force: bool, urgent: bool,
               quiet_now: bool) -> DigestDecision:
    """Whether a watchlist's digests go out now. Due by schedule (or never scheduled yet: the
    first digest is due at once), forced (``monitor digest --send``), or urgent (an urgent term
    is pending). Quiet hours hold a scheduled digest (it stays due) but not an urgent or forced
    one. The next due time moves only with the schedule: an urgent or forced digest leaves it."""
    fresh = due_at is None
    scheduled = force or fresh or (due_at is not None and due_at <= now)
    urgent = urgent and not force
    if not (scheduled or urgent):
        return DigestDecision(False, False)
    if not (force or urgent) and quiet_now:
        return DigestDecision(False, False)
    return DigestDecision(True, scheduled and (not force or fresh))


def current_due(*, stored_due: datetime | None, stored_schedule: str | None, schedule: str,
                last_sent: datetime | None,
                next_after: Callable[[datetime, datetime | None], datetime]
                ) -> datetime | None:
    """A watchlist's due time under the schedule configured now (``schedule``, with its
    timezone): the stored one while the schedule is the one it was computed with; after an
    edit, the first time the new schedule gives after the last digest
    (``next_after(last, last)``, ``Schedule.next_after``), which may be now; never sent: None
    (the first digest goes with the first alert)."""
    if stored_due is None or stored_schedule in (None, schedule):
        return stored_due
    return next_after(last_sent, last_sent) if last_sent is not None else None


def reschedule_after_cut(decision: DigestDecision, *, cut: int, ever_sent: bool) -> bool:
    """Whether the next due time moves after a cut of ``cut`` digests: as ``digest_due`` said,
    except that a watchlist that never sent a digest keeps waiting for its first alert (an
    empty first cycle does not use up the first period)."""
    return decision.reschedule and (cut > 0 or ever_sent)


def urgent_pending(*, all_urgent: bool, urgent_terms: Collection[str],
                   pending_terms: Collection[str]) -> bool:
    """Whether what waits for a digest makes it urgent: anything (``urgent = true``), or a
    match naming one of ``urgent_terms``."""
    if not pending_terms:
        return False
    return all_urgent or not set(pending_terms).isdisjoint(urgent_terms)


# -- alerts ------------------------------------------------------------------------------------


def alert_channels(channels: Sequence[str], *, copies_a_seed: bool,
                   story_sent_on: Collection[str]) -> list[str]:
    """The channels on which a new match of an article is queued: every active channel of its
    watchlist, except none when the article copies a seed (known before monitoring began), and
    not those on which its story (the original or any copy of it) was already alerted: there
    it shows as "also in" under the original."""
    if copies_a_seed:
        return []
    return [c for c in channels if c not in story_sent_on]


# -- delivery ----------------------------------------------------------------------------------


def delivery_retry(attempts: int, retry_after: float | None) -> float:
    """Seconds before a failed delivery is tried again: what the server asked for (within the
    bounds of ``Retry-After``), else a minute doubled per attempt, at most an hour."""
    if retry_after is not None and retry_after > 0:
        return min(retry_after, RETRY_AFTER_BOUNDS[1])
    return min(60.0 * float(2 ** min(max(attempts - 1, 0), 20)), DELIVERY_RETRY_CAP)
