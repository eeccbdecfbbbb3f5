"""monitor.xpaths: each stand-in selects what trafilatura's XPath selects, in the same order,
on real pages, on hostile markup and on random trees built from the expressions' own words."""

from __future__ import annotations

import gzip
import importlib
import json
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lxml.html
import pytest
import trafilatura.settings
import trafilatura.xpaths
from lxml import etree

from monitor import xpaths
from monitor.extract import extract_text, trafilatura_as_shipped
from tests.conftest import shared_corpus

GOLDEN = Path(__file__).resolve().parent / "golden" / "pages"
ALL = [xpaths._name(where) for where, _, _ in xpaths._SPECS]


def standins() -> list[xpaths.Standin]:
    found = [x for name in ("OVERALL_DISCARD_XPATH", "REMOVE_COMMENTS_AND_LISTS_XPATH",
                            "RAW_TREE_PRUNE_XPATH", "BODY_XPATH")
             for x in getattr(trafilatura.xpaths, name) if isinstance(x, xpaths.Standin)]
    basic = importlib.import_module("trafilatura.baseline").BASIC_CLEAN_XPATH  # not the function
    assert basic is trafilatura.settings.BASIC_CLEAN_XPATH
    return [*found, *([basic] if isinstance(basic, xpaths.Standin) else [])]


