"""WebSub subscriber: subscribe to the hubs feeds advertise, verify intent, take signed pushes.

Polling stays on as a slow fallback; an item that polling finds first marks push as
unreliable for that feed (the poller does that), which returns it to normal polling.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor import __version__
from monitor.store.db import Database
from monitor.store.models import Feed

log = logging.getLogger(__name__)

LEASE = timedelta(days=5)
RENEW_BEFORE = timedelta(hours=1)
RETRY_AFTER_FAILURE = timedelta(minutes=30)
_DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384,
            "sha512": hashlib.sha512}

Ingest = Callable[[str, bytes, str | None], Awaitable[None]]


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """``X-Hub-Signature: method=hex`` over the raw body, in constant time."""
    if not header or "=" not in header:
        return False
    method, _, given = header.partition("=")
    digest = _DIGESTS.get(method.strip().lower())
    if digest is None:
        return False
    expected = hmac.new(secret.encode(), body, digest).hexdigest()
    return hmac.compare_digest(expected, given.strip().lower())


def callback_url(public_url: str, feed_id: str) -> str:
    return f"{public_url.rstrip('/')}/websub/{quote(feed_id, safe='')}"


# --------------------------------------------------------------------------- storage steps

def _start(session: Session, feed_id: str, secret: str, topic: str, now: datetime) -> None:
    feed = session.get(Feed, feed_id)
    if feed is not None:
        feed.websub_state, feed.websub_secret, feed.websub_topic = "pending", secret, topic
        feed.websub_lease_until = now + RETRY_AFTER_FAILURE  # retry if the hub never verifies


def _set_state(session: Session, feed_id: str, state: str, lease_until: datetime | None) -> None:
    feed = session.get(Feed, feed_id)
    if feed is not None:
        feed.websub_state, feed.websub_lease_until = state, lease_until
        if state == "active":
            feed.push_unreliable = False


def _feed(session: Session, feed_id: str) -> tuple[str | None, str | None, str | None] | None:
    feed = session.get(Feed, feed_id)
    if feed is None or not feed.active:
        return None
    return feed.websub_state, feed.websub_topic, feed.websub_secret


def _due(session: Session, now: datetime) -> list[tuple[str, str, str]]:
    """Feeds with a hub whose subscription is missing, failed, or about to lapse."""
    rows = session.scalars(select(Feed).where(Feed.active.is_(True), Feed.hub_url.is_not(None)))
    out = []
    for feed in rows:
        lapses = feed.websub_lease_until
        if feed.websub_state in (None, "failed", "denied") and lapses is not None and lapses > now:
            continue  # failed recently: wait before trying again
        if feed.websub_state in (None, "failed", "denied") or lapses is None or \
                lapses - RENEW_BEFORE <= now:
            out.append((feed.id, str(feed.hub_url), feed.websub_topic or feed.url))
    return out


class WebSub:
    def __init__(self, db: Database, public_url: str, ingest: Ingest, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 timeout: float = 15.0) -> None:
        self._db = db
        self._public_url = public_url
        self._ingest = ingest
        self._clock = clock
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False,
                                         headers={"User-Agent": f"pressmon/{__version__}"})

    async def aclose(self) -> None:
        await self._client.aclose()

    async def maintain(self) -> int:
        """Subscribe or renew where due; returns how many requests went out."""
        due = await self._db.run(_due, self._clock())
        for feed_id, hub, topic in due:
            await self.subscribe(feed_id, hub, topic)
        return len(due)

    async def subscribe(self, feed_id: str, hub: str, topic: str) -> bool:
        secret = secrets.token_hex(32)
        await self._db.run(_start, feed_id, secret, topic, self._clock())
        form = {"hub.mode": "subscribe", "hub.topic": topic,
                "hub.callback": callback_url(self._public_url, feed_id), "hub.secret": secret,
                "hub.lease_seconds": str(int(LEASE.total_seconds()))}
        try:
            response = await self._client.post(hub, data=form)
        except httpx.HTTPError as exc:
            log.warning("feed %s: WebSub subscribe to %s failed: %s", feed_id, hub,
                        type(exc).__name__)
            await self._db.run(_set_state, feed_id, "failed", self._clock() + RETRY_AFTER_FAILURE)
            return False
        if response.status_code not in (202, 204):
            log.warning("feed %s: WebSub hub %s answered HTTP %d", feed_id, hub,
                        response.status_code)
            await self._db.run(_set_state, feed_id, "failed", self._clock() + RETRY_AFTER_FAILURE)
            return False
        log.info("feed %s: WebSub subscription requested at %s", feed_id, hub)
        return True

    # ------------------------------------------------------------------ callbacks (HTTP)

    async def verify(self, feed_id: str, query: dict[str, str]) -> tuple[int, str]:
        """The hub checks our intent: answer the challenge only for what we asked."""
        state = await self._db.run(_feed, feed_id)
        mode, topic = query.get("hub.mode"), query.get("hub.topic")
        if state is None:
            return 404, "unknown feed"
        current, our_topic, _secret = state
        if mode == "denied":
            log.warning("feed %s: WebSub hub denied the subscription: %s", feed_id,
                        query.get("hub.reason", "no reason given"))
            await self._db.run(_set_state, feed_id, "denied", self._clock() + RETRY_AFTER_FAILURE)
            return 200, ""
        if mode != "subscribe" or topic != our_topic or current not in ("pending", "active"):
            return 404, "no such subscription"
        try:
            lease = timedelta(seconds=int(query.get("hub.lease_seconds", LEASE.total_seconds())))
        except ValueError:
            lease = LEASE
        await self._db.run(_set_state, feed_id, "active", self._clock() + lease)
        log.info("feed %s: WebSub subscription active for %s", feed_id, lease)
        return 200, query.get("hub.challenge", "")

    async def deliver(self, feed_id: str, body: bytes, headers: dict[str, str]) -> int:
        """A push: accepted only with a valid signature from our secret, then ingested."""
        state = await self._db.run(_feed, feed_id)
        if state is None:
            return 410  # tells the hub to stop: we no longer follow this feed
        _current, _topic, secret = state
        if not secret or not signature_ok(secret, body, headers.get("x-hub-signature")):
            # Answer 2xx anyway (WebSub §8): a forger learns nothing from the status.
            log.warning("feed %s: WebSub push with a missing or bad signature ignored", feed_id)
            return 202
        await self._ingest(feed_id, body, headers.get("content-type"))
        return 202
