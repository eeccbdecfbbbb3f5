"""Watchlists -> compiled matcher -> matches with spans and snippets. Pure.

A watchlist is made of
- ``terms``: plain terms, each its own entity;
- ``entities``: a name with aliases in several scripts, each alias a term; per-alias options
  ``fuzzy`` (spelling noise in people's names), ``exact`` (no inflection, clitics or fuzziness)
  and ``capitalised`` (the occurrence must start with a capital, as "Chad" the country does and
  "chad" the haze does not);
- ``rules``: queries in the language of ``monitor.query`` (AND, OR, NOT, phrases, NEAR/n,
  groups, fields, ``@entity``);
- ``guards``: context for ambiguous terms ("Wagner" only near "mercenaries", never near "opera").

Every term matches case-insensitively, ignoring diacritics (Goïta = Goita), on Unicode word
boundaries ("Wagner" is not inside "Wagnerian"; "é" is a letter), with possessives ("Wagner's").
Scripts written without spaces have no boundaries to keep: a Chinese or Japanese term is found
inside running text ("瓦格纳" in "俄罗斯瓦格纳集团"), a Katakana one where a Katakana run starts and
ends ("マリ" in "ワグネルがマリで", not in "マリア"), and a Korean one at a word's start, whatever
particle follows ("바그너가"). See ``_SCRIPT_RANGES``.
Multi-word terms allow any run of spaces or hyphens between their words. Each word of a term
matches the way its script needs:
- Cyrillic words are declined: a final vowel, soft sign or adjective ending is dropped to a stem of
  at least four letters, and any case ending may follow ("Вагнер" finds "Вагнера", "Вагнером";
  "Лавров" finds "Лаврову"; "группа" finds "группы"; "Африканский" finds "Африканского");
- Arabic words may carry the clitics that attach in writing: و/ف (and), ب/ك/ل (with, like, for)
  and the article ال ("فاغنر" finds "وفاغنر", "لفاغنر"); folding has already unified alef forms,
  ta marbuta, alef maqsura, and removed harakat and tatweel.

How it runs: the text is folded in one vectorised pass (``text.fold_text``); one Aho-Corasick
automaton holds the first word (its stem) of every term of every watchlist, and each place it
finds is confirmed by the term's own pattern there. Fuzzy names and proximity need the words of
the text, which are only cut when a watchlist needs them.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import ahocorasick_rs
from rapidfuzz import process
from rapidfuzz.distance import OSA

from monitor import query as q
from monitor.text import Folded, fold, fold_text

POSSESSIVE = r"(?:'s|')?"
_SEPARATOR = r"[\s\-‐-―«»\"“”„]+"  # spaces, hyphens, dashes, quotes
BODY = "text"  # the body's field name in spans; "body" in watchlists and queries


@dataclass(frozen=True)
class Span:
    field: str  # "title" or "text"
    start: int
    end: int
    term: str  # the entity, plain term or rule that matched


@dataclass(frozen=True)
class WatchlistMatch:
    watchlist: str
    terms: list[str]  # entities, terms and rules that matched, in first-seen order
    spans: list[Span]
    snippet: str
    marks: list[tuple[int, int]] = field(default_factory=list)  # matches inside the snippet


# ---------------------------------------------------------------------------------------------
# What a watchlist is made of (built from the config by ``watchlists.matcher_for``)


@dataclass(frozen=True)
class Term:
    text: str
    fuzzy: bool = False
    exact: bool = False
    capitalised: bool = False


@dataclass(frozen=True)
class Entity:
    name: str
    aliases: tuple[Term, ...]
    id: str = ""
    fields: tuple[str, ...] = q.FIELDS


@dataclass(frozen=True)
class Rule:
    name: str
    query: str
    fields: tuple[str, ...] = q.FIELDS


@dataclass(frozen=True)
class Guard:
    """Context for ambiguous terms: an occurrence of one of ``terms`` counts only with one of
    ``near`` (when given) and none of ``not_near`` within ``window`` words on either side.
    Guard words match like terms; a trailing ``*`` takes any ending ("mercenar*")."""

    terms: tuple[str, ...]
    near: tuple[str, ...] = ()
    not_near: tuple[str, ...] = ()
    window: int = 12


@dataclass(frozen=True)
class Watchlist:
    name: str
    terms: tuple[str, ...] = ()
    entities: tuple[Entity, ...] = ()
    rules: tuple[Rule, ...] = ()
    guards: tuple[Guard, ...] = ()


# ---------------------------------------------------------------------------------------------
# Word boundaries across scripts. Most scripts put spaces between words, and a term starts and
# ends where a word does. Chinese, Japanese, Thai, Lao, Khmer and Myanmar do not: next to one of
# their characters there may always be a boundary. A run of Katakana is one (loan) word. Hangul
# is spaced, but particles attach at a word's end: a Korean term starts where a word does and may
# end anywhere. (Folded text has Hangul syllables as their jamo.)

_SPACED, _UNSPACED, _KATAKANA, _HANGUL = range(4)
_SCRIPT_RANGES = (  # (first, last code point, script), in order; the rest is _SPACED
    (0x0E00, 0x0EFF, _UNSPACED),  # Thai, Lao
    (0x1000, 0x109F, _UNSPACED),  # Myanmar
    (0x1100, 0x11FF, _HANGUL),  # jamo
    (0x1780, 0x17FF, _UNSPACED),  # Khmer
    (0x3005, 0x3007, _UNSPACED),  # 々 〆 〇
    (0x3021, 0x3029, _UNSPACED),  # Suzhou numerals
    (0x3038, 0x303C, _UNSPACED),  # more ideographic marks
    (0x3040, 0x309F, _UNSPACED),  # Hiragana
    (0x30A0, 0x30FF, _KATAKANA),  # with the prolonged sound mark ー
    (0x3130, 0x318F, _HANGUL),  # compatibility jamo
    (0x31F0, 0x31FF, _KATAKANA),
    (0x3400, 0x4DBF, _UNSPACED),  # Han, extension A
    (0x4E00, 0x9FFF, _UNSPACED),  # Han
    (0xA960, 0xA97F, _HANGUL),
    (0xAC00, 0xD7FF, _HANGUL),  # syllables, jamo extended B
    (0xF900, 0xFAFF, _UNSPACED),  # Han compatibility ideographs
    (0xFF66, 0xFF9F, _KATAKANA),  # half-width
    (0x20000, 0x3FFFF, _UNSPACED),  # Han, extensions B and on
)
_SCRIPT_STARTS = [lo for lo, _, _ in _SCRIPT_RANGES]


def _script(ch: str) -> int:
    if ch < "\u0e00":
        return _SPACED
    i = bisect.bisect_right(_SCRIPT_STARTS, ord(ch)) - 1
    if i >= 0 and ord(ch) <= _SCRIPT_RANGES[i][1]:
        return _SCRIPT_RANGES[i][2]
    return _SPACED


def _edge_script(ch: str, end: bool) -> int:
    """How a term whose first (``end``: last) character is ``ch`` meets the text beside it; a
    character that is no letter or digit ("#", "+") keeps the boundary of spaced scripts."""
    if not (ch.isalnum() or ch == "_"):
        return _SPACED
    script = _script(ch)
    return _UNSPACED if end and script == _HANGUL else script  # particles attach in Korean


def _continues(ch: str, script: int) -> bool:
    """Whether ``ch`` beside a term's edge of ``script`` is in the same word, so that the term
    does not start (or end) there."""
    if script == _UNSPACED or not (ch.isalnum() or ch == "_"):
        return False
    return script == _SPACED if ch < "\u0e00" else _script(ch) == script


def _ranges(script: int | None) -> str:
    """The code point ranges of ``script`` (None: every script but the spaced ones), for a
    regular expression's character class. (Used once, for ``_WORD``: a class of these ranges
    is slow to compile, which is why term edges are checked by ``_continues``, not in each
    term's pattern.)"""
    return "".join(f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi, s in _SCRIPT_RANGES
                   if script is None or s == script)


