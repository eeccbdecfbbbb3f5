"""Golden files: feed bytes -> entries, page -> extracted text, matches -> digest text, HTML and
Slack blocks. Each output is compared with the file kept beside its input in ``tests/golden/``.

A change that alters an output on purpose regenerates them with one command, and the diff is
reviewed like code:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.digest import (
    AlertMessage,
    AlertStory,
    Copy,
    DigestData,
    Item,
    Renderer,
    StoryInfo,
    dumps_slack,
    group,
    render_alert,
)
from monitor.extract import extract_text
from monitor.feeds import parse
from monitor.match import Entity, Matcher, Term, Watchlist
from tests.conftest import shared_corpus

GOLDEN = Path(__file__).resolve().parent / "golden"
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def check(expected: Path, actual: str) -> None:
    """``actual`` must equal the content of ``expected``; with UPDATE_GOLDEN=1 it becomes it."""
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected.write_text(actual, encoding="utf-8")
        return
    assert expected.exists(), f"{expected} is missing: run UPDATE_GOLDEN=1 pytest {__file__}"
    want = expected.read_text(encoding="utf-8")
    assert actual == want, f"{expected.name} differs (UPDATE_GOLDEN=1 regenerates it; review " \
                           f"the diff)"


# -- feed bytes -> entries ---------------------------------------------------------------------

FEEDS = sorted((GOLDEN / "feeds").glob("*.xml"))


def entries_of(path: Path) -> str:
    try:
        parsed = parse(path.read_bytes(), f"https://feeds.example/{path.name}", NOW)
    except Exception as e:  # an expected refusal is an output too
        return json.dumps({"error": f"{type(e).__name__}: {e}"}, indent=1) + "\n"
    return json.dumps({
        "title": parsed.title,
        "entries": [{"title": e.title, "link": e.link, "canonical": e.canonical, "guid": e.guid,
                     "published": e.published.isoformat() if e.published else None,
                     "summary": e.summary, "shared": e.shared, "key": e.key(1)[:16]}
                    for e in parsed.entries],
    }, ensure_ascii=False, indent=1) + "\n"


@pytest.mark.parametrize("path", FEEDS, ids=[p.stem for p in FEEDS])
def test_feed_entries(path: Path) -> None:
    check(path.with_suffix(".json"), entries_of(path))


# -- page -> extracted text --------------------------------------------------------------------

PAGES = sorted((GOLDEN / "pages").glob("*.html.gz"))
URLS: dict[str, str] = json.loads((GOLDEN / "pages" / "urls.json").read_text())


@pytest.mark.parametrize("path", PAGES, ids=[p.name[:12] for p in PAGES])
def test_page_text(path: Path) -> None:
    page_id = path.name.removesuffix(".html.gz")
    text = extract_text(gzip.decompress(path.read_bytes()), URLS[page_id])
    check(path.with_name(f"{page_id}.txt"), text + "\n")


_FORMS_AND_ODDITIES = b"""<!DOCTYPE html><html><head><title>t</title><?php echo 1; ?></head>
<body><form id="aspnetForm" action="/x"><div class="nav"><a href="/">Home</a></div>
<article><h1>Wagner leaves Mali</h1><!-- a comment --><p>The Wagner Group said on Tuesday that
its fighters would leave Mali&nbsp;&amp; hand over to the Africa Corps &#8212; a change the
junta in Bamako had sought for months, officials said.</p>
<label for="q">Search</label><input name="q" value="x"><select name="s"><option>a</option>
</select><textarea name="t">typed</textarea>
<p>Officials in Kidal said the handover would take weeks, and that MINUSMA's former bases
were already held by the army. &eacute;l&egrave;ves &unknown; entities stay.</p></article>
<form class="newsletter"><input type="email"><button>Subscribe</button></form>
</form></body></html>"""


def _as_shipped(pages: list[tuple[bytes, str]]) -> list[str]:
    from monitor.extract import trafilatura_as_shipped

    with trafilatura_as_shipped():
        return [extract_text(html, url) for html, url in pages]


def test_extraction_gives_the_same_text_as_trafilatura_as_shipped() -> None:
    """``monitor.extract`` makes trafilatura faster in two ways: its parser picks element
    classes in C, and ``monitor.xpaths`` stands in for its costliest XPath expressions.
    trafilatura as shipped (lxml.html's own class lookup, in Python, with classes for form
    fields; its own expressions) must give the very same text, on the golden pages and on
    forms, comments, processing instructions and entities."""
    pages = [(gzip.decompress(p.read_bytes()), URLS[p.name.removesuffix(".html.gz")])
             for p in PAGES] + [(_FORMS_AND_ODDITIES, "https://news.example/a")]
    ours = [extract_text(html, url) for html, url in pages]
    assert "Wagner Group said on Tuesday" in ours[-1]
    assert ours == _as_shipped(pages)


def test_extraction_gives_the_same_text_as_trafilatura_as_shipped_on_the_corpus() -> None:
    pages = [(gzip.decompress(p.read_bytes()), "https://news.example/a")
             for p in sorted(shared_corpus("articles", "html").glob("*.html.gz"))]
    assert len(pages) == 181
    assert [extract_text(html, url) for html, url in pages] == _as_shipped(pages)


# -- matches -> digest -------------------------------------------------------------------------


def digest_items() -> list[Item]:
    """Matches found by the real matcher on fixed texts, as the digest shows them."""
    matcher = Matcher([Watchlist("sahel", terms=("Barkhane", "MINUSMA"), entities=(
        Entity("Wagner Group", (Term("Wagner"), Term("Вагнер"), Term("فاغنر"))),))])
    texts = [
        ("Wagner fighters arrive in Bamako", "https://news.example/a/1", "Sahel Wire",
         "Russian mercenaries of the Wagner Group landed at Bamako airport on Sunday, "
         "officials said, as France ends Operation Barkhane."),
        ("«Вагнер» в Мали", "https://ru.example/a/2", "Новости",
         "Бойцы группы Вагнера прибыли в Бамако, сообщили местные власти."),
        ("<script>alert(1)</script> & MINUSMA <b>leaves</b>", "javascript:alert(1)",
         "Evil & Co <x>", "The UN mission MINUSMA left Kidal; {{ 7*7 }} <@channel> *bold*."),
    ]
    items = []
    for i, (title, link, outlet, body) in enumerate(texts, 1):
        [found] = matcher.match(title, body)
        items.append(Item(i, title, link if link.startswith("http") else "", outlet, NOW,
                          found.terms, found.snippet, marks=found.marks,
                          also_in=[Copy("Echo Daily", f"https://echo.example/{i}")]
                          if i == 1 else []))
    return items


def test_digest_text_html_and_slack() -> None:
    data = DigestData("sahel", digest_items(), NOW,
                      notices=["slack delivery failed for good (digest 3): HTTP 404"])
    rendered = Renderer().render(data)
    check(GOLDEN / "digest" / "digest.txt", f"Subject: {rendered.subject}\n\n{rendered.text}")
    check(GOLDEN / "digest" / "digest.html", rendered.html)
    check(GOLDEN / "digest" / "slack.json",
          json.dumps(json.loads(dumps_slack(rendered.slack)), ensure_ascii=False, indent=1)
          + "\n")


def test_digest_by_story() -> None:
    """Items 1 and 2 (English and Russian) are one story first reported in an earlier digest;
    item 3 is a story of its own carried by three outlets (a heading, hostile title escaped)."""
    one, two, three = digest_items()
    items = [replace(one, language="en", story_id=7), replace(two, language="ru", story_id=7),
             replace(three, language="fr", story_id=9)]
    stories = {
        7: StoryInfo("Wagner fighters arrive in Bamako", ["en", "ru"], 2,
                     first_reported=NOW - timedelta(days=1)),
        9: StoryInfo("<i>MINUSMA</i> leaves Kidal", ["ar", "fr"], 3),
    }
    data = DigestData("sahel", items, NOW, stories=group(items, stories))
    assert [b.story_id for b in data.blocks] == [9, 7]  # the most outlets first
    rendered = Renderer().render(data)
    check(GOLDEN / "digest" / "stories.txt", f"Subject: {rendered.subject}\n\n{rendered.text}")
    check(GOLDEN / "digest" / "stories.html", rendered.html)
    check(GOLDEN / "digest" / "stories-slack.json",
          json.dumps(json.loads(dumps_slack(rendered.slack)), ensure_ascii=False, indent=1)
          + "\n")


def test_spike_alert_message_and_a_digest_opening_with_what_spiked() -> None:
    message = AlertMessage(
        "sahel", "spike", "Wagner <b>Group</b>",
        "6 mentions in the last 3h from 3 outlets (usually 0.25 in 3h; score 6.5)",
        [AlertStory("Wagner fighters arrive in Bamako",
                    [("Wagner fighters arrive in Bamako", "https://news.example/a/1",
                      "Sahel Wire"), ("«Вагнер» в Мали", "javascript:alert(1)", "Новости")])],
        NOW)
    rendered = render_alert(message)
    check(GOLDEN / "alert" / "spike.txt", f"Subject: {rendered.subject}\n\n{rendered.text}")
    check(GOLDEN / "alert" / "spike.html", rendered.html + "\n")
    check(GOLDEN / "alert" / "spike-slack.json",
          json.dumps(json.loads(dumps_slack(rendered.slack)), ensure_ascii=False, indent=1)
          + "\n")
    data = DigestData("sahel", digest_items()[:1], NOW,
                      spiked=["sahel: spike: Wagner <b>Group</b>"])
    digest = Renderer().render(data)
    assert "spike" not in digest.subject
    check(GOLDEN / "digest" / "spiked.txt", digest.text)
    check(GOLDEN / "digest" / "spiked.html", digest.html)
    first = json.loads(dumps_slack(digest.slack))[0]["blocks"][0]
    assert "spike" not in json.dumps(first).lower()  # the first line names no spike
    check(GOLDEN / "digest" / "spiked-slack.json",
          json.dumps(json.loads(dumps_slack(digest.slack)), ensure_ascii=False, indent=1) + "\n")
