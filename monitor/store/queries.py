"""Every read and write the daemon makes, as small functions over a Session.

Storage only persists: deciding what a poll or a delivery means lives in the service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    event,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from monitor.ingest.parse import Entry
from monitor.ingest.storyindex import StoryIndex, bucket_keys
from monitor.store.db import LOCK_FEED_SYNC, LOCK_STORIES, cluster_lock
from monitor.store.models import Alert, Article, Base, Delivery, Feed, Hit, Lease, Story


@dataclass(frozen=True)
class FeedState:
    id: str
    url: str
    name: str | None
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    consecutive_failures: int
    last_success_at: datetime | None = None
    entries_per_day: float | None = None
    websub_active: bool = False        # a verified WebSub subscription that has not missed items
    lease_owner: str | None = None     # the process that claimed this poll (None: unclaimed)


def _state(r: Any) -> FeedState:
    """A feed's state from its row (an ORM ``Feed`` or a row of ``_STATE_COLUMNS``)."""
    return FeedState(r.id, r.url, r.name, r.etag, r.last_modified, r.body_hash,
                     r.consecutive_failures, r.last_success_at, r.entries_per_day,
                     r.websub_state == "active" and not r.push_unreliable, r.lease_owner)


def _held_by(owner: Any) -> Any:
    """Rows a process may still write a poll's outcome to: unclaimed ones (a push, a
    ``--once`` run) or claimed by ``owner`` (a name, or a bound parameter for one). A process
    whose lease lapsed and was taken over leaves the feed to its new owner."""
    return Feed.lease_owner.is_(None) if owner is None else Feed.lease_owner == owner


@dataclass(frozen=True)
class NewArticle:
    entry: Entry
    canonical_url: str | None
    content_hash: str | None
    story_id: int | None
    fulltext_error: str | None = None


@dataclass(frozen=True)
class StoredEntry:
    article_id: int
    content_hash: str | None
    story_id: int | None


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
    return _dialect_insert(session.get_bind().dialect.name)(table)


def _dialect_insert(name: str) -> Callable[[Any], Any]:
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"unsupported database dialect {name!r}")


# --------------------------------------------------------------------------- feeds

def sync_feeds(session: Session, feeds: Iterable[tuple[str, str, str | None]],
               now: datetime) -> None:
    """Make the feeds table follow the config: add new, update changed, deactivate removed.

    ``config_url`` is the URL as the config writes it; ``url`` is the one polled, which
    follows permanent redirects. Only a change of the config's URL resets ``url`` (and the
    validators that belonged to the old resource); rows from before ``config_url`` existed
    get it filled in. A feed that leaves the config keeps its row (its articles and hits
    stay) but stops being polled.
    """
    cluster_lock(session, LOCK_FEED_SYNC)   # daemons starting together add each feed once
    wanted = {feed_id: (url, name) for feed_id, url, name in feeds}
    existing = {f.id: f for f in session.scalars(select(Feed))}
    for feed_id, (url, name) in wanted.items():
        row = existing.get(feed_id)
        if row is None:
            session.add(Feed(id=feed_id, url=url, config_url=url, name=name, active=True,
                             status="new", consecutive_failures=0, next_poll_at=now,
                             created_at=now))
            continue
        configured = row.config_url if row.config_url is not None else row.url
        if configured != url:
            # A new URL is a new resource: forget validators that belonged to the old one.
            row.url, row.etag, row.last_modified, row.body_hash = url, None, None, None
            row.next_poll_at = now
        row.config_url = url
        if not row.active:
            row.active, row.next_poll_at = True, now
        row.name = name
    for feed_id, row in existing.items():
        if feed_id not in wanted and row.active:
            row.active = False


_STATE_COLUMNS = (Feed.id, Feed.url, Feed.name, Feed.etag, Feed.last_modified, Feed.body_hash,
                  Feed.consecutive_failures, Feed.last_success_at, Feed.entries_per_day,
                  Feed.websub_state, Feed.push_unreliable, Feed.lease_owner)


def due_feeds(session: Session, now: datetime, limit: int) -> list[FeedState]:
    # The columns ``_state`` reads, as plain rows: loading ORM objects for every due feed
    # was ~5% of an idle poll cycle's CPU.
    rows = session.execute(
        select(*_STATE_COLUMNS)
        .where(Feed.active.is_(True), Feed.next_poll_at <= now)
        .order_by(Feed.next_poll_at)
        .limit(limit)
    )
    return [_state(r) for r in rows]


