"""``pressmon backfill``: run rules over stored articles; store the new hits and, with
``--alert``, send their alerts — after saying how many that would be."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.config import Rule, Settings
from monitor.ingest.matching import document
from monitor.match import Matcher, RuleHit
from monitor.service.hits import ArticleRef, write_hit
from monitor.store import queries
from monitor.store.db import Database
from monitor.store.models import Hit

Progress = Callable[[int, int], None]


@dataclass
class Plan:
    articles: int = 0
    matched: int = 0                                   # hits found, old and new
    new: list[tuple[ArticleRef, RuleHit]] = field(default_factory=list)
    alerts_by_channel: Counter[str] = field(default_factory=Counter)


def _known(session: Session, rule_ids: list[str]) -> tuple[set[tuple[str, int]], set[tuple[str, int]]]:
    rows = session.execute(select(Hit.rule_id, Hit.article_id, Hit.story_id)
                           .where(Hit.rule_id.in_(rule_ids)))
    by_article, by_story = set(), set()
    for rule_id, article_id, story_id in rows:
        by_article.add((rule_id, article_id))
        if story_id is not None:
            by_story.add((rule_id, story_id))
    return by_article, by_story


def plan(db: Database, settings: Settings, *, rules: list[Rule], since: datetime,
         progress: Progress = lambda _done, _total: None) -> Plan:
    """Match every stored article since ``since``; nothing is written."""
    matcher = Matcher([r.spec() for r in rules], settings.entities)
    rows = db.call(queries.archive_articles, since)
    by_article, by_story = db.call(_known, [r.id for r in rules])
    by_id = {r.id: r for r in rules}
    result = Plan(articles=len(rows))
    seen_story: set[tuple[str, int]] = set()
    for done, (article, feed_name) in enumerate(rows, 1):
        for hit in matcher.match(document(article, article.feed_id, feed_name)):
            result.matched += 1
            story_key = (hit.rule_id, article.story_id) if article.story_id else None
            if (hit.rule_id, article.id) in by_article or story_key in by_story or \
                    story_key in seen_story:
                continue
            if story_key:
                seen_story.add(story_key)
            ref = ArticleRef(article.id, article.feed_id, feed_name, article.title, article.url,
                             article.published_at, article.author, article.summary,
                             article.story_id)
            result.new.append((ref, hit))
            for channel in by_id[hit.rule_id].notify:
                result.alerts_by_channel[channel] += 1
        if done % 200 == 0 or done == len(rows):
            progress(done, len(rows))
    return result


def apply(db: Database, settings: Settings, result: Plan, *, alert: bool, now: datetime
          ) -> tuple[int, int]:
    """Write the planned hits (and alerts); returns (hits written, alerts written)."""
    rules = {r.id: r for r in settings.rules}
    digest_channels = frozenset(n for n, c in settings.channels.items() if c.digest is not None)

    def write(session: Session) -> tuple[int, int]:
        hits = alerts = 0
        for ref, hit in result.new:
            rule = rules.get(hit.rule_id)
            if rule is None:
                continue
            new, alert_id = write_hit(session, rule=rule, hit=hit, article=ref, entities={},
                                      alert=alert, digest_channels=digest_channels, now=now)
            hits += int(new)
            alerts += int(alert_id is not None)
        return hits, alerts

    return db.call(write)
