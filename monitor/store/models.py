"""SQLAlchemy 2 models: feeds, articles, hits, alerts and the delivery outbox.

Schema changes go through Alembic migrations only (``migrations/versions``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        to_naive = self.process_bind_param

        def process(value: datetime | None) -> str | None:
            # SQLAlchemy's SQLite DATETIME text, "2024-06-10 09:00:00.000000", written in one
            # call instead of a %-format of seven fields: every stored article has two.
            if value is not None and value.tzinfo is UTC:      # the common case, directly
                return value.replace(tzinfo=None).isoformat(" ", "microseconds")
            naive = to_naive(value, dialect)
            return None if naive is None else naive.isoformat(" ", "microseconds")

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class Feed(Base):
    __tablename__ = "feeds"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    url: Mapped[str] = mapped_column(Text)          # effective: follows permanent redirects
    config_url: Mapped[str | None] = mapped_column(Text)   # as written in the config
    name: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # conditional GET and change detection
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    body_hash: Mapped[str | None] = mapped_column(String(64))
    # health
    status: Mapped[str] = mapped_column(String(20), default="new")
    last_error: Mapped[str | None] = mapped_column(Text)
    last_fetch_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_new_entry_at: Mapped[datetime | None]
    next_poll_at: Mapped[datetime | None] = mapped_column(index=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    # adaptive polling
    entries_per_day: Mapped[float | None] = mapped_column(Float)
    interval_s: Mapped[int | None] = mapped_column(Integer)
    # health incidents: failing | silent, raised once and cleared with a recovery message
    health_state: Mapped[str | None] = mapped_column(String(20))
    health_since: Mapped[datetime | None]
    # WebSub
    hub_url: Mapped[str | None] = mapped_column(Text)
    websub_topic: Mapped[str | None] = mapped_column(Text)
    websub_secret: Mapped[str | None] = mapped_column(String(64))
    websub_state: Mapped[str | None] = mapped_column(String(20))
    websub_lease_until: Mapped[datetime | None]
    push_unreliable: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # the process polling it now; its lease runs until next_poll_at (SPEC §8 scale-out)
    lease_owner: Mapped[str | None] = mapped_column(String(100))


class Story(Base):
    """One news story: the first article and its later copies (syndication, rewrites)."""

    __tablename__ = "stories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(Text, default="")
    # MinHash of the first article, packed (dedup.pack): 64 little-endian uint32, 256 bytes.
    signature: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(index=True)


class Article(Base):
    __tablename__ = "articles"
    __table_args__ = (UniqueConstraint("feed_id", "entry_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    feed_id: Mapped[str] = mapped_column(ForeignKey("feeds.id"))
    entry_key: Mapped[str] = mapped_column(String(512))
    url: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str | None] = mapped_column(Text)
    lang: Mapped[str | None] = mapped_column(String(35))
    published_at: Mapped[datetime | None]
    fetched_at: Mapped[datetime] = mapped_column(index=True)
    canonical_url: Mapped[str | None] = mapped_column(Text, index=True)
    story_id: Mapped[int | None] = mapped_column(ForeignKey("stories.id"), index=True)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime | None]
    fulltext_error: Mapped[str | None] = mapped_column(Text)


class Hit(Base):
    __tablename__ = "hits"
    __table_args__ = (UniqueConstraint("rule_id", "article_id"),
                      UniqueConstraint("rule_id", "story_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[str] = mapped_column(String(100), index=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id"), index=True)
    story_id: Mapped[int | None] = mapped_column(ForeignKey("stories.id"))
    matches: Mapped[list[Any]]
    snippet: Mapped[str] = mapped_column(Text, default="")
    score: Mapped[float]
    alerted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(index=True)


class Alert(Base):
    """One message, frozen at creation so every retry sends the same bytes under the same id."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_rule_created", "rule_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # hit | digest | health
    hit_id: Mapped[int | None] = mapped_column(ForeignKey("hits.id"), index=True)
    rule_id: Mapped[str | None] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]]
    # Held back by the rule's throttle: sent later inside one summary alert.
    throttled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime]


class Delivery(Base):
    """The outbox: one row per (alert, channel), each retried on its own."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "channel"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        Index("ix_deliveries_channel_status", "channel", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"))
    channel: Mapped[str] = mapped_column(String(100))
    # pending → sent | failed; held (waiting for the channel's digest) and throttled
    # (waiting for the rule's summary) → folded, once sent inside that digest or summary.
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    folded_into: Mapped[str | None] = mapped_column(String(40))
    # the process sending it now; its claim runs until next_attempt_at
    claimed_by: Mapped[str | None] = mapped_column(String(100))


class Lease(Base):
    """A cluster-wide singleton job (digests, health checks, WebSub upkeep): run by whichever
    process holds the lease, taken over by another when it lapses."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime]
