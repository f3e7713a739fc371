"""Matching in parse workers: rules shipped by file, compiled once per version
(monitor.ingest.matching)."""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.ingest.identity import identify
from monitor.ingest.matching import document, identify_and_match, parse_and_match, ship
from monitor.ingest.parse import Entry, parse_feed
from monitor.match import EntitySpec, Matcher, RuleSpec
from tests.conftest import WriteConfig, rss

RULES = [RuleSpec("karabakh", "@karabakh"), RuleSpec("grain", '"grain corridor"'),
         RuleSpec("tr", "liman", languages=("tr",))]
ENTITIES = {"karabakh": EntitySpec("karabakh", aliases=("Karabakh", "Qarabağ"))}
ENTRIES = [
    Entry(key=k, url=f"https://news.test/{k}", title=t, summary=s, body="", author=None,
          lang=lang, published_at=datetime(2026, 11, 1, tzinfo=UTC))
    for k, t, s, lang in [
        ("a", "Talks on Karabakh resume", "Negotiators met in Tbilisi.", "en"),
        ("b", "Ships wait", "The Black Sea grain corridor reopened on Monday.", "en"),
        ("c", "Liman feribotu", "Liman yeniden açıldı.", "tr"),
        ("d", "Liman in English", "A word that is not Turkish here.", "en"),
        ("e", "Weather", "Rain in the afternoon.", None),
    ]]


def _expected(rules: list[RuleSpec]) -> list[list[str]]:
    matcher = Matcher(rules, ENTITIES)
    return [[h.rule_id for h in matcher.match(document(e, "f", "Feed", "https://news.test/rss"))]
            for e in ENTRIES]


def _ids(hits: list[list]) -> list[list[str]]:  # type: ignore[type-arg]
    return [[h.rule_id for h in found] for found in hits]


def test_shipped_rules_match_as_the_daemon_does(tmp_path: Path) -> None:
    shipped = ship(RULES, ENTITIES, tmp_path)
    identities, hits = identify_and_match(shipped, ENTRIES, "f", "Feed", "https://news.test/rss")
    assert identities == identify(ENTRIES)
    assert _ids(hits) == _expected(RULES) == [["karabakh"], ["grain"], ["tr"], [], []]
    # the same rules are the same file; other rules another one
    assert ship(RULES, ENTITIES, tmp_path) == shipped
    assert ship(RULES[:1], ENTITIES, tmp_path).digest != shipped.digest
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".pickle", ".pickle"]


def test_parse_and_match_is_parse_then_identify_and_match(tmp_path: Path) -> None:
    """A first poll's one worker call gives what its two calls give; without a language on
    every entry it only parses (the language is detected first)."""
    shipped = ship(RULES, ENTITIES, tmp_path)
    content = rss([{"guid": "a", "title": "Talks on Karabakh resume", "description": "In Tbilisi."},
                   {"guid": "b", "title": "Ships wait", "description": "The grain corridor."}])
    args = ("f", "Feed", "https://news.test/rss")
    parsed, early = parse_and_match(shipped, content, None, *args)
    assert parsed == parse_feed(content, None)
    assert early == identify_and_match(shipped, parsed.entries, *args)
    assert _ids(early[1]) == [["karabakh"], ["grain"]]
    unsaid = content.replace(b"<language>en</language>", b"")
    parsed, early = parse_and_match(shipped, unsaid, None, *args)
    assert parsed == parse_feed(unsaid, None) and early is None


def test_a_worker_process_follows_a_new_version(tmp_path: Path) -> None:
    """A spawned worker compiles what a reference names, and a new version when it comes."""
    first = ship(RULES, ENTITIES, tmp_path)
    changed = [RuleSpec("weather", "rain"), *RULES[1:]]
    second = ship(changed, ENTITIES, tmp_path)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        args = (ENTRIES, "f", "Feed", "https://news.test/rss")
        before = pool.submit(identify_and_match, first, *args).result()[1]
        after = pool.submit(identify_and_match, second, *args).result()[1]
        again = pool.submit(identify_and_match, first, *args).result()[1]
    assert _ids(before) == _ids(again) == _expected(RULES)
    assert _ids(after) == _expected(changed) == [[], ["grain"], ["tr"], [], ["weather"]]


def test_rules_that_cannot_be_shipped_are_matched_in_the_daemon(
        tmp_path: Path, write_config: WriteConfig, caplog: pytest.LogCaptureFixture) -> None:
    from monitor.config import load_settings
    from monitor.service.poller import RuleSet

    settings = load_settings(write_config({"feeds": []}, {"rules": [
        {"id": "grain", "query": '"grain corridor"'}]}))
    shipped = RuleSet.build(settings, tmp_path)
    assert shipped.shipped is not None and Path(shipped.shipped.path).parent == tmp_path
    with caplog.at_level(logging.WARNING):
        local = RuleSet.build(settings, tmp_path / "gone")     # no such folder
    assert local.shipped is None and "the daemon matches them itself" in caplog.text
    assert [h.rule_id for h in local.matcher.match(document(ENTRIES[1], "f", None, ""))] == [
        "grain"]


def test_a_stored_article_reads_as_its_entry_did() -> None:
    """Backfill and `pressmon test --archive` match stored articles through the same
    ``document`` as polls: same fields, the source from feed id, name and domain."""
    from monitor.store.models import Article

    entry = ENTRIES[0]
    stored = Article(feed_id="f", entry_key=entry.key, url=entry.url, title=entry.title,
                     summary=entry.summary, body=entry.body, author=None, lang=entry.lang)
    assert document(stored, "f", "Feed") == document(entry, "f", "Feed", "https://other.test/")
    assert document(stored, "f", "Feed").source == "f Feed news.test"
    stored.url = None
    assert document(stored, "f", None).source == "f" and document(stored, "f", None).url == ""
