"""The desk's pages: each reads what it shows in one short session and renders a template.

Every stored string is a stranger's: the templates autoescape, links pass ``safe_link`` (http and
https only), and the responses carry a Content-Security-Policy that allows no script at all.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import cast
from urllib.parse import urlencode, urlsplit

from jinja2 import ChoiceLoader, FileSystemLoader, PackageLoader, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy.orm import Session, sessionmaker

from monitor import health, search, trending, why
from monitor.config import Settings
from monitor.digest import highlight, safe_link
from monitor.match import Entity, Matcher, Span
from monitor.query import Node, QueryError, lowercase_operators
from monitor.store import desk as desk_store
from monitor.urls import redact
from monitor.watchlists import matcher_for

HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; "
     "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-store"),
)
HTML = "text/html; charset=utf-8"
MAX_DAYS = 90
FRESH = 60.0  # seconds the trends and the language list are reused for: they move by the hour
SEARCH_LIMIT = 50
SCAN_LIMIT = 5_000  # articles a search the index cannot narrow reads, newest first
MAX_MARKS = 500  # matches highlighted on an article page


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = HTML
    headers: list[tuple[str, str]] = field(default_factory=list)


Prepared = tuple[Matcher, Node, dict[str, Entity]]
Pieces = list[tuple[str, bool]]  # text cut at the matches: (text, is_match)


def _paragraphs(pieces: Pieces) -> list[Pieces]:
    """Highlighted text cut into paragraphs at its line breaks."""
    out: list[Pieces] = [[]]
    for text, hit in pieces:
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if i:
                out.append([])
            if line:
                out[-1].append((line, hit))
    return [p for p in out if any(t.strip() for t, _ in p)]


def _marks(spans: list[Span], where: str) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in spans if s.field == where]


def _number(value: str) -> bool:
    return value.isascii() and value.isdecimal()


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _host(link: str) -> str:
    try:
        return (urlsplit(link).hostname or "").removeprefix("www.")
    except ValueError:
        return ""


class Desk:
    def __init__(self, sessions: sessionmaker[Session], settings: Callable[[], Settings],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.sessions, self.settings, self.clock = sessions, settings, clock
        self._lock = threading.Lock()
        self._config: Settings | None = None  # what the caches below were compiled from
        self._matcher: Matcher | None = None
        self._searches: OrderedDict[str, Prepared] = OrderedDict()
        self._recent: dict[str, tuple[float, object]] = {}  # figures kept for ``FRESH`` seconds
        loaders: list[FileSystemLoader | PackageLoader] = []
        current = settings()
        if current.digest.templates:  # a desk/ folder beside the digest's overrides
            loaders.append(FileSystemLoader(str(Path(current.resolve(current.digest.templates)))))
        loaders.append(PackageLoader("monitor", "templates"))
        self.env = SandboxedEnvironment(loader=ChoiceLoader(loaders),
                                        autoescape=select_autoescape(("html",)),
                                        trim_blocks=True, lstrip_blocks=True)
        self.env.filters.update(when=_when, link=safe_link, host=_host, redact=redact)
        self.env.globals.update(query=self._query_string)

    # -- routing --------------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, str]) -> Response | None:
        """The page at ``path``; None when the desk has no such page."""
        if path == "/":
            return self.stories(params)
        if path == "/search":
            return self.search(params)
        if path == "/feeds":
            return self.feeds()
        if path == "/digests":
            return self.digests()
        if path == "/trends":
            return self.trends()
        if path == "/static/desk.css":
            return Response(200, self._css(), "text/css; charset=utf-8")
        if path == "/favicon.ico":  # browsers ask; there is none
            return Response(204, b"", "image/x-icon")
        for prefix, page in (("/story/", self.story), ("/article/", self.article)):
            if path.startswith(prefix):
                number = path[len(prefix):]
                if not _number(number) or len(number) > 18:
                    return self.missing("no such page")
                return page(int(number))
        return None

    def render(self, template: str, status: int = 200, **context: object) -> Response:
        context.setdefault("nav", template.removeprefix("desk/").removesuffix(".html"))
        body = self.env.get_template(template).render(context)
        return Response(status, body.encode())

    def missing(self, what: str) -> Response:
        return self.render("desk/missing.html", 404, what=what, nav="")

    def login_page(self, target: str, failed: bool = False) -> Response:
        return self.render("desk/login.html", 403 if failed else 200, target=target,
                           failed=failed, nav="")

    @staticmethod
    def _query_string(base: Mapping[str, str], **changes: str) -> str:
        merged = {k: v for k, v in {**base, **changes}.items() if v}
        return "?" + urlencode(merged) if merged else ""

    def _css(self) -> bytes:
        source = self.env.loader.get_source(self.env, "desk/desk.css")  # type: ignore[union-attr]
        return source[0].encode()

    # -- the pages ------------------------------------------------------------------------------

    def stories(self, params: Mapping[str, str]) -> Response:
        settings = self.settings()
        days = params.get("days", "3")
        span = int(days) if _number(days) and 0 < int(days) <= MAX_DAYS else 3
        names = [w.name for w in settings.watchlists]
        watchlist = params.get("watchlist", "") if params.get("watchlist") in names else ""
        entities = sorted({e for name, found in trending.watched(settings).items()
                           if watchlist in ("", name) for e in found})
        entity = params.get("entity", "") if params.get("entity") in entities else ""
        since = self.clock() - timedelta(days=span)
        with self.sessions() as s:
            languages = cast(list[str], self._fresh(
                f"languages {span}", lambda: desk_store.languages(s, since)))
            language = params.get("language", "") \
                if params.get("language") in languages else ""
            rows = desk_store.stories(s, since, limit=60, watchlist=watchlist or None,
                                      language=language or None, entity=entity or None)
        chosen = {"watchlist": watchlist, "language": language, "entity": entity,
                  "days": str(span) if span != 3 else ""}
        return self.render("desk/stories.html", stories=rows, watchlists=names,
                           languages=languages, entities=entities, chosen=chosen, days=span)

    def story(self, story_id: int) -> Response:
        with self.sessions() as s:
            row = desk_store.story(s, story_id)
            terms = desk_store.matched_terms(s, [m.id for m in row.articles]) if row else {}
        if row is None:
            return self.missing(f"no story {story_id}")
        first = next((m.language for m in row.articles if m.language), None)
        return self.render("desk/story.html", story=row, terms=terms, first_language=first)

    def article(self, article_id: int) -> Response:
        settings = self.settings()
        with self.sessions() as s:
            view = desk_store.article(s, article_id)
            if view is None:
                return self.missing(f"no article {article_id}")
            names = [w.name for w in settings.watchlists]
            delivery = {n: why.delivery_lines(s, settings, article_id, n) for n in names}
            story_lines = why.story_lines(s, article_id)
        a = view.article
        matcher = self._matcher_of(settings)
        spans = [sp for m in matcher.match(a.title, a.text) for sp in m.spans][:MAX_MARKS]
        report = matcher.explain(a.title, a.text)
        title = highlight(a.title, [], _marks(spans, "title"))
        text = _paragraphs(highlight(a.text, [], _marks(spans, "text")))
        return self.render("desk/article.html", view=view, a=a, title=title, text=text,
                           report=report, delivery=delivery, story_lines=story_lines,
                           terms=sorted({sp.term for sp in spans}))

    def search(self, params: Mapping[str, str]) -> Response:
        text = params.get("q", "").strip()[:1000]
        days = params.get("days", "")
        since = self.clock() - timedelta(days=int(days)) \
            if _number(days) and 0 < int(days) <= 3650 else None
        if not text:
            return self.render("desk/search.html", q="", days=days, hits=[], error="",
                               notes=[])
        try:
            matcher, node, entities = self._prepared(self.settings(), text)
        except (QueryError, ValueError) as e:
            return self.render("desk/search.html", 400, q=text, days=days, hits=[],
                               error=str(e), notes=[])
        from monitor import history

        scanned = search.plan(node, entities) is None  # read in order, up to SCAN_LIMIT
        hits = [(h.article, highlight(h.match.snippet, h.match.terms, h.match.marks))
                for h in search.find(self.sessions, matcher, node, entities, since, SEARCH_LIMIT,
                                     lambda: islice(history.newest_first(self.sessions, since),
                                                    SCAN_LIMIT))]
        notes = [f"{w!r} is searched for as a word; operators are upper case ({w.upper()})"
                 for w in lowercase_operators(text)]
        if scanned:
            notes.append(f"The word index cannot narrow this query (a word of a script written "
                         f"without spaces, or only NOT): the newest {SCAN_LIMIT:,} articles were "
                         f"read; `monitor search` reads them all.")
        return self.render("desk/search.html", q=text, days=days, hits=hits, error="",
                           notes=notes, limit=SEARCH_LIMIT)

    def feeds(self) -> Response:
        now = self.clock()
        with self.sessions() as s:
            rows = desk_store.feeds(s)
        return self.render("desk/feeds.html", feeds=[(f, health.feed_state(f, now)) for f in rows])

    def digests(self) -> Response:
        with self.sessions() as s:
            rows = desk_store.digests(s)
        return self.render("desk/digests.html", digests=rows)

    def trends(self) -> Response:
        settings, now = self.settings(), self.clock()
        with self.sessions() as s:
            found = sorted(cast(list[trending.Trend], self._fresh("trends", lambda: (
                trending.current(s, settings, now, settings.spikes.rules())))),
                key=lambda t: (not t.verdict.spike, -t.verdict.score))
            alerts = desk_store.spike_alerts(s, now - timedelta(days=14))
        return self.render("desk/trends.html", trends=found, alerts=alerts,
                           window=settings.spikes.rules().window)

    # -- compiled once per config ---------------------------------------------------------------

    def _current(self, settings: Settings) -> None:
        """Forget what was compiled from an earlier config (a reload); under ``_lock``."""
        if self._config is not settings:
            self._config, self._matcher = settings, None
            self._searches.clear()
            self._recent.clear()

    def _fresh(self, key: str, compute: Callable[[], object]) -> object:
        """``compute()``, or its result of less than ``FRESH`` seconds ago."""
        now = time.monotonic()
        with self._lock:
            kept = self._recent.get(key)
        if kept is not None and now - kept[0] < FRESH:
            return kept[1]
        value = compute()
        with self._lock:
            self._recent[key] = (now, value)
        return value

    def _matcher_of(self, settings: Settings) -> Matcher:
        with self._lock:
            self._current(settings)
            if self._matcher is None:
                self._matcher = matcher_for(settings)
            return self._matcher

    def _prepared(self, settings: Settings, text: str) -> Prepared:
        with self._lock:
            self._current(settings)
            if text in self._searches:
                self._searches.move_to_end(text)
                return self._searches[text]
        found = search.prepare(settings, text)
        with self._lock:
            if self._config is settings:
                self._searches[text] = found
                while len(self._searches) > 32:
                    self._searches.popitem(last=False)
        return found