def test_every_stand_in_is_installed_with_the_pinned_trafilatura() -> None:
    """A trafilatura release that rewrites an expression keeps its own XPath for it: this
    says so, so that the upgrade is noticed (extraction would be slower, not wrong)."""
    assert xpaths.install() == ALL  # again: idempotent
    assert len(standins()) == len(ALL)


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Every stand-in call also runs the XPath and fails the test where the two differ."""
    calls: Counter[str] = Counter()
    own = xpaths.Standin.__call__

    def both(self: xpaths.Standin, tree: Any, **variables: Any) -> Any:
        ours, theirs = own(self, tree, **variables), self.original(tree, **variables)
        assert ours == theirs, f"{self.path.strip()[:60]}: {ours} != {theirs}"
        calls[self.path] += 1
        return theirs
    monkeypatch.setattr(xpaths.Standin, "__call__", both)
    yield calls


HOSTILE = b"""<!DOCTYPE html><html><head><title>t</title><?php echo 1; ?>
<style>p{}</style><script>var a = "<div class='nav'>";</script></head><body>
<div class="cookie" id="x"><p>class first</p></div><div id="x" class="cookie"><p>id first</p></div>
<div id="cookie-banner" class="Cookie-Banner CMPLZ">consent</div>
<svg><g/></svg><template>t</template>
<section class="comments-title" role="Navigation"><p>x</p></section>
<span data-lp-replacement-content="">y</span>
<div style="display: none" id="hidden-thing" class="reply-box" aria-hidden="true">z</div>
<div class="reply-x" id="a"><p>reply</p></div><div id="reply-y" class="b"><p>reply</p></div>
<ol class="comment-list"><li>c</li></ol><ul id="comments"><li>c</li></ul>
<ul class="commentary"><li>k</li></ul>
<div id="comments"><ol class="commentlist"><li>one</li></ol></div>
<div class="mvp-post-add-box"><h1>Next</h1><p>appended</p></div>
<div class="infinite-scroll"><h1>Kept</h1><p>main</p></div>
<aside class="infinite-scroll"><p>x</p></aside>
<div class="elementor-share-buttons elementor-widget"><a href="/s">share</a></div>
<main><div class="post"><div class="entry"><p>inner</p></div>
<div class="entry">second</div></div></main>
<article itemprop="articleBody"><section class="article-body"><p>body</p></section></article>
<div class="FOOTER"></div><div id="footer" class="a"></div><div class="a" id="footer">f</div>
<fb:like class="nav"></fb:like><!-- a comment --><p class=" ad ">ad</p><p class="x ad-y">ad</p>
<div class="&#x41;d-z dfpAd">entity</div><div class="">empty</div><div id="">empty</div>
<div class="\xc3\xa9t\xc3\xa9 menu">accents</div>
<p>The Wagner Group said on Tuesday that its fighters
would leave Mali, officials in Bamako said, in a statement read on state television.</p>
</body></html>"""


def pages_of(folder: Path, urls: dict[str, str]) -> list[tuple[bytes, str]]:
    return [(gzip.decompress(p.read_bytes()), urls.get(p.name.removesuffix(".html.gz"),
                                                     "https://news.example/a"))
            for p in sorted(folder.glob("*.html.gz"))]


def test_the_stand_ins_select_the_same_on_golden_pages_and_hostile_markup(
        compared: Counter[str]) -> None:
    urls = json.loads((GOLDEN / "urls.json").read_text())
    for html, url in [*pages_of(GOLDEN, urls), (HOSTILE, "https://news.example/a")]:
        extract_text(html, url)
    assert len(compared) >= 6  # BASIC_CLEAN runs only when the text is short or wanting
    tree = lxml.html.fromstring(HOSTILE)
    for standin in standins():  # and each on the whole hostile tree, whatever extraction does
        standin(tree)
        standin(tree.body)


def test_the_stand_ins_select_the_same_on_the_corpus(compared: Counter[str]) -> None:
    folder = shared_corpus("articles", "html")
    for html, url in pages_of(folder, {}):
        extract_text(html, url)
    assert len(compared) == len(ALL)
    assert sum(compared.values()) > 1000


# words from the expressions themselves, and near misses
WORDS = ["comment", "Comment", "commentary", "comol", "disqus_thread", "post-comments", "nav",
         "Nav", "navbar", "menu", "footer", "Footer", "FOOTER", "cookie", "Cookie-Banner",
         "cookiebot", "notice--cookie", "share", "share-x", "social", "^shar", "shar", "ad",
         " ad ", "ad-", "x-ad-y", "dfpAd", "widget", "meta", "hidden", "hide-me", "x-hide-y",
         "reply-", "reply-box", "message", "akismet", "mvp-post-add-box", "mvp-post-add-wrap",
         "infinite-scroll", "infinitescroll", "elementor-share-buttons", "post", "entry",
         "article-body", "articleBody", "article__content", "body-text", "main", "content",
         "tags", "tag-list", "yin", "slide", "premium", "related", "elated", "x", "é", ""]
TAGS = ["div", "p", "span", "section", "article", "main", "aside", "ol", "ul", "li", "list",
        "item", "details", "h1", "footer", "script", "svg", "template", "a", "fencedframe"]
ATTRS = ["id", "class", "style", "role", "aria-hidden", "itemprop", "data-component",
         "data-lp-replacement-content"]


def random_page(rng: random.Random) -> bytes:
    def value(name: str) -> str:
        if name == "style":
            return rng.choice(["display:none", "display: none", "color: red", "hidden"])
        if name == "aria-hidden":
            return rng.choice(["true", "false", "TRUE"])
        if name == "role":
            return rng.choice(["navigation", "Navigation", "main", "banner"])
        if name == "itemprop":
            return rng.choice(["articleBody", "headline"])
        if name == "data-component":
            return rng.choice(["MostPopularStories", "x"])
        return " ".join(rng.sample(WORDS, rng.randint(1, 3))) if rng.random() < 0.8 \
            else rng.choice(WORDS) + rng.choice(WORDS)

    def element(depth: int) -> str:
        tag = rng.choice(TAGS)
        names = rng.sample(ATTRS, rng.randint(0, 4))
        attributes = "".join(f' {n}="{value(n)}"' for n in names)
        children = "".join(element(depth + 1) for _ in range(rng.randint(0, 4 - depth))) \
            if depth < 4 else ""
        tail = rng.choice(["", " tail", "<!-- c -->"])
        return f"<{tag}{attributes}>text {children}</{tag}>{tail}"
    body = "".join(element(1) for _ in range(rng.randint(1, 6)))
    return f"<html><body>{body}</body></html>".encode()


def test_the_stand_ins_select_the_same_on_random_trees() -> None:
    rng = random.Random(20261204)
    chosen = Counter[str]()
    from trafilatura.utils import HTML_PARSER  # trafilatura's own parser, as extraction reads

    for n in range(400):
        tree = lxml.html.fromstring(random_page(rng), parser=HTML_PARSER if n % 2 else None)
        if n % 4 == 3:  # a subtree taken out of its document, as trafilatura's passes do
            body = tree.find("body")
            if body is not None and len(body):
                body.remove(detached := body[0])
                tree = detached
        for standin in standins():
            for context in (tree, *tree.iterdescendants("div", "main")):
                ours, theirs = standin(context), standin.original(context)
                assert ours == theirs, f"{standin.path.strip()[:50]}\n{etree.tostring(tree)!r}"
                chosen[standin.path] += len(ours)
    assert len(chosen) == len(ALL) and min(chosen.values()) >= 5  # each one chose something


def test_a_changed_expression_keeps_trafilaturas_own() -> None:
    changed = etree.XPath(".//*[self::div or self::section or self::aside]"
                          "[contains(@class, 'elementor-share')][1]")
    held = trafilatura.xpaths.RAW_TREE_PRUNE_XPATH
    standin = held[1]
    held[1] = changed
    try:
        assert "xpaths.RAW_TREE_PRUNE_XPATH[1]" not in xpaths.install()
        assert held[1] is changed
    finally:
        held[1] = standin
    assert xpaths.install() == ALL


def test_other_calls_go_to_the_xpath() -> None:
    """On a whole document (an ElementTree) or with XPath variables, the XPath answers."""
    standin = trafilatura.xpaths.RAW_TREE_PRUNE_XPATH[1]
    assert isinstance(standin, xpaths.Standin)
    tree = lxml.html.fromstring(HOSTILE)
    assert standin(tree.getroottree()) == standin.original(tree.getroottree()) != []


def test_extraction_gives_the_same_text_on_hostile_markup() -> None:
    """(tests/test_golden.py compares the text of the golden and corpus pages.)"""
    ours = extract_text(HOSTILE, "https://news.example/a")
    with trafilatura_as_shipped():
        assert not standins()
        theirs = extract_text(HOSTILE, "https://news.example/a")
    assert len(standins()) == len(ALL)
    assert "Wagner Group said on Tuesday" in ours
    assert ours == theirs
