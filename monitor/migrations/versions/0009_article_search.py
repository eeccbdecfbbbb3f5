"""article_search: the word index of stored articles (FTS5 on SQLite, a GIN-indexed tsvector on
PostgreSQL), filled here for the articles stored before it

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from monitor.store import search
from monitor.words import index_words

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("CREATE TABLE article_search (article_id INTEGER PRIMARY KEY "
                   "REFERENCES articles(id) ON DELETE CASCADE, words TSVECTOR NOT NULL)")
        op.execute("CREATE INDEX ix_article_search_words ON article_search USING GIN (words)")
    else:
        op.execute("CREATE VIRTUAL TABLE article_search USING fts5(words, detail=none, "
                   "tokenize='unicode61 remove_diacritics 2')")
    session = sa.orm.Session(bind=bind)
    last = 0
    while True:
        rows = bind.execute(sa.text(
            "SELECT id, title, text FROM articles WHERE id > :last AND is_seed = :no "
            "AND text_source != 'pruned' ORDER BY id LIMIT 500"), {"last": last, "no": False}
        ).all()
        if not rows:
            break
        for article_id, title, text in rows:
            search.add(session, article_id, index_words(title or "", text or ""))
        last = rows[-1][0]
    session.flush()


def downgrade() -> None:
    op.execute("DROP TABLE article_search")
