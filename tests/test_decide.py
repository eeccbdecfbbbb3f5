"""The deciders, with plain data: no database, no network, no clock but the one passed in."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from monitor import decide
from monitor.decide import Outcome

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Feed:
    interval_seconds: float = 1800.0
    error_count: int = 0
    cadence_seconds: float | None = 3600.0
    newest_entry_at: datetime | None = NOW - timedelta(hours=1)
    last_new_entry_at: datetime | None = NOW - timedelta(hours=1)
    silent_since: datetime | None = None
    created_at: datetime | None = NOW - timedelta(days=30)


def after(feed: Feed, outcome: Outcome, jitter: float = 0.5) -> decide.Record:
    return decide.after_poll(feed, outcome, NOW, tick=30, max_backoff=21600, jitter=jitter)


# -- after a poll ------------------------------------------------------------------------------


def test_a_success_is_due_again_after_its_interval_within_five_percent() -> None:
    early, late = after(Feed(), Outcome("ok", new=2), 0.0), after(Feed(), Outcome("ok"), 0.999)
    assert early.ok and early.keep_validators and early.silent_since is None
    assert early.next_check == NOW + timedelta(seconds=1800 * 0.95)
    assert NOW + timedelta(seconds=1889) < late.next_check <= NOW + timedelta(seconds=1890)


def test_not_modified_keeps_the_validators_and_the_interval() -> None:
    record = after(Feed(), Outcome("not-modified"))
    assert record.ok and record.keep_validators
    assert record.next_check == NOW + timedelta(seconds=1800)


def test_a_poll_cut_short_is_due_at_the_next_tick_and_read_again() -> None:
    record = after(Feed(), Outcome("partial", new=50))
    assert record.ok and not record.keep_validators
    assert record.next_check == NOW + timedelta(seconds=30)


@pytest.mark.parametrize(("errors", "delay"), [(0, 1800), (1, 3600), (2, 7200), (3, 14400),
                                               (4, 21600), (40, 21600)])
def test_failures_back_off_doubling_up_to_the_cap_and_never_give_up(
        errors: int, delay: float) -> None:
    record = after(Feed(error_count=errors), Outcome("failed"), jitter=0.5)  # x1.0
    assert not record.ok and record.keep_validators
    assert record.next_check == NOW + timedelta(seconds=delay)


def test_a_failure_waits_at_least_what_the_server_asked() -> None:
    record = after(Feed(), Outcome("failed", retry_after=10_000))
    assert record.next_check == NOW + timedelta(seconds=10_000)
    assert after(Feed(), Outcome("failed", retry_after=5)).next_check == \
        NOW + timedelta(seconds=1800)


def test_an_entry_that_failed_makes_a_failure_that_reads_the_feed_again() -> None:
    record = after(Feed(error_count=1), Outcome("failed", new=3, read=True))
    assert not record.ok and not record.keep_validators
    assert record.next_check == NOW + timedelta(seconds=3600)


def test_silence_is_noticed_once_and_kept_until_news() -> None:
    quiet = Feed(newest_entry_at=NOW - timedelta(days=2), last_new_entry_at=None)
    first = after(quiet, Outcome("not-modified"))
    assert first.silent_since == NOW and first.newly_silent == timedelta(days=2)
    again = after(replace(quiet, silent_since=NOW - timedelta(hours=5)), Outcome("ok"))
    assert again.silent_since == NOW - timedelta(hours=5) and again.newly_silent is None
    news = after(replace(quiet, silent_since=NOW - timedelta(hours=5)), Outcome("ok", new=1))
    assert news.silent_since is None and news.newly_silent is None


# -- digests -----------------------------------------------------------------------------------


def due(at: datetime | None, **kw: bool) -> tuple[bool, bool]:
    args = {"force": False, "urgent": False, "quiet_now": False, **kw}
    d = decide.digest_due(due_at=at, now=NOW, **args)
    return d.cut, d.reschedule


def test_digest_due_by_schedule_first_time_and_not_before() -> None:
    assert due(None) == (True, True)  # never scheduled: the first digest at once
    assert due(NOW) == (True, True)
    assert due(NOW + timedelta(minutes=1)) == (False, False)


def test_quiet_hours_hold_a_scheduled_digest_but_not_an_urgent_or_forced_one() -> None:
    assert due(NOW - timedelta(hours=1), quiet_now=True) == (False, False)
    assert due(NOW + timedelta(hours=1), urgent=True, quiet_now=True) == (True, False)
    assert due(NOW + timedelta(hours=1), force=True, quiet_now=True) == (True, False)
    assert due(None, force=True) == (True, True)  # forced, first ever: scheduled from now


def test_urgent_pending_needs_something_pending_and_an_urgent_term() -> None:
    assert not decide.urgent_pending(all_urgent=True, urgent_terms=(), pending_terms=())
    assert decide.urgent_pending(all_urgent=True, urgent_terms=(), pending_terms=("Wagner",))
    assert decide.urgent_pending(all_urgent=False, urgent_terms=("Takuba",),
                                 pending_terms=("Wagner", "Takuba"))
    assert not decide.urgent_pending(all_urgent=False, urgent_terms=("Takuba",),
                                     pending_terms=("Wagner",))


# -- alerts ------------------------------------------------------------------------------------


def test_alert_channels_one_rule_for_originals_copies_and_seeds() -> None:
    both = ["email", "slack"]
    assert decide.alert_channels(both, copies_a_seed=False, story_sent_on=set()) == both
    assert decide.alert_channels(both, copies_a_seed=False, story_sent_on={"email"}) == \
        ["slack"]
    assert decide.alert_channels(both, copies_a_seed=True, story_sent_on=set()) == []
    assert decide.alert_channels([], copies_a_seed=False, story_sent_on=set()) == []


# -- delivery ----------------------------------------------------------------------------------


def test_delivery_retry_doubles_from_a_minute_to_an_hour_or_follows_the_server() -> None:
    assert [decide.delivery_retry(n, None) for n in (1, 2, 3, 7, 8, 500)] == \
        [60, 120, 240, 3600, 3600, 3600]
    assert decide.delivery_retry(1, 30) == 30
    assert decide.delivery_retry(1, 10**9) == 86400  # Retry-After is clamped to a day
    assert decide.delivery_retry(3, 0) == 240


def test_an_edited_schedule_moves_the_due_time_from_the_last_digest() -> None:
    from monitor.schedule import parse_schedule

    every_minute = parse_schedule("every 1m")
    stored = NOW + timedelta(minutes=50)  # as the old hourly schedule said
    unchanged = decide.current_due(stored_due=stored, stored_schedule="hourly (UTC)",
                                   schedule="hourly (UTC)", last_sent=NOW - timedelta(minutes=10),
                                   next_after=every_minute.next_after)
    assert unchanged == stored
    edited = decide.current_due(stored_due=stored, stored_schedule="hourly (UTC)",
                                schedule="every 1m (UTC)", last_sent=NOW - timedelta(minutes=10),
                                next_after=every_minute.next_after)
    assert edited == NOW - timedelta(minutes=9)  # overdue under the new schedule: due now
    legacy = decide.current_due(stored_due=stored, stored_schedule=None, schedule="x",
                                last_sent=None, next_after=every_minute.next_after)
    assert legacy == stored
    never_sent = decide.current_due(stored_due=stored, stored_schedule="hourly (UTC)",
                                    schedule="daily 07:00 (UTC)", last_sent=None,
                                    next_after=every_minute.next_after)
    assert never_sent is None


def test_an_empty_first_cut_keeps_the_first_digest_waiting_for_its_first_alert() -> None:
    first = decide.digest_due(due_at=None, now=NOW, force=False, urgent=False, quiet_now=False)
    assert not decide.reschedule_after_cut(first, cut=0, ever_sent=False)
    assert decide.reschedule_after_cut(first, cut=2, ever_sent=False)
    later = decide.digest_due(due_at=NOW, now=NOW, force=False, urgent=False, quiet_now=False)
    assert decide.reschedule_after_cut(later, cut=0, ever_sent=True)
