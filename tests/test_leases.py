"""Sharing work between daemons (SPEC §8): feed leases, outbox claims, the singleton-jobs lease.

The claim queries run on both backends; the concurrent-claim tests need PostgreSQL's
``SKIP LOCKED`` and run against it (they skip without it).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.config import load_settings
from monitor.demo.server import FeedServer
from monitor.service.daemon import Daemon
from monitor.store import queries
from monitor.store.db import Database
from monitor.store.models import Delivery, Feed
from tests.conftest import WriteConfig, rss

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=2)


def feeds_db(url: str, count: int) -> Database:
    db = Database(url)
    db.upgrade()
    db.call(queries.sync_feeds, [(f"f{i}", f"http://feeds.test/{i}", None) for i in range(count)],
            NOW)
    return db


def alerts_db(url: str, count: int) -> Database:
    db = feeds_db(url, 0)
    for i in range(count):
        db.call(queries.insert_alert, alert_id=f"a{i}", kind="hit", payload={"n": i},
                channels={"hook": "pending"}, now=NOW)
    return db


def test_a_claimed_feed_is_nobody_elses_until_its_lease_lapses(db_url: str) -> None:
    db = feeds_db(db_url, 3)
    mine = db.call(queries.claim_feeds, "a", NOW, 10, LEASE)
    assert sorted(f.id for f in mine) == ["f0", "f1", "f2"]
    assert {f.lease_owner for f in mine} == {"a"}
    assert db.call(queries.claim_feeds, "b", NOW + LEASE - timedelta(seconds=1), 10, LEASE) == []
    # "a" is killed mid-poll: after the lease, "b" takes its feeds over ...
    taken = db.call(queries.claim_feeds, "b", NOW + LEASE, 10, LEASE)
    assert sorted(f.id for f in taken) == ["f0", "f1", "f2"]
    # ... and a late outcome from "a" does not clobber b's lease
    assert not db.call(queries.record_success, "f0", NOW + LEASE, NOW + LEASE * 5, status="ok",
                       owner="a")
    assert db.call(queries.record_failure, "f1", NOW + LEASE, NOW + LEASE * 5, "boom",
                   owner="a") == 0
    assert db.call(queries.record_success, "f0", NOW + LEASE, NOW + LEASE * 5, status="ok",
                   owner="b")
    with db.session() as s:
        rows = {f.id: f for f in s.scalars(select(Feed))}
    assert rows["f0"].lease_owner is None and rows["f0"].next_poll_at == NOW + LEASE * 5
    assert rows["f1"].lease_owner == "b" and rows["f1"].status != "error"
    db.dispose()


def test_a_clean_stop_hands_feeds_back_at_once(db_url: str) -> None:
    db = feeds_db(db_url, 4)
    db.call(queries.claim_feeds, "a", NOW, 2, LEASE)
    db.call(queries.claim_feeds, "b", NOW, 2, LEASE)
    assert db.call(queries.release_feeds, NOW, "a") == 2
    assert sorted(f.id for f in db.call(queries.claim_feeds, "c", NOW, 10, LEASE)) == ["f0", "f1"]
    assert db.call(queries.release_feeds, NOW) == 4   # everyone's: a SQLite daemon starting
    db.dispose()


def test_concurrent_claimers_skip_each_others_feeds(pg_url: str) -> None:
    db = feeds_db(pg_url, 10)
    # Two daemons claim at the same moment: the first transaction is still open while the
    # second runs, so the second must skip the locked rows instead of waiting or sharing.
    with db.session() as first:
        a = queries.claim_feeds(first, "a", NOW, 6, LEASE)
        with db.session() as second:
            b = queries.claim_feeds(second, "b", NOW, 6, LEASE)
    assert len(a) == 6 and len(b) == 4
    assert not {f.id for f in a} & {f.id for f in b}
    db.dispose()


def test_concurrent_dispatchers_claim_different_deliveries(pg_url: str) -> None:
    db = alerts_db(pg_url, 5)
    with db.session() as first:
        a = queries.claim_deliveries(first, "a", NOW, 3, LEASE)
        with db.session() as second:
            b = queries.claim_deliveries(second, "b", NOW, 10, LEASE)
    assert len(a) == 3 and len(b) == 2
    assert not {d.alert_id for d in a} & {d.alert_id for d in b}
    assert {d.payload["n"] for d in a + b} == set(range(5))
    db.dispose()


def test_claimed_deliveries_come_back_when_the_claim_lapses_or_is_released(db_url: str) -> None:
    db = alerts_db(db_url, 3)
    claimed = db.call(queries.claim_deliveries, "a", NOW, 10, LEASE)
    assert len(claimed) == 3
    assert db.call(queries.claim_deliveries, "b", NOW + timedelta(seconds=1), 10, LEASE) == []
    db.call(queries.mark_sent, claimed[0].id, NOW)
    # "a" stops cleanly: its unsent rows are due again now, the sent one stays sent
    assert db.call(queries.release_deliveries, NOW, "a") == 2
    again = db.call(queries.claim_deliveries, "b", NOW, 10, LEASE)
    assert sorted(d.alert_id for d in again) == ["a1", "a2"]
    # "b" is killed: after the claim, anyone may send them
    assert len(db.call(queries.claim_deliveries, "c", NOW + LEASE, 10, LEASE)) == 2
    with db.session() as s:
        owners = {d.alert_id: (d.status, d.claimed_by) for d in s.scalars(select(Delivery))}
    assert owners == {"a0": ("sent", None), "a1": ("pending", "c"), "a2": ("pending", "c")}
    db.dispose()


def test_the_singleton_lease_has_one_holder_until_it_lapses(db_url: str) -> None:
    db = feeds_db(db_url, 0)
    ttl = timedelta(seconds=30)
    assert db.call(queries.take_lease, "jobs", "a", NOW, ttl)
    assert not db.call(queries.take_lease, "jobs", "b", NOW + timedelta(seconds=10), ttl)
    assert db.call(queries.take_lease, "jobs", "a", NOW + timedelta(seconds=20), ttl), "renewed"
    assert not db.call(queries.take_lease, "jobs", "b", NOW + timedelta(seconds=45), ttl)
    assert db.call(queries.take_lease, "jobs", "b", NOW + timedelta(seconds=51), ttl), "lapsed"
    assert not db.call(queries.take_lease, "jobs", "a", NOW + timedelta(seconds=52), ttl)
    db.call(queries.drop_lease, "jobs", "b")
    assert db.call(queries.take_lease, "jobs", "a", NOW + timedelta(seconds=53), ttl)
    db.dispose()


def test_polling_keeps_the_fetcher_busy_beyond_one_claim_per_tick(
        write_config: WriteConfig, db_url: str) -> None:
    """16 feeds that answer after 0.2 s, 2 at a time: about 1.6 s of fetching. Claims are
    topped up as polls end, not once per scheduler tick (which would take 4 s or more)."""
    def slow() -> bytes:
        time.sleep(0.2)
        return rss([{"guid": "1", "title": "Quiet day", "description": "Nothing."}])

    paths = [f"/f{i}.xml" for i in range(16)]
    with FeedServer(dict.fromkeys(paths, slow)) as server:
        config = write_config({
            "database": db_url,
            "poll": {"interval": "1h", "allow_private_networks": True, "concurrency": 2,
                     "timeout": "3s"},
            "feeds": [{"id": f"f{i}", "url": server.url(p)} for i, p in enumerate(paths)],
        }, {"rules": []})
        daemon = Daemon(load_settings(config), console=io.StringIO())

        async def scenario() -> float:
            await daemon.start()
            try:
                started = time.monotonic()
                await daemon.poll_due()
                while sum(server.requests.values()) < len(paths) or daemon._in_flight:
                    assert time.monotonic() - started < 10, server.requests
                    await asyncio.sleep(0.02)
                return time.monotonic() - started
            finally:
                await daemon.release()
                await daemon.close()

        elapsed = asyncio.run(scenario())
    assert all(server.requests[p] == 1 for p in paths), server.requests
    assert elapsed < 3.0, f"16 polls took {elapsed:.1f}s"
    with daemon.db.session() as s:
        assert {(f.status, f.lease_owner) for f in s.scalars(select(Feed))} == {("ok", None)}


def test_one_daemon_runs_the_singleton_jobs_and_hands_them_over_on_stop(
        write_config: WriteConfig, pg_url: str) -> None:
    config = write_config({"database": pg_url, "feeds": []}, {"rules": []})
    first, second = (Daemon(load_settings(config), console=io.StringIO()) for _ in range(2))

    async def scenario() -> list[bool]:
        await first.start()
        await second.start()
        try:
            seen = [await first.leading(), await second.leading(), await first.leading()]
            await first.release()          # a clean stop gives the lease up at once
            seen.append(await second.leading())
            return seen
        finally:
            await first.close()
            await second.close()

    assert asyncio.run(scenario()) == [True, False, True, True]


def test_feeds_command_shows_who_polls_a_feed_now(write_config: WriteConfig, db_url: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    config = write_config({"database": db_url, "feeds": [
        {"id": "busy", "url": "http://feeds.test/1"}, {"id": "idle", "url": "http://feeds.test/2"}]},
        {"rules": []})
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    db = Database(db_url)
    db.call(queries.sync_feeds, [("busy", "http://feeds.test/1", None),
                                 ("idle", "http://feeds.test/2", None)], NOW)
    db.call(queries.claim_feeds, "host:42:abcd", NOW, 1, LEASE)
    db.dispose()
    capsys.readouterr()
    assert main(["feeds", "--json", "--config", str(config)]) == 0
    listed = {f["id"]: f["polled_by"] for f in json.loads(capsys.readouterr().out)}
    assert listed == {"busy": "host:42:abcd", "idle": None}
    assert main(["feeds", "--config", str(config)]) == 0
    assert "now, by host:42:abcd" in capsys.readouterr().out


def test_a_poll_that_crashes_inside_pressmon_is_recorded_as_a_failure(
        write_config: WriteConfig, db_url: str) -> None:
    """Recorded as an internal error with the usual backoff, and its lease ends."""
    config = write_config({"database": db_url, "poll": {"interval": "10m"},
                           "feeds": [{"id": "f", "url": "http://feeds.test/1"}]}, {"rules": []})
    daemon = Daemon(load_settings(config), console=io.StringIO())

    async def boom(_feed: queries.FeedState) -> None:
        raise RuntimeError("bug in a poll\nsecond line")

    async def scenario() -> None:
        await daemon.start()
        try:
            [feed] = await daemon.db.run(queries.claim_feeds, daemon.instance,
                                         datetime.now(UTC), 1, LEASE)
            daemon.poller.poll = boom  # type: ignore[method-assign]
            result = await daemon._poll_one(feed)
            assert result.status == "error"
        finally:
            await daemon.close()

    asyncio.run(scenario())
    with daemon.db.session() as s:
        row = s.get(Feed, "f")
        assert row is not None
        assert (row.status, row.last_error, row.lease_owner, row.consecutive_failures) == (
            "error", "internal error: RuntimeError: bug in a poll", None, 1)
        assert row.next_poll_at is not None
        wait = row.next_poll_at - datetime.now(UTC)
        assert timedelta(minutes=7) < wait <= timedelta(minutes=10), "first-failure backoff"


def test_a_stop_during_a_claim_still_drains_the_polls_it_starts(
        tmp_path: Path, write_config: WriteConfig) -> None:
    """A stop that arrives while a claim is under way: the polls that claim starts are
    waited for like any other, instead of losing their fetches to the closing client."""
    def slow() -> bytes:
        time.sleep(0.5)
        return rss([{"guid": "1", "title": "Quiet day", "description": "Nothing."}])

    with FeedServer({"/f.xml": slow}) as server:
        config = write_config({
            "database": f"sqlite:///{tmp_path / 'd.db'}",
            "poll": {"interval": "1h", "allow_private_networks": True},
            "feeds": [{"id": "f", "url": server.url("/f.xml")}],
        }, {"rules": []})
        daemon = Daemon(load_settings(config), console=io.StringIO())

        async def scenario() -> None:
            await daemon.start()
            real_run = daemon.db.run

            async def slow_claim(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
                if fn is queries.claim_feeds:
                    await asyncio.sleep(0.3)
                return await real_run(fn, *args, **kwargs)

            daemon.db.run = slow_claim  # type: ignore[method-assign]
            try:
                daemon.polling.kick()
                await asyncio.sleep(0.05)            # the claim is under way
                daemon.request_stop()
                await daemon._drain()
                assert not daemon._in_flight, "the claimed poll finished within the drain"
            finally:
                daemon.db.run = real_run  # type: ignore[method-assign]
                await daemon.release()
                await daemon.close()

        asyncio.run(scenario())
    assert server.requests["/f.xml"] == 1
    with daemon.db.session() as s:
        assert [(f.status, f.lease_owner) for f in s.scalars(select(Feed))] == [("ok", None)]
