"""Trends now: for every entity and plain term of every watchlist, its mentions in the recent
window against its own baseline (``spikes.judge``), read from the stored matches."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from monitor.config import Settings
from monitor.spikes import Rules, Verdict, judge
from monitor.store import spikes as spike_store
from monitor.store import trends as trend_store


@dataclass(frozen=True)
class Trend:
    watchlist: str
    entity: str
    verdict: Verdict
    stories: list[int]  # the window's stories, most mentioned first
    alerted_at: datetime | None = None


def watched(settings: Settings, watchlist: str | None = None) -> dict[str, list[str]]:
    """Each watchlist's entities (by name) and plain terms, in config order."""
    return {w.name: [e.name for e in w.entities] + list(w.terms)
            for w in settings.watchlists if watchlist in (None, w.name)}


def current(session: Session, settings: Settings, now: datetime, rules: Rules,
            watchlist: str | None = None) -> list[Trend]:
    out = []
    alerted = spike_store.last_alerted(session, watchlist)
    for name, entities in watched(settings, watchlist).items():
        by_term = defaultdict(list)
        for m in trend_store.mentions(session, name, now - rules.baseline - rules.window):
            by_term[m.term].append(m)
        for entity in entities:
            found = by_term.get(entity, [])
            recent = [m for m in found if now - rules.window <= m.when <= now]
            verdict = judge([m.when for m in found], len({m.outlet for m in recent}), now,
                            rules)
            stories: dict[int, int] = defaultdict(int)
            for m in recent:
                if m.story_id is not None:
                    stories[m.story_id] += 1
            out.append(Trend(name, entity, verdict,
                             sorted(stories, key=lambda s: -stories[s]),
                             alerted.get((name, entity))))
    return out