# Words, for proximity, guard windows and fuzzy names: a character of an unspaced script is one
# word ("瓦格纳" is three: nothing cuts Chinese into words without a dictionary).
_WORD = re.compile(rf"(?=\w)[{_ranges(_UNSPACED)}]|[^\W{_ranges(_UNSPACED)}]+")


# ---------------------------------------------------------------------------------------------
# Terms: patterns per script, fuzziness rules

_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_ARABIC_LETTERS = re.compile(r"[\u0600-\u06ff]")
# Case endings of nouns and adjectives, folded as the text is (й -> и), longest first.
_ENDINGS = ("ами", "ями", "ого", "его", "ому", "ему", "ыми", "ими", "ой", "ей", "ом", "ем", "ам",
            "ям", "ах", "ях", "ов", "ев", "ую", "юю", "ая", "яя", "ое", "ее", "ый", "ий", "ые",
            "ие", "ых", "их", "ью", "ым", "им", "ия", "ию", "ием", "а", "я", "у", "ю", "е", "ы",
            "и", "о", "ь")  # (-ия, -ию, -ием: nouns in -ий, "Дмитрия", "Евгению")
# What a term written in the nominative may end in, and loses to its stem: vowels, the soft sign,
# adjective endings ("группа", "Кидаль", "Африканский"); a final consonant stays ("Лавров").
_NOMINATIVE = ("ый", "ий", "ой", "ая", "яя", "ое", "ее", "ые", "ие", "а", "я", "ь", "о", "е", "ы",
               "и")
