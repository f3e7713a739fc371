"""Quiet polls (304 / same body) are recorded many to a transaction, and only where the
recording process still holds the feed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.store import queries
from monitor.store.batch import WriteBatch
from monitor.store.db import Database
from monitor.store.models import Feed

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=10)


def quiet(feed_id: str, owner: str | None, status: str = "not_modified") -> queries.QuietPoll:
    return queries.QuietPoll(feed_id, owner, NOW, LATER, status, f'"{feed_id}"', None,
                             "h" + feed_id, 4.5, 600)


def test_quiet_polls_are_recorded_where_the_lease_is_still_held(db_url: str) -> None:
    db = Database(db_url)
    db.upgrade()
    db.call(queries.sync_feeds, [(f"f{i}", f"http://feeds.test/{i}", None) for i in range(4)],
            NOW)
    db.call(queries.claim_feeds, "a", NOW, 2, timedelta(minutes=2))       # f0, f1
    db.call(queries.claim_feeds, "b", NOW, 1, timedelta(minutes=2))       # f2
    db.call(queries.record_quiet_polls, [
        quiet("f0", "a"), quiet("f1", "a", "unchanged"),
        quiet("f2", "a"),                  # lost to "b": left alone
        quiet("f3", None)])                # unclaimed (``run --once``)
    with db.session() as s:
        rows = {f.id: f for f in s.scalars(select(Feed))}
    for fid in ("f0", "f1", "f3"):
        row = rows[fid]
        assert (row.status, row.lease_owner, row.next_poll_at, row.etag, row.body_hash,
                row.entries_per_day, row.interval_s, row.consecutive_failures) == (
            "unchanged" if fid == "f1" else "not_modified", None, LATER, f'"{fid}"', "h" + fid,
            4.5, 600, 0)
        assert row.last_success_at == NOW
    assert rows["f2"].lease_owner == "b" and rows["f2"].status == "new"
    db.dispose()


def test_a_write_batch_groups_rows_and_hands_errors_to_every_caller(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'b.db'}")
    calls: list[list[int]] = []

    def write(_session: Session, rows: Sequence[int]) -> None:
        calls.append(list(rows))
        if 13 in rows:
            raise RuntimeError("disk on fire")

    async def scenario() -> None:
        batch = WriteBatch(db, write, size=3)
        await asyncio.gather(*(batch.add(i) for i in range(7)))
        assert calls == [[0, 1, 2], [3, 4, 5], [6]]
        results = await asyncio.gather(batch.add(12), batch.add(13), return_exceptions=True)
        assert [type(r).__name__ for r in results] == ["RuntimeError", "RuntimeError"]
        await batch.add(14)                 # the next batch is a new transaction
        assert calls[-1] == [14]

    asyncio.run(scenario())
    db.dispose()


@pytest.mark.parametrize("rows", [0, 1])
def test_an_empty_or_single_batch_is_fine(db_url: str, rows: int) -> None:
    db = Database(db_url)
    db.upgrade()
    db.call(queries.sync_feeds, [("f0", "http://feeds.test/0", None)], NOW)
    db.call(queries.record_quiet_polls, [quiet("f0", None)][:rows])
    with db.session() as s:
        assert s.scalar(select(Feed.status)) == ("not_modified" if rows else "new")
    db.dispose()
