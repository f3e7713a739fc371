"""`pressmon demo`: the bundled feeds alert exactly where the example rules say."""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from monitor.config import load_settings
from monitor.demo import FEEDS_DIR, demo_config, feed_documents
from monitor.demo.server import FeedServer
from monitor.service.daemon import Daemon
from monitor.store.models import Article, Hit
from tests.conftest import ROOT

EXPECTED: dict[str, list[str]] = json.loads((FEEDS_DIR / "expected.json").read_text())
OLD_ITEMS = {"demo:cw-005"}   # dated five days back: stored, never alerted


def test_demo_feeds_match_exactly_the_expected_rules(tmp_path: Path) -> None:
    console = io.StringIO()
    with FeedServer(feed_documents()) as server:
        settings = load_settings(demo_config(tmp_path, server.port))
        daemon = Daemon(settings, console=console)
        assert asyncio.run(daemon.run_once()) == 0
    from monitor.store.db import Database

    db = Database(settings.database_url)
    with db.session() as session:
        articles = {a.id: a.entry_key for a in session.scalars(select(Article))}
        hits = list(session.scalars(select(Hit)))
    db.dispose()

    assert sorted(articles.values()) == sorted(EXPECTED)
    found = {(articles[h.article_id], h.rule_id) for h in hits}
    expected = {(guid, rule) for guid, rules in EXPECTED.items() for rule in rules}
    assert found == expected
    alerted = {(articles[h.article_id], h.rule_id) for h in hits if h.alerted}
    assert alerted == {(g, r) for g, r in expected if g not in OLD_ITEMS}
    # One console alert per alerted hit, and decoys never appear.
    printed = re.findall(r"^[*!] \[([a-z-]+)\]", console.getvalue(), flags=re.M)
    assert len(printed) == len(alerted)
    assert "Heydar Aliyev airport" not in console.getvalue()


def test_demo_command_prints_alerts_and_exits(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "monitor", "demo", "--once"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    expected = sum(len(rules) for guid, rules in EXPECTED.items() if guid not in OLD_ITEMS)
    assert len(re.findall(r"^[*!] \[", result.stdout, flags=re.M)) == expected
    assert "! [aliyev-erdogan]" in result.stdout     # priority high is flagged
