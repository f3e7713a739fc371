"""Every read and write the daemon makes, as small functions over a Session.

Storage only persists: deciding what a poll or a delivery means lives in the service.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from monitor.ingest.parse import Entry
from monitor.store.models import Alert, Article, Delivery, Feed, Hit


@dataclass(frozen=True)
class FeedState:
    id: str
    url: str
    name: str | None
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    consecutive_failures: int


@dataclass(frozen=True)
class DueDelivery:
    id: int
    alert_id: str
    channel: str
    attempts: int
    created_at: datetime
    payload: dict[str, Any]


def _insert(session: Session, table: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING for the session's dialect."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database dialect {name!r}")


# --------------------------------------------------------------------------- feeds

def sync_feeds(session: Session, feeds: Iterable[tuple[str, str, str | None]],
               now: datetime) -> None:
    """Make the feeds table follow the config: add new, update changed, deactivate removed.

    A feed that leaves the config keeps its row (its articles and hits stay) but stops
    being polled.
    """
    wanted = {feed_id: (url, name) for feed_id, url, name in feeds}
    existing = {f.id: f for f in session.scalars(select(Feed))}
    for feed_id, (url, name) in wanted.items():
        row = existing.get(feed_id)
        if row is None:
            session.add(Feed(id=feed_id, url=url, name=name, active=True, status="new",
                             consecutive_failures=0, next_poll_at=now, created_at=now))
            continue
        if row.url != url:
            # A new URL is a new resource: forget validators that belonged to the old one.
            row.url, row.etag, row.last_modified, row.body_hash = url, None, None, None
            row.next_poll_at = now
        if not row.active:
            row.active, row.next_poll_at = True, now
        row.name = name
    for feed_id, row in existing.items():
        if feed_id not in wanted and row.active:
            row.active = False


def due_feeds(session: Session, now: datetime, limit: int) -> list[FeedState]:
    rows = session.scalars(
        select(Feed)
        .where(Feed.active.is_(True), Feed.next_poll_at <= now)
        .order_by(Feed.next_poll_at)
        .limit(limit)
    )
    return [FeedState(r.id, r.url, r.name, r.etag, r.last_modified, r.body_hash,
                      r.consecutive_failures) for r in rows]


def record_success(session: Session, feed_id: str, now: datetime, next_poll_at: datetime, *,
                   status: str, etag: str | None = None, last_modified: str | None = None,
                   body_hash: str | None = None, new_entries: int = 0) -> None:
    values: dict[str, Any] = {
        "status": status, "last_error": None, "last_fetch_at": now, "last_success_at": now,
        "next_poll_at": next_poll_at, "consecutive_failures": 0,
    }
    if status != "not_modified":
        values.update(etag=etag, last_modified=last_modified, body_hash=body_hash)
    if new_entries:
        values["last_new_entry_at"] = now
    session.execute(update(Feed).where(Feed.id == feed_id).values(**values))


def record_failure(session: Session, feed_id: str, now: datetime, next_poll_at: datetime,
                   error: str) -> int:
    """Record a failed poll; returns the new count of consecutive failures."""
    feed = session.get(Feed, feed_id)
    if feed is None:
        return 0
    feed.status = "error"
    feed.last_error = error[:2000]
    feed.last_fetch_at = now
    feed.next_poll_at = next_poll_at
    feed.consecutive_failures += 1
    return feed.consecutive_failures


def list_feeds(session: Session) -> list[Feed]:
    return list(session.scalars(select(Feed).order_by(Feed.id)))


# --------------------------------------------------------------------------- articles and hits

def stored_entry_keys(session: Session, feed_id: str, keys: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        found.update(session.scalars(
            select(Article.entry_key).where(Article.feed_id == feed_id,
                                            Article.entry_key.in_(chunk))))
    return found


def insert_article(session: Session, feed_id: str, entry: Entry, now: datetime) -> int | None:
    """Store an entry once; returns the article id, or None if the feed already had it."""
    statement = (
        _insert(session, Article)
        .values(feed_id=feed_id, entry_key=entry.key, url=entry.url, title=entry.title,
                summary=entry.summary, body=entry.body, author=entry.author, lang=entry.lang,
                published_at=entry.published_at, fetched_at=now)
        .on_conflict_do_nothing(index_elements=["feed_id", "entry_key"])
        .returning(Article.id)
    )
    return session.execute(statement).scalar_one_or_none()


def insert_hit(session: Session, *, rule_id: str, article_id: int, matches: list[dict[str, Any]],
               snippet: str, score: float, alerted: bool, now: datetime) -> int | None:
    """Store a hit once per (rule, article); returns its id, or None if it existed."""
    statement = (
        _insert(session, Hit)
        .values(rule_id=rule_id, article_id=article_id, matches=matches, snippet=snippet,
                score=score, alerted=alerted, created_at=now)
        .on_conflict_do_nothing(index_elements=["rule_id", "article_id"])
        .returning(Hit.id)
    )
    return session.execute(statement).scalar_one_or_none()


def recent_hits(session: Session, *, since: datetime, rule_id: str | None = None,
                limit: int = 100) -> list[tuple[Hit, Article]]:
    query = (select(Hit, Article).join(Article, Article.id == Hit.article_id)
             .where(Hit.created_at >= since).order_by(Hit.created_at.desc(), Hit.id.desc())
             .limit(limit))
    if rule_id:
        query = query.where(Hit.rule_id == rule_id)
    return [(hit, article) for hit, article in session.execute(query)]


# --------------------------------------------------------------------------- alerts and outbox

def insert_alert(session: Session, *, alert_id: str, kind: str, payload: dict[str, Any],
                 channels: Mapping[str, str], now: datetime, hit_id: int | None = None,
                 rule_id: str | None = None, throttled: bool = False) -> None:
    """An alert and its outbox rows (channel → initial status), in the caller's transaction."""
    session.add(Alert(id=alert_id, kind=kind, hit_id=hit_id, rule_id=rule_id, payload=payload,
                      throttled=throttled, created_at=now))
    for channel, status in channels.items():
        session.add(Delivery(alert_id=alert_id, channel=channel, status=status, attempts=0,
                             next_attempt_at=now, created_at=now))


