"""Bytes -> feed entries (feedparser), with entry identity, caps and clamped dates.

``parse`` is pure: bytes, the URL they came from and ``now`` in; a ``ParsedFeed`` out, or a
``FeedError`` with a one-line reason ("not a feed", "declares XML entities", ...).
"""

from __future__ import annotations

import calendar
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser
import lxml.etree
import lxml.html

from monitor.errors import FeedError
from monitor.text import clean
from monitor.urls import canonical_url, is_fetchable

MAX_ENTRIES = 1000
MAX_TITLE = 1000
MAX_SUMMARY = 50_000
MAX_URL = 2048
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)

_ENTITY_DECLS = [b"<!ENTITY", "<!ENTITY".encode("utf-16-le"), "<!ENTITY".encode("utf-16-be")]


@dataclass(frozen=True)
class Entry:
    guid: str
    link: str  # as given in the feed (http(s) or not; only http(s) is ever fetched)
    canonical: str  # canonical form of link, "" when the link is not fetchable
    title: str
    summary: str  # plain text of the entry's own content or summary
    published: datetime | None

    def key(self, feed_id: int) -> str:
        """Identity of the entry within its feed: GUID and link together, else its text."""
        if self.guid or self.canonical:
            basis = f"{feed_id}\x00{self.guid}\x00{self.canonical or self.link}"
        else:
            basis = f"{feed_id}\x00\x00{self.title}\x00{self.summary}"
        return hashlib.sha256(basis.encode()).hexdigest()


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    entries: list[Entry]


def precheck(body: bytes) -> None:
    """Refuse documents feedparser must never see: empty bodies and entity declarations."""
    if not body.strip():
        raise FeedError("not a feed: empty body")
    upper = body.upper()
    if any(decl in upper for decl in _ENTITY_DECLS):
        raise FeedError("refused: the document declares XML entities (entity-expansion risk)")


def parse(body: bytes, url: str, now: datetime, content_type: str = "") -> ParsedFeed:
    precheck(body)
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    parsed = feedparser.parse(body, response_headers=headers, resolve_relative_uris=True,
                              sanitize_html=True)
    version = parsed.get("version", "")
    entries_raw = parsed.get("entries", [])
    if not version and not entries_raw:
        reason = parsed.get("bozo_exception")
        detail = f" ({_first_line(reason)})" if reason else ""
        raise FeedError(f"not a feed: no RSS, Atom or RDF document found{detail}")
    title = clean(parsed.get("feed", {}).get("title"), MAX_TITLE, single_line=True)
    entries = [_entry(raw, now) for raw in entries_raw[:MAX_ENTRIES]]
    return ParsedFeed(title=title, entries=entries)


def _entry(raw: Any, now: datetime) -> Entry:
    link = clean(raw.get("link"), MAX_URL, single_line=True)
    guid = clean(raw.get("id"), MAX_URL, single_line=True)
    title = html_to_text(raw.get("title", ""), MAX_TITLE, single_line=True)
    body_html = ""
    for content in raw.get("content", []) or []:
        if len(content.get("value", "")) > len(body_html):
            body_html = content.get("value", "")
    if not body_html:
        body_html = raw.get("summary", "") or ""
    return Entry(
        guid=guid,
        link=link,
        canonical=canonical_url(link) if is_fetchable(link) else "",
        title=title,
        summary=html_to_text(body_html, MAX_SUMMARY),
        published=_date(raw, now),
    )


def _date(raw: Any, now: datetime) -> datetime | None:
    """The entry's date, clamped to [1990, now + 1 day]; never used to drop an entry."""
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = raw.get(key)
        if value:
            try:
                when = datetime.fromtimestamp(calendar.timegm(value), UTC)
            except (OverflowError, ValueError, OSError):
                continue
            return min(max(when, EARLIEST), now + timedelta(days=1))
    return None


_BLOCK_TAGS = re.compile(r"(?i)<\s*(br|/p|/div|/li|/h[1-6]|/tr|/blockquote)\b[^>]*>")


def html_to_text(value: str, max_len: int, *, single_line: bool = False) -> str:
    """Visible text of an HTML fragment (scripts and styles dropped), cleaned and capped."""
    if not value:
        return ""
    if "<" not in value and "&" not in value:
        return clean(value, max_len, single_line=single_line)
    marked = _BLOCK_TAGS.sub(lambda m: m.group(0) + "\n", value[: max_len * 4])
    try:
        doc = lxml.html.fragment_fromstring(marked, create_parent="div")
        for bad in doc.xpath("//script|//style|//noscript"):
            bad.drop_tree()
        text = doc.text_content()
    except (lxml.etree.ParserError, ValueError):
        text = re.sub(r"<[^>]*>", " ", marked)
    return clean(text, max_len, single_line=single_line)


def _first_line(value: object) -> str:
    return str(value).splitlines()[0][:200] if str(value) else type(value).__name__
