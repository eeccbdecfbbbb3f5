"""The spike decider: is an entity mentioned improbably often right now, against its own past?
Pure: counts and times in, a verdict out (no database, no clock).

For each watchlist entity (and plain term), the mentions are the distinct original articles
that matched it (copies left out: syndication is not news), each at its event time (published,
clamped to arrival). The **recent window** (``window`` hours, ending now) is compared with the
**baseline**: the trailing ``baseline`` days before the window. A desk's news has a daily rhythm
(quiet nights, busy mornings), so the expected count of the window is the larger of the
all-day rate and the rate of the same hours of the day over the baseline days. Then:

- the **score** is the Poisson surprise of the count, ``-log10 P(X >= count | expected)``, with
  the expected count floored at ``floor`` (an entity with no history is not infinitely
  surprising);
- a **spike** needs the score over ``threshold``, at least ``min_count`` mentions, from at least
  ``min_outlets`` outlets, and ``ratio`` times the expected count: 1 -> 3 mentions of a rare
  name is no alarm, nor one feed posting the same name ten times.

**Cooldown**: one surge gives one alert. After an alert, the same entity alerts again only once
``cooldown`` has passed, or within it when the count has grown ``growth`` times over the count
alerted.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Rules:
    window: timedelta = timedelta(hours=3)
    baseline: timedelta = timedelta(days=14)
    threshold: float = 4.0  # score: a 1-in-10,000 count under the usual rate
    min_count: int = 4
    min_outlets: int = 2
    ratio: float = 3.0
    floor: float = 0.25  # least expected mentions per window
    cooldown: timedelta = timedelta(hours=12)
    growth: float = 2.0


@dataclass(frozen=True)
class Verdict:
    count: int  # mentions in the window
    outlets: int
    expected: float  # the baseline's count for a window like this one
    score: float
    spike: bool


def poisson_surprise(count: int, expected: float) -> float:
    """``-log10 P(X >= count)`` for X ~ Poisson(expected), computed in log space."""
    if count <= 0:
        return 0.0
    # P(X >= k) = 1 - sum_{i<k} e^-l l^i / i!; for the tail that matters, sum from k upward
    log_terms = []
    i = count
    term = -expected + count * math.log(expected) - math.lgamma(count + 1)
    while True:
        log_terms.append(term)
        i += 1
        term += math.log(expected) - math.log(i)
        if term < log_terms[0] - 40 or i > count + 10_000:
            break
    peak = max(log_terms)
    tail = peak + math.log(sum(math.exp(t - peak) for t in log_terms))
    return max(0.0, -tail / math.log(10))


def expected_count(times: Sequence[datetime], now: datetime, rules: Rules) -> float:
    """The count a window ending ``now`` usually has: the largest of the all-day rate, the
    rate of the same hours of the day, and that of the same hours on days of the same kind
    (weekdays or weekends), over the baseline days before the window."""
    start = now - rules.window
    first = start - rules.baseline
    history = sorted(t for t in times if first <= t < start)
    overall = len(history) / (rules.baseline / rules.window)
    days = max(1, int(rules.baseline / timedelta(days=1)))
    weekend = now.weekday() >= 5
    same_hours = same_kind = kind_days = 0
    for day in range(1, days + 1):
        lo, hi = start - timedelta(days=day), now - timedelta(days=day)
        n = bisect_left(history, hi) - bisect_left(history, lo)
        same_hours += n
        if (lo.weekday() >= 5) == weekend:
            same_kind += n
            kind_days += 1
    return max(overall, same_hours / days, same_kind / max(1, kind_days), rules.floor)


def judge(times: Sequence[datetime], outlets_in_window: int, now: datetime,
          rules: Rules) -> Verdict:
    """The verdict on one entity, from the event times of its mentions (window and baseline
    together) and the number of outlets among the window's."""
    count = sum(1 for t in times if now - rules.window <= t <= now)
    expected = expected_count(times, now, rules)
    score = poisson_surprise(count, expected)
    spike = (score >= rules.threshold and count >= rules.min_count
             and outlets_in_window >= rules.min_outlets and count >= rules.ratio * expected)
    return Verdict(count, outlets_in_window, round(expected, 3), round(score, 2), spike)


def alert_due(verdict: Verdict, last_alerted_at: datetime | None, last_count: int,
              now: datetime, rules: Rules) -> bool:
    """Whether a spiking entity alerts now: not within the cooldown of its last alert, unless
    the surge grew ``growth`` times over the count alerted then."""
    if not verdict.spike:
        return False
    if last_alerted_at is None or now - last_alerted_at >= rules.cooldown:
        return True
    return verdict.count >= rules.growth * max(1, last_count)
