"""The read-only commands over a seeded database: tables and their --json forms."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import load_settings
from monitor.demo import demo_config, feed_documents
from monitor.demo.server import FeedServer
from monitor.service.daemon import Daemon


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("seeded")
    with FeedServer(feed_documents()) as server:
        config = demo_config(folder, server.port)
        assert asyncio.run(Daemon(load_settings(config), console=io.StringIO()).run_once()) == 0
    return config


def test_feeds(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["feeds", "--json", "--config", str(seeded)]) == 0
    feeds = json.loads(capsys.readouterr().out)
    assert sorted(f["id"] for f in feeds) == ["anatolia-sport-culture", "black-sea-business",
                                              "caucasus-wire"]
    assert all(f["status"] == "ok" and f["last_success_at"] for f in feeds)
    assert main(["feeds", "list", "--config", str(seeded)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["ID", "STATUS"] and len(table) == 4


def test_hits(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hits", "--rule", "karabakh", "--json", "--config", str(seeded)]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 4 and all(h["rule"] == "karabakh" for h in hits)
    assert sum(1 for h in hits if not h["alerted"]) == 1, "the five-day-old story is not alerted"
    assert main(["hits", "--since", "soon", "--config", str(seeded)]) == 1
    assert "invalid duration" in capsys.readouterr().err


def test_alerts(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "--json", "--config", str(seeded)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["status"] == "sent" and r["channel"] == "console" for r in rows)
    assert main(["alerts", "list", "--status", "failed", "--config", str(seeded)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1   # the header only
    assert main(["alerts", "retry", "--config", str(seeded)]) == 2


def test_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_feeds_add_finds_the_feed_a_page_links(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from tests.conftest import rss

    page = (b'<!DOCTYPE html><html><head><title>Home</title><link rel="alternate" '
            b'type="application/rss+xml" href="/feed.xml"></head><body>News</body></html>')
    feed = rss([{"guid": "1", "title": "One", "description": "x"}], title="Tbilisi Herald")
    config = tmp_path / "pressmon.yaml"
    config.write_text("feeds:\n  - {id: tbilisi-herald, url: 'http://x.test/'}\nrules: []\n")
    with FeedServer({"/": page, "/feed.xml": feed}) as server:
        assert main(["feeds", "add", server.url("/"), "--config", str(tmp_path / "none.yaml")]) == 0
        (entry,) = yaml.safe_load(capsys.readouterr().out)
        assert entry == {"id": "tbilisi-herald", "name": "Tbilisi Herald",
                         "url": server.url("/feed.xml")}
        assert main(["feeds", "add", server.url("/"), "--config", str(config)]) == 1
        assert "already configured" in capsys.readouterr().err
        assert main(["feeds", "add", server.url("/feed.xml"), "--id", "th",
                     "--config", str(config)]) == 0
        assert yaml.safe_load(capsys.readouterr().out)[0]["id"] == "th"
        assert main(["feeds", "add", server.url("/missing"), "--config", str(config)]) == 1
        assert "HTTP 404" in capsys.readouterr().err


def test_backfill_estimates_then_stores_and_alerts(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with FeedServer(feed_documents()) as server:
        config = demo_config(tmp_path, server.port)
        assert asyncio.run(Daemon(load_settings(config), console=io.StringIO()).run_once()) == 0
    # A rule added later: backfill runs it over what is already stored.
    rules = tmp_path / "later.yaml"
    rules.write_text("rules:\n  - id: pashinyan\n    query: Pashinyan\n", encoding="utf-8")
    text = config.read_text().replace("rules:\n- ", f"rules:\n- {rules}\n- ")
    config.write_text(text)
    args = ["backfill", "--rule", "pashinyan", "--since", "1d", "--config", str(config)]

    assert main([*args, "--alert"]) == 1          # not a terminal: needs --yes
    err = capsys.readouterr().err
    assert "--alert would send 3 alerts (3 to console)" in err and "pass --yes" in err
    assert main([*args, "--json", "--alert", "--yes"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["new_hits"] == 3 and summary["written_hits"] == 3
    assert summary["written_alerts"] == 3 and summary["alerts_by_channel"] == {"console": 3}
    assert main([*args, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["new_hits"] == 0 and again["written_hits"] == 0, "nothing twice"
    assert main(["alerts", "--status", "pending", "--json", "--config", str(config)]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert main(["backfill", "--rule", "nope", "--config", str(config)]) == 1
