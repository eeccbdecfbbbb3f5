"""Article page HTML -> main text (trafilatura), bounded.

Reader comments, related-story boxes, navigation and cookie banners are not the article:
``include_comments=False`` keeps them out, so a term found only there does not alert.
Measured on the 181 pages of shared/corpus/articles: token F1 0.961 against the hand-extracted
text with ``fast=True`` (0.959 without). trafilatura runs here 1.5 times as fast as shipped,
with the same text: its parser picks element classes in C, and ``monitor.xpaths`` stands in
for its costliest XPath expressions (``python bench/extract.py``; tests/test_golden.py and
tests/test_xpaths.py hold the text and the selections to trafilatura's own).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trafilatura
import trafilatura.utils
from lxml import etree
from lxml.html import HtmlComment, HtmlElement, HtmlEntity, HtmlProcessingInstruction
from trafilatura.settings import use_config

from monitor import xpaths
from monitor.text import clean

MAX_TEXT = 200_000
MAX_TREE = 200_000  # elements; larger pages are refused by trafilatura rather than walked
_CONFIG = use_config()
_CONFIG.set("DEFAULT", "MAX_TREE_SIZE", str(MAX_TREE))
_CONFIG.set("DEFAULT", "EXTRACTION_TIMEOUT", "0")  # its signal-based timeout only works in main


def _class_lookup_in_c() -> None:
    """lxml.html picks each element's Python class by calling back into Python, every time an
    element is handed to Python (form fields get classes of their own, which trafilatura does
    not use): the plain HTML classes picked in C instead make extraction 5-10 % faster, with
    the same text."""
    parser = getattr(trafilatura.utils, "HTML_PARSER", None)
    if isinstance(parser, etree.HTMLParser):
        parser.set_element_class_lookup(etree.ElementDefaultClassLookup(
            element=HtmlElement, comment=HtmlComment, pi=HtmlProcessingInstruction,
            entity=HtmlEntity))


_class_lookup_in_c()
xpaths.install()


@contextmanager
def trafilatura_as_shipped() -> Iterator[None]:
    """trafilatura with lxml.html's own class lookup and its own XPath expressions, as a
    baseline runs it (for tests and benchmarks that compare the two; not thread-safe)."""
    from lxml.html import HtmlElementClassLookup

    parser = getattr(trafilatura.utils, "HTML_PARSER", None)
    if isinstance(parser, etree.HTMLParser):
        parser.set_element_class_lookup(HtmlElementClassLookup())
    xpaths.uninstall()
    try:
        yield
    finally:
        _class_lookup_in_c()
        xpaths.install()


def extract_text(html: bytes, url: str) -> str:
    """The main text of a page, or "" when nothing usable was found ("no text" is a value)."""
    try:
        text = trafilatura.extract(
            html, url=url, include_comments=False, include_tables=True, fast=True,
            config=_CONFIG,
        )
    except (ValueError, TypeError, RecursionError):
        return ""
    return clean(text, MAX_TEXT) if text else ""


def choose_text(extracted: str, summary: str) -> tuple[str, str, str | None]:
    """(text, source, error) from a page's extracted text and the feed's own summary: the page,
    unless it gave less than the summary (capped at 200 characters) of text."""
    if extracted and len(extracted) >= min(len(summary), 200):
        return extracted, "page", None
    return summary, "summary" if summary else "none", "page: no article text found"
