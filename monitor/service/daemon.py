"""The daemon's lifecycle: start, schedule polls and deliveries, stop cleanly on a signal."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.exc import SQLAlchemyError

from monitor.config import ConfigError, Settings, load_settings, watched_files
from monitor.ingest.fetch import Fetcher
from monitor.ingest.websub import WebSub
from monitor.ingest.worker import GC_THRESHOLD
from monitor.logs import first_line
from monitor.nlp import NlpWorkers
from monitor.notify.base import Channel
from monitor.notify.folding import Folder, FoldPolicy
from monitor.notify.outbox import Dispatcher
from monitor.notify.registry import build_channels, retry_policies
from monitor.service.health import check_health
from monitor.service.http import HttpServer
from monitor.service.kick import Kicked
from monitor.service.metrics import Metrics
from monitor.service.poller import FeedPolicy, ParsePool, Poller, PollResult, RuleSet
from monitor.service.retention import apply_retention
from monitor.store import queries
from monitor.store.db import Database, redact_url

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
DOUBLE_SIGNAL_SECONDS = 0.5
WATCH_SECONDS = 2.0
FOLD_SECONDS = 5.0
HEALTH_SECONDS = 30.0
GAUGE_SECONDS = 5.0
WORKERS_READY_TIMEOUT = 60
"""Seconds ``start`` waits for the worker processes to load their rules and models."""
WEBSUB_SECONDS = 60.0
RETENTION_EVERY = timedelta(days=1)
RETENTION_FIRST = timedelta(minutes=1)   # after start, once the first polls are under way
STOP_GRACE_SECONDS = 8.0
LEADER_LEASE = "singleton-jobs"
LEADER_TTL = timedelta(seconds=30)   # renewed every FOLD_SECONDS by the process holding it


def utcnow() -> datetime:
    return datetime.now(UTC)


def instance_name() -> str:
    """How this process names itself in leases and claims: host, pid and a random tag (a
    restarted process with a recycled pid is still someone else)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _fingerprint(settings: Settings) -> tuple[tuple[str, int, int], ...]:
    out = []
    for path in watched_files(settings):
        try:
            stat = path.stat()
        except OSError:
            out.append((str(path), -1, -1))
        else:
            out.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(out)


