"""What one poll of one feed means: fetch → parse → dedup → match → store (+ outbox).

This is the one place that decides how a feed's state changes after a poll.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from monitor.config import Rule, Settings
from monitor.ingest.fetch import Fetcher, FetchError, FetchResult, Validators
from monitor.ingest.parse import Entry, ParseError, parse_feed
from monitor.match import Document, Matcher, RuleHit
from monitor.nlp import Ner
from monitor.notify import policy as alert_policy
from monitor.notify.payload import hit_payload
from monitor.store import queries
from monitor.store.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuleSet:
    """The rules in force; swapped whole on reload so a poll never sees half of a change."""

    matcher: Matcher
    rules: dict[str, Rule]
    verify_ner: bool = False                      # some entity asks for `verify: ner`
    digest_channels: frozenset[str] = frozenset()  # channels that gather alerts into digests

    @classmethod
    def build(cls, settings: Settings) -> RuleSet:
        return cls(settings.matcher(), {r.id: r for r in settings.rules},
                   any(e.verify == "ner" for e in settings.entities.values()),
                   frozenset(n for n, c in settings.channels.items() if c.digest is not None))


@dataclass(frozen=True)
class FeedPolicy:
    interval: timedelta
    max_interval: timedelta
    max_article_age: timedelta


@dataclass
class PollResult:
    feed_id: str
    status: str                      # ok | not_modified | unchanged | error
    entries: int = 0
    new_articles: int = 0
    hits: int = 0
    alerts: int = 0
    error: str | None = None
    alert_ids: list[str] = field(default_factory=list)


def failure_delay(policy: FeedPolicy, failures: int, retry_after: float | None,
                  rng: Callable[[], float] = random.random) -> timedelta:
    """Back off exponentially from the feed's interval, with jitter, up to max_interval."""
    if retry_after is not None:
        return min(policy.max_interval, max(timedelta(seconds=retry_after), policy.interval))
    base = policy.interval.total_seconds() * 2 ** max(0, failures - 1)
    capped = min(base, policy.max_interval.total_seconds())
    return timedelta(seconds=capped * (0.75 + 0.25 * rng()))


def document(entry: Entry, feed_id: str, feed_name: str | None, feed_url: str) -> Document:
    domain = urlsplit(entry.url or feed_url).hostname or ""
    source = " ".join(p for p in (feed_id, feed_name or "", domain) if p)
    return Document(title=entry.title, summary=entry.summary, body=entry.body,
                    author=entry.author or "", source=source, url=entry.url or "",
                    lang=entry.lang, feed_id=feed_id)


def _unique_new(entries: list[Entry], stored: set[str]) -> list[Entry]:
    seen = set(stored)
    fresh = []
    for entry in entries:
        if entry.key not in seen:
            seen.add(entry.key)
            fresh.append(entry)
    return fresh


@dataclass(frozen=True)
class Matched:
    entry: Entry
    hits: list[RuleHit]
    entities: dict[str, list[str]]


def match_entries(ruleset: RuleSet, entries: list[Entry], feed: queries.FeedState,
                  ner: Callable[[], Ner | None]) -> list[Matched]:
    """Match new entries; NER runs only where needed: `verify: ner` entities, and hits."""
    docs = [document(e, feed.id, feed.name, feed.url) for e in entries]
    model = ner() if ruleset.verify_ner else None
    results = [ruleset.matcher.match(doc, verify=model.verifier(doc) if model else None)
               for doc in docs]
    entities: list[dict[str, list[str]]] = [{} for _ in docs]
    with_hits = [i for i, hits in enumerate(results) if hits]
    if with_hits and (model := model or ner()) is not None:
        for i, found in zip(with_hits, model.entities([docs[i] for i in with_hits]), strict=True):
            entities[i] = found
    return [Matched(e, h, x) for e, h, x in zip(entries, results, entities, strict=True)]