_ENDINGS_LONGEST_FIRST = sorted({fold(e)[0] for e in _ENDINGS}, key=lambda e: (-len(e), e))
_NOMINATIVE_LONGEST_FIRST = sorted({fold(e)[0] for e in _NOMINATIVE},
                                   key=lambda e: (-len(e), e))
_CYRILLIC_ENDINGS = "(?:" + "|".join(_ENDINGS_LONGEST_FIRST) + ")?"
_ARABIC_CLITICS = r"(?:[وف]?(?:[بكل]?(?:ال)?|لل))?"
_MIN_STEM = 4  # "Мали" stays "Мали": a three-letter stem would find "мало", "малые"


def _stem(word: str) -> str:
    """The part of a folded word every form of it shares (Cyrillic: without its ending;
    Arabic: without the article)."""
    if _CYRILLIC.search(word):
        for ending in _NOMINATIVE_LONGEST_FIRST:
            if word.endswith(ending) and len(word) - len(ending) >= _MIN_STEM:
                return word[: -len(ending)]
        return word
    if _ARABIC_LETTERS.search(word) and word.startswith("ال") and len(word) > 4:
        return word[2:]
    return word


def _word_pattern(word: str, exact: bool = False) -> str:
    if exact:
        return re.escape(word)
    if _CYRILLIC.search(word):
        return re.escape(_stem(word)) + _CYRILLIC_ENDINGS
    if _ARABIC_LETTERS.search(word):
        return _ARABIC_CLITICS + re.escape(_stem(word))
    return re.escape(word)


def term_pattern(term: str, exact: bool = False) -> str:
    """The regular expression (over folded text) of a term's words, without its boundaries."""
    return _SEPARATOR.join(_word_pattern(w, exact) for w in _term_words(term))


def _term_words(term: str) -> list[str]:
    return [p for p in re.split(_SEPARATOR, fold(term)[0]) if p]


def fuzzy_distance(token: str) -> int:
    """Edits allowed on one word of a fuzzy term (as configured, before folding): none for
    acronyms and all-capital tokens (so MINUSMA never meets MINUSCA), for tokens with digits, or
    under 7 characters; 1 from 7, 2 from 10 (optimal string alignment: a swap is one edit)."""
    letters = [c for c in token if c.isalpha()]
    if len(letters) < 7 or any(c.isdigit() for c in token) or all(c.isupper() for c in letters):
        return 0
    return 2 if len(letters) >= 10 else 1


@dataclass
class _Term:
    id: int
    text: str
    prefix: bool  # "mercenar*"
    exact: bool
    capitalised: bool
    key: str  # what the automaton looks for: the folded stem of the first word
    arabic_first: bool  # the first word may carry clitics before the key
    regex: re.Pattern[str]  # the term's words from where it starts (edges: ``_continues``)
    words: list[str]  # folded
    fuzzy: list[tuple[int, re.Pattern[str]]] | None  # per word: edits allowed, exact form
    left: int = _SPACED  # how its start meets the text (``_edge_script``)
    right: int = _SPACED  # how its end does

    @property
    def label(self) -> str:
        return self.text

    @property
    def plain(self) -> bool:
        return (not self.prefix and not self.arabic_first and len(self.words) == 1
                and self.regex.pattern == f"(?:{re.escape(self.key)})")


def _compile_term(tid: int, text: str, *, fuzzy: bool = False, exact: bool = False,
                  capitalised: bool = False) -> _Term:
    prefix = text.endswith("*")
    body = text.rstrip("*").strip()
    words = _term_words(body)
    if not words:
        raise ValueError(f"{text!r} has no letters or digits to match (in terms, aliases, "
                         f"rules or guards)")
    first = words[0]
    key = first if exact or prefix else _stem(first)
    left, right = _edge_script(first[0], False), _edge_script(words[-1][-1], True)
    tail = r"\w*" if prefix else ""  # its end (possessive, boundary): ``_word_end``
    pattern = term_pattern(body, exact and not prefix)
    regex = re.compile(rf"(?:{pattern}){tail}")
    fuzzy_words = None
    if fuzzy and not exact and not prefix:
        raw = [w for w in re.split(_SEPARATOR, body) if w]
        if len(raw) == len(words) and any(fuzzy_distance(w) for w in raw):
            fuzzy_words = [(fuzzy_distance(w), re.compile(
                rf"(?:{_word_pattern(f)}){POSSESSIVE}")) for w, f in zip(raw, words, strict=True)]
    return _Term(tid, text, prefix, exact, capitalised, key,
                 bool(_ARABIC_LETTERS.search(first)) and not exact, regex, words, fuzzy_words,
                 left, right)


