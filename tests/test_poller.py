"""Polling against a real loopback server and a real SQLite file: what a poll means."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from monitor.config import load_settings
from monitor.demo.server import FeedServer
from monitor.service.daemon import Daemon
from monitor.service.poller import PollResult
from monitor.store.models import Article, Feed, Hit
from tests.conftest import WriteConfig, rss

RULES = {"rules": [{"id": "baku", "query": "Baku"}]}


def make_daemon(write_config: WriteConfig, db_url: str, feeds: dict[str, str],
                **poll: Any) -> Daemon:
    config = write_config({
        "database": db_url,
        "poll": {"interval": "1h", "allow_private_networks": True, "timeout": "3s", **poll},
        "feeds": [{"id": fid, "url": url} for fid, url in feeds.items()],
        "channels": {"console": {"type": "console"}},
    }, RULES)
    return Daemon(load_settings(config), console=io.StringIO())


def poll_rounds(daemon: Daemon, rounds: int, between: Callable[[int], None] = lambda _: None
                ) -> list[list[PollResult]]:
    async def go() -> list[list[PollResult]]:
        await daemon.start()
        try:
            out = []
            for i in range(rounds):
                out.append(await daemon.poll_all_once())
                between(i)
            return out
        finally:
            await daemon.close()
    return asyncio.run(go())


def feed_row(daemon: Daemon, feed_id: str) -> Feed:
    with daemon.db.session() as s:
        row = s.get(Feed, feed_id)
        assert row is not None
        return row


def count_articles(daemon: Daemon) -> int:
    with daemon.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Article)) or 0)


ITEMS = [{"guid": "g1", "title": "Baku port expands", "description": "More cranes."},
         {"guid": "g2", "title": "Tbilisi metro", "description": "New trains."}]


def test_304_is_not_reparsed(write_config: WriteConfig, db_url: str) -> None:
    with FeedServer({"/f.xml": rss(ITEMS)}) as server:
        daemon = make_daemon(write_config, db_url, {"f": server.url("/f.xml")})
        first, second = poll_rounds(daemon, 2)
        assert [r.status for r in first] == ["ok"] and first[0].new_articles == 2
        assert [r.status for r in second] == ["not_modified"]
        assert server.not_modified["/f.xml"] == 1
    row = feed_row(daemon, "f")
    assert row.status == "not_modified" and row.etag and row.consecutive_failures == 0
    assert count_articles(daemon) == 2


def test_unchanged_body_without_validators_skips_parsing(tmp_path: Path,
                                                         write_config: WriteConfig) -> None:
    with FeedServer({"/f.xml": rss(ITEMS)}, etag=False) as server:
        daemon = make_daemon(write_config, f"sqlite:///{tmp_path / 'db.sqlite'}",
                             {"f": server.url("/f.xml")})
        _, second = poll_rounds(daemon, 2)
        assert server.not_modified["/f.xml"] == 0
        assert [r.status for r in second] == ["unchanged"]


def test_new_items_are_stored_once_and_duplicates_in_a_feed_collapse(
        tmp_path: Path, write_config: WriteConfig) -> None:
    items = [*ITEMS, {"guid": "g1", "title": "Baku port expands (again)", "description": "x"},
             {"link": "http://n.test/no-guid", "title": "No guid here", "description": "y"},
             {"link": "http://n.test/no-guid", "title": "No guid here", "description": "y"}]
    with FeedServer({"/f.xml": rss(items)}) as server:
        daemon = make_daemon(write_config, f"sqlite:///{tmp_path / 'db.sqlite'}",
                             {"f": server.url("/f.xml")})

        def add_item(i: int) -> None:
            if i == 0:
                items.append({"guid": "g3", "title": "Baku metro", "description": "z"})
                server.set("/f.xml", rss(items))

        first, second = poll_rounds(daemon, 2, add_item)
        assert first[0].new_articles == 3 and first[0].hits == 1
        assert second[0].new_articles == 1 and second[0].hits == 1
    assert count_articles(daemon) == 4


def test_a_first_poll_keeps_what_a_push_stored_before_it(
        tmp_path: Path, write_config: WriteConfig) -> None:
    """A first poll does not ask the store what the feed has (nothing, as a rule); entries a
    WebSub hub pushed before it are still stored, matched and alerted only once."""
    with FeedServer({"/f.xml": rss(ITEMS)}) as server:
        daemon = make_daemon(write_config, f"sqlite:///{tmp_path / 'db.sqlite'}",
                             {"f": server.url("/f.xml")})

        async def go() -> tuple[PollResult | None, datetime | None, list[PollResult]]:
            await daemon.start()
            try:
                pushed = await daemon.poller.push("f", rss(ITEMS[:1]), "application/rss+xml")
                before = feed_row(daemon, "f").last_success_at
                return pushed, before, await daemon.poll_all_once()
            finally:
                await daemon.close()

        pushed, before, (polled,) = asyncio.run(go())
    assert pushed is not None and pushed.new_articles == 1 and pushed.hits == 1
    assert before is None, "the poll after the push is the feed's first"
    assert polled.status == "ok" and polled.new_articles == 1 and polled.hits == 0
    assert count_articles(daemon) == 2
    with daemon.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Hit)) == 1


def test_a_first_poll_parses_and_matches_in_one_worker_call(
        tmp_path: Path, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A feed's first poll (all its entries new, their language given) is parsed, identified
    and matched in one call to a parse worker; later polls parse, ask the store what is new,
    and match only that. Both store and hit the same."""
    from monitor.service.poller import Poller

    calls: list[str] = []
    off_loop = Poller._off_loop

    async def spy(self: Poller, fn: Callable[..., Any], *args: Any) -> Any:
        calls.append(fn.__name__)
        return await off_loop(self, fn, *args)

    monkeypatch.setattr(Poller, "_off_loop", spy)
    items = list(ITEMS)
    with FeedServer({"/f.xml": rss(items)}) as server:
        daemon = make_daemon(write_config, f"sqlite:///{tmp_path / 'db.sqlite'}",
                             {"f": server.url("/f.xml")})

        def add_item(i: int) -> None:
            calls.append("--")
            if i == 0:
                items.append({"guid": "g3", "title": "Baku metro", "description": "z"})
                server.set("/f.xml", rss(items))

        first, second = poll_rounds(daemon, 2, add_item)
    assert calls == ["parse_and_match", "--", "parse_feed", "identify_and_match", "--"]
    assert (first[0].new_articles, first[0].hits) == (2, 1)
    assert (second[0].new_articles, second[0].hits) == (1, 1)
    assert count_articles(daemon) == 3


