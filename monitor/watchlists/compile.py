"""Watchlist settings -> the matcher, the fixtures each watchlist file carries, and the
warnings about terms that match everything.

``matcher_for`` is how the daemon, ``monitor explain`` and the tests build the matcher, so what
``monitor check`` verifies is what runs.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from monitor.errors import ConfigProblem
from monitor.match import Entity, Guard, Matcher, Rule, Term, Watchlist
from monitor.query import lowercase_operators
from monitor.text import fold_text
from monitor.watchlists.schema import WatchlistSettings

if TYPE_CHECKING:  # config imports this module: the settings are only a type here
    from monitor.config import Settings

# The languages whose common words ("the", "le", "и", "في") make a term that matches nearly
# every article; lists from the stop-words package (shipped in its wheel).
STOP_WORD_LANGUAGES = {"en": "English", "fr": "French", "ru": "Russian", "ar": "Arabic"}


def watchlist_of(w: WatchlistSettings) -> Watchlist:
    return Watchlist(
        name=w.name,
        terms=tuple(w.terms),
        entities=tuple(
            Entity(e.name, tuple(Term(a.text, bool(a.fuzzy), bool(a.exact), bool(a.capitalised))
                                 for a in e.terms()), e.id, tuple(e.fields))
            for e in w.entities),
        rules=tuple(Rule(r.name, r.query, tuple(r.fields)) for r in w.rules),
        guards=tuple(Guard(tuple(g.terms), tuple(g.near), tuple(g.not_near), g.window)
                     for g in w.guards),
    )


def matcher_for(settings: Settings) -> Matcher:
    """The matcher of every configured watchlist: terms, entities, rules and guards."""
    return Matcher([watchlist_of(w) for w in settings.watchlists], settings.digest.snippet_chars)


def _where(w: WatchlistSettings) -> tuple[str, str]:
    """The file and key prefix a watchlist's problems are reported under."""
    file, _, key = w.source.partition("#")
    return file, f"{key}." if key else ""


def fixture_problems(settings: Settings) -> list[ConfigProblem]:
    """Every fixture headline that its watchlist gets wrong, one problem each."""
    problems = []
    for w in settings.watchlists:
        if not (w.fixtures.must_match or w.fixtures.must_not_match):
            continue
        file, prefix = _where(w)
        matcher = Matcher([watchlist_of(w)], settings.digest.snippet_chars)
        for i, headline in enumerate(w.fixtures.must_match):
            if not matcher.match(headline, ""):
                problems.append(ConfigProblem(file, f"{prefix}fixtures.must_match[{i}]",
                                              f"not matched: {headline!r}"))
        for i, headline in enumerate(w.fixtures.must_not_match):
            found = matcher.match(headline, "")
            if found:
                problems.append(ConfigProblem(
                    file, f"{prefix}fixtures.must_not_match[{i}]",
                    f"matched ({', '.join(found[0].terms)}): {headline!r}"))
    return problems


@functools.cache
def _stop_words() -> dict[str, frozenset[str]]:
    from stop_words import get_stop_words

    return {code: frozenset(fold_text(w).text for w in get_stop_words(code))
            for code in STOP_WORD_LANGUAGES}


def common_word_languages(term: str) -> list[str]:
    """The languages in which every word of ``term`` is a stop word (none: a fine term)."""
    words = re.findall(r"[^\W_]+(?:'[^\W_]+)?", fold_text(term.rstrip("*")).text)
    if not words:
        return []
    return [name for code, name in STOP_WORD_LANGUAGES.items()
            if all(w in _stop_words()[code] for w in words)]


def term_warnings(settings: Settings) -> list[ConfigProblem]:
    """Terms and entity aliases made only of common words: valid, but they match most
    articles. Capitalised aliases are spared ("US" the country, not "us")."""
    warnings = []
    for w in settings.watchlists:
        file, prefix = _where(w)
        labelled = [(f"terms[{i}]", t) for i, t in enumerate(w.terms)]
        labelled += [(f"entities[{i}] ({e.name})", a.text) for i, e in enumerate(w.entities)
                     for a in e.terms() if not a.capitalised]
        for key, term in labelled:
            languages = common_word_languages(term)
            if languages:
                warnings.append(ConfigProblem(
                    file, f"{prefix}{key}",
                    f"{term!r} is a common word in {' and '.join(languages)} and will match "
                    f"almost every article; use a longer phrase, a rule or a guard"))
    for w in settings.watchlists:
        file, prefix = _where(w)
        for i, rule in enumerate(w.rules):
            for word in lowercase_operators(rule.query):
                warnings.append(ConfigProblem(
                    file, f"{prefix}rules[{i}] ({rule.name})",
                    f"{word!r} is searched for as a word; operators are upper case "
                    f"({word.upper()}), or quote it (\"{word}\") to search for the word"))
    return warnings
