"""Feeds and pages for tests: one small builder instead of a hand-written rss() per test file.

An item is a mapping with any of ``title``, ``link``, ``guid``, ``text`` (the description),
``date`` (an RFC 822 date), or the shorthand tuple ``(title, link, text)``. Values go into the
XML as given (tests of hostile input rely on that); pass ``escape=True`` to escape them.
"""

from __future__ import annotations

import html
import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

Item = tuple[str, str, str] | Mapping[str, str]
WIRE_DATE = "Mon, 15 Nov 2021 10:00:00 GMT"


def rss(items: Sequence[Item], *, title: str = "Sahel Wire", extra: str = "",
        date: str | None = WIRE_DATE, guid: str = "link", escape: bool = False) -> bytes:
    """An RSS 2.0 document. ``date``: the pubDate of items that give none (None: no date);
    ``guid``: for the tuple shorthand, "link" (the link is the GUID), "title" (a non-permalink
    GUID made of the title) or "" (no GUID)."""
    def esc(value: str) -> str:
        return html.escape(value) if escape else value

    out = []
    for item in items:
        if not isinstance(item, Mapping):
            t, link, text = item
            item = {"title": t, "link": link, "text": text}
            if guid:
                item["guid"] = t if guid == "title" else link
        parts = [f"<title>{esc(item.get('title', ''))}</title>"]
        if "link" in item:
            parts.append(f"<link>{esc(item['link'])}</link>")
        if "guid" in item:
            permalink = "" if item.get("guid") == item.get("link") else ' isPermaLink="false"'
            parts.append(f"<guid{permalink}>{esc(item['guid'])}</guid>")
        parts.append(f"<description>{esc(item.get('text', ''))}</description>")
        when = item.get("date", date)
        if when:
            parts.append(f"<pubDate>{when}</pubDate>")
        out.append(f"<item>{''.join(parts)}</item>")
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{title}</title><link>http://example.org/</link><description>x"
            f"</description>{extra}{''.join(out)}</channel></rss>").encode()


def atom(items: Sequence[tuple[str, str, str]], *, title: str = "Desk Atom") -> bytes:
    out = "".join(f"<entry><title>{t}</title><link href=\"{link}\"/><id>{link}</id>"
                  f"<updated>2021-11-16T10:00:00Z</updated><summary>{d}</summary></entry>"
                  for t, link, d in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>{title}</title><id>urn:x</id><updated>2021-11-16T10:00:00Z</updated>"
            f"{out}</feed>").encode()


def page(title: str, body: str, comments: str = "") -> bytes:
    """An article page: navigation, the article (paragraphs split on blank lines), reader
    comments when given, a footer."""
    paragraphs = "".join(f"<p>{p}</p>" for p in body.split("\n\n") if p.strip())
    comment_html = (f'<section id="comments" class="comments"><h3>Comments</h3>'
                    f'<div class="comment"><p>{comments}</p></div></section>' if comments else "")
    return (f"<html><head><title>{title}</title></head><body><nav>Home | World | Africa</nav>"
            f"<article><h1>{title}</h1>{paragraphs}</article>{comment_html}"
            f"<footer>Copyright Example News</footer></body></html>").encode()


def steady(rng: random.Random, start: datetime, end: datetime, per_day: float) -> list[datetime]:
    """Mentions with a daily rhythm (busy 07-19, quiet nights) and quieter weekends."""
    times = []
    hour = start
    while hour < end:
        busy = 1.6 if 7 <= hour.hour < 19 else 0.4
        weekend = 0.5 if hour.weekday() >= 5 else 1.0
        rate = per_day / 24 * busy * weekend
        # Poisson draw for this hour
        count, p, limit = 0, 1.0, pow(2.718281828, -rate)
        while True:
            p *= rng.random()
            if p < limit:
                break
            count += 1
        times += [hour + timedelta(minutes=rng.randrange(60)) for _ in range(count)]
        hour += timedelta(hours=1)
    return times
