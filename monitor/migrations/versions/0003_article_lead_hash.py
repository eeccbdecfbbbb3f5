"""articles.lead_hash: the opening words, to find short truncated reposts

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('articles') as batch:
        batch.add_column(sa.Column('lead_hash', sa.String(length=32), nullable=True))
        batch.create_index('ix_articles_lead_hash', ['lead_hash'])


def downgrade() -> None:
    with op.batch_alter_table('articles') as batch:
        batch.drop_index('ix_articles_lead_hash')
        batch.drop_column('lead_hash')
