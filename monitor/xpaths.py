"""trafilatura's costliest XPath expressions, evaluated in Python with the same results.

Six of trafilatura's expressions test ``id`` and ``class`` attributes with EXSLT regular
expressions (``re:test``). lxml runs each ``re:test`` by calling back into Python, building
a list of attribute strings for the call: two to four calls for every ``div``, ``p`` or
``span`` of a page, in every pass. With a seventh (a plain ``contains`` over every ``div``),
they took 4.5 of the 10 ms trafilatura spends on a page of the corpus; read here with one
``re`` search an attribute, 1.1 ms.

Each stand-in is installed only where the expression's text is the one written here, with
its regular expressions read from trafilatura's own expression, so a later release that
rewrites an expression keeps its own XPath for it. ``tests/test_xpaths.py`` checks that every
call during extraction of the corpus and of hostile markup gives the same elements, in the
same order, as the XPath it stands in for; ``tests/test_golden.py`` that extraction gives the
same text as trafilatura as shipped.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

from lxml import etree

Select = Callable[[etree._Element], list[etree._Element]]
Search = Callable[[str], re.Match[str] | None]


def _search(pattern: str, flags: int = 0) -> Search:
    """EXSLT's ``re:test(@a, pattern)`` is Python's ``re.search`` as lxml runs it, on the
    attribute's value; on an absent attribute (the empty string to XPath) the stand-ins skip
    it, which holds only for a pattern that cannot match the empty string: for another, the
    XPath is kept (ValueError)."""
    compiled = re.compile(pattern, re.UNICODE | flags)
    if compiled.search("") is not None:
        raise ValueError(f"{pattern!r} matches the empty string")
    return compiled.search


def _first(element: etree._Element, one: str, other: str) -> str:
    """XPath's string of ``@one|@other``: the value of whichever comes first in the element's
    attributes, as written; "" when it has neither."""
    a: str | None = element.get(one)
    b: str | None = element.get(other)
    if a is None:
        return "" if b is None else b
    if b is None:
        return a
    for name in element.keys():  # noqa: SIM118 (attribute order, not a dict)
        if name == one:
            return a
        if name == other:
            return b
    return a


_ELEMENTS = etree.Element  # as a tag filter: elements only, as XPath's "*"


def _overall_discard(cookie: str, ids: str, classes: str) -> Select:
    in_cookie, in_id, in_class = _search(cookie), _search(ids), _search(classes)

    def select(tree: etree._Element) -> list[etree._Element]:
        found = []
        for e in tree.iterdescendants("div", "item", "list", "p", "section", "span"):
            get = e.get
            i, c = get("id"), get("class")
            if ((i is not None and in_id(i)) or (c is not None and in_class(c))
                    or ((i is not None or c is not None) and in_cookie(_first(e, "id", "class")))
                    or get("data-lp-replacement-content") is not None
                    or "nav" in (get("role") or "").replace("N", "n")
                    or "MostPopularStories" in (get("data-component") or "")):
                found.append(e)
        return found
    return select


def _hidden(hidden: str, ids: str, classes: str) -> Select:
    in_hidden, in_id, in_class = _search(hidden), _search(ids), _search(classes)

    def select(tree: etree._Element) -> list[etree._Element]:
        found = []
        for e in tree.iterdescendants(_ELEMENTS):
            get = e.get
            i, c, style = get("id"), get("class"), get("style")
            if ((c is not None and (c == "comments-title" or in_class(c)))
                    or (i is not None and in_id(i))
                    or ((i is not None or c is not None)
                        and _first(e, "id", "class").startswith("reply-"))
                    or (style is not None
                        and ("display:none" in style or "display: none" in style))
                    or ((i is not None or style is not None)
                        and in_hidden(_first(e, "id", "style")))
                    or get("aria-hidden") == "true"):
                found.append(e)
        return found
    return select


def _marked(tags: tuple[str, ...], kept: Callable[[etree._Element], bool]) -> Callable[..., Select]:
    """``.//*[tags][re:test(@id, A) or re:test(@class, B)][kept or re:test(@id, C) or
    re:test(@class, D)]``, ``kept`` tested only on the elements the first test took."""
    def build(ids: str, classes: str, kept_ids: str, kept_classes: str) -> Select:
        in_id, in_class = _search(ids), _search(classes)
        kept_id, kept_class = _search(kept_ids), _search(kept_classes)

        def select(tree: etree._Element) -> list[etree._Element]:
            found = []
            for e in tree.iterdescendants(*tags):
                i, c = e.get("id"), e.get("class")
                if ((i is not None and in_id(i)) or (c is not None and in_class(c))) and (
                        kept(e) or (i is not None and kept_id(i))
                        or (c is not None and kept_class(c))):
                    found.append(e)
            return found
        return select
    return build


# comment sections, and ol/ul lists only when they are comments by the narrower test
_comments_and_lists = _marked(("div", "list", "section", "details", "ol", "ul"),
                              lambda e: e.tag not in ("ol", "ul"))
# appended articles, unless they hold the page's h1 (the real one) and are not marked as such
_appended_articles = _marked(("div", "section", "aside"),
                             lambda e: next(e.iterdescendants("h1"), None) is None)


def _class_contains(literal: str) -> Select:
    def select(tree: etree._Element) -> list[etree._Element]:
        return [e for e in tree.iterdescendants("div", "section", "aside")
                if literal in (e.get("class") or "")]
    return select


def _article_body(ids: str, classes: str) -> Select:
    """``.//*[...][1]``: of the children of each element, the first that qualifies."""
    in_id, in_class = _search(ids), _search(classes)

    def select(tree: etree._Element) -> list[etree._Element]:
        found, parents = [], set()
        for e in tree.iterdescendants("article", "div", "main", "section"):
            i, c = e.get("id"), e.get("class")
            if ((c is not None and (c == "post" or c == "entry" or in_class(c)))
                    or (i is not None and (i == "articleContent" or in_id(i)))
                    or e.get("itemprop") == "articleBody"):
                parent = e.getparent()
                if parent not in parents:
                    parents.add(parent)
                    found.append(e)
        return found
    return select


