"""stories, feed health and websub

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('stories',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('signature', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stories'))
    )
    with op.batch_alter_table('stories', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stories_created_at'), ['created_at'], unique=False)

    op.create_table('story_bands',
    sa.Column('band', sa.Integer(), nullable=False),
    sa.Column('bucket', sa.String(length=32), nullable=False),
    sa.Column('story_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['story_id'], ['stories.id'], name=op.f('fk_story_bands_story_id_stories')),
    sa.PrimaryKeyConstraint('band', 'bucket', 'story_id', name=op.f('pk_story_bands'))
    )
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('canonical_url', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('story_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('content_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('fulltext_error', sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f('ix_articles_canonical_url'), ['canonical_url'], unique=False)
        batch_op.create_index(batch_op.f('ix_articles_story_id'), ['story_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_articles_story_id_stories'), 'stories', ['story_id'], ['id'])

    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('config_url', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('entries_per_day', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('interval_s', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('health_state', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('health_since', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('hub_url', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('websub_topic', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('websub_secret', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('websub_state', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('websub_lease_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('push_unreliable', sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table('hits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('story_id', sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_hits_rule_id_story_id'), ['rule_id', 'story_id'])
        batch_op.create_foreign_key(batch_op.f('fk_hits_story_id_stories'), 'stories', ['story_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('hits', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_hits_story_id_stories'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_hits_rule_id_story_id'), type_='unique')
        batch_op.drop_column('story_id')

    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.drop_column('push_unreliable')
        batch_op.drop_column('websub_lease_until')
        batch_op.drop_column('websub_state')
        batch_op.drop_column('websub_secret')
        batch_op.drop_column('websub_topic')
        batch_op.drop_column('hub_url')
        batch_op.drop_column('health_since')
        batch_op.drop_column('health_state')
        batch_op.drop_column('interval_s')
        batch_op.drop_column('entries_per_day')
        batch_op.drop_column('config_url')

    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_articles_story_id_stories'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_articles_story_id'))
        batch_op.drop_index(batch_op.f('ix_articles_canonical_url'))
        batch_op.drop_column('fulltext_error')
        batch_op.drop_column('updated_at')
        batch_op.drop_column('content_hash')
        batch_op.drop_column('story_id')
        batch_op.drop_column('canonical_url')

    op.drop_table('story_bands')
    with op.batch_alter_table('stories', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stories_created_at'))

    op.drop_table('stories')
