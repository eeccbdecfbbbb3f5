"""watchlist_state.schedule: the schedule its due time was computed with, so an edit applies

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('watchlist_state') as batch:
        batch.add_column(sa.Column('schedule', sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('watchlist_state') as batch:
        batch.drop_column('schedule')