_CLEANED_TAGS = frozenset(("aside", "fencedframe", "footer", "script", "style", "svg", "template"))


def _basic_clean(classes: str, ids: str) -> Select:
    in_class, in_id = _search(classes, re.IGNORECASE), _search(ids, re.IGNORECASE)

    def select(tree: etree._Element) -> list[etree._Element]:
        found = []
        for e in tree.iterdescendants(_ELEMENTS):
            tag = e.tag
            c, i = e.get("class"), e.get("id")
            if (tag in _CLEANED_TAGS
                    or (tag == "div" and (c is not None or i is not None)
                        and "footer" in _first(e, "class", "id"))
                    or (c is not None and in_class(c)) or (i is not None and in_id(i))):
                found.append(e)
        return found
    return select


# (where: trafilatura's module, name and index in the list, or None; the expression as
# trafilatura writes it, with '{}' for each regular expression or literal read from it, and
# whitespace outside quotes free; what stands in for it)
Where = tuple[str, str, int | None]
_SPECS: list[tuple[Where, str, Callable[..., Select]]] = [
    (("xpaths", "OVERALL_DISCARD_XPATH", 0),
     ".//*[self::div or self::item or self::list or self::p or self::section or self::span][ "
     "@data-lp-replacement-content or contains(translate(@role, 'N', 'n'), 'nav') or "
     "contains(@data-component, 'MostPopularStories') or re:test(@id|@class, '{}') or "
     "re:test(@id, '{}') or re:test(@class, '{}')]",
     _overall_discard),
    (("xpaths", "OVERALL_DISCARD_XPATH", 1),
     ".//*[@class='comments-title' or starts-with(@id|@class, 'reply-') or "
     "re:test(@id|@style, '{}') or contains(@style, 'display:none') or "
     "contains(@style, 'display: none') or re:test(@id, '{}') or re:test(@class, '{}') or "
     "@aria-hidden='true']",
     _hidden),
    (("xpaths", "REMOVE_COMMENTS_AND_LISTS_XPATH", 0),
     ".//*[self::div or self::list or self::section or self::details or self::ol or "
     "self::ul][ re:test(@id, '{}') or re:test(@class, '{}')][ not(self::ol or self::ul) or "
     "re:test(@id, '{}') or re:test(@class, '{}')]",
     _comments_and_lists),
    (("xpaths", "RAW_TREE_PRUNE_XPATH", 0),
     ".//*[self::div or self::section or self::aside][ re:test(@id, '{}') or "
     "re:test(@class, '{}')][ not(.//h1) or re:test(@id, '{}') or re:test(@class, '{}')]",
     _appended_articles),
    (("xpaths", "RAW_TREE_PRUNE_XPATH", 1),
     ".//*[self::div or self::section or self::aside][contains(@class, '{}')]",
     _class_contains),
    (("xpaths", "BODY_XPATH", 0),
     ".//*[self::article or self::div or self::main or self::section][ @class='post' or "
     "@class='entry' or @itemprop='articleBody' or @id='articleContent' or "
     "re:test(@id, '{}') or re:test(@class, '{}') ][1]",
     _article_body),
    (("settings", "BASIC_CLEAN_XPATH", None),
     ".//aside|.//div[contains(@class|@id, 'footer')]|.//fencedframe|.//footer|.//script|"
     ".//style|.//svg|.//template|.//*[re:test(@class, '{}', 'i') or re:test(@id, '{}', 'i')]",
     _basic_clean),
]
# other modules that import an expression that is not in a list (lists are changed in place)
_ALSO_BOUND = {"BASIC_CLEAN_XPATH": ("baseline",)}


