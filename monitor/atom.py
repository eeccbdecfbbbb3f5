"""A watchlist's recent matches as an Atom feed (alerts as a feed), beside the digest's
renderers. Pure: rows in, bytes out; every stored string escaped, links only http(s)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape, quoteattr

from monitor import __version__
from monitor.digest import safe_link

if TYPE_CHECKING:
    from monitor.store.tables import Article, Match


def render_atom(watchlist: str, rows: Sequence[tuple[Article, Match]], host: str,
                stories: Mapping[int, str] | None = None) -> bytes:
    """``stories``: story id -> title; each entry then names its story (a category in the
    ``urn:monitor:story`` scheme and a first line of its content), so a reader can group."""
    stories = stories or {}
    updated = rows[0][1].created_at if rows else datetime(1970, 1, 1, tzinfo=UTC)
    base = f"http://{host}" if host else ""
    entries = []
    for article, match in rows:
        link = safe_link(article.link)
        terms = ", ".join(match.terms)
        story = stories.get(article.story_id) if article.story_id is not None else None
        about = f"Story: {story}. " if story else ""
        entries.append(
            "<entry>"
            f"<id>urn:monitor:match:{match.id}</id>"
            f"<title>{escape(article.title or '(no title)')}</title>"
            + (f"<link rel=\"alternate\" href={quoteattr(link)}/>" if link else "")
            + f"<updated>{_iso(match.created_at)}</updated>"
            + (f"<published>{_iso(article.published_at)}</published>"
               if article.published_at else "")
            + f"<author><name>{escape(article.outlet or 'unknown')}</name></author>"
            + "".join(f"<category term={quoteattr(t)}/>" for t in match.terms)
            + (f"<category scheme=\"urn:monitor:story\" term=\"{article.story_id}\" "
               f"label={quoteattr(story)}/>" if story else "")
            + f"<summary>{escape(match.snippet)}</summary>"
            + f"<content type=\"text\">{escape(f'{about}Matched: {terms}. {match.snippet}')}"
            "</content>"
            "</entry>")
    feed_url = f"{base}/feeds/{watchlist}.atom"
    return ("<?xml version=\"1.0\" encoding=\"utf-8\"?>"
            "<feed xmlns=\"http://www.w3.org/2005/Atom\">"
            f"<id>urn:monitor:watchlist:{escape(watchlist)}</id>"
            f"<title>{escape(f'monitor: {watchlist}')}</title>"
            f"<link rel=\"self\" href={quoteattr(feed_url)}/>"
            f"<updated>{_iso(updated)}</updated>"
            f"<generator version={quoteattr(__version__)}>monitor</generator>"
            + "".join(entries) + "</feed>").encode()


def _iso(value: datetime) -> str:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
