"""Watchlists -> compiled matcher -> matches with spans and snippets. Pure.

A plain ``terms`` list matches case-insensitively, ignoring diacritics (Goïta = Goita), on Unicode
word boundaries (so "Wagner" is not found inside "Wagnerian" and "é" counts as a letter), with
possessives ("Wagner's", "Wagner’s"). Multi-word terms allow any run of spaces or hyphens between
their words. Matching runs on folded text; spans are mapped back to the original text.

Each word of a term is matched the way its script needs:
- Cyrillic words are declined: a final vowel is dropped to a stem and any case ending may follow
  ("Вагнер" finds "Вагнера", "Вагнером"; "группа" finds "группы").
- Arabic words may carry the clitics that attach in writing: و/ف (and), ب/ك/ل (with, like, for)
  and the article ال ("فاغنر" finds "وفاغنر", "لفاغنر"); folding has already unified alef forms,
  ta marbuta, alef maqsura, and removed harakat and tatweel.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.text import fold

POSSESSIVE = r"(?:'s|')?"
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Span:
    field: str  # "title" or "text"
    start: int
    end: int
    term: str


@dataclass(frozen=True)
class WatchlistMatch:
    watchlist: str
    terms: list[str]  # configured terms that matched, in first-seen order
    spans: list[Span]
    snippet: str


_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_ARABIC_LETTERS = re.compile(r"[\u0600-\u06ff]")
# Case endings of nouns and adjectives, folded as the text is (й -> и), longest first.
_ENDINGS = ("ами", "ями", "ого", "его", "ому", "ему", "ыми", "ими", "ой", "ей", "ом", "ем", "ам",
            "ям", "ах", "ях", "ов", "ев", "ую", "юю", "ая", "яя", "ое", "ее", "ый", "ий", "ые",
            "ие", "ых", "их", "а", "я", "у", "ю", "е", "ы", "и", "о")
_ENDINGS_LONGEST_FIRST = sorted({fold(e)[0] for e in _ENDINGS}, key=lambda e: (-len(e), e))
_CYRILLIC_ENDINGS = "(?:" + "|".join(_ENDINGS_LONGEST_FIRST) + ")?"
_ARABIC_CLITICS = r"(?:[وف]?[بكل]?(?:ال)?|لل)?"


def _word_pattern(word: str) -> str:
    if _CYRILLIC.search(word):
        stem = word
        for ending in _ENDINGS_LONGEST_FIRST:
            if word.endswith(ending) and len(word) - len(ending) >= 3:
                stem = word[: -len(ending)]
                break
        if stem == word and word[-1] == "ь" and len(word) > 4:
            stem = word[:-1]
        return re.escape(stem) + _CYRILLIC_ENDINGS
    if _ARABIC_LETTERS.search(word):
        bare = word[2:] if word.startswith("ال") and len(word) > 4 else word
        return _ARABIC_CLITICS + re.escape(bare)
    return re.escape(word)


def term_pattern(term: str) -> str:
    folded, _ = fold(term)
    parts = [_word_pattern(p) for p in re.split(r"[\s\-‐-―]+", folded) if p]
    return r"[\s\-‐-―]+".join(parts)


@dataclass(frozen=True)
class Guard:
    """Context for ambiguous terms: an occurrence of one of ``terms`` counts only with one of
    ``near`` (when given) and none of ``not_near`` within ``window`` words on either side.
    Guard words match like terms; a trailing ``*`` takes any ending ("mercenar*")."""

    terms: tuple[str, ...]
    near: tuple[str, ...] = ()
    not_near: tuple[str, ...] = ()
    window: int = 12


def _words_regex(words: Sequence[str]) -> re.Pattern[str] | None:
    if not words:
        return None
    alternatives = "|".join(term_pattern(w[:-1]) + r"\w*" if w.endswith("*") else term_pattern(w)
                            for w in words if w.strip("*").strip())
    return re.compile(rf"(?<!\w)(?:{alternatives}){POSSESSIVE}(?!\w)")


@dataclass(frozen=True)
class _CompiledGuard:
    near: re.Pattern[str] | None
    not_near: re.Pattern[str] | None
    window: int

    def allows(self, folded: str, words: list[tuple[int, int]], start: int, end: int) -> bool:
        starts = [s for s, _ in words]
        first = max(bisect.bisect_right(starts, start) - 1, 0)
        last = max(bisect.bisect_left(starts, end) - 1, first)
        lo = words[max(first - self.window, 0)][0] if words else 0
        hi = words[min(last + self.window, len(words) - 1)][1] if words else len(folded)
        context = folded[lo:start] + " \x00 " + folded[end:hi]
        if self.near is not None and not self.near.search(context):
            return False
        return self.not_near is None or not self.not_near.search(context)


@dataclass(frozen=True)
class CompiledWatchlist:
    name: str
    terms: tuple[str, ...]
    pattern: re.Pattern[str]
    guards: dict[str, _CompiledGuard]

    @classmethod
    def build(cls, name: str, terms: Sequence[str],
              guards: Sequence[Guard] = ()) -> CompiledWatchlist:
        # Longest first, so "Wagner Group" wins over "Wagner" at the same place.
        ordered = sorted(set(terms), key=lambda t: (-len(t), t))
        alternatives = "|".join(f"(?P<t{i}>{term_pattern(t)})" for i, t in enumerate(ordered))
        pattern = re.compile(rf"(?<!\w)(?:{alternatives}){POSSESSIVE}(?!\w)")
        compiled = {}
        for g in guards:
            checker = _CompiledGuard(_words_regex(g.near), _words_regex(g.not_near), g.window)
            compiled.update({term: checker for term in g.terms})
        return cls(name, tuple(ordered), pattern, compiled)

    def find(self, field: str, text: str) -> list[Span]:
        if not text:
            return []
        folded, origin = fold(text)
        words = [m.span() for m in _WORD.finditer(folded)] if self.guards else []
        spans = []
        for found in self.pattern.finditer(folded):
            group = found.lastgroup
            assert group is not None
            term = self.terms[int(group[1:])]
            guard = self.guards.get(term)
            if guard is not None and not guard.allows(folded, words, found.start(),
                                                      found.end()):
                continue
            start = origin[found.start()]
            end = origin[found.end() - 1] + 1
            spans.append(Span(field, start, end, term))
        return spans


def snippet(text: str, span: Span, width: int) -> str:
    """About ``width`` characters of ``text`` around ``span``, cut at spaces, with ellipses."""
    half = max((width - (span.end - span.start)) // 2, 20)
    start = max(span.start - half, 0)
    end = min(span.end + half, len(text))
    if start > 0:
        space = text.find(" ", start, span.start)
        start = space + 1 if space != -1 else start
    if end < len(text):
        space = text.rfind(" ", span.end, end)
        end = space if space != -1 else end
    piece = " ".join(text[start:end].split())
    return ("…" if start > 0 else "") + piece + ("…" if end < len(text) else "")


class Matcher:
    def __init__(self, watchlists: Sequence[tuple[str, Sequence[str]]
                                        | tuple[str, Sequence[str], Sequence[Guard]]],
                 snippet_chars: int = 240):
        self.watchlists = [CompiledWatchlist.build(*spec) for spec in watchlists]
        self.snippet_chars = snippet_chars

    def match(self, title: str, text: str) -> list[WatchlistMatch]:
        out = []
        for wl in self.watchlists:
            spans = wl.find("title", title) + wl.find("text", text)
            if not spans:
                continue
            terms = list(dict.fromkeys(s.term for s in spans))
            body_spans = [s for s in spans if s.field == "text"]
            if body_spans:
                snip = snippet(text, body_spans[0], self.snippet_chars)
            else:
                snip = snippet(title, spans[0], self.snippet_chars)
            out.append(WatchlistMatch(wl.name, terms, spans, snip))
        return out
