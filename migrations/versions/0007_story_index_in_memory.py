"""story_bands goes: near-duplicate candidates are looked up in memory

The LSH buckets of recent stories now live in each daemon's ``StoryIndex``, rebuilt from
``stories.signature`` on start and kept current from the stories table. The table cost a
new article 16 rows at random places of one B-tree, ~3/4 of storing it. Nothing is lost:
the buckets were derived from the signatures, which stay.

A downgrade rebuilds the table (0006 shape and bucket scheme) for the stories of the last
three days, the near-duplicate window the old code looked in.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_WINDOW = timedelta(days=3)
_CHUNK = 2000
_PERM, _BANDS, _ROWS = 64, 16, 4


def upgrade() -> None:
    op.drop_index("ix_story_bands_story_id", table_name="story_bands")
    op.drop_table("story_bands")


def _bands_0006(signature: list[int]) -> list[tuple[int, int]]:
    """The 0006 buckets of a signature: blake2b of the band index and its 4 values, as a
    signed big-endian BIGINT; none for an empty text's signature."""
    if len(signature) != _PERM or all(v == 0xFFFFFFFF for v in signature):
        return []
    packed = struct.pack(f"<{_PERM}I", *signature)
    width = 4 * _ROWS
    return [(band, int.from_bytes(
                hashlib.blake2b(band.to_bytes(2, "little") + packed[band * width:(band + 1) * width],
                                digest_size=8).digest(), "big", signed=True))
            for band in range(_BANDS)]


def downgrade() -> None:
    op.create_table(
        "story_bands",
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("band", sa.Integer(), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["story_id"], ["stories.id"],
                                name="fk_story_bands_story_id_stories"),
        sa.PrimaryKeyConstraint("bucket", "band", "story_id", name="pk_story_bands"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_story_bands_story_id", "story_bands", ["story_id"], unique=False)
    bind = op.get_bind()
    since = datetime.now(UTC) - _WINDOW
    if bind.dialect.name == "sqlite":   # stored as naive UTC there
        since = since.replace(tzinfo=None)
    stories = sa.table("stories", sa.column("id"), sa.column("signature", sa.JSON),
                       sa.column("created_at", sa.DateTime(timezone=True)))
    bands = sa.table("story_bands", sa.column("bucket"), sa.column("band"),
                     sa.column("story_id"))
    rows = bind.execute(sa.select(stories.c.id, stories.c.signature)
                        .where(stories.c.created_at >= since,
                               stories.c.signature.is_not(None)))
    while chunk := rows.fetchmany(_CHUNK):
        values = [{"bucket": bucket, "band": band, "story_id": story}
                  for story, signature in chunk
                  for band, bucket in dict.fromkeys(_bands_0006(signature))]
        if values:
            bind.execute(bands.insert(), values)
