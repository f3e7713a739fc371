"""Writing one hit and, when it alerts, its alert and outbox rows: shared by polls, pushes
and backfills so that a hit means the same thing whichever way it was found."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from monitor.config import Rule
from monitor.match import RuleHit
from monitor.notify import policy as alert_policy
from monitor.notify.payload import hit_payload
from monitor.store import queries


@dataclass(frozen=True)
class ArticleRef:
    """What an alert says about the article a hit is on."""

    id: int
    feed_id: str
    feed_name: str | None
    title: str
    url: str | None
    published_at: datetime | None
    author: str | None
    summary: str
    story_id: int | None = None


def write_hit(session: Session, *, rule: Rule, hit: RuleHit, article: ArticleRef,
              entities: dict[str, list[str]], alert: bool, digest_channels: frozenset[str],
              now: datetime) -> tuple[bool, str | None]:
    """Store the hit once per (rule, article) and (rule, story); with ``alert``, also the
    alert (throttled or held for a digest as the rule and channels say).

    Returns (whether the hit was new, the alert id if one was written).
    """
    alert = alert and bool(rule.notify)
    hit_id = queries.insert_hit(
        session, rule_id=hit.rule_id, article_id=article.id, story_id=article.story_id,
        matches=[{"term": m.term, "text": m.text, "field": m.field, "start": m.start,
                  "end": m.end} for m in hit.matches],
        snippet=hit.snippet, score=hit.score, alerted=alert, now=now)
    if hit_id is None:
        return False, None   # this rule already hit this article or another copy of the story
    if not alert:
        return True, None
    throttled = False
    if rule.config.throttle is not None:
        limit, period = rule.config.throttle
        since = alert_policy.window_start(now, period)
        throttled = queries.count_rule_alerts(session, rule.id, since) >= limit
    channels = {c: alert_policy.initial_status(throttled=throttled, digest=c in digest_channels,
                                               priority=rule.config.priority)
                for c in rule.notify}
    alert_id = str(uuid.uuid4())
    also_in = (queries.story_copies(session, article.story_id, article.id)
               if article.story_id else [])
    payload = hit_payload(
        alert_id=alert_id, rule_id=rule.id, rule_name=rule.name, priority=rule.config.priority,
        article_id=article.id, title=article.title, url=article.url, feed_id=article.feed_id,
        feed_name=article.feed_name, published_at=article.published_at, author=article.author,
        summary=article.summary, hit=hit, entities=entities, detected_at=now,
        story_id=article.story_id, also_in=also_in)
    queries.insert_alert(session, alert_id=alert_id, kind="hit", payload=payload,
                         channels=channels, now=now, hit_id=hit_id, rule_id=rule.id,
                         throttled=throttled)
    return True, alert_id