class Poller:
    def __init__(self, db: Database, fetcher: Fetcher, rules: Callable[[], RuleSet],
                 policy: Callable[[str], FeedPolicy], *,
                 ner: Callable[[], Ner | None] = lambda: None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._ner = ner
        self._db = db
        self._fetcher = fetcher
        self._rules = rules
        self._policy = policy
        self._clock = clock

    async def poll(self, feed: queries.FeedState) -> PollResult:
        policy = self._policy(feed.id)
        try:
            result = await self._fetcher.fetch(
                feed.url, Validators(etag=feed.etag, last_modified=feed.last_modified))
        except FetchError as exc:
            return await self._fail(feed, policy, str(exc), exc.retry_after)
        now = self._clock()
        next_poll = now + policy.interval
        if result.not_modified or result.body_hash == feed.body_hash:
            status = "not_modified" if result.not_modified else "unchanged"
            await self._db.run(queries.record_success, feed.id, now, next_poll, status=status,
                               etag=result.validators.etag,
                               last_modified=result.validators.last_modified,
                               body_hash=result.body_hash)
            log.debug("feed %s: %s", feed.id, status)
            return PollResult(feed.id, status)
        try:
            parsed = await asyncio.to_thread(parse_feed, result.content, result.headers_for_parser)
        except ParseError as exc:
            return await self._fail(feed, policy, str(exc), None)
        stored = await self._db.run(queries.stored_entry_keys, feed.id,
                                    [e.key for e in parsed.entries])
        fresh = _unique_new(parsed.entries, stored)
        ruleset = self._rules()
        matched = (await asyncio.to_thread(match_entries, ruleset, fresh, feed, self._ner)
                   if fresh else [])
        outcome = await self._db.run(self._store, feed, matched, ruleset, policy, result, now,
                                     next_poll)
        outcome.entries = len(parsed.entries)
        if outcome.new_articles:
            log.info("feed %s: %d new of %d entries, %d hits, %d alerts", feed.id,
                     outcome.new_articles, outcome.entries, outcome.hits, outcome.alerts)
        return outcome

    def _store(self, session: Session, feed: queries.FeedState,
               matched: list[Matched], ruleset: RuleSet, policy: FeedPolicy,
               result: FetchResult, now: datetime, next_poll: datetime) -> PollResult:
        """One transaction: articles, hits, alerts and their outbox rows, and the feed's state."""
        outcome = PollResult(feed.id, "ok")
        too_old = now - policy.max_article_age
        for item in matched:
            entry = item.entry
            article_id = queries.insert_article(session, feed.id, entry, now)
            if article_id is None:
                continue  # stored meanwhile by another poll: it was matched there
            outcome.new_articles += 1
            fresh = entry.published_at is None or entry.published_at >= too_old
            for hit in item.hits:
                rule = ruleset.rules.get(hit.rule_id)
                if rule is None:
                    continue
                alert = fresh and bool(rule.notify)
                hit_id = queries.insert_hit(
                    session, rule_id=hit.rule_id, article_id=article_id,
                    matches=[{"term": m.term, "text": m.text, "field": m.field, "start": m.start,
                              "end": m.end} for m in hit.matches],
                    snippet=hit.snippet, score=hit.score, alerted=alert, now=now)
                if hit_id is None:
                    continue
                outcome.hits += 1
                if not alert:
                    continue
                throttled = False
                if rule.config.throttle is not None:
                    limit, period = rule.config.throttle
                    since = alert_policy.window_start(now, period)
                    throttled = queries.count_rule_alerts(session, rule.id, since) >= limit
                channels = {c: alert_policy.initial_status(throttled=throttled,
                                                           digest=c in ruleset.digest_channels,
                                                           priority=rule.config.priority)
                            for c in rule.notify}
                alert_id = str(uuid.uuid4())
                payload = hit_payload(
                    alert_id=alert_id, rule_id=rule.id, rule_name=rule.name,
                    priority=rule.config.priority, article_id=article_id, title=entry.title,
                    url=entry.url, feed_id=feed.id, feed_name=feed.name,
                    published_at=entry.published_at, author=entry.author,
                    summary=entry.summary, hit=hit, entities=item.entities, detected_at=now)
                queries.insert_alert(session, alert_id=alert_id, kind="hit", payload=payload,
                                     channels=channels, now=now, hit_id=hit_id,
                                     rule_id=rule.id, throttled=throttled)
                outcome.alerts += 1
                outcome.alert_ids.append(alert_id)
        queries.record_success(session, feed.id, now, next_poll, status="ok",
                               etag=result.validators.etag,
                               last_modified=result.validators.last_modified,
                               body_hash=result.body_hash, new_entries=outcome.new_articles)
        return outcome

    async def _fail(self, feed: queries.FeedState, policy: FeedPolicy, error: str,
                    retry_after: float | None) -> PollResult:
        now = self._clock()
        delay = failure_delay(policy, feed.consecutive_failures + 1, retry_after)
        failures = await self._db.run(queries.record_failure, feed.id, now, now + delay, error)
        log.warning("feed %s: %s (failure %d, next try in %ds)", feed.id, error, failures,
                    int(delay.total_seconds()))
        return PollResult(feed.id, "error", error=error)
