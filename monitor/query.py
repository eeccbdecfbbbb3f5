"""The watchlist query language: parsed here into a small tree, evaluated by ``match``.

    Wagner NEAR/10 (Mali OR Sahel OR mercenar*) AND NOT (opera OR Bayreuth)
    title:"Africa Corps" OR @goita

- words and "quoted phrases" match like watchlist terms (case, diacritics, inflections, Arabic
  clitics, possessives); a trailing ``*`` takes any ending;
- ``@id`` stands for every alias of the watchlist's entity ``id`` (guards included);
- ``AND`` (or just a space), ``OR``, ``NOT``, ``NEAR/n`` (within n words, either order; plain
  ``NEAR`` is ``NEAR/10``), parentheses; ``title:`` or ``body:`` before a word, phrase, entity or
  group limits it to that field. Operators are upper-case; a lower-case "and" is a word.
Binding, tightest first: NOT, NEAR, AND, OR.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

DEFAULT_NEAR = 10
MAX_DEPTH = 50
FIELDS = ("title", "body")


class QueryError(ValueError):
    """A query that cannot be parsed; the message says where."""


@dataclass(frozen=True)
class Word:
    text: str  # a word or phrase, as written (a trailing * for any ending)
    field: str | None = None


@dataclass(frozen=True)
class Ref:
    entity: str
    field: str | None = None


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Near:
    left: Node
    right: Node
    distance: int


Node = Word | Ref | Not | And | Or | Near

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<open>\() | (?P<close>\)) |
      (?P<near>NEAR(?:/(?P<n>\d+))?)(?=[\s()"@]|$) |
      (?P<op>AND|OR|NOT)(?=[\s()"@]|$) |
      (?P<field>title|body):(?=\S) |
      (?P<badfield>title|body):(?=\s|$) |
      "(?P<phrase>[^"]*)" |
      @(?P<ref>[\w.-]+) |
      (?P<word>[^\s()"]+)
    )""", re.VERBOSE)


def _tokens(query: str) -> list[tuple[str, str, int]]:
    out = []
    pos = 0
    query = query.rstrip()
    while pos < len(query):
        m = _TOKEN.match(query, pos)
        if m is None or m.end() == pos:
            raise QueryError(f"unexpected {query[pos:].strip()[:20]!r} at character {pos + 1}")
        kind = m.lastgroup
        assert kind is not None
        if kind == "n":
            kind = "near"
        value = m.group("n") or "" if kind == "near" else m.group(kind)
        if kind == "phrase" and not value.strip():
            raise QueryError(f"empty phrase at character {m.start(kind)}")
        if kind == "badfield":
            raise QueryError(f"{value}: at character {m.start(kind) + 1} must touch what it "
                             f"limits ({value}:Wagner, {value}:\"...\", {value}:(...))")
        if kind == "word" and value.startswith("-"):
            raise QueryError(f"{value!r} at character {m.start(kind) + 1}: write NOT "
                             f"{value[1:] or '...'} to exclude a word")
        out.append((kind, value, m.start(kind) + 1))
        pos = m.end()
    return out


def lowercase_operators(query: str) -> list[str]:
    """Words of the query that look like operators but are lower case ("or", "and", "not",
    "near/5"): they are searched for as words, which is rarely what was meant."""
    try:
        tokens = _tokens(query)
    except QueryError:
        return []
    return [value for kind, value, _ in tokens
            if kind == "word" and re.fullmatch(r"(?:and|or|not|near(?:/\d+)?)", value.lower())
            and value != value.upper()]


