"""Bytes -> feed entries (feedparser), with entry identity, caps and clamped dates.

``parse`` is pure: bytes, the URL they came from and ``now`` in; a ``ParsedFeed`` out, or a
``FeedError`` with a one-line reason ("not a feed", "declares XML entities", ...).
"""

from __future__ import annotations

import calendar
import codecs
import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass, replace
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



@dataclass(frozen=True)
class Entry:
    guid: str
    link: str  # as given in the feed (http(s) or not; only http(s) is ever fetched)
    canonical: str  # canonical form of link, "" when the link is not fetchable (or shared)
    title: str
    summary: str  # plain text of the entry's own content or summary
    published: datetime | None
    shared: str = ""  # "guid" or "link": other items of its document have it too (see distinct)

    def key(self, feed_id: int) -> str:
        """Identity of the entry within its feed: GUID and link together, else its text; and
        its text too when other items of the feed share its GUID and link."""
        if self.guid or self.canonical or self.shared:
            basis = f"{feed_id}\x00{self.guid}\x00{self.canonical or self.link}"
        else:
            basis = f"{feed_id}\x00\x00{self.title}\x00{self.summary}"
        if self.shared:
            basis += f"\x00{self.title}\x00{self.summary}"
        return hashlib.sha256(basis.encode()).hexdigest()


def distinct(entries: list[Entry]) -> list[Entry]:
    """The entries of one document with identities that keep different items apart.

    Items that share a GUID and link (a GUID reused for every item, no links) but differ in
    title or text are different items: each is known by its text too. Items with different
    texts that all link to one page (a landing page) are different items too, and that page is
    not theirs: it is not fetched, and it makes none of them the same article. Repeats of one
    item (same identity, same text) stay one.
    """
    texts_of_key: dict[str, set[tuple[str, str]]] = defaultdict(set)
    texts_of_link: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for e in entries:
        texts_of_key[e.key(0)].add((e.title, e.summary))
        if e.canonical:
            texts_of_link[e.canonical].add((e.title, e.summary))
    out = []
    for e in entries:
        if e.canonical and len(texts_of_link[e.canonical]) > 1:
            e = replace(e, canonical="", shared="link")
        elif len(texts_of_key[e.key(0)]) > 1:
            e = replace(e, shared="guid")
        out.append(e)
    return out


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    entries: list[Entry]


def precheck(body: bytes) -> None:
    """Refuse documents feedparser must never see: empty bodies and entity declarations.

    feedparser copies "safe" entity declarations out of a DOCTYPE and expands them itself, so a
    small feed can expand to gigabytes; and XXE lives in the same declarations. No real feed
    needs them, so any ``<!ENTITY`` (in any case, in UTF-8/16/32: NULs are ignored for the
    search) refuses the document. EBCDIC, which feedparser would also decode, is refused.
    """
    if not body.strip():
        raise FeedError("not a feed: empty body")
    if body.startswith((b"\x4c\x6f\xa7\x94", b"\x4c\x6f\xa7\x8a")):
        raise FeedError("not a feed: EBCDIC documents are not read")
    squeezed = body.replace(b"\x00", b"").upper()
    if b"<!ENTITY" in squeezed:
        raise FeedError("refused: the document declares XML entities (entity-expansion risk)")


_ENTRY_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s>/]", re.IGNORECASE)
_ENTRY_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?(?:item|entry)\s*>", re.IGNORECASE)


def trim_entries(body: bytes, limit: int = MAX_ENTRIES) -> bytes:
    """Cut a document with more than ``limit`` entries down to its first ``limit`` (feeds list
    the newest first), keeping the closing tags after its last entry, so a 100,000-entry feed
    costs what a 1,000-entry one does. Documents in other encodings are left whole."""
    starts = _ENTRY_START.finditer(body)
    cut = next((m.start() for i, m in enumerate(starts) if i == limit), None)
    if cut is None:
        return body
    ends = list(_ENTRY_END.finditer(body, cut))
    if not ends:
        return body
    return body[:cut] + body[ends[-1].end():]


_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._-]+)", re.IGNORECASE)


