"""`pressmon test`: match and explain a rule or a query, storing and sending nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.demo.server import FeedServer
from tests.conftest import ROOT, rss

SHIPPED = str(ROOT / "config" / "pressmon.yaml")

ARTICLES = [
    {"title": "Aliyev and Erdoğan open a gas pipeline", "body": "The presidents met in Igdir.",
     "url": "http://n.test/1", "lang": "en"},
    {"title": "Heydar Aliyev airport adds flights", "body": "Nothing about the president.",
     "url": "http://n.test/2", "lang": "en"},
    {"title": "Ilham Aliyev visits Astana", "body": "Talks on transit.", "lang": "en"},
]


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["test", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_rule_id_against_a_json_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "articles.json"
    path.write_text(json.dumps(ARTICLES), encoding="utf-8")
    out = run_json(capsys, "aliyev-erdogan", "--file", str(path), "--config", SHIPPED)
    assert out["articles"] == 3
    hits = out["hits"]
    assert isinstance(hits, list) and len(hits) == 1
    (hit,) = hits
    assert hit["article"] == {"index": 0, "title": ARTICLES[0]["title"], "url": "http://n.test/1"}
    assert hit["rule"] == "aliyev-erdogan"
    assert {m["term"] for m in hit["matches"]} == {"@ilham-aliyev", "@erdogan"}
    for m in hit["matches"]:
        text = ARTICLES[0][m["field"]]
        assert text[m["start"]:m["end"]] == m["text"]
    assert hit["score"] > 0 and "«" in hit["snippet"]


def test_bare_query_uses_configured_entities(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "articles.json"
    path.write_text(json.dumps(ARTICLES), encoding="utf-8")
    out = run_json(capsys, "@ilham-aliyev NOT @erdogan", "--file", str(path), "--config", SHIPPED)
    assert [h["article"]["index"] for h in out["hits"]] == [2]  # type: ignore[index, union-attr]
    assert all(h["rule"] is None for h in out["hits"])  # type: ignore[index, union-attr]


def test_human_output_explains_what_failed(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps(ARTICLES[2]), encoding="utf-8")
    assert main(["test", "aliyev-erdogan", "--file", str(path), "--config", SHIPPED]) == 0
    out = capsys.readouterr().out
    assert "[0] no match: query did not match" in out
    assert "@ilham-aliyev: yes" in out and "@erdogan: no" in out
    assert "1 article(s), 0 matched" in out


def test_txt_and_feed_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    txt = tmp_path / "a.txt"
    txt.write_text("Grain corridor talks resume\nShips wait near Odesa.", encoding="utf-8")
    out = run_json(capsys, "grain-corridor", "--file", str(txt), "--config", SHIPPED)
    assert len(out["hits"]) == 1  # type: ignore[arg-type]
    feed = tmp_path / "f.xml"
    feed.write_bytes(rss([{"guid": "1", "title": "Karabakh'ta yeni yol", "description": "x"},
                          {"guid": "2", "title": "Qarabağ FK football win", "description": "y"}]))
    out = run_json(capsys, "karabakh", "--file", str(feed), "--config", SHIPPED)
    assert out["articles"] == 2
    assert [h["article"]["index"] for h in out["hits"]] == [0]  # type: ignore[index, union-attr]


def test_url_source(capsys: pytest.CaptureFixture[str]) -> None:
    with FeedServer({"/f.xml": rss([{"guid": "1", "title": "Erdogan in Baku", "description": "x"}])}
                    ) as server:
        out = run_json(capsys, "@erdogan", "--url", server.url("/f.xml"), "--config", SHIPPED)
    assert len(out["hits"]) == 1  # type: ignore[arg-type]


def test_bad_query_is_a_user_error_with_a_caret(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.txt"
    path.write_text("t\nb", encoding="utf-8")
    assert main(["test", "(Karabakh OR", "--file", str(path), "--config", SHIPPED]) == 1
    err = capsys.readouterr().err
    assert "error: query: column" in err and "^" in err
    assert main(["test", "@nobody", "--file", str(path), "--config", SHIPPED]) == 1
    assert "unknown entity '@nobody'" in capsys.readouterr().err


def test_unreadable_input_is_a_user_error(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    assert main(["test", "x", "--file", str(bad), "--config", SHIPPED]) == 1
    assert "invalid JSON" in capsys.readouterr().err
    assert main(["test", "x", "--file", str(tmp_path / "missing.json"), "--config", SHIPPED]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from monitor.config import load_settings
    from monitor.demo import demo_config, feed_documents
    from monitor.service.daemon import Daemon

    with FeedServer(feed_documents()) as server:
        config = demo_config(tmp_path, server.port)
        import io
        assert asyncio.run(Daemon(load_settings(config), console=io.StringIO()).run_once()) == 0
    out = run_json(capsys, "karabakh", "--archive", "--since", "1d", "--config", str(config))
    assert out["articles"] == 21
    assert len(out["hits"]) == 4  # type: ignore[arg-type]