def _pattern(template: str) -> re.Pattern[str]:
    """A regular expression matching ``template``'s expression, whatever its whitespace outside
    quotes, with a group for each '{}'."""
    parts = []
    for piece in re.split(r"('[^']*')", template):
        if piece == "'{}'":
            parts.append("'([^']*)'")
        elif piece.startswith("'"):
            parts.append(re.escape(piece))
        else:
            parts.append(r"\s+".join(re.escape(word) for word in piece.split(" ")))
    return re.compile(r"\s*" + "".join(parts) + r"\s*")


class Standin:
    """Called as trafilatura calls its XPath objects (on an element, no variables), gives
    what ``original`` gives; anything else goes to ``original``."""

    def __init__(self, original: etree.XPath, select: Select) -> None:
        self.original = original
        self.path = original.path
        self._select = select

    def __call__(self, tree: Any, **variables: Any) -> Any:
        if variables or not isinstance(tree, etree._Element) or not isinstance(tree.tag, str):
            return self.original(tree, **variables)
        return self._select(tree)


def _get(where: Where) -> Any:
    module, name, index = where
    held = getattr(importlib.import_module(f"trafilatura.{module}"), name, None)
    if index is None:
        return held
    return held[index] if isinstance(held, list) and index < len(held) else None


def _put(where: Where, value: Any) -> None:
    module, name, index = where
    if index is not None:
        getattr(importlib.import_module(f"trafilatura.{module}"), name)[index] = value
        return
    was = _get(where)
    for each in (module, *_ALSO_BOUND.get(name, ())):
        bound = importlib.import_module(f"trafilatura.{each}")
        if getattr(bound, name, None) is was:
            setattr(bound, name, value)


def _name(where: Where) -> str:
    module, name, index = where
    return f"{module}.{name}" + ("" if index is None else f"[{index}]")


def install() -> list[str]:
    """Put the stand-ins in trafilatura's place; returns where each went (a release whose
    expression differs keeps its own)."""
    installed = []
    for where, template, build in _SPECS:
        current = _get(where)
        original = current.original if isinstance(current, Standin) else current
        if not isinstance(original, etree.XPath):
            continue
        found = _pattern(template).fullmatch(original.path)
        if found is None:
            continue
        try:
            select = build(*found.groups())
        except (ValueError, re.error):  # a pattern matching "" (or Python's re refusing it)
            continue
        _put(where, Standin(original, select))
        installed.append(_name(where))
    return installed


def uninstall() -> None:
    """trafilatura's own expressions back (for tests and benchmarks that compare the two)."""
    for where, _, _ in _SPECS:
        current = _get(where)
        if isinstance(current, Standin):
            _put(where, current.original)