# ---------------------------------------------------------------------------------------------
# One text being matched: its fields folded once, words cut on demand, hits found once


Hit = tuple[int, int]  # folded [start, end)


class _Field:
    def __init__(self, name: str, text: str):
        self.name = name
        self.text = text
        self.folded: Folded = fold_text(text)
        self._starts: list[int] | None = None
        self._words: list[tuple[int, int]] | None = None

    @property
    def words(self) -> list[tuple[int, int]]:
        if self._words is None:
            self._words = [m.span() for m in _WORD.finditer(self.folded.text)]
            self._starts = [s for s, _ in self._words]
        return self._words

    def word_index(self, pos: int) -> int:
        """Index of the word at or before folded position ``pos``."""
        self.words  # noqa: B018 - cuts the words
        assert self._starts is not None
        return max(bisect.bisect_right(self._starts, pos) - 1, 0)

    def original(self, hit: Hit) -> tuple[int, int]:
        start, end = self.folded.span(*hit)
        while end < len(self.text) and (unicodedata.combining(self.text[end])
                                        or self.text[end] == "\u0640"):
            end += 1  # the marks (harakat, accents) and tatweel that belong to the last letter
        return start, end


class _Text:
    def __init__(self, matcher: Matcher, title: str, body: str):
        self.matcher = matcher
        self.fields = {"title": _Field("title", title), BODY: _Field(BODY, body)}
        self._exact = {name: matcher._scan(f) for name, f in self.fields.items()}
        self._near: dict[str, tuple[dict[str, dict[str, int]], dict[str, list[int]]]] = {}
        self._fuzzy: dict[tuple[str, int], list[tuple[Hit, str]]] = {}

    def hits(self, term: _Term, field: str) -> list[Hit]:
        return self._exact[field].get(term.id, [])

    def _near_words(self, field: str) -> tuple[dict[str, dict[str, int]], dict[str, list[int]]]:
        if field not in self._near:
            self._near[field] = self.matcher._fuzzy.near(self.fields[field])
        return self._near[field]

    def near_tokens(self, field: str) -> set[str]:
        """The bendable words of fuzzy terms that have a word within reach in this field."""
        return set(self._near_words(field)[0])

    def fuzzy_hits(self, term: _Term, field: str) -> list[tuple[Hit, str]]:
        """Places where the words of a fuzzy term appear with spelling noise, in order."""
        key = (field, term.id)
        if key not in self._fuzzy:
            near, where = self._near_words(field)
            self._fuzzy[key] = _fuzzy_places(term, self.fields[field], near, where)
        return self._fuzzy[key]


class _FuzzyIndex:
    """The words of every fuzzy term that may bend, grouped by first letter (spelling noise
    leaves the first letter alone: that keeps the comparisons to a few per word)."""

    def __init__(self) -> None:
        self.allowance: dict[str, int] = {}
        self.by_letter: dict[str, list[str]] = {}

    def add(self, term: _Term) -> None:
        assert term.fuzzy is not None
        for (distance, _), word in zip(term.fuzzy, term.words, strict=True):
            if distance:
                if word not in self.allowance:
                    self.by_letter.setdefault(word[0], []).append(word)
                self.allowance[word] = max(distance, self.allowance.get(word, 0))

    def near(self, f: _Field) -> tuple[dict[str, dict[str, int]], dict[str, list[int]]]:
        """For one field: each bendable word -> the field's words within its allowance, with
        their distance; and each word of the field -> its word indices."""
        text = f.folded.text
        where: dict[str, list[int]] = {}
        for i, (s, e) in enumerate(f.words):
            where.setdefault(text[s:e], []).append(i)
        by_letter: dict[str, list[str]] = {}
        if self.allowance:
            for word in where:
                if len(word) >= 5:
                    by_letter.setdefault(word[0], []).append(word)
        near: dict[str, dict[str, int]] = {}
        for letter, tokens in self.by_letter.items():
            words = by_letter.get(letter)
            if not words:
                continue
            matrix = process.cdist(tokens, words, scorer=OSA.distance, score_cutoff=2,
                                   workers=1)
            for i, token in enumerate(tokens):
                row = matrix[i]
                for j in (row <= self.allowance[token]).nonzero()[0]:
                    near.setdefault(token, {})[words[j]] = int(row[j])
        return near, where