def _skip_locked(session: Session, query: Any) -> Any:
    """``FOR UPDATE SKIP LOCKED`` on PostgreSQL: concurrent claimers take different rows
    instead of waiting for each other. SQLite has one writer (and one daemon) anyway."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


def claim_feeds(session: Session, owner: str, now: datetime, limit: int,
                lease: timedelta) -> list[FeedState]:
    """Take up to ``limit`` due feeds for ``owner`` to poll.

    The lease runs until ``next_poll_at`` (moved to ``now + lease``): no other process sees
    the feed as due before then, and the poll's outcome sets the real next poll. A process
    killed mid-poll leaves the feed to whoever claims it after the lease lapses.
    """
    rows = list(session.scalars(_skip_locked(session, (
        select(Feed)
        .where(Feed.active.is_(True), Feed.next_poll_at <= now)
        .order_by(Feed.next_poll_at, Feed.id)
        .limit(limit)))))
    for row in rows:
        row.lease_owner, row.next_poll_at = owner, now + lease
    return [_state(r) for r in rows]


def release_feeds(session: Session, now: datetime, owner: str | None = None) -> int:
    """Give back feeds claimed and not polled: ``owner``'s (on a clean stop), or every
    process's (``owner=None``: on start with SQLite, where only one daemon can run)."""
    query = update(Feed).where(Feed.lease_owner.is_not(None))
    if owner is not None:
        query = query.where(Feed.lease_owner == owner)
    result = session.execute(query.values(lease_owner=None, next_poll_at=now))
    return int(getattr(result, "rowcount", 0) or 0)


def feed_state(session: Session, feed_id: str) -> FeedState | None:
    row = session.get(Feed, feed_id)
    return _state(row) if row is not None and row.active else None


def record_success(session: Session, feed_id: str, now: datetime, next_poll_at: datetime, *,
                   status: str, etag: str | None = None, last_modified: str | None = None,
                   body_hash: str | None = None, new_entries: int = 0,
                   entries_per_day: float | None = None, interval_s: int | None = None,
                   owner: str | None = None) -> bool:
    """Record a successful poll that parsed the feed and end its lease (polls with nothing
    new go through ``record_quiet_polls``); False when the lease was lost to another
    process (then that process's poll is the one recorded)."""
    statement = _success_statement(owner is not None, new_entries > 0,
                                   entries_per_day is not None, interval_s is not None)
    result = session.connection().execute(statement, {
        "b_id": feed_id, "b_owner": owner, "b_now": now, "b_next": next_poll_at,
        "b_status": status, "b_etag": etag, "b_last_modified": last_modified,
        "b_hash": body_hash, "b_rate": entries_per_day, "b_interval": interval_s})
    return bool(getattr(result, "rowcount", 0))


@cache
def _success_statement(owned: bool, new: bool, rate: bool, interval: bool) -> Any:
    """``record_success``'s UPDATE, built once per shape (a Core statement: every poll that
    stores articles runs one, and building it anew cost more than running it)."""
    feeds = Feed.__table__
    values: dict[str, Any] = {
        "status": bindparam("b_status"), "last_error": None, "last_fetch_at": bindparam("b_now"),
        "last_success_at": bindparam("b_now"), "next_poll_at": bindparam("b_next"),
        "consecutive_failures": 0, "lease_owner": None, "etag": bindparam("b_etag"),
        "last_modified": bindparam("b_last_modified"), "body_hash": bindparam("b_hash"),
    }
    if new:
        values["last_new_entry_at"] = bindparam("b_now")
    if rate:
        values["entries_per_day"] = bindparam("b_rate")
    if interval:
        values["interval_s"] = bindparam("b_interval")
    return update(feeds).where(feeds.c.id == bindparam("b_id"),
                               _held_by(bindparam("b_owner") if owned else None)).values(**values)


@dataclass(frozen=True)
class QuietPoll:
    """A successful poll with nothing new to store (304, or the same body again)."""

    feed_id: str
    owner: str | None                  # the lease it ends (None: an unclaimed poll)
    now: datetime
    next_poll_at: datetime
    status: str                        # not_modified | unchanged
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    entries_per_day: float | None
    interval_s: int | None


