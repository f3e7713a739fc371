"""Digests and throttle summaries: held deliveries folded into one alert when their period ends.

Runs on a timer. Each fold is one transaction: the new alert, its outbox rows, and the
folded rows marked, so a crash either did all of it or none. Nothing held is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from monitor.config import DigestSettings
from monitor.notify import policy
from monitor.notify.payload import digest_payload, throttle_payload
from monitor.store import queries
from monitor.store.db import Database

log = logging.getLogger(__name__)

DEFAULT_THROTTLE_PERIOD = timedelta(hours=1)


@dataclass(frozen=True)
class FoldPolicy:
    digests: Mapping[str, DigestSettings]      # channel → its digest
    throttles: Mapping[str, timedelta]         # rule id → throttle period


def _brief(payload: dict[str, Any]) -> dict[str, Any]:
    """A hit as a summary lists it: enough to read and click, without the evidence."""
    return {k: v for k, v in payload.items() if k not in ("matches",)}


def fold_digests(session: Session, now: datetime, digests: Mapping[str, DigestSettings]) -> int:
    made = 0
    for channel, digest in digests.items():
        boundary = policy.digest_boundary(now, digest)
        rows = queries.waiting_deliveries(session, policy.HELD, boundary, channel)
        if not rows:
            continue
        start = min(boundary - digest.every, rows[0][0].created_at)
        alert_id = policy.folded_id("digest", channel, boundary.isoformat(), rows[0][0].id)
        payload = digest_payload(alert_id=alert_id, channel=channel, start=start, end=boundary,
                                 hits=[alert.payload for _, alert in rows])
        queries.insert_alert(session, alert_id=alert_id, kind="digest", payload=payload,
                             channels={channel: policy.PENDING}, now=now)
        queries.fold_deliveries(session, [d.id for d, _ in rows], alert_id)
        log.info("digest %s for %s: %d hits", alert_id, channel, len(rows))
        made += 1
    return made


def fold_throttled(session: Session, now: datetime, throttles: Mapping[str, timedelta]) -> int:
    """One summary per (rule, window) once the window is over, to every channel it held."""
    groups: dict[tuple[str, datetime], list[tuple[Any, Any]]] = {}
    for delivery, alert in queries.waiting_deliveries(session, policy.THROTTLED, now):
        period = throttles.get(alert.rule_id or "", DEFAULT_THROTTLE_PERIOD)
        start = policy.window_start(delivery.created_at, period)
        if start + period <= now:
            groups.setdefault((alert.rule_id or "", start), []).append((delivery, alert))
    made = 0
    for (rule_id, start), rows in groups.items():
        period = throttles.get(rule_id, DEFAULT_THROTTLE_PERIOD)
        alerts = list({a.id: a for _, a in rows}.values())
        alert_id = policy.folded_id("throttle", rule_id, start.isoformat(), rows[0][0].id)
        payload = throttle_payload(alert_id=alert_id, rule=alerts[0].payload.get("rule", {}),
                                   start=start, end=start + period,
                                   hits=[_brief(a.payload) for a in alerts])
        channels = {d.channel: policy.PENDING for d, _ in rows}
        queries.insert_alert(session, alert_id=alert_id, kind="throttle", payload=payload,
                             channels=channels, now=now, rule_id=rule_id or None)
        queries.fold_deliveries(session, [d.id for d, _ in rows], alert_id)
        log.info("throttle summary %s for rule %s: %d more hits", alert_id, rule_id, len(alerts))
        made += 1
    return made


class Folder:
    def __init__(self, db: Database, fold_policy: Callable[[], FoldPolicy], *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._db = db
        self._policy = fold_policy
        self._clock = clock

    async def run_once(self) -> int:
        """Build every digest and summary that is due; returns how many alerts were made."""
        current = self._policy()
        now = self._clock()
        made = await self._db.run(fold_digests, now, current.digests)
        made += await self._db.run(fold_throttled, now, current.throttles)
        return made
