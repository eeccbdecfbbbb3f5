"""Feed health judged from stored facts: failing, and silent against the feed's own cadence.

Pure functions of a feed's record and ``now``, shared by the poller (which logs a feed the moment
it goes quiet) and ``monitor status``. A feed is never given up: failing feeds keep being polled
with capped back-off, and these verdicts only report.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.store.tables import Feed

SILENCE_FACTOR = 8  # quiet for this many of its usual gaps ...
SILENCE_FLOOR = timedelta(hours=12)  # ... and at least this long, so nights are not reported
UNDATED_SILENCE = timedelta(days=7)  # feeds whose entries carry no dates


def silence(*, now: datetime, cadence_seconds: float | None, newest_entry_at: datetime | None,
            last_new_entry_at: datetime | None, since: datetime | None) -> timedelta | None:
    """How long the feed has been quiet, when that is unusual for it; else None.

    The last sign of life is the newest entry date the feed gave, or when we last found a new
    entry, whichever is later; ``since`` (when we started polling it) stands in when neither
    exists yet. The usual gap is the median gap between the dated entries of its document.
    """
    marks = [m for m in (newest_entry_at, last_new_entry_at) if m is not None]
    last = max(marks) if marks else since
    if last is None:
        return None
    quiet = now - last
    if cadence_seconds:
        limit = max(timedelta(seconds=cadence_seconds * SILENCE_FACTOR), SILENCE_FLOOR)
    else:
        limit = UNDATED_SILENCE
    return quiet if quiet > limit else None


def describe_gap(seconds: float) -> str:
    """'every 2h', 'every 3d' ... for a cadence in seconds."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


def feed_state(f: Feed, now: datetime) -> str:
    """One word or phrase for a feed's health, as `monitor status` and the web desk show it."""
    if not f.active:
        return "inactive"
    if f.error_count:
        return f"FAILING x{f.error_count} since {_when(f.last_success_at or f.created_at)}"
    quiet = silence(now=now, cadence_seconds=f.cadence_seconds,
                           newest_entry_at=f.newest_entry_at,
                           last_new_entry_at=f.last_new_entry_at, since=f.created_at)
    if quiet is not None:
        return f"SILENT for {describe_gap(quiet.total_seconds())}"
    return "ok" if f.last_success_at else "not polled yet"