def record_quiet_polls(session: Session, polls: Sequence[QuietPoll]) -> None:
    """``record_success`` for many feeds, an executemany per kind of lease (held by an owner,
    or none); a feed whose lease was taken over is left to its new owner."""
    by_kind: dict[bool, list[dict[str, Any]]] = {}
    for p in polls:
        by_kind.setdefault(p.owner is not None, []).append({
            "b_id": p.feed_id, "b_owner": p.owner, "b_now": p.now, "b_next": p.next_poll_at,
            "b_status": p.status, "b_etag": p.etag, "b_last_modified": p.last_modified,
            "b_hash": p.body_hash, "b_rate": p.entries_per_day, "b_interval": p.interval_s})
    for owned, rows in by_kind.items():
        session.execute(_success_statement(owned, False, True, True), rows)


def record_pushed(session: Session, feed_id: str, now: datetime) -> None:
    """New entries arrived by WebSub push."""
    session.execute(update(Feed).where(Feed.id == feed_id).values(last_new_entry_at=now))


def record_hub(session: Session, feed_id: str, hub: str | None, topic: str | None) -> bool:
    """Remember the WebSub hub a feed advertises; True when that is news (a new or changed
    hub starts a new subscription)."""
    feed = session.get(Feed, feed_id)
    if feed is None or (feed.hub_url == hub and (feed.websub_topic or None) == (topic or None)):
        return False
    feed.hub_url, feed.websub_topic = hub, topic
    feed.websub_state, feed.websub_lease_until, feed.websub_secret = None, None, None
    return True


def mark_push_unreliable(session: Session, feed_id: str) -> None:
    session.execute(update(Feed).where(Feed.id == feed_id).values(push_unreliable=True))


def record_failure(session: Session, feed_id: str, now: datetime, next_poll_at: datetime,
                   error: str, *, status: str = "error", owner: str | None = None) -> int:
    """Record a failed poll (status ``error``, or ``gone`` for HTTP 410) and end its lease;
    returns the new count of consecutive failures (0 when the lease was lost to another
    process). The feed stays active: it is polled again at ``next_poll_at``."""
    feed = session.scalar(select(Feed).where(Feed.id == feed_id, _held_by(owner)))
    if feed is None:
        return 0
    feed.lease_owner = None
    feed.status = status
    feed.last_error = error[:2000]
    feed.last_fetch_at = now
    feed.next_poll_at = next_poll_at
    feed.consecutive_failures += 1
    return feed.consecutive_failures


def record_moved(session: Session, feed_id: str, url: str) -> None:
    """A permanent redirect: poll ``url`` from now on; ``config_url`` keeps the config's."""
    feed = session.get(Feed, feed_id)
    if feed is None:
        return
    if feed.config_url is None:
        feed.config_url = feed.url
    feed.url = url


def list_feeds(session: Session) -> list[Feed]:
    return list(session.scalars(select(Feed).order_by(Feed.id)))


# --------------------------------------------------------------------------- articles and hits

def stored_entries(session: Session, feed_id: str, keys: Sequence[str]) -> dict[str, StoredEntry]:
    """The entries of ``keys`` that the feed already has."""
    found: dict[str, StoredEntry] = {}
    conn = session.connection()
    for chunk in _chunks(keys, 500):
        for key, article_id, content_hash, story_id in conn.execute(
                _hot(conn).stored, {"feed_id": feed_id, "keys": list(chunk)}):
            found[key] = StoredEntry(article_id, content_hash, story_id)
    return found


def insert_articles(session: Session, feed_id: str, rows: Sequence[NewArticle], now: datetime
                    ) -> dict[str, int]:
    """Store many entries of one feed at once; returns entry key → new article id for those
    the feed did not have yet (the others are left alone)."""
    if not rows:
        return {}
    return dict(_insert_rows(session.connection(), _ARTICLES, [
        (feed_id, r.entry.key, r.entry.url, r.entry.title, r.entry.summary, r.entry.body,
         r.entry.author, r.entry.lang, r.entry.published_at, now, r.canonical_url,
         r.content_hash, r.story_id, r.fulltext_error) for r in rows]))


def update_article(session: Session, article_id: int, entry: Entry, content_hash: str,
                   now: datetime) -> None:
    """An entry the feed changed (same id, new title or text): keep one article, updated."""
    session.execute(update(Article).where(Article.id == article_id).values(
        url=entry.url, title=entry.title, summary=entry.summary, body=entry.body,
        author=entry.author, lang=entry.lang, content_hash=content_hash, updated_at=now))


