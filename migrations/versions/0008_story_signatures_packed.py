"""stories.signature: 256 packed bytes instead of a JSON list

A story's MinHash signature (64 values of 32 bits) was a JSON list of ~750 characters that
every new story encoded and every read decoded (``json`` was most of it). Now it is the 64
values as little-endian uint32 (``monitor.ingest.dedup.pack``): 256 bytes, read with one
``numpy.frombuffer``.

Only the signatures of the stories of the last three days (the near-duplicate window) are
ever read again, so only those are converted; older stories keep no signature. The column is
replaced (added, filled, the old one dropped, the new one renamed) rather than altered: SQLite
cannot change a column's type without rebuilding the table, which other tables reference.
A downgrade does the same the other way.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_WINDOW = timedelta(days=3)
_CHUNK = 2000
_PERM = 64


def _pack(signature: Any) -> bytes | None:
    if isinstance(signature, str):          # SQLite hands JSON back as text here
        signature = json.loads(signature)
    if not isinstance(signature, list) or len(signature) != _PERM:
        return None
    return struct.pack(f"<{_PERM}I", *signature)


def _unpack(signature: bytes | None) -> list[int] | None:
    if signature is None or len(signature) != 4 * _PERM:
        return None
    return list(struct.unpack(f"<{_PERM}I", bytes(signature)))


def _replace(new_type: sa.types.TypeEngine[Any], convert: Callable[[Any], Any]) -> None:
    """Give stories.signature ``new_type``: the recent stories' values converted, the
    others none."""
    bind = op.get_bind()
    op.add_column("stories", sa.Column("signature_new", new_type, nullable=True))
    since = datetime.now(UTC) - _WINDOW
    if bind.dialect.name == "sqlite":   # stored as naive UTC there
        since = since.replace(tzinfo=None)
    stories = sa.table("stories", sa.column("id"), sa.column("signature"),
                       sa.column("signature_new", new_type),
                       sa.column("created_at", sa.DateTime(timezone=True)))
    rows = bind.execute(sa.select(stories.c.id, stories.c.signature)
                        .where(stories.c.created_at >= since,
                               stories.c.signature.is_not(None))).fetchall()
    update = (sa.update(stories).where(stories.c.id == sa.bindparam("story"))
              .values(signature_new=sa.bindparam("value")))
    for start in range(0, len(rows), _CHUNK):
        values = [{"story": story, "value": value} for story, signature in rows[start:start + _CHUNK]
                  if (value := convert(signature)) is not None]
        if values:
            bind.execute(update, values)
    # Both SQLite (3.35+) and PostgreSQL drop and rename a column in place.
    op.execute("ALTER TABLE stories DROP COLUMN signature")
    op.execute("ALTER TABLE stories RENAME COLUMN signature_new TO signature")


def upgrade() -> None:
    _replace(sa.LargeBinary(), _pack)


def downgrade() -> None:
    _replace(sa.JSON(), _unpack)