def count_rule_alerts(session: Session, rule_id: str, since: datetime) -> int:
    """Hit alerts of a rule since ``since`` that were not held back by its throttle."""
    return int(session.scalar(
        select(func.count()).select_from(Alert)
        .where(Alert.rule_id == rule_id, Alert.kind == "hit", Alert.throttled.is_(False),
               Alert.created_at >= since)) or 0)


def waiting_deliveries(session: Session, status: str, before: datetime,
                       channel: str | None = None) -> list[tuple[Delivery, Alert]]:
    """Deliveries held for a digest or by a throttle, created before ``before``, oldest first."""
    query = (select(Delivery, Alert).join(Alert, Alert.id == Delivery.alert_id)
             .where(Delivery.status == status, Delivery.created_at < before)
             .order_by(Delivery.created_at, Delivery.id))
    if channel is not None:
        query = query.where(Delivery.channel == channel)
    return [(d, a) for d, a in session.execute(query)]


def fold_deliveries(session: Session, delivery_ids: Sequence[int], into: str) -> None:
    """Mark deliveries as sent inside another alert (a digest or a throttle summary)."""
    session.execute(update(Delivery).where(Delivery.id.in_(list(delivery_ids)))
                    .values(status="folded", folded_into=into))


def alert_exists(session: Session, alert_id: str) -> bool:
    return session.get(Alert, alert_id) is not None


def due_deliveries(session: Session, now: datetime, limit: int) -> list[DueDelivery]:
    rows = session.execute(
        select(Delivery, Alert.payload)
        .join(Alert, Alert.id == Delivery.alert_id)
        .where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
    )
    return [DueDelivery(d.id, d.alert_id, d.channel, d.attempts, d.created_at, payload)
            for d, payload in rows]


def mark_sent(session: Session, delivery_id: int, now: datetime) -> None:
    session.execute(update(Delivery).where(Delivery.id == delivery_id).values(
        status="sent", attempts=Delivery.attempts + 1, sent_at=now, last_error=None))


def mark_attempt_failed(session: Session, delivery_id: int, *, error: str,
                        next_attempt_at: datetime | None) -> None:
    """Count a failed attempt; ``next_attempt_at=None`` gives up (status ``failed``)."""
    values: dict[str, Any] = {"attempts": Delivery.attempts + 1, "last_error": error[:2000]}
    if next_attempt_at is None:
        values["status"] = "failed"
    else:
        values["next_attempt_at"] = next_attempt_at
    session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


def list_deliveries(session: Session, *, status: str | None = None,
                    limit: int = 100) -> list[tuple[Delivery, Alert]]:
    query = (select(Delivery, Alert).join(Alert, Alert.id == Delivery.alert_id)
             .order_by(Delivery.id.desc()).limit(limit))
    if status:
        query = query.where(Delivery.status == status)
    return [(d, a) for d, a in session.execute(query)]


def retry_deliveries(session: Session, now: datetime, *, ids: Sequence[int] = (),
                     all_failed: bool = False) -> int:
    """Put failed deliveries back in the queue; returns how many."""
    query = update(Delivery).where(Delivery.status == "failed")
    if not all_failed:
        query = query.where(Delivery.id.in_(list(ids)))
    result = session.execute(query.values(status="pending", attempts=0, next_attempt_at=now,
                                          created_at=now))
    return int(getattr(result, "rowcount", 0) or 0)


def outbox_depth(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Delivery)
                              .where(Delivery.status == "pending")) or 0)


def archive_articles(session: Session, since: datetime, limit: int = 100_000
                     ) -> list[tuple[Article, str | None]]:
    """Stored articles first seen since ``since``, oldest first, with their feed's name."""
    rows = session.execute(
        select(Article, Feed.name).join(Feed, Feed.id == Article.feed_id)
        .where(Article.fetched_at >= since).order_by(Article.id).limit(limit))
    return [(article, name) for article, name in rows]