def insert_hit(session: Session, *, rule_id: str, article_id: int, matches: list[dict[str, Any]],
               snippet: str, score: float, alerted: bool, now: datetime,
               story_id: int | None = None) -> int | None:
    """Store a hit once per (rule, article) and per (rule, story); returns its id, or None
    when the rule already hit this article or another copy of its story."""
    conn = session.connection()
    return conn.execute(_hot(conn).hit, {
        "rule_id": rule_id, "article_id": article_id, "story_id": story_id, "matches": matches,
        "snippet": snippet, "score": score, "alerted": alerted, "created_at": now,
    }).scalar_one_or_none()


@dataclass(frozen=True)
class _RowInsert:
    """A multi-row INSERT that ``_insert_rows`` sends straight to the driver."""

    table: str
    columns: tuple[str, ...]
    returning: tuple[str, ...]
    conflict: tuple[str, ...] = ()      # ON CONFLICT (these) DO NOTHING


_ARTICLES = _RowInsert(
    "articles", ("feed_id", "entry_key", "url", "title", "summary", "body", "author", "lang",
                 "published_at", "fetched_at", "canonical_url", "content_hash", "story_id",
                 "fulltext_error"),
    returning=("entry_key", "id"), conflict=("feed_id", "entry_key"))
_STORIES = _RowInsert("stories", ("title", "signature", "created_at"), returning=("title", "id"))
_ROWS_PER_INSERT = 500     # 7,000 parameters at most: under SQLite's and PostgreSQL's limits


def _insert_rows(conn: Connection, what: _RowInsert, rows: Sequence[tuple[Any, ...]]
                 ) -> list[tuple[Any, ...]]:
    """``INSERT INTO what.table (...) VALUES (...), (...) ... RETURNING ...`` of ``rows``
    (values in ``what.columns`` order), the RETURNING rows in no set order.

    The articles and stories of every poll go this way. SQLAlchemy's own multi-row insert
    (insertmanyvalues) builds a parameter dict per row, runs each value through its type and
    renders the statement per batch: ~0.2-0.3 ms of the ~1 ms that storing a feed's 25
    articles took. Here the statement is rendered once per dialect and row count, and only the
    values whose column type converts them (the timestamps) are converted.
    """
    dialect = conn.dialect
    convert = _converters(dialect, what)
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    out: list[tuple[Any, ...]] = []
    for chunk in _chunks(rows, _ROWS_PER_INSERT):
        params: list[Any] = []
        for row in chunk:
            if convert:
                row = list(row)     # noqa: PLW2901 - the converted copy of the row
                for i, f in convert:
                    if row[i] is not None:
                        row[i] = f(row[i])
            params += row
        out += conn.exec_driver_sql(_row_insert_sql(what, len(chunk), mark),
                                    tuple(params)).all()
    return out


