"""Spike and breaking-story alerts, at each cycle: for every watchlist that sends them, the
entities spiking now (``spikes.judge`` over ``trending``) and the stories gaining outlets or
languages fast, each alerted once per surge (``spikes.alert_due``: the cooldown). An alert is
recorded and its message queued as digest rows, one per channel, in one transaction under a
lock, so two instances send one alert between them and a crash loses none; the relay delivers
it at once."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from monitor import trending
from monitor.config import WatchlistSettings
from monitor.digest import (
    AlertMessage,
    AlertStory,
    dumps_slack,
    message_id,
    render_alert,
    sender_domain,
)
from monitor.relay import Instance
from monitor.schedule import parse_quiet_hours
from monitor.spikes import Rules, Verdict, alert_due
from monitor.store import outbox
from monitor.store import spikes as spike_store

log = logging.getLogger("monitor")
TOP_STORIES = 5
LINKS_PER_STORY = 3


class Alerter:
    def __init__(self, host: Instance) -> None:
        self.host = host

    def run(self) -> int:
        """Queue the alerts due now; how many."""
        made = 0
        now = self.host.clock()
        for wl in self.host.settings.watchlists:
            channels = self.host.channels.get(wl.name, [])
            if not wl.spike_alerts or not channels or self._quiet(wl, now):
                continue
            with self.host.sessions.begin() as session:
                spike_store.lock(session)
                made += self._entities(session, wl, channels, now)
                made += self._stories(session, wl, channels, now)
        return made

    def _quiet(self, wl: WatchlistSettings, now: datetime) -> bool:
        if not wl.quiet_hours or wl.spikes_in_quiet_hours:
            return False
        return parse_quiet_hours(wl.quiet_hours, wl.timezone).active(now)

    def _entities(self, session: Session, wl: WatchlistSettings, channels: list[str],
                  now: datetime) -> int:
        rules = self.host.settings.spikes.rules()
        made = 0
        for trend in trending.current(session, self.host.settings, now, rules, wl.name):
            v = trend.verdict
            last = spike_store.last(session, wl.name, "entity", trend.entity)
            if not alert_due(v, last.created_at if last else None, last.count if last else 0,
                             now, rules):
                continue
            hours = rules.window.total_seconds() / 3600
            summary = (f"{v.count} mentions in the last {hours:g}h from {v.outlets} outlets "
                       f"(usually {v.expected:g} in {hours:g}h; score {v.score:g})")
            heads = spike_store.story_heads(session, trend.stories[:TOP_STORIES],
                                            now - rules.window)
            stories = [AlertStory(h.title, h.links[:LINKS_PER_STORY])
                       for h in (heads.get(i) for i in trend.stories[:TOP_STORIES]) if h]
            self._queue(session, wl.name, channels, "entity", trend.entity,
                        AlertMessage(wl.name, "spike", trend.entity, summary, stories, now),
                        v, now)
            made += 1
        return made

    def _stories(self, session: Session, wl: WatchlistSettings, channels: list[str],
                 now: datetime) -> int:
        s = self.host.settings.spikes
        window = timedelta(seconds=s.breaking_window)
        rules = Rules(cooldown=timedelta(seconds=s.cooldown), growth=s.growth)
        ids = spike_store.matched_stories(session, wl.name, now - window)
        made = 0
        for story_id, (outlets, languages) in spike_store.velocity(session, ids,
                                                                   now - window).items():
            fast = len(outlets) >= s.breaking_outlets or (
                len(languages) >= s.breaking_languages and len(outlets) >= s.min_outlets)
            if not fast:  # one outlet in three languages is not news spreading
                continue
            v = Verdict(len(outlets), len(outlets), 0.0, float(len(languages)), True)
            last = spike_store.last(session, wl.name, "story", str(story_id))
            if not alert_due(v, last.created_at if last else None, last.count if last else 0,
                             now, rules):
                continue
            head = spike_store.story_heads(session, [story_id], now - window).get(story_id)
            if head is None:
                continue
            hours = window.total_seconds() / 3600
            summary = (f"{len(outlets)} outlets in {len(languages)} languages "
                       f"({', '.join(sorted(languages)) or 'unknown'}) in the last {hours:g}h")
            self._queue(session, wl.name, channels, "story", str(story_id),
                        AlertMessage(wl.name, "breaking", head.title, summary,
                                     [AlertStory(head.title, head.links[:2 * LINKS_PER_STORY])],
                                     now), v, now)
            made += 1
        return made

    def _queue(self, session: Session, watchlist: str, channels: list[str], kind: str,
               key: str, message: AlertMessage, v: Verdict, now: datetime) -> None:
        rendered = render_alert(message)
        spike_store.record(session, watchlist, kind, key, rendered.subject, v.count,
                           v.expected, v.score, now)
        domain = sender_domain(self.host.settings.channels.email.sender)
        for channel in channels:
            row = outbox.insert_digest(session, watchlist, channel, v.count, now)
            row.subject, row.body_text, row.body_html = (rendered.subject, rendered.text,
                                                         rendered.html)
            row.slack_payload = dumps_slack(rendered.slack)
            row.message_id = message_id(row.id, watchlist, channel, domain)
            row.status = "queued"
        log.warning("alert=%s watchlist=%s %s=%s count=%d score=%g status=queued",
                    message.kind, watchlist, kind, key, v.count, v.score)
