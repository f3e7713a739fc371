"""Feed health: a feed failing or silent for too long raises one alert per incident,
and a recovery message when the incident ends."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.notify import policy
from monitor.notify.payload import iso
from monitor.store import queries
from monitor.store.models import Feed

log = logging.getLogger(__name__)

FAILING, SILENT, RECOVERED = "failing", "silent", "recovered"
_FAILED_STATUSES = {"error", "gone"}
_POLLED_STATUSES = {"ok", "not_modified", "unchanged"}


def assess(feed: Feed, now: datetime, failing_for: timedelta, silent_for: timedelta
           ) -> tuple[str | None, datetime | None]:
    """The feed's incident now (failing, silent or none) and since when. Pure."""
    if feed.status in _FAILED_STATUSES:
        since = feed.last_success_at or feed.created_at
        return (FAILING, since) if now - since >= failing_for else (None, None)
    if feed.status in _POLLED_STATUSES:
        since = feed.last_new_entry_at or feed.created_at
        return (SILENT, since) if now - since >= silent_for else (None, None)
    return None, None


def health_payload(feed: Feed, problem: str, since: datetime | None, now: datetime, *,
                   alert_id: str, resolved: str | None = None) -> dict[str, Any]:
    return {
        "type": "health",
        "version": 1,
        "id": alert_id,
        "feed": {"id": feed.id, "name": feed.name or feed.id, "url": feed.url},
        "problem": problem,
        "since": iso(since),
        "resolved": resolved,
        "status": feed.status,
        "last_error": feed.last_error,
        "last_success_at": iso(feed.last_success_at),
        "consecutive_failures": feed.consecutive_failures,
        "detected_at": iso(now),
    }


def check_health(session: Session, now: datetime, *, failing_for: timedelta,
                 silent_for: timedelta, notify: Sequence[str]) -> list[str]:
    """Open and close incidents; returns the ids of the alerts written."""
    made = []
    for feed in session.scalars(select(Feed).where(Feed.active.is_(True))):
        state, since = assess(feed, now, failing_for, silent_for)
        if state == feed.health_state:
            continue
        previous, previous_since = feed.health_state, feed.health_since
        feed.health_state, feed.health_since = state, since
        if state is not None:
            alert_id = policy.folded_id("health", feed.id, state, iso(since))
            payload = health_payload(feed, state, since, now, alert_id=alert_id)
            log.warning("feed %s: %s since %s", feed.id, state, iso(since))
        else:
            alert_id = policy.folded_id("health", feed.id, RECOVERED, previous, iso(previous_since))
            payload = health_payload(feed, RECOVERED, previous_since, now, alert_id=alert_id,
                                     resolved=previous)
            log.info("feed %s: recovered (was %s)", feed.id, previous)
        if notify and not queries.alert_exists(session, alert_id):
            queries.insert_alert(session, alert_id=alert_id, kind="health", payload=payload,
                                 channels=dict.fromkeys(notify, policy.PENDING), now=now)
            made.append(alert_id)
    return made