@lru_cache(maxsize=32)
def _converters(dialect: Any, what: _RowInsert) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
    """The bind processors of ``what``'s columns that have one (on this dialect), with the
    column's position."""
    table = Base.metadata.tables[what.table]
    found = [(i, table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
             for i, name in enumerate(what.columns)]
    return tuple((i, f) for i, f in found if f is not None)


@lru_cache(maxsize=1024)
def _row_insert_sql(what: _RowInsert, count: int, mark: str) -> str:
    """The statement for ``count`` rows, with ``mark`` for each parameter (our table and
    column names are plain lower-case words: nothing to quote)."""
    row = "(" + ", ".join([mark] * len(what.columns)) + ")"
    conflict = f" ON CONFLICT ({', '.join(what.conflict)}) DO NOTHING" if what.conflict else ""
    return (f"INSERT INTO {what.table} ({', '.join(what.columns)}) "
            f"VALUES {', '.join([row] * count)}{conflict} RETURNING {', '.join(what.returning)}")


@dataclass(frozen=True)
class _Hot:
    """The statements every poll that stores articles runs, built once per dialect: building
    a statement anew (and the ORM layer around it) cost ~4x what running it does."""

    stored: Any
    hit: Any
    by_url: Any
    joinable: Any
    catch_up: Any


def _hot(conn: Connection) -> _Hot:
    return _hot_statements(conn.dialect.name)


@cache
def _hot_statements(dialect: str) -> _Hot:
    articles, stories, hits = Article.__table__, Story.__table__, Hit.__table__
    dml = _dialect_insert(dialect)
    own = exists().where(articles.c.story_id == stories.c.id,
                         articles.c.feed_id == bindparam("feed_id"))
    return _Hot(
        stored=select(articles.c.entry_key, articles.c.id, articles.c.content_hash,
                      articles.c.story_id)
        .where(articles.c.feed_id == bindparam("feed_id"),
               articles.c.entry_key.in_(bindparam("keys", expanding=True))),
        hit=dml(hits).on_conflict_do_nothing().returning(hits.c.id),
        by_url=select(articles.c.canonical_url, articles.c.story_id)
        .where(articles.c.canonical_url.in_(bindparam("urls", expanding=True)),
               articles.c.story_id.is_not(None)),
        joinable=select(stories.c.id)
        .where(stories.c.id.in_(bindparam("ids", expanding=True)),
               stories.c.created_at >= bindparam("since"), ~own),
        catch_up=select(stories.c.id, stories.c.signature)
        .where(stories.c.id > bindparam("last_id"), stories.c.created_at >= bindparam("since"))
        .order_by(stories.c.id),
    )


# --------------------------------------------------------------------------- stories

STORY_WINDOW = timedelta(days=3)   # copies of a story arrive within days, not weeks


@dataclass(frozen=True)
class StoryKey:
    """What identifies an article's story: its canonical URL and its MinHash signature."""

    title: str
    canonical_url: str | None
    signature: bytes        # packed (dedup.pack)


_ASSIGNED = "pressmon.stories_assigned"   # session.info: this transaction has caught up


def assign_stories(session: Session, *, feed_id: str, keys: Sequence[StoryKey], threshold: float,
                   now: datetime, index: StoryIndex) -> list[int]:
    """The story of each new article of one feed, in a handful of queries for the batch.

    An article joins the story of any article with the same canonical URL, else the most
    similar recent story (``index.near``: sharing an LSH bucket, ``dedup.similarity`` >=
    threshold) that has no article from this same feed; else it starts a new story.
    Articles of one batch never join each other: a feed does not syndicate itself.

    ``index`` is this database's ``StoryIndex``; it first catches up with the stories other
    transactions (and other daemons) added, under the lock that serialises assignments.
    """
    if not keys:
        return []
    # Two daemons storing copies of one story at the same moment must not both start it.
    cluster_lock(session, LOCK_STORIES)
    if not session.info.get(_ASSIGNED):
        # Once per transaction, before it adds stories of its own: what it reads is
        # committed, so the index never holds a story a rollback takes back. (Its own
        # stories join the index when it commits.)
        session.info[_ASSIGNED] = True
        _catch_up(session, index, now)
    conn = session.connection()
    hot = _hot(conn)
    by_url: dict[str, int] = {}
    urls = sorted({k.canonical_url for k in keys if k.canonical_url})
    for chunk in _chunks(urls):
        for url, story_id in conn.execute(hot.by_url, {"urls": list(chunk)}):
            by_url.setdefault(url, story_id)

    keyed = bucket_keys([k.signature if k.canonical_url not in by_url else None for k in keys])
    near = index.near(keyed, threshold)
    # Similar stories are rare; the table says which of them an article may join (recent
    # enough, none of this feed's articles in it).
    joinable: set[int] = set()
    for chunk in _chunks(sorted({story_id for found in near for story_id, _ in found})):
        joinable.update(conn.scalars(hot.joinable, {
            "ids": list(chunk), "since": now - STORY_WINDOW, "feed_id": feed_id}))

    result: list[int | None] = [
        by_url[key.canonical_url] if key.canonical_url in by_url
        else next((story_id for story_id, _ in found if story_id in joinable), None)
        for key, found in zip(keys, near, strict=True)]

    fresh = [i for i, story in enumerate(result) if story is None]
    if fresh:
        # Multi-row INSERTs whose RETURNING rows come in no set order (asking for the
        # parameters' order makes SQLite insert row by row, a statement each), so each new id
        # is found by its title: titles are unique within one INSERT, and the rare title a
        # batch repeats goes into a second one.
        rounds: list[list[int]] = []
        seen: dict[str, int] = {}
        for i in fresh:
            title = keys[i].title[:2000]
            seen[title] = seen.get(title, -1) + 1
            if seen[title] == len(rounds):
                rounds.append([])
            rounds[seen[title]].append(i)
        for members in rounds:
            ids = dict(_insert_rows(conn, _STORIES, [
                (keys[i].title[:2000], keys[i].signature or None, now) for i in members]))
            for i in members:
                result[i] = ids[keys[i].title[:2000]]
        # The index learns them once they are committed (``_stories_committed``).
        session.info.setdefault(_NEW_STORIES, (index, []))[1].append(
            (keyed, [(result[i], i) for i in fresh]))
    return [int(s) for s in result if s is not None]


# session.info: (index, [(bucket keys, [(story, its position in them)])]) of the stories this
# transaction started
_NEW_STORIES = "pressmon.new_stories"


@event.listens_for(Session, "after_commit")
def _stories_committed(session: Session) -> None:
    session.info.pop(_ASSIGNED, None)
    if (started := session.info.pop(_NEW_STORIES, None)) is not None:
        index, batches = started
        for keyed, stories in batches:
            index.add_keyed(keyed, stories)


@event.listens_for(Session, "after_rollback")
def _stories_rolled_back(session: Session) -> None:
    session.info.pop(_ASSIGNED, None)
    session.info.pop(_NEW_STORIES, None)


_FLOOR_EVERY = timedelta(hours=1)


def _catch_up(session: Session, index: StoryIndex, now: datetime) -> None:
    """Bring ``index`` up to the stories table: the recent stories added since it last
    looked (all of the window on first use), and now and then forget the ones that left
    the window."""
    since = now - STORY_WINDOW
    conn = session.connection()
    index.add(conn.execute(_hot(conn).catch_up, {"last_id": index.last_id, "since": since}))
    if index.floor_checked_at is None or now - index.floor_checked_at >= _FLOOR_EVERY:
        index.floor_checked_at = now
        floor = session.scalar(select(func.min(Story.id)).where(Story.created_at >= since))
        index.forget_before(index.last_id + 1 if floor is None else floor)


def _chunks(items: Sequence[Any], size: int = 400) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def story_copies(session: Session, story_id: int, article_id: int, limit: int = 20
                 ) -> list[dict[str, Any]]:
    """The story's other articles, for ``story.also_in``."""
    rows = session.connection().execute(_copies_statement(limit),
                                        {"story_id": story_id, "article_id": article_id})
    return [{"source": name or fid, "feed": fid, "url": url, "title": title}
            for url, title, fid, name in rows]


@cache
def _copies_statement(limit: int) -> Any:
    """``story_copies``' query, built once (every alert runs it)."""
    articles, feeds = Article.__table__, Feed.__table__
    return (select(articles.c.url, articles.c.title, feeds.c.id, feeds.c.name)
            .join(feeds, feeds.c.id == articles.c.feed_id)
            .where(articles.c.story_id == bindparam("story_id"),
                   articles.c.id != bindparam("article_id"))
            .order_by(articles.c.id).limit(limit))


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
    """An alert and its outbox rows (channel → initial status), in the caller's transaction.

    Core INSERTs, not ORM objects: a first poll writes hundreds of alerts, and the unit of
    work's flush cost more than the statements."""
    conn = session.connection()
    conn.execute(insert(Alert.__table__), {
        "id": alert_id, "kind": kind, "hit_id": hit_id, "rule_id": rule_id, "payload": payload,
        "throttled": throttled, "created_at": now})
    if channels:
        conn.execute(insert(Delivery.__table__), [
            {"alert_id": alert_id, "channel": channel, "status": status, "attempts": 0,
             "next_attempt_at": now, "created_at": now} for channel, status in channels.items()])


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


def claim_deliveries(session: Session, owner: str, now: datetime, limit: int,
                     claim: timedelta) -> list[DueDelivery]:
    """Take up to ``limit`` due deliveries for ``owner`` to send.

    As with feeds, the claim runs until ``next_attempt_at`` (moved to ``now + claim``): a
    row is sent by one process at a time, and a killed process's rows come due again.
    """
    rows = list(session.scalars(_skip_locked(session, (
        select(Delivery)
        .where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)))))
    if not rows:
        return []
    payloads = {alert_id: payload for alert_id, payload in session.execute(
        select(Alert.id, Alert.payload).where(Alert.id.in_({d.alert_id for d in rows})))}
    for row in rows:
        row.claimed_by, row.next_attempt_at = owner, now + claim
    return [DueDelivery(d.id, d.alert_id, d.channel, d.attempts, d.created_at,
                        payloads[d.alert_id]) for d in rows]