def _fuzzy_places(term: _Term, f: _Field, near: dict[str, dict[str, int]],
                  where: dict[str, list[int]]) -> list[tuple[Hit, str]]:
    assert term.fuzzy is not None
    words = f.words
    text = f.folded.text
    starts: set[int] = set()
    for j, ((distance, _), token) in enumerate(zip(term.fuzzy, term.words, strict=True)):
        if distance:
            for word in near.get(token, {}):
                starts.update(i - j for i in where[word] if i - j >= 0)
    found = []
    n = len(term.words)
    for start in sorted(starts):
        if start + n > len(words):
            continue
        edits = 0
        for k, ((distance, form), token) in enumerate(zip(term.fuzzy, term.words, strict=True)):
            s, e = words[start + k]
            word = text[s:e]
            got = 0 if form.fullmatch(word) else near.get(token, {}).get(word) if distance \
                else None
            if got is None:
                break
            edits += got
        else:
            if edits:  # an exact occurrence is the automaton's
                s, e = words[start][0], words[start + n - 1][1]
                found.append(((s, e), f"{text[s:e]!r} is {edits} edit"
                                      f"{'s' if edits > 1 else ''} from {term.text!r}"))
    return found


# ---------------------------------------------------------------------------------------------
# Watchlists compiled


@dataclass
class _Guard:
    near: list[_Term]
    not_near: list[_Term]
    window: int

    def verdict(self, doc: _Text, field: str, hit: Hit) -> str | None:
        """None when the occurrence may count; else why not."""
        f = doc.fields[field]
        first, last = f.word_index(hit[0]), f.word_index(hit[1] - 1)

        def near(terms: list[_Term]) -> str | None:
            for t in terms:
                for other in doc.hits(t, field):
                    if other[1] <= hit[0] or other[0] >= hit[1]:
                        i = f.word_index(other[0])
                        if first - self.window <= i <= last + self.window:
                            return f.folded.text[other[0]:other[1]]
                if field == "title":  # a headline's context runs on into the body
                    for other in doc.hits(t, BODY):
                        if doc.fields[BODY].word_index(other[0]) < self.window:
                            return doc.fields[BODY].folded.text[other[0]:other[1]]
            return None

        if self.near and near(self.near) is None:
            return f"no context word (near) within {self.window} words"
        if self.not_near and (word := near(self.not_near)) is not None:
            return f"{word!r} (not_near) within {self.window} words"
        return None


@dataclass
class _Item:
    label: str
    terms: list[_Term]
    fields: tuple[str, ...]


@dataclass
class _Rule:
    name: str
    tree: q.Node
    fields: tuple[str, ...]


@dataclass
class _Compiled:
    name: str
    items: list[_Item]
    entities: dict[str, _Item]
    rules: list[_Rule]
    guards: dict[int, _Guard]  # term id -> its guard
    by_term: dict[int, list[int]] = field(default_factory=dict)  # term id -> item indexes
    fuzzy_tokens: dict[int, set[str]] = field(default_factory=dict)  # item -> bendable words

    def __post_init__(self) -> None:
        for i, item in enumerate(self.items):
            for term in item.terms:
                self.by_term.setdefault(term.id, []).append(i)
                if term.fuzzy is not None:
                    self.fuzzy_tokens.setdefault(i, set()).update(
                        w for (d, _), w in zip(term.fuzzy, term.words, strict=True) if d)

    def candidates(self, doc: _Text) -> list[_Item]:
        """The items with something to look at in this text: an exact hit of one of their
        terms, or a word within reach of one of their bendable words."""
        found: set[int] = set()
        for field_hits in doc._exact.values():
            for tid in field_hits:
                found.update(self.by_term.get(tid, ()))
        if self.fuzzy_tokens:
            near = set().union(*(doc.near_tokens(f) for f in doc.fields))
            found.update(i for i, tokens in self.fuzzy_tokens.items() if tokens & near)
        return [self.items[i] for i in sorted(found)]


