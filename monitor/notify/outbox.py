"""The outbox dispatcher: claims due deliveries, sends them, records each result.

Each (alert, channel) row is retried on its own, so one channel's outage never delays
or repeats another's. A crash between sending and recording re-sends the same alert id
after restart: delivery is at least once, and receivers deduplicate by id.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from monitor.notify.base import Channel, DeliveryError
from monitor.store import queries
from monitor.store.db import Database

log = logging.getLogger(__name__)

BASE_DELAY = 5.0
MAX_DELAY = 3600.0
BATCH = 200
CLAIM = timedelta(seconds=120)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10
    max_age: timedelta = timedelta(hours=24)


def backoff(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds before retry number ``attempt`` (1-based): exponential, with jitter in [50%, 100%]."""
    ceiling = min(MAX_DELAY, BASE_DELAY * 2 ** (attempt - 1))
    return ceiling * (0.5 + 0.5 * rng())


def utcnow() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    def __init__(self, db: Database, channels: Mapping[str, Channel],
                 policies: Mapping[str, RetryPolicy], *,
                 clock: Callable[[], datetime] = utcnow, owner: str = "local",
                 on_result: Callable[[str, str], None] = lambda _channel, _status: None) -> None:
        self._on_result = on_result  # (channel, "sent" | "retry" | "failed"), e.g. for metrics
        self._db = db
        self._channels = channels
        self._policies = policies
        self._clock = clock
        self._owner = owner            # this process, as named in claims
        self._lock = asyncio.Lock()

    def configure(self, channels: Mapping[str, Channel], policies: Mapping[str, RetryPolicy]) -> None:
        """Swap in reloaded channels; takes effect from the next run."""
        self._channels = channels
        self._policies = policies

    async def run_once(self) -> int:
        """Send every delivery that is due now; returns how many were attempted."""
        # One run at a time in this process: two runs would claim and send the same rows.
        async with self._lock:
            return await self._run()

    async def _run(self) -> int:
        due = await self._db.run(queries.claim_deliveries, self._owner, self._clock(), BATCH,
                                 CLAIM)
        if not due:
            return 0
        send_until = time.monotonic() + CLAIM.total_seconds() / 2
        by_channel: dict[str, list[queries.DueDelivery]] = {}
        for delivery in due:
            by_channel.setdefault(delivery.channel, []).append(delivery)
        # Channels run side by side; within one channel alerts keep their order.
        results = await asyncio.gather(*(self._send_all(name, rows, send_until)
                                          for name, rows in by_channel.items()))
        sent = sum(results)
        log.info("delivered %d of %d due alerts", sent, len(due))
        return len(due)

    async def _send_all(self, channel_name: str, rows: list[queries.DueDelivery],
                        send_until: float) -> int:
        channel = self._channels.get(channel_name)
        sent = 0
        for index, delivery in enumerate(rows):
            if time.monotonic() > send_until:
                rest = [d.id for d in rows[index:]]
                await self._db.run(queries.release_deliveries, self._clock(), self._owner,
                                   ids=rest)
                log.info("%s is slow: %d alerts go back to the queue", channel_name, len(rest))
                break
            if channel is None:
                await self._failed(delivery, DeliveryError(
                    f"channel {channel_name!r} is no longer configured"))
                continue
            try:
                await channel.send(delivery.payload)
            except DeliveryError as exc:
                await self._failed(delivery, exc)
            except Exception as exc:  # noqa: BLE001 - a channel bug must not stop the others
                log.exception("channel %s crashed sending alert %s", channel_name,
                              delivery.alert_id)
                await self._failed(delivery, DeliveryError(f"internal error: {exc!r}"))
            else:
                await self._db.run(queries.mark_sent, delivery.id, self._clock())
                log.debug("alert %s sent to %s", delivery.alert_id, channel_name)
                self._on_result(channel_name, "sent")
                sent += 1
        return sent

    async def release(self) -> int:
        """Give back this process's claimed, unsent rows (on a clean stop)."""
        return await self._db.run(queries.release_deliveries, self._clock(), self._owner)

    async def _failed(self, delivery: queries.DueDelivery, error: DeliveryError) -> None:
        now = self._clock()
        policy = self._policies.get(delivery.channel, RetryPolicy())
        attempt = delivery.attempts + 1
        delay = backoff(attempt)
        if error.retry_after is not None:
            delay = max(error.retry_after, 0.0)
        next_at: datetime | None = now + timedelta(seconds=delay)
        if attempt >= policy.max_attempts or (next_at - delivery.created_at) > policy.max_age:
            next_at = None
            self._on_result(delivery.channel, "failed")
            log.error("alert %s to %s failed for good after %d attempts: %s",
                      delivery.alert_id, delivery.channel, attempt, error)
        else:
            self._on_result(delivery.channel, "retry")
            log.warning("alert %s to %s failed (attempt %d), retrying in %.1fs: %s",
                        delivery.alert_id, delivery.channel, attempt, delay, error)
        await self._db.run(queries.mark_attempt_failed, delivery.id, error=str(error),
                           next_attempt_at=next_at)
