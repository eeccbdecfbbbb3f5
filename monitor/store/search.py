"""The word index of stored articles (``monitor.search`` plans the queries).

SQLite: an FTS5 table ``article_search`` (rowid = the article's id) over the article's folded
words, ``detail=none`` (the matcher checks phrases and distances, so positions are not kept).
PostgreSQL: ``article_search(article_id, words tsvector)`` with a GIN index; the words go in as
lexemes as they are (``array_to_tsvector``), so both databases look up the same folded words.
A word is looked up as a prefix, which covers endings (Russian cases, possessives).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import String, bindparam, cast, select, text
from sqlalchemy.orm import Session

from monitor.store.tables import Match

TABLE = "article_search"


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


_ADD_PG = text(f"INSERT INTO {TABLE} (article_id, words) "
               f"VALUES (:id, array_to_tsvector(CAST(:words AS text[])))")
# (FTS5 takes REPLACE: the article's earlier words, if any, leave the index)
_ADD_SQLITE = text(f"INSERT OR REPLACE INTO {TABLE} (rowid, words) VALUES (:id, :words)")


def add(session: Session, article_id: int, words: Sequence[str], *, fresh: bool = False
        ) -> None:
    """Index (or index again) an article under ``words``; ``fresh``: it was just inserted
    (PostgreSQL never gives an id twice, so there is nothing to take out first)."""
    if _postgres(session):
        if not fresh:
            remove(session, [article_id])
        session.connection().execute(_ADD_PG, {"id": article_id,
                                               "words": [w for w in words if w]})
    else:
        session.connection().execute(_ADD_SQLITE, {"id": article_id, "words": " ".join(words)})


def remove(session: Session, article_ids: Iterable[int]) -> None:
    ids = list(article_ids)
    if not ids:
        return
    column = "article_id" if _postgres(session) else "rowid"
    session.execute(text(f"DELETE FROM {TABLE} WHERE {column} IN :ids")
                    .bindparams(bindparam("ids", expanding=True)), {"ids": ids})


def _fts_phrase(word: str) -> str:
    return '"' + word.replace('"', '""') + '"*'


def _ts_lexeme(word: str) -> str:
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "':*"


def with_words(session: Session, stems: Sequence[str], since: datetime | None) -> set[int]:
    """Ids of the articles holding a word starting with each of ``stems``."""
    since_clause = " AND a.created_at >= :since" if since is not None else ""
    if _postgres(session):
        sql = (f"SELECT s.article_id FROM {TABLE} s"
               + (" JOIN articles a ON a.id = s.article_id" if since is not None else "")
               + " WHERE s.words @@ CAST(:q AS tsquery)" + since_clause)
        query = " & ".join(_ts_lexeme(w) for w in stems)
    else:
        sql = (f"SELECT s.rowid FROM {TABLE} s"
               + (" JOIN articles a ON a.id = s.rowid" if since is not None else "")
               + f" WHERE {TABLE} MATCH :q" + since_clause)
        query = " AND ".join(_fts_phrase(w) for w in stems)
    params: dict[str, object] = {"q": query}
    if since is not None:
        params["since"] = since
    return {int(r[0]) for r in session.execute(text(sql), params)}


def matched_entity(session: Session, entity: str, since: datetime | None) -> set[int]:
    """Ids of the articles a stored match names ``entity`` for (any watchlist)."""
    needle = json.dumps(entity)[1:-1]  # as the JSON column writes it (escapes and all)
    stmt = select(Match.article_id, Match.terms).where(
        cast(Match.terms, String).contains(needle, autoescape=True))
    if since is not None:
        stmt = stmt.where(Match.created_at >= since)
    return {int(article_id) for article_id, terms in session.execute(stmt)
            if entity in (terms or [])}