@pytest.mark.parametrize(("document", "content_type", "error"), [
    (b"<!DOCTYPE html><html><head><title>Home</title></head><body>hi</body></html>",
     "text/html", "got an HTML page, not a feed"),
    (b"just some text, not xml", "text/plain", "not a readable feed"),
    (b"x" * 5000, "application/rss+xml", "exceeds max_body 4KiB"),
])
def test_broken_feeds_fail_clearly_and_back_off(tmp_path: Path, write_config: WriteConfig,
                                                document: bytes, content_type: str,
                                                error: str) -> None:
    with FeedServer({"/f.xml": document}, content_type=content_type) as server:
        daemon = make_daemon(write_config, f"sqlite:///{tmp_path / 'db.sqlite'}",
                             {"f": server.url("/f.xml"), "missing": server.url("/gone.xml")},
                             max_body="4KiB")
        (results,) = poll_rounds(daemon, 1)
    by_id = {r.feed_id: r for r in results}
    assert by_id["f"].status == "error" and error in (by_id["f"].error or "")
    assert by_id["missing"].error == "HTTP 404 Not Found"
    row = feed_row(daemon, "f")
    assert row.status == "error" and row.consecutive_failures == 1
    assert row.next_poll_at is not None and row.next_poll_at > datetime.now(UTC)


def test_connection_refused_is_a_recorded_failure(tmp_path: Path,
                                                  write_config: WriteConfig) -> None:
    daemon = make_daemon(write_config, f"sqlite:///{tmp_path / 'db.sqlite'}",
                         {"down": "http://127.0.0.1:9/feed.xml"})
    (results,) = poll_rounds(daemon, 1)
    assert results[0].status == "error" and "cannot connect" in (results[0].error or "")
    assert feed_row(daemon, "down").last_error == results[0].error
