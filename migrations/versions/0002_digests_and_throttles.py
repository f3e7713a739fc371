"""digests and throttles: held/throttled deliveries folded into one alert

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("throttled", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.create_index("ix_alerts_rule_created", ["rule_id", "created_at"], unique=False)
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("folded_into", sa.String(length=40), nullable=True))
        batch_op.create_index("ix_deliveries_channel_status", ["channel", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_channel_status")
        batch_op.drop_column("folded_into")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_rule_created")
        batch_op.drop_column("throttled")
