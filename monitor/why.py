"""Why a stored article went where it went: its delivery on each channel of a watchlist and
the story it joined, as the lines ``monitor explain --article`` prints and the web desk shows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from monitor import config
from monitor.store import articles
from monitor.store import stories as story_store
from monitor.stories.assign import Weights


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


def delivery_lines(session: Session, settings: config.Settings, article_id: int,
                   watchlist: str) -> list[str]:
    """Why a stored article was alerted on each channel of a watchlist, or why not."""
    fate = articles.fate(session, article_id, watchlist)
    lines = []
    if fate.root_id != article_id:
        what = f"seed {fate.seed_path}" if fate.seed_path else f"article {fate.root_id}"
        lines.append(f"a copy of {what} ({fate.root_title!r})"
                     + ("; a copy of a seed or of a pruned article is never alerted"
                        if fate.root_known else ""))
    if not fate.matched:
        lines.append("no match of this watchlist was stored for it (it did not match when it "
                     "arrived; monitor backfill --alert queues what matches now)")
    w = next(w for w in settings.watchlists if w.name == watchlist)
    active = settings.channels_of(w)
    for channel in w.channels:
        mine = [a for a in fate.alerts if a.channel == channel and a.article_id == article_id]
        story = [a for a in fate.alerts if a.channel == channel and a.article_id != article_id]
        if mine:
            a = mine[0]
            state = "waiting for the next digest" if a.digest_id is None else \
                f"in digest {a.digest_id}, {a.status}" + (f" {_when(a.sent_at)}" if a.sent_at
                                                         else "")
            lines.append(f"{channel}: alerted, {state}")
        elif channel not in active:
            lines.append(f"{channel}: not alerted: [channels.{channel}] is not configured")
        elif fate.root_known:
            lines.append(f"{channel}: not alerted: its story was known before (seed or pruned)")
        elif story:
            a = story[0]
            lines.append(f"{channel}: not alerted: its story went out with article "
                         f"{a.article_id}" + (f" (digest {a.digest_id})" if a.digest_id else "")
                         + "; it shows there as \"also in\"")
        elif fate.matched:
            lines.append(f"{channel}: not alerted: the channel was off when it arrived "
                         f"(monitor backfill --alert queues it)")
    return ["delivery: " + line for line in lines]


def story_lines(session: Session, article_id: int) -> list[str]:
    """Which story a stored article joined, and why: the stories it was scored against."""
    why = story_store.why(session, article_id)
    if why is None or why.story_id is None:
        return ["story: none (stored before stories existed)"]
    lines = [f"language: {why.language or 'unknown'}"]
    head = f"story {why.story_id} ({why.story_title!r})"
    threshold = Weights().threshold
    if why.copy_of is not None:
        lines.append(f"story: {head}, the story of the article it copies ({why.copy_of})")
    elif why.trace and why.trace[0][0] == why.story_id:
        lines.append(f"story: joined {head}: score {why.trace[0][1]:.2f}, at least "
                     f"{threshold:.2f} needed")
    else:
        best = f"the nearest scored {why.trace[0][1]:.2f}" if why.trace else \
            "no story was active near its time"
        lines.append(f"story: started {head}: {best}, below the {threshold:.2f} needed")
    for story_id, score, title in why.nearest:
        lines.append(f"  scored against story {story_id} ({title!r}): {score:.2f}")
    return lines
