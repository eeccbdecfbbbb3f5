"""stories: one event across outlets and languages; articles.language, story_id, story_trace

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'stories',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('title', sa.Text(), nullable=False),
        sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
        sa.Column('article_count', sa.Integer(), nullable=False),
        sa.Column('languages', sa.JSON(), nullable=False),
        sa.Column('vector_total', sa.LargeBinary(), nullable=False),
        sa.Column('vector_count', sa.Integer(), nullable=False),
        sa.Column('names', sa.JSON(), nullable=False),
        sa.Column('figures', sa.JSON(), nullable=False),
        sa.Column('days', sa.JSON(), nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_stories_first_seen', 'stories', ['first_seen'])
    op.create_index('ix_stories_last_seen', 'stories', ['last_seen'])
    op.create_index('ix_stories_version', 'stories', ['version'])
    with op.batch_alter_table('articles') as batch:
        batch.add_column(sa.Column('language', sa.String(length=8), nullable=True))
        batch.add_column(sa.Column('story_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('story_trace', sa.JSON(), nullable=True))
        batch.create_foreign_key('fk_articles_story_id', 'stories', ['story_id'], ['id'],
                                 ondelete='SET NULL')
        batch.create_index('ix_articles_story_id', ['story_id'])


def downgrade() -> None:
    with op.batch_alter_table('articles') as batch:
        batch.drop_index('ix_articles_story_id')
        batch.drop_constraint('fk_articles_story_id', type_='foreignkey')
        batch.drop_column('story_trace')
        batch.drop_column('story_id')
        batch.drop_column('language')
    op.drop_table('stories')