def _fields(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(BODY if n == "body" else n for n in names)


class Matcher:
    def __init__(self, watchlists: Sequence[Watchlist | tuple[str, Sequence[str]]
                                            | tuple[str, Sequence[str], Sequence[Guard]]],
                 snippet_chars: int = 240):
        self.snippet_chars = snippet_chars
        self._terms: dict[tuple[str, bool, bool, bool], _Term] = {}
        self._by_key: dict[str, list[_Term]] = {}
        self._fuzzy = _FuzzyIndex()
        self.watchlists = [self._compile(w if isinstance(w, Watchlist) else Watchlist(
            w[0], tuple(w[1]), guards=tuple(w[2]) if len(w) > 2 else ())) for w in watchlists]
        self._keys = list(self._by_key)
        self._groups = [self._by_key[k] for k in self._keys]
        # whether a group may start inside a word (Arabic clitics before the key)
        self._clitic = [any(t.arabic_first for t in g) for g in self._groups]
        # whether every term of a group is its key alone (one word, no endings, clitics, *)
        self._plain = [all(t.plain for t in g) for g in self._groups]
        # how the key's first and (for plain groups) last characters meet the text beside them
        self._left = [_edge_script(k[0], False) for k in self._keys]
        self._right = [_edge_script(k[-1], True) for k in self._keys]
        self._automaton = ahocorasick_rs.AhoCorasick(
            self._keys, implementation=ahocorasick_rs.Implementation.DFA) if self._keys else None

    # -- compiling ----------------------------------------------------------------------------

    def _term(self, text: str, fuzzy: bool = False, exact: bool = False,
              capitalised: bool = False) -> _Term:
        key = (text, fuzzy, exact, capitalised)
        term = self._terms.get(key)
        if term is None:
            term = _compile_term(len(self._terms), text, fuzzy=fuzzy, exact=exact,
                                 capitalised=capitalised)
            self._terms[key] = term
            if term.fuzzy is not None:
                self._fuzzy.add(term)
            self._by_key.setdefault(term.key, []).append(term)
        return term

    def _compile(self, wl: Watchlist) -> _Compiled:
        items = [_Item(t, [self._term(t)], _fields(q.FIELDS)) for t in wl.terms]
        entities = {}
        for e in wl.entities:
            item = _Item(e.name, [self._term(a.text, a.fuzzy, a.exact, a.capitalised)
                                  for a in e.aliases], _fields(e.fields))
            items.append(item)
            entities[e.id or e.name] = item
        guards = {}
        for g in wl.guards:
            compiled = _Guard([self._term(w) for w in g.near],
                              [self._term(w) for w in g.not_near], g.window)
            for item in items:
                # A guard names terms or aliases; an entity's name, all of its aliases (unless
                # one of them is written just like the name).
                whole = item.label in g.terms and all(t.text != item.label for t in item.terms)
                for term in item.terms:
                    if whole or term.text in g.terms:
                        guards[term.id] = compiled
        rules = []
        for r in wl.rules:
            tree = q.parse(r.query)
            for word in q.words_of(tree):
                self._term(word.text)
            for ref in q.refs_of(tree):
                if ref.entity not in entities:
                    raise ValueError(f"rule {r.name!r}: no entity with id {ref.entity!r}")
            rules.append(_Rule(r.name, tree, _fields(r.fields)))
        return _Compiled(wl.name, items, entities, rules, guards)

    # -- scanning -----------------------------------------------------------------------------

    def _scan(self, f: _Field) -> dict[int, list[Hit]]:
        """Every term of every watchlist found in one field (exact forms; guards not applied)."""
        text = f.folded.text
        found: dict[int, list[Hit]] = {}
        if not text or self._automaton is None:
            return found
        size = len(text)
        left = self._left
        for index, start, end in self._automaton.find_matches_as_indexes(text, overlapping=True):
            inside_word = start > 0 and _continues(text[start - 1], left[index])
            if inside_word and not self._clitic[index]:
                continue
            if self._plain[index]:  # one word as written: its boundary checked by hand
                stop = _word_end(text, end, size, self._right[index])
                if stop is None:
                    continue
                for term in self._groups[index]:
                    if not term.capitalised or f.text[f.folded.source(start)].isupper():
                        found.setdefault(term.id, []).append((start, stop))
                continue
            for term in self._groups[index]:
                at = start
                if inside_word:
                    if not term.arabic_first:
                        continue
                    while at > 0 and start - at < 4 and text[at - 1].isalnum():
                        at -= 1
                m = term.regex.match(text, at)
                if m is None or (at and _continues(text[at - 1], term.left)):
                    continue  # (clitics: at most four letters, from a word's start)
                stop = m.end() if term.prefix else _word_end(text, m.end(), size, term.right)
                if stop is None:
                    continue
                if term.capitalised and not f.text[f.folded.source(m.start())].isupper():
                    continue
                found.setdefault(term.id, []).append((m.start(), stop))
        return found

    # -- matching -----------------------------------------------------------------------------

    def match(self, title: str, text: str) -> list[WatchlistMatch]:
        doc = _Text(self, title, text)
        out = []
        for wl in self.watchlists:
            spans, labels = self._spans(doc, wl, None)
            if spans:
                out.append(self._result(doc, wl.name, spans, labels))
        return out

    def explain(self, title: str, text: str) -> dict[str, list[str]]:
        """Per watchlist, what matched where and what was set aside, and why: one line each."""
        doc = _Text(self, title, text)
        report = {}
        for wl in self.watchlists:
            trace: list[str] = []
            spans, labels = self._spans(doc, wl, trace)
            verdict = f"MATCH: {', '.join(labels)}" if spans else "no match"
            report[wl.name] = [verdict, *trace]
        return report

    def _occurrences(self, doc: _Text, term: _Term, fields: Sequence[str], guard: _Guard | None,
                     trace: list[str] | None, label: str,
                     seen: set[tuple[str, Hit]]) -> list[tuple[str, Hit]]:
        """Where the term counts (guards applied), but for places in ``seen``."""
        out = []
        for fname in fields:
            f = doc.fields[fname]
            places = [(h, "") for h in doc.hits(term, fname)]
            if term.fuzzy is not None:
                places += doc.fuzzy_hits(term, fname)
            for hit, how in places:
                if (fname, hit) in seen:
                    continue
                if how and term.capitalised and not f.text[f.folded.source(hit[0])].isupper():
                    continue  # (exact hits were checked by the scan)
                seen.add((fname, hit))
                where = _where(f, hit)
                why = guard.verdict(doc, fname, hit) if guard is not None else None
                if why is not None:
                    if trace is not None:
                        trace.append(f"  set aside {label!r} at {where}: {why}")
                    continue
                if trace is not None:
                    detail = f" ({how})" if how else ""
                    trace.append(f"  {label!r} at {where}{detail}")
                out.append((fname, hit))
        return out

    def _spans(self, doc: _Text, wl: _Compiled,
               trace: list[str] | None) -> tuple[list[Span], list[str]]:
        """The spans that count, longest first where they overlap, and the labels (entities,
        terms, rules) that matched, in the order the text has them."""
        hits: list[tuple[str, Hit, str]] = []
        entity_hits: dict[int, list[tuple[str, Hit]]] = {}
        for item in wl.candidates(doc):
            found: list[tuple[str, Hit]] = []
            seen: set[tuple[str, Hit]] = set()
            for term in sorted(item.terms, key=lambda t: t.fuzzy is not None):
                found += self._occurrences(doc, term, item.fields, wl.guards.get(term.id),
                                           trace, item.label, seen)
            entity_hits[id(item)] = found
            hits += [(fname, hit, item.label) for fname, hit in found]
        for rule in wl.rules:
            ok, places = self._eval(doc, wl, rule.tree, rule.fields, entity_hits)
            if trace is not None:
                trace.append(f"  rule {rule.name!r}: {'true' if ok else 'false'}"
                             + (" at " + ", ".join(_where(doc.fields[fn], h) for fn, h in places)
                                if ok else ""))
            if ok:
                hits += [(fname, hit, rule.name) for fname, hit in places]
        # Longest first; a hit inside another of the same field adds nothing.
        hits.sort(key=lambda h: (h[0] != "title", h[1][0], -(h[1][1] - h[1][0])))
        spans: list[Span] = []
        kept: list[tuple[str, Hit]] = []
        for fname, hit, label in hits:
            if any(fname == kf and kh[0] <= hit[0] and hit[1] <= kh[1] for kf, kh in kept):
                continue
            kept.append((fname, hit))
            start, end = doc.fields[fname].original(hit)
            spans.append(Span(fname, start, end, label))
        return spans, list(dict.fromkeys(label for _, _, label in hits))

    def _eval(self, doc: _Text, wl: _Compiled, node: q.Node, fields: tuple[str, ...],
              entity_hits: dict[int, list[tuple[str, Hit]]]) -> tuple[bool, list[tuple[str, Hit]]]:
        if isinstance(node, q.Word):
            scope = _fields([node.field]) if node.field else fields
            term = self._term(node.text)
            places = [(fn, h) for fn in scope for h in doc.hits(term, fn)]
            return bool(places), places
        if isinstance(node, q.Ref):
            item = wl.entities[node.entity]
            scope = _fields([node.field]) if node.field else fields
            places = [(fn, h) for fn, h in entity_hits.get(id(item), []) if fn in scope]
            return bool(places), places
        if isinstance(node, q.Not):
            ok, _ = self._eval(doc, wl, node.child, fields, entity_hits)
            return not ok, []
        if isinstance(node, q.And):
            places = []
            for child in node.children:
                ok, found = self._eval(doc, wl, child, fields, entity_hits)
                if not ok:
                    return False, []
                places += found
            return True, places
        if isinstance(node, q.Or):
            places = []
            any_ok = False
            for child in node.children:
                ok, found = self._eval(doc, wl, child, fields, entity_hits)
                any_ok |= ok
                places += found
            return any_ok, places
        ok_l, left = self._eval(doc, wl, node.left, fields, entity_hits)
        ok_r, right = self._eval(doc, wl, node.right, fields, entity_hits)
        if not (ok_l and ok_r):
            return False, []
        near: set[tuple[str, Hit]] = set()
        for fl, hl in left:
            f = doc.fields[fl]
            l0, l1 = f.word_index(hl[0]), f.word_index(hl[1] - 1)
            for fr, hr in right:
                if fr != fl or hr == hl:
                    continue
                r0, r1 = f.word_index(hr[0]), f.word_index(hr[1] - 1)
                gap = r0 - l1 if r0 > l1 else l0 - r1 if l0 > r1 else 0
                if gap <= node.distance:
                    near.add((fl, hl))
                    near.add((fr, hr))
        return bool(near), sorted(near)

    def _result(self, doc: _Text, name: str, spans: list[Span],
                terms: list[str]) -> WatchlistMatch:
        body = [s for s in spans if s.field == BODY]
        shown = body or [s for s in spans if s.field == "title"]
        source = doc.fields[shown[0].field].text
        snip, marks = snippet_marks(source, shown, self.snippet_chars)
        return WatchlistMatch(name, terms, spans, snip, marks)


def _word_end(text: str, end: int, size: int, script: int = _SPACED) -> int | None:
    r"""Where a term found at ``[..., end)`` ends, with its possessive (``'s`` or ``'``), when
    the word ends there for a term whose last character is of ``script``; None when the word
    goes on."""
    if end < size and text[end] == "'":
        if end + 1 < size and text[end + 1] == "s" and not (
                end + 2 < size and _continues(text[end + 2], script)):
            return end + 2
        if not (end + 1 < size and _continues(text[end + 1], script)):
            return end + 1
        return end
    return end if end >= size or not _continues(text[end], script) else None


def _where(f: _Field, hit: Hit) -> str:
    start, end = f.original(hit)
    return f"{'body' if f.name == BODY else 'title'} {start}-{end} {f.text[start:end]!r}"


# ---------------------------------------------------------------------------------------------
# Snippets


def snippet_marks(text: str, spans: Sequence[Span],
                  width: int) -> tuple[str, list[tuple[int, int]]]:
    """About ``width`` characters of ``text`` around the first span, cut at spaces, runs of
    white space made one, with ellipses; and where each span that fits lies in the snippet."""
    first = spans[0]
    half = max((width - (first.end - first.start)) // 2, 20)
    start = max(first.start - half, 0)
    end = min(first.end + half, len(text))
    if start > 0:
        space = text.find(" ", start, first.start)
        start = space + 1 if space != -1 else start
    if end < len(text):
        space = text.rfind(" ", first.end, end)
        end = space if space != -1 else end
    # Collapse white space, remembering where each source character went.
    out: list[str] = ["…"] if start > 0 else []
    where: dict[int, int] = {}
    length = len(out)
    pos = start
    for m in re.finditer(r"\s+|\S+", text[start:end]):
        piece = m.group()
        if piece[0].isspace():
            if length and out[-1] != " ":
                out.append(" ")
                length += 1
        else:
            for i in range(len(piece)):
                where[pos + m.start() + i] = length + i
            out.append(piece)
            length += len(piece)
        where.setdefault(pos + m.end(), length)
    snip = "".join(out).rstrip() + ("…" if end < len(text) else "")
    marks = []
    for s in spans:
        a, b = where.get(s.start), where.get(s.end - 1)
        if a is not None and b is not None and start <= s.start and s.end <= end:
            marks.append((a, b + 1))
    return snip, sorted(set(marks))


def snippet(text: str, span: Span, width: int) -> str:
    return snippet_marks(text, [span], width)[0]