class Daemon:
    def __init__(self, settings: Settings, *, console: TextIO | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._clock = clock
        self.settings = settings
        self._gc_before: tuple[int, ...] | None = None   # the thresholds start() replaced
        self.db = Database(settings.database_url)
        self.instance = instance_name()
        self._leader = False
        poll = settings.poll
        self.fetcher = Fetcher(timeout=poll.timeout, max_body=poll.max_body,
                               concurrency=poll.concurrency, per_host=poll.per_host,
                               allow_private=poll.allow_private_networks)
        self.metrics = Metrics()
        # The rules in force, also written here for the parse workers to match with.
        self._rules_dir: Path | None = None
        try:
            self._rules_dir = Path(tempfile.mkdtemp(prefix="pressmon-rules-"))
        except OSError as exc:
            log.warning("no temporary folder for the parse workers' rules (%s); the daemon "
                        "matches them itself", exc)
        self._ruleset = RuleSet.build(settings, self._rules_dir)
        # Compiled rules live as long as the process: keep them out of every GC pass.
        gc.freeze()
        self._feeds = {f.id: f for f in settings.feeds}
        self._console = console
        self.channels: dict[str, Channel] = build_channels(settings, console=console)
        self._fingerprint = _fingerprint(settings)
        self.reload_error: str | None = None
        # Feed parsing, and language detection and NER, run in worker processes: started by
        # start(), or failing that on first use.
        self.parse_pool = ParsePool()
        self.nlp = NlpWorkers()
        self.poller = Poller(self.db, self.fetcher, lambda: self._ruleset, self._policy,
                             ner=self.nlp.load, detect=self.nlp.languages,
                             metrics=self.metrics, clock=clock, parse_pool=self.parse_pool)
        self.dispatcher = Dispatcher(
            self.db, self.channels, retry_policies(settings), clock=clock, owner=self.instance,
            on_result=lambda channel, status: self.metrics.alerts.labels(channel, status).inc())
        public_url = settings.file.server.public_url
        self.websub = (WebSub(self.db, public_url, self._pushed, clock=clock)
                       if public_url else None)
        self.http: HttpServer | None = None
        self._scheduler_running = False
        self.folder = Folder(self.db, self._fold_policy, clock=clock)
        self._in_flight: dict[str, asyncio.Task[PollResult]] = {}
        self._more_due = False
        self.polling = Kicked(self.poll_due, "polling")
        self.delivering = Kicked(self.dispatcher.run_once, "dispatcher")
        self._stop = asyncio.Event()
        self._stop_requested = 0.0
        self._background: set[asyncio.Task[None]] = set()

    def _policy(self, feed_id: str) -> FeedPolicy:
        poll = self.settings.poll
        feed = self._feeds.get(feed_id)
        interval = (feed.interval if feed else None) or poll.interval
        return FeedPolicy(interval=interval, max_interval=max(poll.max_interval, interval),
                          max_article_age=poll.max_article_age,
                          min_interval=min(poll.min_interval, interval),
                          fixed=bool(feed and feed.interval), fulltext=bool(feed and feed.fulltext))

    async def _pushed(self, feed_id: str, content: bytes, content_type: str | None) -> None:
        result = await self.poller.push(feed_id, content, content_type)
        if result is not None and result.alerts:
            self.kick_dispatch()

    async def readiness(self) -> tuple[bool, dict[str, object]]:
        """/readyz: the database answers, the scheduler runs, no reload error is pending."""
        checks: dict[str, object] = {}
        try:
            await asyncio.wait_for(self.db.run(queries.ping), timeout=5)
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with the reason
            checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["scheduler"] = "running" if self._scheduler_running else "stopped"
        checks["reload"] = self.reload_error.splitlines()[0] if self.reload_error else "ok"
        ready = checks["database"] == "ok" and self._scheduler_running and not self.reload_error
        return ready, checks

    async def refresh_gauges(self) -> None:
        try:
            depth, oldest, by_status = await self.db.run(queries.outbox_gauges, self._clock())
        except Exception:  # noqa: BLE001 - a scrape must never take the daemon down
            log.debug("metrics refresh failed", exc_info=True)
            return
        self.metrics.outbox_depth.set(depth)
        self.metrics.oldest_pending.set(oldest)
        self.metrics.feeds.clear()
        for status, count in by_status.items():
            self.metrics.feeds.labels(status).set(count)

    async def leading(self) -> bool:
        """Whether this process runs the cluster's singleton jobs (digests, throttle
        summaries, health checks, WebSub upkeep, retention): it holds, or now takes, their
        lease.
        With one daemon that is always this one."""
        try:
            leader = await self.db.run(queries.take_lease, LEADER_LEASE, self.instance,
                                       self._clock(), LEADER_TTL)
        except Exception:  # noqa: BLE001 - no database, no singleton jobs this tick
            log.warning("could not renew the lease on singleton jobs", exc_info=True)
            leader = False
        self.metrics.singleton.set(1 if leader else 0)
        if leader != self._leader:
            log.info("this process %s digests, health checks, WebSub upkeep and retention",
                     "now runs" if leader else "no longer runs")
            self._leader = leader
        return leader

    async def websub_tick(self) -> None:
        if self.websub is None or self._stop.is_set() or not await self.leading():
            return
        try:
            await self.websub.maintain()
        except Exception:
            log.exception("WebSub maintenance failed; will retry")

    def _fold_policy(self) -> FoldPolicy:
        return FoldPolicy(
            digests={n: c.digest for n, c in self.settings.channels.items() if c.digest},
            throttles={r.id: r.config.throttle[1] for r in self.settings.rules
                       if r.config.throttle is not None})

    async def fold_tick(self) -> None:
        """Build the digests and throttle summaries that are due, then deliver them."""
        if not await self.leading():
            return
        try:
            if await self.folder.run_once():
                self.kick_dispatch()
        except Exception:
            log.exception("building digests failed; will retry on the next tick")

    async def health_tick(self) -> None:
        """Raise and clear feed health incidents (SPEC §3 `health`)."""
        if not await self.leading():
            return
        health = self.settings.file.health
        try:
            made = await self.db.run(check_health, self._clock(), failing_for=health.failing_for,
                                     silent_for=health.silent_for, notify=health.notify)
        except Exception:
            log.exception("health check failed; will retry on the next tick")
            return
        if made:
            self.kick_dispatch()

    async def retention_tick(self) -> None:
        """Prune old articles and stories (SPEC §8 retention), once across the cluster."""
        if self._stop.is_set() or not await self.leading():
            return
        try:
            await apply_retention(self.db, self._clock(), self.settings.file.retention.articles)
        except Exception:
            log.exception("retention failed; will retry tomorrow")

    async def start(self) -> None:
        """Ready to poll: the database upgraded and its feeds synced with the config, the
        worker processes started and their rules and models loaded."""
        log.info("database %s", redact_url(self.db.url))
        await asyncio.to_thread(self.db.upgrade)
        feeds = [(f.id, f.url, f.name) for f in self.settings.feeds]
        await self.db.run(queries.sync_feeds, feeds, self._clock())
        if self.db.dialect == "sqlite":
            # One daemon per SQLite file (the instance lock): claims left by a killed
            # predecessor are stale, so they end now rather than when they lapse.
            await self.db.run(queries.release_feeds, self._clock())
            await self.db.run(queries.release_deliveries, self._clock())
        log.info("%d feeds, %d rules, channels: %s", len(feeds), len(self.settings.rules),
                 ", ".join(self.channels) or "none")
        for warning in self.settings.warnings:
            log.warning("%s", warning)
        if self._gc_before is None:
            self._gc_before = gc.get_threshold()
            gc.set_threshold(*GC_THRESHOLD)
        await self._workers_ready(self.start_workers())

    async def release(self) -> None:
        """Hand back what this process holds, so the others take over at once."""
        now = self._clock()
        try:
            await self.db.run(queries.release_feeds, now, self.instance)
            await self.dispatcher.release()
            await self.db.run(queries.drop_lease, LEADER_LEASE, self.instance)
        except Exception:  # noqa: BLE001 - claims lapse on their own; stopping goes on
            log.warning("could not release claims; they lapse on their own", exc_info=True)

    async def close(self) -> None:
        if self.http is not None:
            await self.http.stop()
        if self.websub is not None:
            await self.websub.aclose()
        for channel in self.channels.values():
            await channel.aclose()
        await self.fetcher.aclose()
        await asyncio.to_thread(self.parse_pool.shutdown)
        await asyncio.to_thread(self.nlp.shutdown)
        await asyncio.to_thread(self.db.dispose)
        if self._rules_dir is not None:
            shutil.rmtree(self._rules_dir, ignore_errors=True)
        if self._gc_before is not None:
            gc.set_threshold(*self._gc_before)
            self._gc_before = None

    # ----------------------------------------------------------------- polling

    @property
    def _poll_window(self) -> int:
        """Polls kept under way: twice ``poll.concurrency``, enough to keep the fetcher busy,
        few enough that no claimed feed waits long for its turn."""
        return self.settings.poll.concurrency * 2

    async def poll_due(self) -> None:
        """Claim due feeds (a lease each, so no other daemon polls them meanwhile) and start
        their polls, up to the poll window."""
        room = self._poll_window - len(self._in_flight)
        if self._stop.is_set() or room <= 0:
            self._more_due = room <= 0
            return
        try:
            feeds = await self.db.run(queries.claim_feeds, self.instance, self._clock(), room,
                                      self.settings.poll.lease)
        except SQLAlchemyError as exc:
            log.warning("could not claim due feeds, will retry: %s", first_line(exc))
            return
        # A full claim means more may be due: claim again as soon as a poll ends.
        self._more_due = len(feeds) == room
        for feed in feeds:
            if feed.id in self._in_flight:
                continue   # a poll that outlived its lease: let it finish
            task = asyncio.create_task(self._poll_one(feed), name=f"poll:{feed.id}")
            self._in_flight[feed.id] = task
            task.add_done_callback(lambda _t, fid=feed.id: self._poll_done(fid))

    def _poll_done(self, feed_id: str) -> None:
        self._in_flight.pop(feed_id, None)
        if self._more_due and not self._stop.is_set():
            self._more_due = False
            self.polling.kick()

    async def _poll_one(self, feed: queries.FeedState) -> PollResult:
        try:
            result = await self.poller.poll(feed)
        except Exception as exc:  # noqa: BLE001 - one feed's crash must not stop the others
            log.exception("feed %s: poll crashed", feed.id)
            return await self.poller.crashed(feed, exc)
        if result.alerts:
            self.kick_dispatch()
        if result.hub_changed and self.websub is not None:
            task = asyncio.create_task(self.websub_tick(), name=f"websub:{feed.id}")
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return result

    def start_workers(self) -> list[Future[object]]:
        """Start the parse workers and the NLP processes now rather than on first use: they
        spawn and load their rules and models (~1 s for languages, ~2 s for NER). Does not
        wait: the futures are done once they are ready. Does nothing once they run."""
        return [*self.parse_pool.start(self._ruleset.shipped), *self.nlp.start()]

    async def _workers_ready(self, starting: list[Future[object]]) -> None:
        """Wait until the workers ``start_workers`` started are ready (at most
        ``WORKERS_READY_TIMEOUT``), so that polling starts at full speed instead of its first
        polls waiting for them. A worker that failed to start is logged; the first call that
        needs it starts another."""
        if not starting:
            return
        began = time.monotonic()
        done, pending = await asyncio.wait([asyncio.wrap_future(f) for f in starting],
                                           timeout=WORKERS_READY_TIMEOUT)
        for future in done:
            if (exc := future.exception()) is not None:
                log.warning("a worker process did not start: %r", exc)
        if pending:
            log.warning("worker processes not ready after %ds; polling starts anyway",
                        WORKERS_READY_TIMEOUT)
        else:
            log.info("worker processes ready in %.1fs", time.monotonic() - began)

    async def poll_all_once(self) -> list[PollResult]:
        feeds = await self.db.run(queries.due_feeds, datetime.max.replace(tzinfo=UTC), 1_000_000)
        # As many polls under way as the daemon keeps claimed: a cycle of thousands of feeds
        # does not hold thousands of fetched bodies at once.
        slots = asyncio.Semaphore(self._poll_window)

        async def poll(feed: queries.FeedState) -> PollResult:
            async with slots:
                return await self.poller.poll(feed)

        results = await asyncio.gather(*(poll(f) for f in feeds), return_exceptions=True)
        out = []
        for feed, result in zip(feeds, results, strict=True):
            if isinstance(result, BaseException):
                log.error("feed %s: poll crashed: %r", feed.id, result)
            else:
                out.append(result)
        return out

    async def poll_tick(self) -> None:
        self.polling.kick()

    # ----------------------------------------------------------------- delivery

    def kick_dispatch(self) -> None:
        """Deliver now: called on a timer and right after a poll created alerts."""
        self.delivering.kick()

    async def dispatch_tick(self) -> None:
        self.kick_dispatch()

    # ----------------------------------------------------------------- reload

    async def reload(self, reason: str) -> bool:
        """Load the config and rules again and swap them in whole; keep the last good on error."""
        try:
            settings = await asyncio.to_thread(load_settings, self.settings.path)
            ruleset = await asyncio.to_thread(RuleSet.build, settings, self._rules_dir)
        except ConfigError as exc:
            self._fingerprint = await asyncio.to_thread(_fingerprint, self.settings)
            self.reload_error = str(exc)
            self.metrics.reloads.labels("failed").inc()
            self.metrics.reload_errors.inc()
            log.error("reload (%s) failed; the rules in force stay:\n%s", reason, exc)
            return False
        for key in ("database_url",):
            if getattr(settings, key) != getattr(self.settings, key):
                log.warning("reload (%s): a change of %s needs a restart", reason, key)
        if settings.file.poll != self.settings.file.poll:
            log.warning("reload (%s): changes under poll: apply to intervals now, "
                        "to timeouts, sizes and concurrency after a restart", reason)
        old_channels = self.channels
        if settings.file.channels != self.settings.file.channels:
            self.channels = build_channels(settings, console=self._console)
        self.dispatcher.configure(self.channels, retry_policies(settings))
        self._ruleset = ruleset
        gc.freeze()
        self._feeds = {f.id: f for f in settings.feeds}
        await self.db.run(queries.sync_feeds, [(f.id, f.url, f.name) for f in settings.feeds],
                          self._clock())
        self.settings = settings
        self._fingerprint = await asyncio.to_thread(_fingerprint, settings)
        self.reload_error = None
        if old_channels is not self.channels:
            # Sends in flight finish first; anything cut short is retried (same alert id).
            await self.delivering.wait()
            for channel in old_channels.values():
                await channel.aclose()
        self.metrics.reloads.labels("ok").inc()
        log.info("reloaded (%s): %d feeds, %d rules", reason, len(settings.feeds),
                 len(settings.rules))
        return True

    async def watch_files(self) -> None:
        """Reload when the config or a rules file changes (or a rules file appears)."""
        if self._stop.is_set():
            return
        current = await asyncio.to_thread(_fingerprint, self.settings)
        if current != self._fingerprint:
            self._fingerprint = current
            await self.reload("file change")

    # ----------------------------------------------------------------- lifecycle

    def request_stop(self, sig: int | None = None) -> None:
        """SIGTERM/SIGINT: stop cleanly. A second Ctrl-C (SIGINT) exits at once; a repeated
        SIGTERM, or the same SIGINT delivered twice in a moment (``timeout`` signals both
        the child and its group), does not."""
        now = time.monotonic()
        if self._stop.is_set():
            if sig == signal.SIGINT and now - self._stop_requested > DOUBLE_SIGNAL_SECONDS:
                log.warning("second stop signal: exiting at once")
                os._exit(130)
            return
        log.info("stopping")
        self._stop_requested = now
        self._stop.set()

    async def run(self) -> int:
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig)
        reloads: set[asyncio.Task[bool]] = set()

        def on_sighup() -> None:
            task = loop.create_task(self.reload("SIGHUP"))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_sighup)
        scheduler = AsyncIOScheduler(event_loop=loop, timezone=UTC)
        scheduler.add_job(self.poll_tick, "interval", seconds=TICK_SECONDS, id="poll",
                          next_run_time=utcnow(), max_instances=1, coalesce=True)
        scheduler.add_job(self.dispatch_tick, "interval", seconds=TICK_SECONDS, id="dispatch",
                          next_run_time=utcnow(), max_instances=1, coalesce=True)
        scheduler.add_job(self.watch_files, "interval", seconds=WATCH_SECONDS, id="watch",
                          max_instances=1, coalesce=True)
        scheduler.add_job(self.fold_tick, "interval", seconds=FOLD_SECONDS, id="fold",
                          next_run_time=utcnow(), max_instances=1, coalesce=True)
        scheduler.add_job(self.health_tick, "interval", seconds=HEALTH_SECONDS, id="health",
                          max_instances=1, coalesce=True)
        scheduler.add_job(self.refresh_gauges, "interval", seconds=GAUGE_SECONDS, id="gauges",
                          next_run_time=utcnow(), max_instances=1, coalesce=True)
        scheduler.add_job(self.retention_tick, "interval",
                          seconds=RETENTION_EVERY.total_seconds(), id="retention",
                          next_run_time=utcnow() + RETENTION_FIRST, max_instances=1, coalesce=True)
        if self.websub is not None:
            scheduler.add_job(self.websub_tick, "interval", seconds=WEBSUB_SECONDS, id="websub",
                              next_run_time=utcnow(), max_instances=1, coalesce=True)
        self.http = HttpServer(self.settings.file.server.listen, ready=self.readiness,
                               metrics=self.metrics.render, websub=self.websub)
        await self.http.start()
        scheduler.start()
        self._scheduler_running = True
        log.info("running; press Ctrl-C to stop")
        try:
            await self._stop.wait()
        finally:
            scheduler.shutdown(wait=False)
            self._scheduler_running = False
            await self._drain()
            await self.release()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await self.close()
        log.info("stopped")
        return 0

    async def _drain(self) -> None:
        """Let in-flight polls finish, then flush what is due, within the grace period."""
        pending: list[asyncio.Task[PollResult]] = []
        try:
            async with asyncio.timeout(STOP_GRACE_SECONDS):
                # A claim under way when the stop came starts its polls: wait for it, or
                # they would miss the drain and lose their fetches to the closing client.
                await self.polling.wait()
                pending = [t for t in self._in_flight.values() if not t.done()]
                if pending:
                    await asyncio.gather(*pending, return_exceptions=True)
                await self.delivering.wait()
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
            await self.folder.run_once()
            await self.health_tick()
            while await self.dispatcher.run_once():
                pass
        finally:
            await self.close()
        errors = sum(1 for r in results if r.status == "error")
        log.info("polled %d feeds (%d errors)", len(results), errors)
        return 0
