"""spike_alerts: spikes and breaking stories alerted, for the cooldown and the digests

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'spike_alerts',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('watchlist', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('key', sa.String(length=500), nullable=False),
        sa.Column('headline', sa.Text(), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('expected', sa.Float(), nullable=False),
        sa.Column('score', sa.Float(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_spike_alerts_key', 'spike_alerts',
                    ['watchlist', 'kind', 'key', 'created_at'])
    op.create_index('ix_spike_alerts_created_at', 'spike_alerts', ['created_at'])


def downgrade() -> None:
    op.drop_table('spike_alerts')
