"""The web desk: pages over a database the real pipeline filled (the labelled four-language
stories, hostile titles among them), its search against the linear scan, its token, and a real
headless Chromium that searches, follows a story to an article and never runs a stored script."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor import config, history, search, words
from monitor.cli import main
from monitor.desk.pages import Desk
from monitor.ops import Endpoint, Liveness, serve
from monitor.store import db
from tests.conftest import Route, Web, _running_web
from tests.test_digests import RELIABILITY_TITLES

DATA = Path(__file__).parent / "data" / "stories"
TOKEN = "s3cret-token-for-the-desk-0123"


def _labelled() -> list[dict[str, Any]]:
    return [a for part in ("dev_a", "heldout") for a in
            json.loads((DATA / f"{part}.json").read_text())["articles"]]


def _feed(outlet: str, items: list[tuple[str, str, str, str]]) -> bytes:
    """RSS whose titles and descriptions are escaped twice: a title reaches the store as the
    literal text written here, markup and all (as a careless or hostile outlet's would)."""
    def twice(value: str) -> str:
        return html.escape(html.escape(value, quote=False), quote=False)
    out = "".join(f"<item><title>{twice(t)}</title><link>{html.escape(link)}</link>"
                  f"<guid>{html.escape(guid)}</guid><description>{twice(d)}</description>"
                  f"<pubDate>{when}</pubDate></item>" for t, link, guid, d, when in
                  ((t, link, link or f"urn:x:{t[:40]}", d, when) for t, link, d, when in items))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{twice(outlet)}</title><link>http://example.org/</link>"
            f"<description>x</description>{out}</channel></rss>").encode()


@dataclass
class Filled:
    cfg: Path
    settings: config.Settings
    web: Web  # serves the feeds, and /trap: any request there means a stored script ran


def fill(tmp: Path, web: Web, db_url: str = "") -> Filled:
    """One `monitor once` over loopback feeds: 119 labelled articles in en/fr/ru/ar from 60+
    outlets, and a feed of hostile titles and links that try to call /trap (also used by
    scripts/desk_screenshots.py)."""
    by_outlet: dict[str, list[tuple[str, str, str, str]]] = {}
    for a in _labelled():
        when = format_datetime(datetime.fromisoformat(a["published"].replace("Z", "+00:00")))
        by_outlet.setdefault(a["outlet"], []).append(
            (a["title"], web.url(f"/a/{a['id']}"), a["text"], when))
    trap = web.url("/trap")
    web.routes["/trap"] = Route(200, b"")
    hostile = [
        f'<script>fetch("{trap}?script")</script> Wagner in Gao',
        f'<img src="{trap}?img" onerror="fetch(\'{trap}?onerror\')"> Wagner in Gao',
        f'<svg onload="fetch(\'{trap}?svg\')"></svg> Wagner in Gao',
        f'"><script src="{trap}?src"></script> Wagner in Gao',
        *RELIABILITY_TITLES,
    ]
    by_outlet["<b onmouseover=alert(1)>Evil outlet</b>"] = [
        (title, f"javascript:fetch('{trap}?href')" if i % 2 else web.url(f"/h/{i}"),
         f"{title} The Wagner group moved north of Gao on Monday, residents said. "
         f"<iframe src=\"{trap}?iframe\"></iframe>", "Mon, 06 Jul 2026 09:00:00 GMT")
        for i, title in enumerate(hostile)]
    feeds = []
    for n, (outlet, items) in enumerate(sorted(by_outlet.items())):
        web.routes[f"/f{n}.xml"] = Route(200, _feed(outlet, items), {
            "Content-Type": "application/rss+xml; charset=utf-8"})
        feeds.append(web.url(f"/f{n}.xml"))
    sahel = Path(__file__).parent.parent / "config" / "watchlists" / "sahel.toml"
    cfg = tmp / "monitor.toml"
    url = db_url or f"sqlite:///{tmp / 'm.db'}"
    cfg.write_text("\n".join([
        f'watchlist_files = ["{sahel}"]', "[storage]", f'url = "{url}"',
        "[seeds]", "paths = []", "[fetch]", "fetch_pages = false",
        f'allowed_hosts = ["127.0.0.1:{web.port}"]',
        "[channels.slack]", f'webhook_url = "{web.url("/hook")}"',
        *(f'[[feeds]]\nurl = "{url}"' for url in feeds)]) + "\n")
    web.routes["/hook"] = Route(200, b"ok")
    assert main(["--config", str(cfg), "once"]) == 0
    return Filled(cfg, config.load(str(cfg)), web)


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    with _running_web() as web:
        yield fill(tmp_path_factory.mktemp("desk"), web)


