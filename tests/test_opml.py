"""OPML: subscription lists in the config, `feeds import` and `feeds export`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from monitor.cli import main
from monitor.config import ConfigError, load_settings
from monitor.ingest.opml import OpmlError, OpmlFeed, read_opml, slug, write_opml

NESTED = b"""<?xml version="1.0"?>
<opml version="1.0"><head><title>Mine</title></head><body>
  <outline text="Caucasus">
    <outline text="Tbilisi Times" xmlUrl="https://tbilisi.example/rss"/>
    <outline text="Yerevan Daily" xmlUrl="https://yerevan.example/feed"/>
  </outline>
  <outline title="Baku Post" type="rss" xmlUrl="https://baku.example/rss.xml"/>
  <outline text="Twice" xmlUrl="https://baku.example/rss.xml"/>
  <outline text="Not a feed" xmlUrl="ftp://files.example/x"/>
  <outline text="Tbilisi Times" xmlUrl="https://tbilisi.example/other"/>
</body></opml>"""


def test_read_nested_outlines_become_tags_and_ids_are_unique() -> None:
    feeds = read_opml(NESTED, taken={"baku-post"})
    assert [(f.id, f.url, f.tags) for f in feeds] == [
        ("tbilisi-times", "https://tbilisi.example/rss", ("Caucasus",)),
        ("yerevan-daily", "https://yerevan.example/feed", ("Caucasus",)),
        ("baku-post-2", "https://baku.example/rss.xml", ()),
        ("tbilisi-times-2", "https://tbilisi.example/other", ()),
    ]
    assert slug("Hürriyet Daily News") == "hurriyet-daily-news"


@pytest.mark.parametrize(("data", "message"), [
    (b"<opml><body><outline", "not valid XML"),
    (b"<rss/>", "not OPML: the root element is <rss>"),
    (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
     b"<opml><body><outline text='&lol2;' xmlUrl='https://a.example/'/></body></opml>",
     "refused unsafe XML"),
])
def test_bad_files(data: bytes, message: str) -> None:
    with pytest.raises(OpmlError, match=message):
        read_opml(data)


def test_export_round_trips() -> None:
    feeds = [OpmlFeed("a", "https://a.example/rss", "A & B", ("world",)),
             OpmlFeed("b", "https://b.example/rss", None)]
    again = read_opml(write_opml(feeds))
    assert [(f.url, f.name, f.tags) for f in again] == [
        ("https://a.example/rss", "A & B", ("world",)), ("https://b.example/rss", "b", ())]


def test_config_opml_entries(tmp_path: Path) -> None:
    (tmp_path / "list.opml").write_bytes(NESTED)
    config = tmp_path / "pressmon.yaml"
    config.write_text("feeds:\n  - {id: baku, url: 'https://baku.example/rss.xml'}\n"
                      "  - opml: list.opml\nrules: []\n", encoding="utf-8")
    settings = load_settings(config)
    assert [f.id for f in settings.feeds] == ["baku", "tbilisi-times", "yerevan-daily",
                                              "tbilisi-times-2"], "the explicit feed wins"
    config.write_text("feeds:\n  - opml: missing.opml\nrules: []\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert f"{config}:2: feeds[0].opml: cannot read" in str(info.value)


def test_cli_import_and_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.opml"
    source.write_bytes(NESTED)
    config = tmp_path / "pressmon.yaml"
    config.write_text("feeds:\n  - {id: yerevan-daily, url: 'https://y.example/'}\nrules: []\n",
                      encoding="utf-8")
    assert main(["feeds", "import", str(source), "--config", str(config)]) == 0
    captured = capsys.readouterr()
    entries = yaml.safe_load(captured.out)
    assert entries[1] == {"id": "yerevan-daily-2", "name": "Yerevan Daily",
                          "url": "https://yerevan.example/feed", "tags": ["Caucasus"]}
    assert "4 feeds" in captured.err
    out = tmp_path / "out.opml"
    assert main(["feeds", "export", "--output", str(out), "--config", str(config)]) == 0
    assert [f.url for f in read_opml(out.read_bytes())] == ["https://y.example/"]
    assert main(["feeds", "import", str(tmp_path / "nope.opml"), "--config", str(config)]) == 1
