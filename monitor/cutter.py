"""Digests: when a watchlist is due, its pending alerts become one digest per channel, grouped
by story and rendered; and the preview of what would be cut now. Due-ness is decided by
``decide.digest_due``; this module does the reading and writing around it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session

from monitor import decide
from monitor.config import WatchlistSettings
from monitor.digest import DigestData, Renderer, dumps_slack, group, message_id, sender_domain
from monitor.relay import Instance
from monitor.schedule import parse_quiet_hours, parse_schedule
from monitor.store import feeds as feed_store
from monitor.store import outbox
from monitor.store import spikes as spike_store
from monitor.text import clean
from monitor.urls import redact

log = logging.getLogger("monitor")

NOTICE_WINDOW = timedelta(days=7)
MAX_NOTICES = 10


@dataclass(frozen=True)
class Preview:
    watchlist: str
    channel: str
    text: str
    html: str


class Host(Instance, Protocol):
    renderer: Renderer  # replaced on reload, so always read from the instance


class DigestCutter:
    def __init__(self, host: Host) -> None:
        self.host = host

    def cut_due(self, *, force: bool = False) -> int:
        """Turn pending alerts into digests for every watchlist that is due (all with
        ``force``). Due-ness is stored, so a restart after downtime finds one digest due."""
        made = 0
        notices: list[str] | None = None
        for wl in self.host.settings.watchlists:
            now = self.host.clock()
            schedule = parse_schedule(wl.schedule, wl.timezone)
            quiet = parse_quiet_hours(wl.quiet_hours, wl.timezone) if wl.quiet_hours else None
            key = f"{wl.schedule} ({wl.timezone})"
            with self.host.sessions.begin() as session:
                state = outbox.watchlist_state(session, wl.name, lock=True)
                last = state.last_digest_at if state else None
                stored = state.next_digest_at if state else None
                due_at = decide.current_due(
                    stored_due=stored, stored_schedule=state.schedule if state else None,
                    schedule=key, last_sent=last, next_after=schedule.next_after)
                if due_at != stored:  # the schedule was edited: its due time follows
                    outbox.set_watchlist_state(session, wl.name, due_at, None, key)
                decision = decide.digest_due(
                    due_at=due_at, now=now, force=force,
                    urgent=self._urgent_pending(session, wl),
                    quiet_now=quiet is not None and quiet.active(now))
                if not decision.cut:
                    continue
                if notices is None:
                    notices = self.notices(session, now)
                spiked = [a.headline.removeprefix("[monitor] ")
                          for a in spike_store.since(session, wl.name, last)]
                count = sum(self._cut_one(session, wl.name, ch, now, notices, spiked) for ch in
                            self.host.channels.get(wl.name, []))
                made += count
                if decide.reschedule_after_cut(decision, cut=count, ever_sent=last is not None):
                    outbox.set_watchlist_state(session, wl.name, schedule.next_after(now, last),
                                               now if count else None, key)
        return made

    def _urgent_pending(self, session: Session, wl: WatchlistSettings) -> bool:
        if not (wl.urgent or wl.urgent_terms):
            return False
        return decide.urgent_pending(
            all_urgent=wl.urgent, urgent_terms=wl.urgent_terms,
            pending_terms=outbox.pending_terms(session, wl.name,
                                               self.host.channels.get(wl.name, [])))

    def notices(self, session: Session, now: datetime) -> list[str]:
        """What the operator must hear about, in every digest until it is fixed: channels whose
        last digest failed for good, feeds failing for ``poll.dead_after``, silent feeds."""
        out = []
        last_sent = outbox.last_sent(session)
        for d in outbox.failed_digests(session):
            if d.created_at >= now - NOTICE_WINDOW and \
                    last_sent.get((d.watchlist, d.channel), d.created_at) <= d.created_at:
                out.append(f"{d.channel} delivery failed for good (digest {d.id}, {d.watchlist}, "
                           f"{d.created_at:%Y-%m-%d %H:%M} UTC): {d.last_error}. Fix it, then "
                           f"run: monitor digest --resend {d.id}")
        for d in outbox.delivery_troubles(session, now - NOTICE_WINDOW):
            if d.status == "sent":
                out.append(f"{d.channel} digest {d.id} ({d.watchlist}) went out incomplete: "
                           f"{d.last_error}")
            else:
                out.append(f"{d.channel} delivery of digest {d.id} ({d.watchlist}) is being "
                           f"retried ({d.attempts} tries): {d.last_error}")
        dead_after = timedelta(seconds=self.host.settings.poll.dead_after)
        for f in feed_store.all_feeds(session):
            if not f.active:
                continue
            since = f.last_success_at or f.created_at
            if f.error_count and since <= now - dead_after:
                out.append(f"feed {f.name or f.url} has failed since {since:%Y-%m-%d %H:%M} UTC "
                           f"({f.error_count} tries): {f.last_error}")
            elif not f.error_count and f.silent_since is not None:
                out.append(f"feed {f.name or f.url} has been silent since "
                           f"{f.silent_since:%Y-%m-%d %H:%M} UTC")
        if len(out) > MAX_NOTICES:
            out = [*out[:MAX_NOTICES], f"... and {len(out) - MAX_NOTICES} more: monitor status"]
        return [clean(redact(n), 500, single_line=True) for n in out]

    def _cut_one(self, session: Session, watchlist: str, channel: str, now: datetime,
                 notices: list[str], spiked: list[str] | None = None) -> int:
        alert_ids = outbox.pending_alerts(session, watchlist, channel)
        if not alert_ids:
            return 0  # no empty digests
        items = outbox.digest_items(session, alert_ids)
        stories = group(items, outbox.story_info(session, items, watchlist, channel))
        row = outbox.insert_digest(session, watchlist, channel, len(items), now)
        rendered = self.host.renderer.render(DigestData(watchlist, items, now, notices, stories,
                                                        spiked or []))
        domain = sender_domain(self.host.settings.channels.email.sender)
        row.subject, row.body_text, row.body_html = rendered.subject, rendered.text, rendered.html
        row.slack_payload = dumps_slack(rendered.slack)
        row.message_id = message_id(row.id, watchlist, channel, domain)
        row.status = "queued"
        outbox.assign_alerts(session, alert_ids, row.id)
        log.info("digest=%d watchlist=%s channel=%s articles=%d status=queued", row.id,
                 watchlist, channel, len(items))
        return 1

    def preview(self) -> list[Preview]:
        """Everything that would be sent now, rendered; changes nothing."""
        out = []
        with self.host.sessions() as session:
            for d in outbox.unsent_digests(session):
                out.append(Preview(d.watchlist, d.channel, d.body_text, d.body_html))
            now = self.host.clock()
            for wl in self.host.settings.watchlists:
                for channel in self.host.channels.get(wl.name, []):
                    ids = outbox.pending_alerts(session, wl.name, channel)
                    if ids:
                        items = outbox.digest_items(session, ids)
                        stories = group(items, outbox.story_info(session, items, wl.name,
                                                                 channel))
                        rendered = self.host.renderer.render(DigestData(wl.name, items, now, [],
                                                                   stories))
                        out.append(Preview(wl.name, channel, rendered.text, rendered.html))
            session.rollback()
        return out
