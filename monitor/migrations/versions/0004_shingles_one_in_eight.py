"""shingles: keep one 5-gram in eight (was one in four) and recount shingle_count

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A hash kept at 1/8 is a hash kept at 1/4 that is also 0 mod 8 (the sign does not matter:
    # x % 8 is 0 for the same x in SQLite, PostgreSQL and Python).
    op.execute("DELETE FROM shingles WHERE hash % 8 <> 0")
    op.execute("UPDATE articles SET shingle_count = "
               "(SELECT count(*) FROM shingles WHERE shingles.article_id = articles.id)")


def downgrade() -> None:
    pass  # the dropped hashes cannot be recomputed here; a downgrade keeps the sparser index
