"""Spike alerts: the false-alarm rate on long synthetic series with a daily and weekly rhythm,
and the share of bursts caught, for a few score thresholds.

    python bench/spikes.py [SERIES]      # series per rate (default 30), 90 days each

Each series is an entity mentioned at a steady rate (2, 8 or 30 a day: rare, regular, busy),
busier 07-19 than at night and half as busy at weekends, drawn hour by hour from a Poisson
law. The decider runs every hour after the first 14 days, with the cooldown, as the daemon
would; every alert on these series is a false alarm. Then a burst (the rate of a window
multiplied by 4, plus 5 mentions) is put at a random hour of each series: caught or not.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.spikes import Rules, alert_due, judge

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.builders import steady

END = datetime(2026, 7, 15, 12, 0, tzinfo=UTC)
DAYS = 90


def series(rng: random.Random, per_day: float) -> list[datetime]:
    return sorted(steady(rng, END - timedelta(days=DAYS), END, per_day))


def alarms(times: list[datetime], rules: Rules) -> int:
    found, last = 0, None
    hour = END - timedelta(days=DAYS) + rules.baseline + rules.window
    while hour <= END:
        v = judge([t for t in times if t <= hour], 5, hour, rules)
        if alert_due(v, last, 0, hour, rules):
            found, last = found + 1, hour
        hour += timedelta(hours=1)
    return found


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    started = time.perf_counter()
    print(f"{n} series per rate, {DAYS} days each, checked hourly after the first 14 days")
    for threshold in (3.0, 4.0, 5.0):
        rules = replace(Rules(), threshold=threshold)
        months = 0.0
        false = caught = bursts = 0
        for per_day in (2, 8, 30):
            for seed in range(n):
                rng = random.Random(per_day * 1000 + seed)
                times = series(rng, per_day)
                false += alarms(times, rules)
                months += (DAYS - 14) / 30
                at = END - timedelta(hours=rng.randrange(0, 24 * (DAYS - 20)))
                usual = per_day / 24 * rules.window.total_seconds() / 3600
                extra = int(4 * usual) + 5
                burst = [at - timedelta(minutes=rng.randrange(int(rules.window.total_seconds()
                                                                  // 60))) for _ in range(extra)]
                v = judge([t for t in times + burst if t <= at], 5, at, rules)
                bursts += 1
                caught += v.spike
        print(f"  threshold {threshold:g}: {false} false alarms in {months:.0f} entity-months "
              f"({false / months:.3f} per entity-month); bursts caught {caught}/{bursts}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
