"""feed silence: newest entry date, usual cadence, silent since

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('feeds') as batch:
        batch.add_column(sa.Column('newest_entry_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('cadence_seconds', sa.Float(), nullable=True))
        batch.add_column(sa.Column('silent_since', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('feeds') as batch:
        batch.drop_column('silent_since')
        batch.drop_column('cadence_seconds')
        batch.drop_column('newest_entry_at')