class _Parser:
    def __init__(self, query: str):
        self.query = query
        self.tokens = _tokens(query)
        self.i = 0
        self.depth = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def parse(self) -> Node:
        if not self.tokens:
            raise QueryError("empty query")
        node = self.or_()
        rest = self.peek()
        if rest is not None:
            raise QueryError(f"unexpected {rest[1] or rest[0]!r} at character {rest[2]}")
        return node

    def or_(self) -> Node:
        children = [self.and_()]
        while (t := self.peek()) and t[:2] == ("op", "OR"):
            self.take()
            children.append(self.and_())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_(self) -> Node:
        children = [self.near()]
        while (t := self.peek()) and (t[:2] == ("op", "AND") or t[0] in (
                "open", "phrase", "ref", "word", "field") or t[:2] == ("op", "NOT")):
            if t[:2] == ("op", "AND"):
                self.take()
            children.append(self.near())
        return children[0] if len(children) == 1 else And(tuple(children))

    def near(self) -> Node:
        left = self.unary()
        while (t := self.peek()) and t[0] == "near":
            _, n, at = self.take()
            distance = int(n) if n else DEFAULT_NEAR
            if not 1 <= distance <= 200:
                raise QueryError(f"NEAR/{n} at character {at}: the distance must be 1 to 200")
            right = self.unary()
            if isinstance(left, Not) or isinstance(right, Not):
                raise QueryError(f"NEAR at character {at} needs words on both sides, not NOT")
            left = Near(left, right, distance)
        return left

    def unary(self, depth: int = 0) -> Node:
        if depth > MAX_DEPTH:
            raise QueryError(f"the query nests deeper than {MAX_DEPTH} levels")
        t = self.peek()
        if t is None:
            raise QueryError("the query ends where a word was expected")
        kind, value, at = self.take()
        if kind == "op" and value == "NOT":
            return Not(self.unary(depth + 1))
        if kind == "field":
            return _with_field(self.unary(depth + 1), value, at)
        if kind == "open":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise QueryError(f"the query nests deeper than {MAX_DEPTH} levels")
            node = self.or_()
            self.depth -= 1
            closing = self.peek()
            if closing is None or closing[0] != "close":
                raise QueryError(f"the parenthesis at character {at} is not closed")
            self.take()
            return node
        if kind in ("phrase", "word"):
            if value.strip("*") == "":
                raise QueryError(f"{value!r} at character {at} is not a word")
            return Word(value.strip())
        if kind == "ref":
            return Ref(value)
        raise QueryError(f"unexpected {value or kind!r} at character {at}")


def _with_field(node: Node, field: str, at: int) -> Node:
    if isinstance(node, Word):
        return Word(node.text, field)
    if isinstance(node, Ref):
        return Ref(node.entity, field)
    if isinstance(node, Not):
        return Not(_with_field(node.child, field, at))
    if isinstance(node, And):
        return And(tuple(_with_field(c, field, at) for c in node.children))
    if isinstance(node, Or):
        return Or(tuple(_with_field(c, field, at) for c in node.children))
    return Near(_with_field(node.left, field, at), _with_field(node.right, field, at),
                node.distance)


def parse(query: str) -> Node:
    """The tree of ``query``; raise QueryError saying what is wrong and where."""
    node = _Parser(query).parse()
    if not _positive(node):
        raise QueryError("the query only excludes (NOT ...): it must also require something")
    return node


def _positive(node: Node) -> bool:
    """Whether the node can only be true when something was found."""
    if isinstance(node, (Word, Ref, Near)):
        return True
    if isinstance(node, Not):
        return False
    if isinstance(node, And):
        return any(_positive(c) for c in node.children)
    return all(_positive(c) for c in node.children)


def _leaves(node: Node) -> Iterator[Word | Ref]:
    if isinstance(node, (Word, Ref)):
        yield node
    elif isinstance(node, Not):
        yield from _leaves(node.child)
    elif isinstance(node, Near):
        yield from _leaves(node.left)
        yield from _leaves(node.right)
    else:
        for child in node.children:
            yield from _leaves(child)


def words_of(node: Node) -> list[Word]:
    return [leaf for leaf in _leaves(node) if isinstance(leaf, Word)]


def refs_of(node: Node) -> list[Ref]:
    return [leaf for leaf in _leaves(node) if isinstance(leaf, Ref)]