@pytest.fixture(scope="module")
def desk(filled: Filled) -> Iterator[str]:
    """The desk on a loopback port, no token; its base URL."""
    with _desk(filled, "") as base:
        yield base


@pytest.fixture(scope="module")
def locked(filled: Filled) -> Iterator[str]:
    with _desk(filled, TOKEN) as base:
        yield base


class _desk:
    def __init__(self, filled: Filled, token: str) -> None:
        self.filled, self.token = filled, token

    def __enter__(self) -> str:
        settings = self.filled.settings
        self.engine, sessions = db.open_database(settings.storage.url)
        live = Liveness(heartbeat=5, cycle_limit=60)
        live.beat()
        self.endpoint: Endpoint = serve("127.0.0.1:0", sessions, live,
                                        lambda: [w.name for w in settings.watchlists],
                                        desk=Desk(sessions, lambda: settings),
                                        token=lambda: self.token)
        return f"http://127.0.0.1:{self.endpoint.port}"

    def __exit__(self, *_: object) -> None:
        self.endpoint.close()
        self.engine.dispose()


class _Tags(HTMLParser):
    """Every tag and attribute of a page, and every href/src."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: set[str] = set()
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            self.attrs.add(name)
            if name in ("href", "src", "action"):
                self.links.append(value or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parsed(body: str) -> _Tags:
    p = _Tags()
    p.feed(body)
    return p


OUR_TAGS = {"html", "head", "meta", "title", "link", "body", "header", "nav", "a", "main", "h1",
            "h2", "h3", "small", "form", "label", "select", "option", "input", "button", "ol",
            "ul", "li", "p", "span", "table", "thead", "tbody", "tr", "th", "td", "dl", "dt",
            "dd", "details", "summary", "pre", "article", "mark", "code", "br"}
OUR_ATTRS = {"lang", "charset", "name", "content", "rel", "href", "class", "aria-current",
             "method", "action", "value", "selected", "type", "min", "max", "placeholder",
             "aria-label", "size", "title", "open", "colspan", "for", "id", "autocomplete",
             "required", "autofocus", "role", "dir"}


def _pages(base: str, client: httpx.Client) -> dict[str, str]:
    """Every page: the lists, every story's page and every article's page."""
    out = {}
    for path in ("/", "/?days=90", "/search?q=Wagner", "/search?q=%40wagner", "/feeds",
                 "/digests", "/trends"):
        out[path] = client.get(base + path).text
    for story in sorted(set(re.findall(r'href="/story/(\d+)"', out["/?days=90"]))):
        out[f"/story/{story}"] = client.get(f"{base}/story/{story}").text
    for article in sorted({n for page in list(out.values())
                           for n in re.findall(r'href="/article/(\d+)"', page)}):
        out[f"/article/{article}"] = client.get(f"{base}/article/{article}").text
    return out


# -- pages over HTTP ---------------------------------------------------------------------------

def test_every_page_answers_and_stored_strings_stay_text(filled: Filled, desk: str) -> None:
    with httpx.Client(timeout=30) as client:
        pages = _pages(desk, client)
        first = client.get(desk + "/")
    assert len([p for p in pages if p.startswith("/article/")]) >= 100
    csp = first.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script" not in csp
    assert first.headers["X-Content-Type-Options"] == "nosniff"
    for path, body in pages.items():
        tags = _parsed(body)
        assert tags.tags <= OUR_TAGS, (path, tags.tags - OUR_TAGS)
        assert tags.attrs <= OUR_ATTRS, (path, tags.attrs - OUR_ATTRS)
        for link in tags.links:
            assert link.startswith(("/", "?", "http://", "https://")), (path, link)
    # the hostile titles are there, as text a reader sees
    seen = "".join("".join(_parsed(b).text) for b in pages.values())
    assert '<script>fetch("' in seen and "onerror=" in seen and "{{ 7*7 }} Wagner" in seen
    assert "&lt;b onmouseover=alert(1)&gt;Evil outlet" in seen  # the outlet, as stored
    assert re.search(r"<td>sahel</td><td>slack</td><td>\d+</td>\s*<td>sent", pages["/digests"])


def test_stories_group_four_languages_and_filter(filled: Filled, desk: str) -> None:
    with httpx.Client(timeout=30) as client:
        front = client.get(desk + "/?days=90").text
        arabic = client.get(desk + "/?days=90&language=ar").text
        wagner = client.get(desk + "/?days=90&watchlist=sahel&entity=Wagner%20Group").text
        missing = client.get(desk + "/story/999999")
    assert re.search(r"<span class=\"langs\">[a-z, ]*ar[a-z, ]*en[a-z, ]*fr[a-z, ]*ru", front)
    assert 0 < arabic.count('class="story"') < front.count('class="story"')
    assert 0 < wagner.count('class="story"') < front.count('class="story"')
    for langs in re.findall(r'<span class="langs">([^<]*)</span>', arabic):
        assert "ar" in langs.split(", ")
    assert missing.status_code == 404


def test_a_story_page_marks_copies_and_translations_and_an_article_page_explains(
        filled: Filled, desk: str) -> None:
    with httpx.Client(timeout=30) as client:
        front = client.get(desk + "/?days=90&watchlist=sahel&entity=Wagner%20Group").text
        langs = re.findall(r'<h2 dir="auto"><a href="/story/(\d+)">.*?<span class="langs">'
                           r'([^<]*)<', front, re.S)
        biggest = max(langs, key=lambda found: len(found[1].split(", ")))[0]
        story = client.get(f"{desk}/story/{biggest}").text
        matched = next(row for row in story.split("<tr")[1:] if 'class="term"' in row)
        article_id = re.findall(r'href="/article/(\d+)"', matched)[0]
        article = client.get(f"{desk}/article/{article_id}").text
    assert "translation · " in story
    assert "<mark>" in article and "Why (explain)" in article
    assert "sahel" in article and ("MATCH" in article or "no match" in article)
    assert "story: " in article  # which story it joined, and why


# -- search ------------------------------------------------------------------------------------

QUERIES = [
    "Wagner", "@wagner", "@wagner AND Mali", "Вагнер", "Вагнера", "فاغنر", "Barkhane",
    "Kidal", "Кидаль", "كيدال", "Ménaka", "menaka", '"Africa Corps"', "drone* NEAR/5 Kidal",
    "title:Mali", "Mali AND NOT Wagner", "Bamako OR Niamey", "@mali", "@sahel", "Тинзауатен*",
    "armée", "الجيش", "junta OR junte OR хунта", "(Russia OR Russie OR Россия) AND Mali",
]


def _index_and_scan(settings: config.Settings, text: str) -> tuple[list[int], list[int]]:
    """The articles a query finds through the index, and by reading every article."""
    engine, sessions = db.open_database(settings.storage.url)
    try:
        matcher, node, entities = search.prepare(settings, text)
        assert text == "Mali AND NOT Wagner" or search.plan(node, entities) is not None
        by_index = [h.article.id for h in search.find(
            sessions, matcher, node, entities, None, 1000, lambda: iter(()))]
        by_scan = [a.id for a in history.newest_first(sessions, None)
                   if (m := matcher.match(a.title, a.text)) and search.RULE in m[0].terms]
    finally:
        engine.dispose()
    return by_index, by_scan


@pytest.mark.parametrize("text", QUERIES)
def test_the_index_finds_what_the_scan_finds(filled: Filled, text: str) -> None:
    by_index, by_scan = _index_and_scan(filled.settings, text)
    assert by_index == by_scan


@pytest.mark.postgres
def test_on_postgresql_the_index_finds_what_the_scan_finds_and_the_pages_answer(
        tmp_path: Path, web: Web, pg_url: str) -> None:
    filled = fill(tmp_path, web, pg_url)
    found = 0
    for text in QUERIES:
        by_index, by_scan = _index_and_scan(filled.settings, text)
        assert by_index == by_scan, text
        found += len(by_index)
    assert found > 100
    engine, sessions = db.open_database(pg_url)
    try:
        desk = Desk(sessions, lambda: filled.settings)
        for path, params in (("/", {"days": "90", "language": "ru"}), ("/search", {"q": "Вагнер"}),
                             ("/feeds", {}), ("/digests", {}), ("/trends", {})):
            page = desk.get(path, params)
            assert page is not None and page.status == 200, path
        assert b"<mark>" in desk.get("/search", {"q": "Вагнер"}).body  # type: ignore[union-attr]
    finally:
        engine.dispose()


def test_a_word_beside_a_script_written_without_spaces_is_indexed_as_a_word() -> None:
    filed = words.index_words("美国总统Trump表示", "ワグネルのWagnerが 집에Wagner가 والفاغنر")
    assert {"trump", "wagner", "فاغنر"} <= set(filed)
    _, node, _ = search.prepare(config.Settings(), "Trump")
    assert search.plan(node, {}) == search.Words(("trump",))
    _, node, _ = search.prepare(config.Settings(), "Wagner's d'Ivoire")
    assert search.plan(node, {}) == search.AllOf((search.Words(("wagner",)),
                                                 search.Words(("ivoire",))))


def _index_words_word_by_word(title: str, text: str) -> list[str]:
    """``words.index_words`` as first written: every word looked at alone."""
    from monitor.text import fold_text

    seen: dict[str, None] = {}
    for token in words.WORD.findall(fold_text(f"{title}\n{text}").text):
        if len(token) > words._MAX_WORD:
            continue
        runs = [token] if token.isascii() else [token, *(
            run for run in (m.group() for m in words._SCRIPT_RUN.finditer(token)) if run != token)]
        for word in runs:
            seen[word] = None
            if words._ARABIC.match(word):
                for cut in range(1, min(5, len(word) - 1)):
                    if words._CLITIC_HEAD.fullmatch(word[:cut]):
                        seen[word[cut:]] = None
    return list(seen)


@pytest.mark.parametrize("text", [
    "", "Wagner leaves Mali, Wagner's men: " + "x" * 120 + " end",
    "Группа Вагнера покинула Мали; « l’armée » malienne à Kidal — ١٢ جنديا",
    "والفاغنر وبالفاغنر فاغنر لل", "美国总统Trump表示 ワグネルのWagnerが 집에Wagner가 والفاغنر",
    "กรุงเทพฯ Bangkok ၿမန္မာ Myanmar ភ្នំពេញ 𠀋𠀌Wagner", "ÉLÈVES élèves Straße ǅ ﷺ …"])
def test_index_words_are_those_of_each_word_looked_at_alone(text: str) -> None:
    assert words.index_words("Title", text) == _index_words_word_by_word("Title", text)


def test_search_page_answers_in_four_languages_and_says_what_is_wrong(
        filled: Filled, desk: str) -> None:
    with httpx.Client(timeout=30) as client:
        found = {q: client.get(desk + "/search", params={"q": q}).text
                 for q in ("Wagner", "Вагнер", "فاغنر", "armée")}
        bad = client.get(desk + "/search", params={"q": "(Wagner"})
        lower = client.get(desk + "/search", params={"q": "Wagner and Mali"}).text
    for q, body in found.items():
        assert body.count("<li>") >= 1 and "<mark>" in body, q
    assert bad.status_code == 400 and "Query: " in bad.text
    assert "operators are upper case (AND)" in lower


# -- the token ---------------------------------------------------------------------------------

def test_a_token_guards_every_page_but_healthz(filled: Filled, locked: str) -> None:
    with httpx.Client(timeout=30) as client:
        assert client.get(locked + "/healthz").status_code in (200, 503)
        refused = client.get(locked + "/", headers={"Accept": "text/html"})
        assert refused.status_code == 303
        assert refused.headers["Location"] == "/login?next=%2F"
        assert client.get(locked + "/metrics").status_code == 401
        assert client.get(locked + "/search?q=Wagner").status_code == 401
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get(locked + "/", headers=bearer).status_code == 200
        assert client.get(locked + "/metrics", headers=bearer).status_code == 200
        wrong = client.get(locked + "/", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert client.post(locked + "/login", data={"token": "nope", "next": "/"}
                           ).status_code == 403
        login = client.post(locked + "/login", data={"token": TOKEN, "next": "//evil.example"})
        assert login.status_code == 303 and login.headers["Location"] == "/"
        for target in ("/\t/evil.example", "/\r\nSet-Cookie: a=b", "/é"):
            sneaky = client.post(locked + "/login", data={"token": TOKEN, "next": target})
            assert sneaky.headers["Location"] == "/" and "a=b" not in sneaky.headers["Set-Cookie"]
        cookie = login.headers["Set-Cookie"]
        assert TOKEN not in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        jar = cookie.split(";")[0]
        assert client.get(locked + "/feeds", headers={"Cookie": jar}).status_code == 200
        assert client.get(locked + "/feeds", headers={"Cookie": "monitor_desk=forged"}
                          ).status_code == 401


def test_without_a_token_the_desk_answers_to_loopback_names_only(desk: str) -> None:
    """A site whose name was rebound to 127.0.0.1 (DNS rebinding) sends its own Host."""
    with httpx.Client(timeout=30) as client:
        assert client.get(desk + "/", headers={"Host": "evil.example"}).status_code == 421
        assert client.get(desk + "/", headers={"Host": "localhost:9108"}).status_code == 200
        missing = client.get(desk + "/nothing-here")
    assert missing.status_code == 404
    assert "default-src 'none'" in missing.headers["Content-Security-Policy"]


def test_a_listener_off_loopback_without_a_token_refuses_to_start(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[storage]\nurl = "sqlite:///{tmp_path / "m.db"}"\n'
                   '[http]\nenabled = true\nlisten = "0.0.0.0:9108"\n')
    assert main(["--config", str(cfg), "run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "http" in err[0] and "not a loopback address" in err[0] \
        and "http.token" in err[0]
    cfg.write_text(cfg.read_text() + f'token = "{TOKEN}"\n')
    assert main(["--config", str(cfg), "check"]) == 0


# -- a real browser ----------------------------------------------------------------------------

def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but Chromium or Playwright is missing "
                        "(apt-get install chromium; pip install -e '.[test]')")
        pytest.skip("needs Debian's chromium and the playwright package")
    return path


def test_in_chromium_a_reader_searches_follows_a_story_and_no_stored_script_runs(
        filled: Filled, locked: str) -> None:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    filled.web.requests.clear()
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(locked + "/?days=90")
            assert page.url.startswith(locked + "/login")  # the token, once
            page.fill("#token", TOKEN)
            page.click("button[type=submit]")
            page.wait_for_url(locked + "/?days=90")
            assert page.locator("li.story").count() >= 10
            page.click("nav a[href='/search']")
            page.fill("input[name=q]", "Вагнер")
            page.press("input[name=q]", "Enter")
            page.wait_for_selector("ol.hits li")
            assert page.locator("ol.hits mark").count() >= 1
            page.goto(locked + "/?days=90")
            page.click("li.story h2 a >> nth=0")
            page.wait_for_selector("table.articles")
            page.click("table.articles td a[href^='/article/'] >> nth=0")
            page.wait_for_selector("article.text")
            assert "Why (explain)" in page.content()
            # every page that shows the hostile strings, hovered and waited on
            for path in ("/?days=90", "/search?q=Gao", "/feeds", "/digests", "/trends"):
                page.goto(locked + path)
                page.mouse.move(200, 200)
                page.wait_for_timeout(200)
            hostile = re.findall(r'href="/article/(\d+)"', page.goto(
                locked + "/search?q=Gao").text())  # type: ignore[union-attr]
            headings = []  # (the feed's entries are stored at once, so in no fixed id order)
            for article in hostile:
                page.goto(f"{locked}/article/{article}")
                headings.append(page.locator("h1").inner_text())
            page.wait_for_timeout(300)
            assert filled.web.hits("/trap") == 0 and not [
                r for r in filled.web.requests if r[1].startswith("/trap")], "a script ran"
            desk_errors = list(errors)
            # the control: the same markup outside the desk does call the trap
            filled.web.routes["/control"] = Route(200, (
                f'<img src="x" onerror="fetch(\'{filled.web.url("/trap")}?control\')">'
            ).encode(), {"Content-Type": "text/html"})
            page.goto(filled.web.url("/control"))
            page.wait_for_timeout(500)
            assert any(r[1].startswith("/trap") for r in filled.web.requests)
        finally:
            browser.close()
    assert any("Wagner in Gao" in seen for seen in headings), headings
    assert not [e for e in desk_errors if "Content Security Policy" not in e], desk_errors