def release_deliveries(session: Session, now: datetime, owner: str | None = None,
                       ids: Sequence[int] | None = None) -> int:
    """Give back claimed, unsent deliveries (``owner``'s, or all with ``owner=None``; only
    ``ids`` when given) so they are due now."""
    query = update(Delivery).where(Delivery.status == "pending",
                                   Delivery.claimed_by.is_not(None))
    if owner is not None:
        query = query.where(Delivery.claimed_by == owner)
    if ids is not None:
        query = query.where(Delivery.id.in_(list(ids)))
    result = session.execute(query.values(claimed_by=None, next_attempt_at=now))
    return int(getattr(result, "rowcount", 0) or 0)


def mark_sent(session: Session, delivery_id: int, now: datetime) -> None:
    session.execute(update(Delivery).where(Delivery.id == delivery_id).values(
        status="sent", attempts=Delivery.attempts + 1, sent_at=now, last_error=None,
        claimed_by=None))


def mark_attempt_failed(session: Session, delivery_id: int, *, error: str,
                        next_attempt_at: datetime | None) -> None:
    """Count a failed attempt; ``next_attempt_at=None`` gives up (status ``failed``)."""
    values: dict[str, Any] = {"attempts": Delivery.attempts + 1, "last_error": error[:2000],
                              "claimed_by": None}
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


