"""Search over stored articles with the watchlist query language, answered from a word index.

The index is a first cut, the matcher the judge: ``plan`` turns a query into the index words an
article must contain for the query to be able to match (a superset: NOT and the distance of NEAR
are left to the matcher, every word is looked up by its stem as a prefix, and Arabic words are
indexed without the clitics written onto them), the store returns those articles newest first,
and the matcher decides each one exactly as ``monitor explain`` would. Where the index cannot
narrow a query (a word of a script written without spaces, a query that only excludes), the
search reads the articles in order, as it did before the index.

Entity aliases marked ``fuzzy`` also find spelling variants the index cannot know: for those, the
articles a watchlist's matcher already stored a match of the entity for are candidates too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from monitor import query as q
from monitor.config import Settings
from monitor.match import (
    Entity,
    Guard,
    Matcher,
    Rule,
    Watchlist,
    WatchlistMatch,
    _stem,
    _term_words,
)
from monitor.store import articles as article_store
from monitor.store import search as search_store
from monitor.store.tables import Article
from monitor.watchlists import watchlist_of
from monitor.words import WORD

RULE = "query"  # the rule name a search's query gets in its matcher
# scripts written with spaces between words (folded: lower case, no diacritics); a word with any
# other letter (Chinese, Thai...) may sit inside a longer token, which an index cannot find
_SPACED = re.compile(r"[0-9a-z\u00c0-\u02af\u0370-\u03ff\u0400-\u052f\u0530-\u058f"
                     r"\u0590-\u05ff\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\u10a0-\u10ff"
                     r"\u1100-\u11ff\u3130-\u318f]+")
# -- the plan: what the index can tell ------------------------------------------------------------

@dataclass(frozen=True)
class Words:
    """Every one of these stems (each a prefix of a word of the article)."""

    stems: tuple[str, ...]


@dataclass(frozen=True)
class Matched:
    """Articles a watchlist's matcher stored a match of this entity for."""

    entity: str


@dataclass(frozen=True)
class AnyOf:
    options: tuple[Plan, ...]


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Plan, ...]


Plan = Words | Matched | AnyOf | AllOf


def _term_plan(text: str) -> Plan | None:
    """A term's words as index stems; None when the index cannot narrow it."""
    stems = []
    for word in _term_words(text.rstrip("*").strip()):
        for piece in WORD.findall(word):
            if not _SPACED.fullmatch(piece):
                return None
            stem = _stem(piece)
            if len(stem) > 1:  # "s" of "Wagner's", "d" of "d'Ivoire" would match everything
                stems.append(stem)
    return Words(tuple(dict.fromkeys(stems))) if stems else None


def plan(node: q.Node, entities: dict[str, Entity]) -> Plan | None:
    """What an article must contain for ``node`` to match it; None: anything may."""
    if isinstance(node, q.Word):
        return _term_plan(node.text)
    if isinstance(node, q.Ref):
        entity = entities.get(node.entity)
        if entity is None:
            return None
        options: list[Plan] = []
        for alias in entity.aliases:
            found = _term_plan(alias.text)
            if found is None:
                return None
            options.append(found)
        if any(alias.fuzzy for alias in entity.aliases):
            options.append(Matched(entity.name))
        return AnyOf(tuple(options))
    if isinstance(node, q.Not):
        return None
    if isinstance(node, q.Near):
        return _all((plan(node.left, entities), plan(node.right, entities)))
    if isinstance(node, q.And):
        return _all(tuple(plan(c, entities) for c in node.children))
    alts = [plan(c, entities) for c in node.children]
    if any(o is None for o in alts):
        return None
    return AnyOf(tuple(o for o in alts if o is not None))


def _all(parts: tuple[Plan | None, ...]) -> Plan | None:
    known = tuple(p for p in parts if p is not None)
    return AllOf(known) if known else None


def candidates(session: Session, p: Plan, since: datetime | None) -> set[int]:
    """Ids of the articles the plan lets through."""
    if isinstance(p, Words):
        return search_store.with_words(session, p.stems, since)
    if isinstance(p, Matched):
        return search_store.matched_entity(session, p.entity, since)
    if isinstance(p, AnyOf):
        out: set[int] = set()
        for option in p.options:
            out |= candidates(session, option, since)
        return out
    # AllOf: the narrowest part first, the others only over what is left
    sets: list[set[int]] = []
    for part in p.parts:
        found = candidates(session, part, since)
        sets.append(found)
        if not found:
            return set()
    return set.intersection(*sets)


# -- the search ----------------------------------------------------------------------------------

def prepare(settings: Settings, text: str) -> tuple[Matcher, q.Node, dict[str, Entity]]:
    """A search's matcher (the query as the rule ``RULE``, every watchlist's entities as @id,
    their guards), the parsed query and the entities by id; QueryError or ValueError when the
    query does not parse."""
    entities: dict[str, Entity] = {}  # the first watchlist's entity of an id wins
    guards: list[Guard] = []
    for w in map(watchlist_of, settings.watchlists):
        for e in w.entities:
            entities.setdefault(e.id or e.name, e)
        guards.extend(w.guards)
    matcher = Matcher([Watchlist("search", entities=tuple(entities.values()),
                                 rules=(Rule(RULE, text),), guards=tuple(guards))],
                      settings.digest.snippet_chars)
    return matcher, q.parse(text), entities


@dataclass
class Hit:
    article: Article
    match: WatchlistMatch


def find(sessions: sessionmaker[Session], matcher: Matcher, query: q.Node,
         entities: dict[str, Entity], since: datetime | None, limit: int,
         scan: Callable[[], Iterator[Article]]) -> Iterator[Hit]:
    """Articles the query matches, newest first, at most ``limit``; ``scan`` reads every stored
    article newest first, for a query the index cannot narrow."""
    p = plan(query, entities)
    if p is None:
        articles: Iterator[Article] = scan()
    else:
        with sessions() as s:
            ids = sorted(candidates(s, p, since), reverse=True)
            article_store.newest_id(s)  # "nothing found" only from a table that can be read
        articles = _load(sessions, ids)
    shown = 0
    for article in articles:
        found = matcher.match(article.title, article.text)
        if not found or RULE not in found[0].terms:  # an entity alone is not the query
            continue
        yield Hit(article, found[0])
        shown += 1
        if shown >= limit:
            return


def _load(sessions: sessionmaker[Session], ids: list[int], batch: int = 100
          ) -> Iterator[Article]:
    for start in range(0, len(ids), batch):
        with sessions() as s:
            yield from article_store.kept_by_ids(s, ids[start:start + batch])