def _repair_utf8(body: bytes, content_type: str) -> bytes:
    """A UTF-8 document with a few invalid bytes gets U+FFFD for them. Left alone, feedparser
    would decode the whole document as windows-1252 and garble every other non-ASCII letter."""
    if body[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff") or body[:2] in (b"\xff\xfe",
                                                                             b"\xfe\xff"):
        return body
    declared = _XML_ENCODING.match(body[:300])
    if declared and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        return body
    charset = _CHARSET.search(content_type)
    if charset and charset.group(1).lower() not in ("utf-8", "utf8"):
        return body
    try:
        body.decode("utf-8")
        return body
    except UnicodeDecodeError:
        text = body.decode("utf-8", "replace")
    if text.count("\ufffd") > max(3, len(body) // 1000):
        return body  # not UTF-8 at all: let feedparser find what it is
    return text.encode("utf-8")


_BAD_CHARREF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,10}));")


def _charref(m: re.Match[bytes]) -> bytes:
    """Character references to NUL, surrogates or beyond Unicode crash or poison feedparser:
    they become U+FFFD before it sees them."""
    code = int(m.group(1), 16) if m.group(1) else int(m.group(2))
    if code == 0 or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
        return b"&#xFFFD;"
    return m.group(0)


_TRUNCATED = ("no element found", "unclosed token", "unclosed cdata section")


def check_encoding(body: bytes, content_type: str) -> None:
    """Refuse encodings in which ``<!ENTITY`` does not read as ASCII (UTF-7, EBCDIC...):
    feedparser would decode them and the entity pre-check would not see the declarations.
    UTF-16 and UTF-32 are fine (the pre-check ignores their NULs)."""
    names = []
    declared = _XML_ENCODING.match(body[:300])
    if declared:
        names.append(declared.group(1).decode("ascii", "replace"))
    charset = _CHARSET.search(content_type)
    if charset:
        names.append(charset.group(1))
    if body.startswith((b"+/v8", b"+/v9", b"+/v+", b"+/v/")):
        names.append("utf-7")
    for name in names:
        try:
            codec = codecs.lookup(name).name
        except LookupError:
            continue  # unknown to Python: feedparser cannot decode with it either
        if codec.startswith(("utf-16", "utf-32")):
            continue
        try:
            ascii_compatible = "<!ENTITY".encode(codec) == b"<!ENTITY"
        except (UnicodeError, LookupError):
            ascii_compatible = False
        if not ascii_compatible or codec == "utf-7":
            raise FeedError(f"not a feed: the {name[:40]} character encoding is not read")


def parse(body: bytes, url: str, now: datetime, content_type: str = "") -> ParsedFeed:
    precheck(body)
    check_encoding(body, content_type)
    body = trim_entries(body)
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    body = _BAD_CHARREF.sub(_charref, _repair_utf8(body, content_type))
    try:
        parsed = feedparser.parse(body, response_headers=headers, resolve_relative_uris=True,
                                  sanitize_html=True)
    except (ValueError, LookupError, RecursionError, AssertionError, AttributeError,
            TypeError, IndexError) as e:  # feedparser's own bugs on hostile input
        raise FeedError(f"not a feed: the parser failed ({type(e).__name__}: "
                        f"{_first_line(e)})") from e
    version = parsed.get("version", "")
    entries_raw = parsed.get("entries", [])
    reason = parsed.get("bozo_exception")
    if not version and not entries_raw:
        detail = f" ({_first_line(reason)})" if reason else ""
        raise FeedError(f"not a feed: no RSS, Atom or RDF document found{detail}")
    if reason is not None and any(t in str(reason).lower() for t in _TRUNCATED):
        # Entries before the cut would parse, but the ones after it would look deleted; the
        # next poll gets the whole document.
        raise FeedError(f"not a feed: the document ends early, truncated ({_first_line(reason)})")
    title = clean(parsed.get("feed", {}).get("title"), MAX_TITLE, single_line=True)
    entries = distinct([_entry(raw, now) for raw in entries_raw[:MAX_ENTRIES]])
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
