"""Digest schedules: parse a schedule string, and say when it is next due. Pure functions of time.

Accepted forms (all in the watchlist's IANA timezone):

- ``"every 30m"``, ``"every 2h"``, ``"every 1d"``: fixed intervals, counted from the last digest;
- ``"hourly"``: at the top of every hour;
- ``"daily 07:00"``, ``"daily 07:00,18:30"``: at those wall-clock times every day;
- ``"cron 0 7 * * mon-fri"``: a five-field crontab line.

``next_after(now)`` is the first due time strictly after ``now``. Because the next due time is
stored, a daemon down across one or several due times finds one digest due when it comes back,
not several; wall-clock times are computed in the timezone, so a DST change neither doubles nor
skips a digest.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$")
_UNITS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


MAX_DURATION = timedelta(days=366)


def parse_duration(value: str | int | float, maximum: timedelta = MAX_DURATION) -> timedelta:
    """``"90s"``, ``"30m"``, ``"2h"``, ``"1d"`` or a number (not a string) of seconds; positive,
    finite and at most ``maximum`` (so no date computed from it can overflow)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a duration such as '30m', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        found = _DURATION.match(value)
        if not found:
            raise ValueError(f"expected a duration such as '90s', '30m' or '2h', got {value!r}")
        if found.group(2) is None:  # "30": seconds or minutes? say so rather than guess
            raise ValueError(f"{value!r} has no unit: write '{found.group(1)}s', "
                             f"'{found.group(1)}m' or '{found.group(1)}h' (a number without "
                             f"quotes counts as seconds)")
        seconds = float(found.group(1)) * _UNITS[found.group(2)]
    if not math.isfinite(seconds):
        raise ValueError(f"expected a finite duration such as '30m', got {value!r}")
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    if seconds > maximum.total_seconds():
        raise ValueError(f"{value!r} is too long: at most {_describe(maximum)}")
    return timedelta(seconds=seconds)


def _describe(span: timedelta) -> str:
    seconds = span.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:g}s"


def parse_timezone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown IANA timezone {name!r} (e.g. 'UTC', 'Europe/Paris')") from e


@dataclass(frozen=True)
class Schedule:
    text: str
    trigger: CronTrigger | None
    every: timedelta | None

    def next_after(self, now: datetime, last: datetime | None = None) -> datetime:
        """The first due time strictly after ``now`` (``now`` must be timezone-aware)."""
        if self.every is not None:
            base = last if last is not None and last + self.every > now else now
            return base + self.every
        assert self.trigger is not None
        fire = self.trigger.get_next_fire_time(None, now + timedelta(microseconds=1))
        assert fire is not None
        return fire  # type: ignore[no-any-return]


def parse_schedule(text: str, timezone: str = "UTC") -> Schedule:
    tz = parse_timezone(timezone)
    words = text.strip().split(None, 1)
    kind = words[0].lower() if words else ""
    rest = words[1].strip() if len(words) > 1 else ""
    if kind == "every":
        try:
            return Schedule(text, None, parse_duration(rest))
        except ValueError as e:
            raise ValueError(f"{e}; a schedule is {_SCHEDULES}") from None
    if kind == "hourly" and not rest:
        return Schedule(text, CronTrigger(minute=0, timezone=tz), None)
    if kind == "daily":
        hours, minutes = _daily_times(rest)
        return Schedule(text, CronTrigger(hour=hours, minute=minutes, timezone=tz), None)
    if kind == "cron":
        try:
            return Schedule(text, CronTrigger.from_crontab(rest, timezone=tz), None)
        except ValueError as e:
            raise ValueError(f"bad crontab {rest!r}: {e}") from e
    raise ValueError(f"unknown schedule {text!r}; use {_SCHEDULES}")


_SCHEDULES = "'every 30m', 'hourly', 'daily 07:00' (or '07:00, 19:00') or 'cron 0 7 * * 1-5'"


def _daily_times(rest: str) -> tuple[str, str]:
    times = [t.strip() for t in rest.split(",") if t.strip()]
    if not times:
        raise ValueError("'daily' needs a time, e.g. 'daily 07:00'")
    parsed = []
    for t in times:
        found = re.fullmatch(r"(\d{1,2}):(\d{2})", t)
        if not found or int(found.group(1)) > 23 or int(found.group(2)) > 59:
            raise ValueError(f"bad time {t!r} in daily schedule; use HH:MM")
        parsed.append((int(found.group(1)), int(found.group(2))))
    if len({m for _, m in parsed}) > 1:
        # One cron expression per minute value; several minutes need several triggers, which
        # the daily form keeps simple by requiring one minute value across its times.
        raise ValueError("daily times must share their minutes (e.g. '07:00,18:00'); use cron")
    return ",".join(str(h) for h, _ in parsed), str(parsed[0][1])


def backoff(base: float, failures: int, cap: float, jitter: float) -> float:
    """Seconds before retrying a failing feed: ``base`` doubled per consecutive failure, capped,
    scaled by ``jitter`` (0.8-1.2, drawn by the caller), never over ``cap``. Never infinite: a
    feed is never dropped."""
    delay: float = min(base * 2.0 ** min(max(failures - 1, 0), 64), cap)
    return float(max(min(delay * jitter, cap), 1.0))


@dataclass(frozen=True)
class QuietHours:
    """A daily window, in a timezone, when routine digests wait (deferred, never dropped)."""

    start: time
    end: time
    tz: tzinfo

    def active(self, now: datetime) -> bool:
        local = now.astimezone(self.tz).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # over midnight


def parse_quiet_hours(text: str, timezone: str = "UTC") -> QuietHours:
    found = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
    if not found:
        raise ValueError(f"quiet hours {text!r}: write 'HH:MM-HH:MM', e.g. '22:00-07:00'")
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59 or (h1, m1) == (h2, m2):
        raise ValueError(f"quiet hours {text!r}: times must be 00:00-23:59 and differ")
    return QuietHours(time(h1, m1), time(h2, m2), parse_timezone(timezone))