def archive_articles(session: Session, since: datetime, limit: int = 100_000
                     ) -> list[tuple[Article, str | None]]:
    """Stored articles first seen since ``since``, oldest first, with their feed's name."""
    rows = session.execute(
        select(Article, Feed.name).join(Feed, Feed.id == Article.feed_id)
        .where(Article.fetched_at >= since).order_by(Article.id).limit(limit))
    return [(article, name) for article, name in rows]


# --------------------------------------------------------------------------- retention

def prune_articles(session: Session, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` articles published and fetched before ``before`` that no hit
    refers to; returns how many. Articles without a date stay: a feed that keeps such an
    entry would otherwise bring it back as new (and alert on it again)."""
    ids = session.scalars(
        select(Article.id)
        .where(Article.fetched_at < before, Article.published_at < before,
               ~exists().where(Hit.article_id == Article.id))
        .order_by(Article.id).limit(limit)).all()
    if ids:
        session.execute(delete(Article).where(Article.id.in_(ids)))
    return len(ids)


def prune_stories(session: Session, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` stories started before ``before`` that no article or hit
    refers to any more; returns how many."""
    ids = session.scalars(
        select(Story.id)
        .where(Story.created_at < before,
               ~exists().where(Article.story_id == Story.id),
               ~exists().where(Hit.story_id == Story.id))
        .order_by(Story.id).limit(limit)).all()
    if ids:
        session.execute(delete(Story).where(Story.id.in_(ids)))
    return len(ids)


# --------------------------------------------------------------------------- leases

def take_lease(session: Session, name: str, owner: str, now: datetime, ttl: timedelta) -> bool:
    """Take or renew the cluster-wide lease ``name``; True when ``owner`` holds it until
    ``now + ttl``. Another process gets it only after it lapses."""
    expires = now + ttl
    statement = _insert(session, Lease).values(name=name, owner=owner, expires_at=expires)
    session.execute(statement.on_conflict_do_update(
        index_elements=[Lease.name], set_={"owner": owner, "expires_at": expires},
        where=or_(Lease.owner == owner, Lease.expires_at < now)))
    return session.scalar(select(Lease.owner).where(Lease.name == name)) == owner


def drop_lease(session: Session, name: str, owner: str) -> None:
    """Give up a lease on a clean stop, so another process takes over at once."""
    session.execute(update(Lease).where(Lease.name == name, Lease.owner == owner)
                    .values(expires_at=datetime.min.replace(tzinfo=UTC)))


def ping(session: Session) -> None:
    session.execute(select(1))


def outbox_gauges(session: Session, now: datetime) -> tuple[int, float, dict[str, int]]:
    """Outbox depth, the age in seconds of the oldest pending delivery, feeds by status."""
    depth, oldest = session.execute(
        select(func.count(), func.min(Delivery.created_at))
        .where(Delivery.status == "pending")).one()
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    by_status = {status: count for status, count in session.execute(
        select(Feed.status, func.count()).where(Feed.active.is_(True)).group_by(Feed.status))}
    age = (now - oldest).total_seconds() if oldest is not None else 0.0
    return int(depth), max(0.0, age), {str(k): int(v) for k, v in by_status.items()}
