"""What one poll of one feed means: fetch → parse → dedup → match → store (+ outbox).

This is the one place that decides how a feed's state changes after a poll.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from monitor.config import Rule, Settings
from monitor.ingest import dedup
from monitor.ingest.fetch import Fetcher, FetchError, FetchResult, Validators
from monitor.ingest.fulltext import FulltextError, FulltextFetcher
from monitor.ingest.identity import Identity, identify, language_text
from monitor.ingest.matching import (
    Early,
    Shipped,
    document,
    identify_and_match,
    parse_and_match,
    ship,
)
from monitor.ingest.matching import load as load_rules
from monitor.ingest.parse import Entry, ParsedFeed, ParseError, parse_feed
from monitor.ingest.worker import SpawnedPool, start_parse_worker
from monitor.logs import first_line
from monitor.match import Document, Matcher, RuleHit
from monitor.nlp import Ner, detect_languages
from monitor.service.hits import ArticleRef, write_hit
from monitor.service.metrics import Metrics
from monitor.store import queries
from monitor.store.batch import WriteBatch
from monitor.store.db import Database

log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True)
class RuleSet:
    """The rules in force; swapped whole on reload so a poll never sees half of a change."""

    matcher: Matcher
    rules: dict[str, Rule]
    verify_ner: bool = False                      # some entity asks for `verify: ner`
    digest_channels: frozenset[str] = frozenset()  # channels that gather alerts into digests
    shipped: Shipped | None = None                # the rules as parse workers read them

    @classmethod
    def build(cls, settings: Settings, ship_to: Path | None = None) -> RuleSet:
        """The rules of ``settings``; with ``ship_to`` (a folder) also written there for the
        parse workers to match with (``monitor.ingest.matching``)."""
        verify_ner = any(e.verify == "ner" for e in settings.entities.values())
        shipped = None
        if ship_to is not None and not verify_ner:   # NER verification needs the daemon
            try:
                shipped = ship([r.spec() for r in settings.rules], settings.entities, ship_to)
            except OSError as exc:
                log.warning("cannot write the rules for the parse workers (%s); the daemon "
                            "matches them itself", exc)
        return cls(settings.matcher(), {r.id: r for r in settings.rules}, verify_ner,
                   frozenset(n for n, c in settings.channels.items() if c.digest is not None),
                   shipped)


@dataclass(frozen=True)
class FeedPolicy:
    interval: timedelta
    max_interval: timedelta
    max_article_age: timedelta
    min_interval: timedelta = timedelta(minutes=2)
    fixed: bool = False          # the feed sets its own interval: no adaptive polling
    fulltext: bool = False


WEBSUB_FALLBACK = timedelta(hours=1)
PROCESSING_PER_WORKER = 8
"""Feeds parsed, matched or stored at once, per parse worker. A feed's processing hops
between processes and threads (parse worker, database, NLP processes), so a few per worker
keep every stage busy: at 3 the stages waited on each other (bench/ingest.py first cycle
34 s; 30 s at 8)."""


@dataclass
class PollResult:
    feed_id: str
    status: str                      # ok | not_modified | unchanged | error | gone
    entries: int = 0
    new_articles: int = 0
    hits: int = 0
    alerts: int = 0
    error: str | None = None
    updated: int = 0
    hub_changed: bool = False         # the feed advertises a new WebSub hub
    alert_ids: list[str] = field(default_factory=list)


def poll_delay(policy: FeedPolicy, freshness: timedelta | None = None,
               ttl: timedelta | None = None) -> timedelta:
    """Time to the next poll after a success: the feed's interval, raised by what the server
    says about freshness (``Cache-Control``/``Expires``) or the feed's ``<ttl>``, never
    beyond max_interval."""
    wanted = max([policy.interval, *(d for d in (freshness, ttl) if d is not None)])
    return min(policy.max_interval, wanted)


def failure_delay(policy: FeedPolicy, failures: int, retry_after: float | None,
                  rng: Callable[[], float] = random.random) -> timedelta:
    """Back off exponentially from the feed's interval, with jitter, up to max_interval.

    ``Retry-After`` (429/503) replaces the backoff: not before it, not after max_interval.
    """
    if retry_after is not None:
        return min(policy.max_interval, max(timedelta(seconds=retry_after), policy.interval))
    base = policy.interval.total_seconds() * 2 ** max(0, failures - 1)
    capped = min(base, policy.max_interval.total_seconds())
    return timedelta(seconds=capped * (0.75 + 0.25 * rng()))


def adaptive_interval(policy: FeedPolicy, entries_per_day: float | None) -> timedelta:
    """Poll about twice per expected new entry, within min_interval..max_interval.

    Feeds with an interval of their own in the config keep it; so do feeds with no
    publishing history yet."""
    if policy.fixed or not entries_per_day:
        return policy.interval
    wanted = timedelta(days=1) / (2 * entries_per_day)
    return max(policy.min_interval, min(policy.max_interval, wanted))


def publishing_rate(previous: float | None, new_entries: int, since: datetime | None,
                    now: datetime) -> float | None:
    """Entries per day, a moving average over polls (the first poll's backlog is no rate)."""
    if since is None:
        return previous
    days = (now - since).total_seconds() / 86400
    if days <= 0:
        return previous
    observed = new_entries / max(days, 1 / 1440)
    return observed if previous is None else 0.3 * observed + 0.7 * previous


@dataclass(frozen=True)
class Prepared:
    """One entry ready to store: matched, its identity across feeds worked out."""

    entry: Entry
    hits: list[RuleHit]
    entities: dict[str, list[str]]
    content_hash: str
    canonical_url: str | None
    signature: bytes
    stored: queries.StoredEntry | None = None     # set for an updated entry
    fulltext_error: str | None = None


def with_languages(entries: list[tuple[Entry, queries.StoredEntry | None]],
                   detect: Callable[[list[str]], list[str | None]] = detect_languages
                   ) -> list[tuple[Entry, queries.StoredEntry | None]]:
    """The entries, each with a language: detected (in one batch) where neither the entry nor
    its feed says (``languages:`` rules need it before matching)."""
    unknown = [i for i, (e, _) in enumerate(entries) if not e.lang]
    if not unknown:
        return entries
    entries = list(entries)
    found = detect([language_text(entries[i][0]) for i in unknown])
    for i, code in zip(unknown, found, strict=True):
        entry, stored = entries[i]
        entries[i] = (dataclasses.replace(entry, lang=code), stored)
    return entries


def prepare(ruleset: RuleSet, entries: list[tuple[Entry, queries.StoredEntry | None]],
            identities: list[Identity], feed: queries.FeedState, ner: Callable[[], Ner | None],
            errors: dict[str, str], too_old: datetime | None = None,
            hits: list[list[RuleHit]] | None = None) -> list[Prepared]:
    """The rules' part of a poll, off the event loop: matching (unless a parse worker has
    given the ``hits``) and NER. Languages are known (``with_languages``), and ``identify``
    - hashes, story signature - has run in a parse worker.

    NER runs only where needed: for `verify: ner` entities, and on articles that hit. Its
    entities only go into alerts, so with ``too_old`` (the poll's ``now - max_article_age``)
    it is skipped for hits that cannot alert: articles published before it, and hits of rules
    that notify nobody.
    """
    def doc(i: int) -> Document:
        return document(entries[i][0], feed.id, feed.name, feed.url)

    model = ner() if ruleset.verify_ner else None
    results = hits if hits is not None else [
        ruleset.matcher.match(d, verify=model.verifier(d) if model else None)
        for d in map(doc, range(len(entries)))]
    entities: list[dict[str, list[str]]] = [{} for _ in entries]
    with_hits = [i for i, found in enumerate(results) if found and (
        too_old is None or _may_alert(ruleset, entries[i][0], found, too_old))]
    if with_hits and (model := model or ner()) is not None:
        for i, found in zip(with_hits, model.entities([doc(i) for i in with_hits]), strict=True):
            entities[i] = found
    return [Prepared(entry=entry, hits=found_hits, entities=found, content_hash=ident.content_hash,
                     canonical_url=ident.canonical_url, signature=ident.signature,
                     stored=stored, fulltext_error=errors.get(entry.key))
            for (entry, stored), ident, found_hits, found
            in zip(entries, identities, results, entities, strict=True)]


def _may_alert(ruleset: RuleSet, entry: Entry, hits: list[RuleHit], too_old: datetime) -> bool:
    """Whether a hit of this entry can become an alert (as ``write_hit`` decides it)."""
    if entry.published_at is not None and entry.published_at < too_old:
        return False
    return any((rule := ruleset.rules.get(hit.rule_id)) is not None and rule.notify
               for hit in hits)


def new_and_updated(entries: list[Entry], stored: dict[str, queries.StoredEntry]
                    ) -> list[tuple[Entry, queries.StoredEntry | None]]:
    """Entries never seen, and seen ones whose content changed (first occurrence wins)."""
    seen: set[str] = set()
    out: list[tuple[Entry, queries.StoredEntry | None]] = []
    for entry in entries:
        if entry.key in seen:
            continue
        seen.add(entry.key)
        known = stored.get(entry.key)
        if known is None:
            out.append((entry, None))
        elif known.content_hash is not None and known.content_hash != dedup.content_hash(
                entry.title, entry.summary, entry.body):
            out.append((entry, known))
    return out


class ParsePool:
    """``parse_feed`` in worker processes, so feedparser's pure-Python parsing uses every core
    instead of holding the daemon's GIL (and starving the event loop's fetches).

    They also ``identify`` the new entries of a poll (hashes, canonical URL, story signature)
    and match them against the rules (``monitor.ingest.matching``: pure CPU work on entries
    they have just parsed; languages are detected in the language process first). A feed's
    first poll, whose entries are all new, is parsed, identified and matched in one call when
    the feed gives every entry's language (``parse_and_match``).

    Workers are spawned fresh (never forked from the threaded daemon) by ``start`` (the
    daemon's, before it polls) or on first use, and import only the parser, the matcher and
    the pure text code (feedparser, ``monitor.ingest.parse``/
    ``identity``/``dedup``/``matching``, ``monitor.match``, the standard library, numpy) - no
    SQLAlchemy, no language or NER model. A worker that dies breaks the pool: the parse that saw
    it runs in a thread instead and the next one starts a new pool. As with any ``spawn``
    start, a program embedding the daemon must guard its entry point with
    ``if __name__ == "__main__":`` (``pressmon`` and ``python -m monitor`` do).
    """

    def __init__(self, workers: int | None = None) -> None:
        self.pool = SpawnedPool(workers or default_parse_workers(), start_parse_worker)
        self.workers = self.pool.workers

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` in a worker; in a thread while closing or when a worker died."""
        executor = self.pool.get()
        if executor is None:   # closing: finish what is in flight without new workers
            return await asyncio.to_thread(fn, *args)
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        except BrokenProcessPool:
            log.warning("a feed parsing worker died; starting new ones")
            self.pool.discard(executor)
            return await asyncio.to_thread(fn, *args)

    def start(self, rules: Shipped | None) -> list[Future[object]]:
        """Start the workers now, without waiting (the futures are done once they are ready),
        and have them compile ``rules``: what a daemon does as it starts, so that its first
        bodies do not wait for them."""
        return self.pool.start() if rules is None else self.pool.start(load_rules, rules)

    def shutdown(self) -> None:
        """Stop the workers (waits for them to exit); later parses run in a thread."""
        self.pool.shutdown()


def default_parse_workers() -> int:
    """One worker per core, at most 4: parsing is the biggest CPU cost of a first poll."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


class Poller:
    def __init__(self, db: Database, fetcher: Fetcher, rules: Callable[[], RuleSet],
                 policy: Callable[[str], FeedPolicy], *,
                 ner: Callable[[], Ner | None] = lambda: None,
                 detect: Callable[[list[str]], list[str | None]] = detect_languages,
                 fulltext: FulltextFetcher | None = None,
                 metrics: Metrics | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 parse_pool: ParsePool | None = None) -> None:
        self._parse_pool = parse_pool
        self._ner = ner
        self._detect = detect
        self._db = db
        self._fetcher = fetcher
        self._rules = rules
        self._policy = policy
        self._fulltext = fulltext or FulltextFetcher(fetcher)
        self._metrics = metrics
        self._clock = clock
        # Fetched bodies wait here for the CPU and the database (parse, match, store): only a
        # few feeds are in those stages at once, so a first poll of thousands of feeds holds
        # thousands of raw bodies at most, never thousands of parsed ones.
        workers = parse_pool.workers if parse_pool is not None else 1
        self._stage = asyncio.Semaphore(PROCESSING_PER_WORKER * workers)
        # Polls with nothing new are recorded together, a transaction for many feeds.
        self._quiet = WriteBatch(db, queries.record_quiet_polls)

    async def poll(self, feed: queries.FeedState) -> PollResult:
        policy = self._policy(feed.id)
        started = time.monotonic()
        try:
            result = await self._fetcher.fetch(
                feed.url, Validators(etag=feed.etag, last_modified=feed.last_modified))
        except FetchError as exc:
            self._observe(started, "gone" if exc.status == 410 else "error")
            return await self._fail(feed, policy, str(exc), exc.retry_after,
                                    http_status=exc.status)
        now = self._clock()
        if result.permanent_redirect and result.permanent_redirect != feed.url:
            await self._db.run(queries.record_moved, feed.id, result.permanent_redirect)
            log.info("feed %s: moved permanently to %s", feed.id, result.permanent_redirect)
            feed = dataclasses.replace(feed, url=result.permanent_redirect)
        interval = self._interval(feed, policy)
        if result.not_modified or result.body_hash == feed.body_hash:
            status = "not_modified" if result.not_modified else "unchanged"
            self._observe(started, status)
            next_poll = now + poll_delay(dataclasses.replace(policy, interval=interval),
                                         result.freshness)
            # A 304 keeps what we sent; the same body again may come with new validators.
            etag, last_modified, body_hash = (
                (feed.etag, feed.last_modified, feed.body_hash) if result.not_modified
                else (result.validators.etag, result.validators.last_modified, result.body_hash))
            await self._quiet.add(queries.QuietPoll(
                feed.id, feed.lease_owner, now, next_poll, status, etag, last_modified, body_hash,
                publishing_rate(feed.entries_per_day, 0, feed.last_success_at, now),
                int(interval.total_seconds())))
            log.debug("feed %s: %s", feed.id, status)
            return PollResult(feed.id, status)
        async with self._stage:
            early: tuple[Shipped, Early] | None = None
            rules = self._rules().shipped
            try:
                if (feed.last_success_at is None and rules is not None
                        and self._parse_pool is not None and not policy.fulltext):
                    # A first poll: its entries are new, so match them with the parse.
                    parsed, found = await self._off_loop(
                        parse_and_match, rules, result.content, result.headers_for_parser,
                        feed.id, feed.name, feed.url)
                    early = (rules, found) if found is not None else None
                else:
                    parsed = await self._off_loop(parse_feed, result.content,
                                                  result.headers_for_parser)
            except ParseError as exc:
                self._observe(started, "error")
                return await self._fail(feed, policy, str(exc), None)
            self._observe(started, "ok")
            return await self._ingest(feed, policy, parsed, now, result=result,
                                      interval=interval, early=early)

    async def push(self, feed_id: str, content: bytes, content_type: str | None) -> PollResult | None:
        """Entries pushed by a WebSub hub: the same pipeline as a poll, minus the fetch."""
        feed = await self._db.run(queries.feed_state, feed_id)
        if feed is None:
            return None
        async with self._stage:
            try:
                parsed = await self._off_loop(
                    parse_feed, content, {"content-type": content_type} if content_type else None)
            except ParseError as exc:
                log.warning("feed %s: WebSub push ignored: %s", feed_id, exc)
                return PollResult(feed_id, "error", error=str(exc))
            return await self._ingest(feed, self._policy(feed_id), parsed, self._clock(),
                                      result=None, interval=None)

    async def _off_loop(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` in a parse worker, or in a thread without a pool."""
        if self._parse_pool is not None:
            return await self._parse_pool.run(fn, *args)
        return await asyncio.to_thread(fn, *args)

    def _observe(self, started: float, status: str) -> None:
        if self._metrics is not None:
            self._metrics.fetches.labels(status).inc()
            self._metrics.fetch_seconds.observe(time.monotonic() - started)

    def _interval(self, feed: queries.FeedState, policy: FeedPolicy) -> timedelta:
        interval = adaptive_interval(policy, feed.entries_per_day)
        if feed.websub_active:
            # Push delivers; polling stays on as a slow fallback.
            interval = max(interval, min(policy.max_interval, WEBSUB_FALLBACK))
        return interval

    async def _ingest(self, feed: queries.FeedState, policy: FeedPolicy, parsed: ParsedFeed,
                      now: datetime, *, result: FetchResult | None,
                      interval: timedelta | None,
                      early: tuple[Shipped, Early] | None = None) -> PollResult:
        # A feed's first poll has nothing stored to look up. (Should an entry be stored all
        # the same - pushed by a WebSub hub before any poll - it is not stored, matched into
        # hits or alerted again: ``insert_articles`` keeps the row it has.)
        first_poll = result is not None and feed.last_success_at is None
        stored = {} if first_poll else await self._db.run(
            queries.stored_entries, feed.id, [e.key for e in parsed.entries])
        todo = new_and_updated(parsed.entries, stored)
        errors: dict[str, str] = {}
        if policy.fulltext and todo:
            todo = await self._with_fulltext(feed, policy, todo, now, errors)
        ruleset = self._rules()
        prepared = []
        if todo:
            if not all(entry.lang for entry, _ in todo):
                todo = await asyncio.to_thread(with_languages, todo, self._detect)
            new_entries = [entry for entry, _ in todo]
            hits = None
            # Matched with the parse: used when the rules are the same and the entries are as
            # parsed (no full text or detected language put in since).
            at = {id(entry): i for i, entry in enumerate(parsed.entries)} if early else {}
            if early is not None and early[0] == ruleset.shipped and all(
                    id(entry) in at for entry in new_entries):
                found_identities, found_hits = early[1]
                identities = [found_identities[at[id(entry)]] for entry in new_entries]
                hits = [found_hits[at[id(entry)]] for entry in new_entries]
            elif ruleset.shipped is not None and self._parse_pool is not None:
                identities, hits = await self._off_loop(
                    identify_and_match, ruleset.shipped, new_entries, feed.id, feed.name,
                    feed.url)
            else:
                identities = await self._off_loop(identify, new_entries)
            args = (ruleset, todo, identities, feed, self._ner, errors,
                    now - policy.max_article_age, hits)
            if hits is not None and not any(hits) and not ruleset.verify_ner:
                prepared = prepare(*args)   # no matching or NER to wait for: no thread hop
            else:
                prepared = await asyncio.to_thread(prepare, *args)
        next_poll = None
        if result is not None and interval is not None:
            next_poll = now + poll_delay(dataclasses.replace(policy, interval=interval),
                                         result.freshness, ttl=parsed.ttl)
        outcome = await self._db.run(self._store, feed, prepared, ruleset, policy, now,
                                     result, next_poll, parsed, interval)
        outcome.entries = len(parsed.entries)
        if self._metrics is not None:
            self._metrics.articles.inc(outcome.new_articles)
        if outcome.new_articles or outcome.updated:
            log.info("feed %s: %d new and %d updated of %d entries%s, %d hits, %d alerts",
                     feed.id, outcome.new_articles, outcome.updated, outcome.entries,
                     " (pushed)" if result is None else "", outcome.hits, outcome.alerts)
        return outcome

    async def _with_fulltext(self, feed: queries.FeedState, policy: FeedPolicy,
                             todo: list[tuple[Entry, queries.StoredEntry | None]], now: datetime,
                             errors: dict[str, str]
                             ) -> list[tuple[Entry, queries.StoredEntry | None]]:
        """Fetch the page of every new, fresh entry and put its main text into the body."""
        too_old = now - policy.max_article_age

        async def one(entry: Entry) -> Entry:
            if not entry.url or (entry.published_at is not None and entry.published_at < too_old):
                return entry
            try:
                text = await self._fulltext.text(entry.url)
            except FulltextError as exc:
                errors[entry.key] = str(exc)
                log.info("feed %s: full text of %s: %s (keeping the summary)", feed.id,
                         entry.url, exc)
                return entry
            return dataclasses.replace(entry, body=text)

        fetched = iter(await asyncio.gather(*(one(e) for e, known in todo if known is None)))
        return [(next(fetched) if known is None else entry, known) for entry, known in todo]

    def _store(self, session: Session, feed: queries.FeedState, prepared: list[Prepared],
               ruleset: RuleSet, policy: FeedPolicy, now: datetime, result: FetchResult | None,
               next_poll: datetime | None, parsed: ParsedFeed,
               interval: timedelta | None) -> PollResult:
        """One transaction: articles and stories, hits, alerts and their outbox rows, and
        the feed's state — a crash leaves all of it or none."""
        outcome = PollResult(feed.id, "ok")
        too_old = now - policy.max_article_age
        new = [item for item in prepared if item.stored is None]
        story_ids = queries.assign_stories(
            session, feed_id=feed.id, now=now, threshold=dedup.NEAR_DUPLICATE,
            index=self._db.stories,
            keys=[queries.StoryKey(i.entry.title, i.canonical_url, i.signature) for i in new])
        stories = dict(zip((i.entry.key for i in new), story_ids, strict=True))
        inserted = queries.insert_articles(session, feed.id, [
            queries.NewArticle(i.entry, i.canonical_url, i.content_hash, stories[i.entry.key],
                               i.fulltext_error) for i in new], now)
        for item in prepared:
            entry = item.entry
            story_id: int | None
            if item.stored is not None:
                queries.update_article(session, item.stored.article_id, entry, item.content_hash,
                                       now)
                article_id, story_id = item.stored.article_id, item.stored.story_id
                outcome.updated += 1
            elif entry.key in inserted:
                article_id, story_id = inserted[entry.key], stories[entry.key]
                outcome.new_articles += 1
            else:
                continue  # stored meanwhile by another poll: it was matched there
            fresh = entry.published_at is None or entry.published_at >= too_old
            for hit in item.hits:
                self._hit(session, outcome, ruleset, feed, item, hit, article_id, story_id,
                          fresh, now)
        if result is not None and next_poll is not None:
            if not queries.record_success(
                session, feed.id, now, next_poll, status="ok", etag=result.validators.etag,
                last_modified=result.validators.last_modified, body_hash=result.body_hash,
                new_entries=outcome.new_articles,
                entries_per_day=publishing_rate(feed.entries_per_day, outcome.new_articles,
                                                feed.last_success_at, now),
                interval_s=int(interval.total_seconds()) if interval else None,
                owner=feed.lease_owner):
                log.warning("feed %s: this poll outlived its lease; another process polls the "
                            "feed now (raise poll.lease above poll.timeout)", feed.id)
            if feed.websub_active and outcome.new_articles:
                # Polling found what push should have brought: stop trusting push here.
                queries.mark_push_unreliable(session, feed.id)
                log.warning("feed %s: polling found %d entries WebSub did not push; "
                            "back to normal polling", feed.id, outcome.new_articles)
        elif outcome.new_articles:
            queries.record_pushed(session, feed.id, now)
        if parsed.hub:
            outcome.hub_changed = queries.record_hub(session, feed.id, parsed.hub,
                                                     parsed.self_url or feed.url)
        return outcome

    def _hit(self, session: Session, outcome: PollResult, ruleset: RuleSet,
             feed: queries.FeedState, item: Prepared, hit: RuleHit, article_id: int,
             story_id: int | None, fresh: bool, now: datetime) -> None:
        rule = ruleset.rules.get(hit.rule_id)
        if rule is None:
            return
        entry = item.entry
        article = ArticleRef(article_id, feed.id, feed.name, entry.title, entry.url,
                             entry.published_at, entry.author, entry.summary, story_id)
        new, alert_id = write_hit(session, rule=rule, hit=hit, article=article,
                                  entities=item.entities, alert=fresh,
                                  digest_channels=ruleset.digest_channels, now=now)
        if not new:
            return
        outcome.hits += 1
        if self._metrics is not None:
            self._metrics.hits.labels(rule.id).inc()
        if alert_id is not None:
            outcome.alerts += 1
            outcome.alert_ids.append(alert_id)

    async def crashed(self, feed: queries.FeedState, exc: BaseException) -> PollResult:
        """A poll that failed inside pressmon (a dropped database connection, a bug): record
        it as a failure with the usual backoff, so it shows in ``pressmon feeds`` and in
        health checks and its lease ends - unless the database is what failed, in which
        case the lease lapses and the feed is polled again then."""
        error = f"internal error: {first_line(exc)}"[:500]
        try:
            return await self._fail(feed, self._policy(feed.id), error, None)
        except Exception as again:  # noqa: BLE001 - nothing more to do here
            log.warning("feed %s: could not record the crash (%s); it is polled again when "
                        "its lease lapses", feed.id, type(again).__name__)
            return PollResult(feed.id, "error", error=error)

    async def _fail(self, feed: queries.FeedState, policy: FeedPolicy, error: str,
                    retry_after: float | None, *, http_status: int | None = None) -> PollResult:
        now = self._clock()
        if http_status == 410:
            # Gone: recorded as such and polled slowly, never silently disabled.
            status, delay = "gone", policy.max_interval
        else:
            status = "error"
            delay = failure_delay(policy, feed.consecutive_failures + 1, retry_after)
        failures = await self._db.run(queries.record_failure, feed.id, now, now + delay, error,
                                      status=status, owner=feed.lease_owner)
        log.warning("feed %s: %s (failure %d, next try in %ds)", feed.id, error, failures,
                    int(delay.total_seconds()))
        return PollResult(feed.id, status, error=error)
