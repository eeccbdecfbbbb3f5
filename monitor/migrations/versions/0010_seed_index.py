"""articles: a partial index of the seeds' content hashes, so that start-up finds which seeds
are stored without reading every article (at 100,000 articles that read took 200 MiB of the
daemon's memory, through SQLite's memory map, and a sequential scan on PostgreSQL)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_articles_seeds', 'articles', ['content_hash'],
                    sqlite_where=sa.text('is_seed = 1'), postgresql_where=sa.text('is_seed'))


def downgrade() -> None:
    op.drop_index('ix_articles_seeds', table_name='articles')
