"""story_bands: three integers a row, the bucket leading the primary key

A new article writes 16 band rows at random bucket values. With the key (band, bucket,
story_id), a bucket index beside it and (on SQLite) the rowid table, each row touched three
B-trees, two of them at random pages; a first poll of 50,000 articles spent ~35 s on these
writes alone. Now the bucket is a signed 64-bit integer (the same 8 hash bytes as the old
16 hex digits, big-endian), it leads the primary key (lookups are by bucket), the bucket
index goes, SQLite stores the rows in the key (WITHOUT ROWID), and ``created_at`` goes too:
a row is as old as its story (``stories.created_at``). An index on story_id (which only
grows at its end) serves retention.

Existing rows are converted, not dropped: near-duplicate detection keeps working across the
upgrade.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_CHUNK = 5000


def _signed(hex_bucket: str) -> int:
    value = int(hex_bucket, 16)
    return value - (1 << 64) if value >= 1 << 63 else value


def _hex(bucket: int) -> str:
    return f"{bucket & ((1 << 64) - 1):016x}"


def _sqlite_rebuild(*, upgrade: bool) -> None:
    """Copy story_bands into a table of the other shape (SQLite cannot alter keys)."""
    bind = op.get_bind()
    columns = [
        sa.Column("band", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.BigInteger() if upgrade else sa.String(length=32), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=False),
    ]
    if not upgrade:
        columns.append(sa.Column("created_at", sa.DateTime(timezone=True), nullable=False))
    key = ["bucket", "band", "story_id"] if upgrade else ["band", "bucket", "story_id"]
    op.create_table(
        "story_bands_new", *columns,
        sa.ForeignKeyConstraint(["story_id"], ["stories.id"],
                                name="fk_story_bands_story_id_stories"),
        sa.PrimaryKeyConstraint(*key, name="pk_story_bands"),
        sqlite_with_rowid=not upgrade,
    )
    old = sa.table("story_bands", sa.column("band"), sa.column("bucket"), sa.column("story_id"))
    stories = sa.table("stories", sa.column("id"), sa.column("created_at"))
    new = sa.table("story_bands_new", *(sa.column(c.name) for c in columns))
    rows = bind.execute(sa.select(old.c.band, old.c.bucket, old.c.story_id, stories.c.created_at)
                        .join(stories, stories.c.id == old.c.story_id))
    convert = _signed if upgrade else _hex
    while chunk := rows.fetchmany(_CHUNK):
        bind.execute(new.insert(), [
            {"band": band, "bucket": convert(bucket), "story_id": story,
             **({} if upgrade else {"created_at": created})}
            for band, bucket, story, created in chunk])
    op.drop_table("story_bands")
    op.rename_table("story_bands_new", "story_bands")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rebuild(upgrade=True)
    else:
        op.drop_index("ix_story_bands_bucket", table_name="story_bands")
        op.drop_constraint("pk_story_bands", "story_bands", type_="primary")
        # 'x' || 16 hex digits -> bit(64) -> bigint: the same two's complement value as _signed.
        op.alter_column("story_bands", "bucket", type_=sa.BigInteger(),
                        existing_type=sa.String(length=32), existing_nullable=False,
                        postgresql_using="('x' || bucket)::bit(64)::bigint")
        op.create_primary_key("pk_story_bands", "story_bands", ["bucket", "band", "story_id"])
        op.drop_column("story_bands", "created_at")
    op.create_index("ix_story_bands_story_id", "story_bands", ["story_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_story_bands_story_id", table_name="story_bands")
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rebuild(upgrade=False)
    else:
        op.add_column("story_bands", sa.Column("created_at", sa.DateTime(timezone=True),
                                               nullable=True))
        op.execute("UPDATE story_bands SET created_at = stories.created_at FROM stories "
                   "WHERE stories.id = story_bands.story_id")
        op.alter_column("story_bands", "created_at", existing_type=sa.DateTime(timezone=True),
                        nullable=False)
        op.drop_constraint("pk_story_bands", "story_bands", type_="primary")
        op.alter_column("story_bands", "bucket", type_=sa.String(length=32),
                        existing_type=sa.BigInteger(), existing_nullable=False,
                        postgresql_using="lpad(to_hex(bucket), 16, '0')")
        op.create_primary_key("pk_story_bands", "story_bands", ["band", "bucket", "story_id"])
    op.create_index("ix_story_bands_bucket", "story_bands", ["bucket"], unique=False)
