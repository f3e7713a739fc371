"""The daemon's lifecycle: start, schedule polls and deliveries, stop cleanly on a signal."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from datetime import UTC, datetime
from typing import TextIO

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.config import Settings
from monitor.ingest.fetch import Fetcher
from monitor.notify.base import Channel
from monitor.notify.outbox import Dispatcher
from monitor.notify.registry import build_channels, retry_policies
from monitor.service.poller import FeedPolicy, Poller, PollResult, RuleSet
from monitor.store import queries
from monitor.store.db import Database, redact_url

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
STOP_GRACE_SECONDS = 8.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class Daemon:
    def __init__(self, settings: Settings, *, console: TextIO | None = None) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        poll = settings.poll
        self.fetcher = Fetcher(timeout=poll.timeout, max_body=poll.max_body,
                               concurrency=poll.concurrency, per_host=poll.per_host)
        self._ruleset = RuleSet(settings.matcher(), {r.id: r for r in settings.rules})
        self._feed_intervals = {f.id: f.interval or poll.interval for f in settings.feeds}
        self.channels: dict[str, Channel] = build_channels(settings, console=console)
        self.poller = Poller(self.db, self.fetcher, lambda: self._ruleset, self._policy)
        self.dispatcher = Dispatcher(self.db, self.channels, retry_policies(settings))
        self._in_flight: dict[str, asyncio.Task[PollResult]] = {}
        self._dispatching: asyncio.Task[None] | None = None
        self._dispatch_again = False
        self._stop = asyncio.Event()

    def _policy(self, feed_id: str) -> FeedPolicy:
        poll = self.settings.poll
        interval = self._feed_intervals.get(feed_id, poll.interval)
        return FeedPolicy(interval=interval, max_interval=max(poll.max_interval, interval),
                          max_article_age=poll.max_article_age)

    async def start(self) -> None:
        log.info("database %s", redact_url(self.db.url))
        await asyncio.to_thread(self.db.upgrade)
        feeds = [(f.id, f.url, f.name) for f in self.settings.feeds]
        await self.db.run(queries.sync_feeds, feeds, utcnow())
        log.info("%d feeds, %d rules, channels: %s", len(feeds), len(self.settings.rules),
                 ", ".join(self.channels) or "none")
        for warning in self.settings.warnings:
            log.warning("%s", warning)

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.aclose()
        await self.fetcher.aclose()
        await asyncio.to_thread(self.db.dispose)

    # ----------------------------------------------------------------- polling

    async def poll_due(self) -> None:
        """Start a poll for every due feed that is not already being polled."""
        if self._stop.is_set():
            return
        limit = self.settings.poll.concurrency * 2
        for feed in await self.db.run(queries.due_feeds, utcnow(), limit + len(self._in_flight)):
            if feed.id in self._in_flight:
                continue
            task = asyncio.create_task(self._poll_one(feed), name=f"poll:{feed.id}")
            self._in_flight[feed.id] = task
            task.add_done_callback(lambda _t, fid=feed.id: self._in_flight.pop(fid, None))

    async def _poll_one(self, feed: queries.FeedState) -> PollResult:
        try:
            result = await self.poller.poll(feed)
        except Exception:
            log.exception("feed %s: poll crashed", feed.id)
            raise
        if result.alerts:
            self.kick_dispatch()
        return result

    async def poll_all_once(self) -> list[PollResult]:
        feeds = await self.db.run(queries.due_feeds, datetime.max.replace(tzinfo=UTC), 1_000_000)
        results = await asyncio.gather(*(self.poller.poll(f) for f in feeds),
                                       return_exceptions=True)
        out = []
        for feed, result in zip(feeds, results, strict=True):
            if isinstance(result, BaseException):
                log.error("feed %s: poll crashed: %r", feed.id, result)
            else:
                out.append(result)
        return out

    # ----------------------------------------------------------------- delivery

    def kick_dispatch(self) -> None:
        """Deliver now: called on a timer and right after a poll created alerts."""
        if self._dispatching is not None and not self._dispatching.done():
            self._dispatch_again = True
            return
        self._dispatching = asyncio.create_task(self._dispatch_loop(), name="dispatch")

    async def _dispatch_loop(self) -> None:
        try:
            while True:
                self._dispatch_again = False
                await self.dispatcher.run_once()
                if not self._dispatch_again:
                    return
        except Exception:
            log.exception("dispatcher crashed; will retry on the next tick")

    async def dispatch_tick(self) -> None:
        self.kick_dispatch()

    # ----------------------------------------------------------------- lifecycle

    def request_stop(self) -> None:
        if self._stop.is_set():
            log.warning("second stop signal: exiting at once")
            os._exit(130)
        log.info("stopping")
        self._stop.set()

    async def run(self) -> int:
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        scheduler = AsyncIOScheduler(event_loop=loop, timezone=UTC)
        scheduler.add_job(self.poll_due, "interval", seconds=TICK_SECONDS, id="poll",
                          next_run_time=utcnow(), max_instances=1, coalesce=True)
        scheduler.add_job(self.dispatch_tick, "interval", seconds=TICK_SECONDS, id="dispatch",
                          next_run_time=utcnow(), max_instances=1, coalesce=True)
        scheduler.start()
        log.info("running; press Ctrl-C to stop")
        try:
            await self._stop.wait()
        finally:
            scheduler.shutdown(wait=False)
            await self._drain()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.close()
        log.info("stopped")
        return 0

    async def _drain(self) -> None:
        """Let in-flight polls finish, then flush what is due, within the grace period."""
        pending = [t for t in self._in_flight.values() if not t.done()]
        try:
            async with asyncio.timeout(STOP_GRACE_SECONDS):
                if pending:
                    await asyncio.gather(*pending, return_exceptions=True)
                if self._dispatching is not None:
                    await asyncio.gather(self._dispatching, return_exceptions=True)
                await self.dispatcher.run_once()
        except TimeoutError:
            # Anything cut off here is still in the database and is sent after restart.
            log.warning("stop grace period over; unsent alerts stay queued")
            for task in pending:
                task.cancel()

    async def run_once(self) -> int:
        """``pressmon run --once``: poll every feed once, deliver what is due, exit."""
        await self.start()
        try:
            results = await self.poll_all_once()
            while await self.dispatcher.run_once():
                pass
        finally:
            await self.close()
        errors = sum(1 for r in results if r.status == "error")
        log.info("polled %d feeds (%d errors)", len(results), errors)
        return 0
