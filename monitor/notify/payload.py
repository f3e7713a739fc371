"""The JSON documents alerts carry (SPEC §6). Pure: no I/O, no clock."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from monitor.match import RuleHit

VERSION = 1


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def hit_payload(*, alert_id: str, rule_id: str, rule_name: str, priority: str,
                article_id: int, title: str, url: str | None, feed_id: str,
                feed_name: str | None, published_at: datetime | None, author: str | None,
                summary: str, hit: RuleHit, entities: dict[str, list[str]],
                detected_at: datetime, story_id: int | None = None,
                also_in: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "type": "hit",
        "version": VERSION,
        "id": alert_id,
        "rule": {"id": rule_id, "name": rule_name, "priority": priority},
        "article": {
            "id": article_id,
            "title": title,
            "url": url,
            "source": {"id": feed_id, "name": feed_name or feed_id},
            "published_at": iso(published_at),
            "author": author,
            "summary": summary,
        },
        "matches": [asdict(m) for m in hit.matches],
        "snippet": hit.snippet,
        "score": hit.score,
        "entities": entities,
        "story": {"id": f"story-{story_id}" if story_id else f"article-{article_id}",
                  "also_in": also_in or []},
        "detected_at": iso(detected_at),
    }


def digest_payload(*, alert_id: str, channel: str, start: datetime, end: datetime,
                   hits: list[dict[str, Any]]) -> dict[str, Any]:
    """Many hit alerts gathered for one channel and period (hits keep their own ids)."""
    return {
        "type": "digest",
        "version": VERSION,
        "id": alert_id,
        "channel": channel,
        "period": {"start": iso(start), "end": iso(end)},
        "hits": hits,
    }


def throttle_payload(*, alert_id: str, rule: dict[str, Any], start: datetime, end: datetime,
                     hits: list[dict[str, Any]]) -> dict[str, Any]:
    """The hits a rule's throttle held back, folded into one summary, never dropped."""
    return {
        "type": "throttle",
        "version": VERSION,
        "id": alert_id,
        "rule": rule,
        "period": {"start": iso(start), "end": iso(end)},
        "count": len(hits),
        "hits": hits,
    }
