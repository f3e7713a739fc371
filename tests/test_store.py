"""Storage: migrations match the models, WAL on SQLite, the same code on PostgreSQL."""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, insert, inspect, text

from monitor.cli import main
from monitor.ingest import dedup
from monitor.ingest.parse import Entry
from monitor.store import queries
from monitor.store.db import Database, current_revision, migrations_dir, upgrade
from monitor.store.models import Base, UTCDateTime
from tests.conftest import WriteConfig

WIRE = ("Dockworkers in Varnholm ended their strike on Friday night after the port "
        "authority agreed to hire forty more crane operators before the winter season")


def test_migrations_create_exactly_the_models(db_url: str) -> None:
    db = Database(db_url)
    db.upgrade()
    db.upgrade()  # idempotent: every start runs it
    assert current_revision(db.engine) == "0008"
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"
    db.dispose()


def _migration(revision: str) -> ModuleType:
    """A migration script as a module (they are files, not a package)."""
    (path,) = (migrations_dir() / "versions").glob(f"{revision}_*.py")
    spec = importlib.util.spec_from_file_location(f"migration_{revision}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _downgrade(engine: Engine, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_story_band_migration_keeps_the_buckets(db_url: str) -> None:
    """0006 turns hex buckets into BIGINTs (and back on downgrade) without losing a row, so
    stories started before the upgrade still catch their copies after it."""
    signature = dedup.signature("Dockworkers in Varnholm ended their strike on Friday night")
    bands = _migration("0007")._bands_0006(signature)
    engine = create_engine(db_url)
    upgrade(engine, "0005")
    old = [(band, f"{bucket & (2**64 - 1):016x}") for band, bucket in bands]
    # The 0005 bucket: the hex digest of the same 8 hash bytes.
    packed = b"".join(v.to_bytes(4, "little") for v in signature)
    assert old[3][1] == hashlib.blake2b(b"\x03\x00" + packed[48:64], digest_size=8).hexdigest()
    now = datetime.now(UTC)
    with engine.begin() as conn:
        story = conn.execute(text("INSERT INTO stories (title, signature, created_at) "
                                  "VALUES ('s', NULL, :now) RETURNING id"), {"now": now}).scalar()
        conn.execute(text("INSERT INTO story_bands (band, bucket, story_id, created_at) "
                          "VALUES (:band, :bucket, :story, :now)"),
                     [{"band": b, "bucket": h, "story": story, "now": now} for b, h in old])
    upgrade(engine, "0006")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT band, bucket FROM story_bands ORDER BY band")).all()
    assert [tuple(r) for r in rows] == bands
    _downgrade(engine, "0005")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT band, bucket FROM story_bands ORDER BY band")).all()
    assert [tuple(r) for r in rows] == old
    engine.dispose()


# The stories table before 0008, when signatures were JSON lists.
_STORIES_JSON = sa.table("stories", sa.column("id"), sa.column("title"),
                         sa.column("signature", sa.JSON),
                         sa.column("created_at", UTCDateTime()))


def _story_json(engine: Engine, signature: Sequence[int], created_at: datetime) -> int:
    with engine.begin() as conn:
        return conn.execute(insert(_STORIES_JSON).values(
            title="s", signature=list(signature), created_at=created_at)
            .returning(_STORIES_JSON.c.id)).scalar_one()


def test_story_bands_leave_the_database_and_come_back_on_downgrade(db_url: str) -> None:
    """0007 drops story_bands (the buckets live in memory, derived from the signatures), and
    a downgrade rebuilds the 0006 rows of the recent stories from their signatures."""
    signature = dedup.signature(WIRE)
    engine = create_engine(db_url)
    upgrade(engine, "0006")
    first = _story_json(engine, signature, datetime.now(UTC))
    upgrade(engine, "0007")
    assert "story_bands" not in inspect(engine).get_table_names()
    _downgrade(engine, "0006")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT band, bucket, story_id FROM story_bands "
                                 "ORDER BY band")).all()
    assert [tuple(r) for r in rows] == [
        (band, bucket, first) for band, bucket in _migration("0007")._bands_0006(signature)]
    engine.dispose()


def test_signatures_are_packed_and_recent_stories_still_catch_their_copies(db_url: str) -> None:
    """0008 stores signatures as 256 packed bytes: the recent stories' are converted (a copy
    arriving after the upgrade joins its story), older ones dropped (never compared again);
    a downgrade gives the recent ones back as JSON lists."""
    signature = dedup.signature(WIRE)
    engine = create_engine(db_url)
    upgrade(engine, "0007")
    now = datetime.now(UTC)
    recent = _story_json(engine, signature, now - timedelta(hours=5))
    old = _story_json(engine, signature, now - timedelta(days=4))
    foreign = _story_json(engine, (1, 2, 3), now)         # another scheme: nothing to keep
    upgrade(engine, "0008")
    with engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT id, signature FROM stories")).all())
    assert bytes(stored[recent]) == dedup.pack([signature])[0]
    assert len(stored[recent]) == dedup.SIGNATURE_BYTES
    assert dedup.unpack(bytes(stored[recent])) == signature
    assert stored[old] is None and stored[foreign] is None
    db = Database(db_url)
    db.upgrade()
    db.call(queries.sync_feeds, [("b", "http://b.test/feed", None)], now)
    copy = dedup.signature(WIRE.replace("forty", "40"))
    (joined,) = db.call(queries.assign_stories, feed_id="b", now=now, threshold=0.8,
                        index=db.stories, keys=[queries.StoryKey("copy", None, dedup.pack([copy])[0])])
    assert joined == recent
    db.dispose()
    _downgrade(engine, "0007")
    with engine.connect() as conn:
        back = dict(conn.execute(sa.select(_STORIES_JSON.c.id, _STORIES_JSON.c.signature)).all())
    assert back[recent] == list(signature) and back[old] is None
    upgrade(engine, "0008")    # and up again
    engine.dispose()


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'sub' / 'p.db'}")  # the folder is created
    db.upgrade()
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    db.dispose()


def test_sqlite_datetimes_are_the_text_sqlalchemy_writes(tmp_path: Path) -> None:
    """UTCDateTime writes SQLite's text itself (faster): the same text SQLAlchemy's DATETIME
    writes, so stored rows compare and sort as before, and it reads back as written."""
    from datetime import timedelta, timezone

    from sqlalchemy.dialects import sqlite

    from monitor.store.models import UTCDateTime

    dialect = sqlite.dialect()
    ours = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    theirs = sqlite.DATETIME().bind_processor(dialect)
    baku = timezone(timedelta(hours=4))
    values = [datetime(2024, 6, 10, 9, 0, tzinfo=UTC), datetime(2024, 6, 10, 13, 0, 5, 7, baku),
              datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, UTC),
              datetime(999, 3, 4, 5, 6, 7, 120000, UTC)]
    for value in values:
        assert ours(value) == theirs(value.astimezone(UTC).replace(tzinfo=None))
    assert ours(None) is None
    with pytest.raises(ValueError, match="naive"):
        ours(datetime(2024, 6, 10, 9, 0))

    db = Database(f"sqlite:///{tmp_path / 'dates.db'}")
    db.upgrade()
    when = datetime(2024, 6, 10, 13, 0, 5, 7, baku)
    db.call(queries.sync_feeds, [("f", "https://a.test/feed", "F")], when)
    db.call(lambda s: queries.record_success(s, "f", when, when, status="ok"))
    with db.engine.connect() as conn:
        assert conn.scalar(text("SELECT last_success_at FROM feeds")) == "2024-06-10 09:00:05.000007"
    assert db.call(queries.feed_state, "f").last_success_at == when
    db.dispose()


def test_articles_and_hits_are_stored_once(db_url: str) -> None:
    db = Database(db_url)
    db.upgrade()
    now = datetime.now(UTC)
    db.call(queries.sync_feeds, [("f", "http://a.test/feed", "F")], now)
    entry = Entry(key="g1", url=None, title="T", summary="", body="", author=None, lang="en",
                  published_at=now)
    row = queries.NewArticle(entry, canonical_url=None, content_hash=None, story_id=None)
    inserted = db.call(queries.insert_articles, "f", [row], now)
    first = inserted["g1"]
    assert isinstance(first, int)
    assert db.call(queries.insert_articles, "f", [row], now) == {}
    hit = {"rule_id": "r", "article_id": first, "matches": [], "snippet": "", "score": 1.0,
           "alerted": True, "now": now}
    assert isinstance(db.call(queries.insert_hit, **hit), int)
    assert db.call(queries.insert_hit, **hit) is None
    assert set(db.call(queries.stored_entries, "f", ["g1", "g2"])) == {"g1"}
    stored = db.call(queries.list_feeds)[0]
    assert stored.created_at.tzinfo is not None, "datetimes come back timezone-aware"
    db.dispose()


def test_story_copies_are_the_other_articles_of_the_story(db_url: str) -> None:
    """``story.also_in`` of an alert: the story's other articles, oldest first, at most
    ``limit``, each named by its feed's name (else its id)."""
    db = Database(db_url)
    db.upgrade()
    now = datetime.now(UTC)
    db.call(queries.sync_feeds, [("a", "http://a.test/feed", "Outlet A"),
                                 ("b", "http://b.test/feed", None),
                                 ("c", "http://c.test/feed", "Outlet C")], now)
    (story,) = db.call(queries.assign_stories, feed_id="a", now=now, threshold=0.8,
                       index=db.stories, keys=[queries.StoryKey("Port strike ends", None, b"")])
    ids = {}
    for feed in ("a", "b", "c"):
        entry = Entry(key=f"{feed}1", url=f"https://{feed}.test/1", title=f"Strike {feed}",
                      summary="", body="", author=None, lang="en", published_at=now)
        ids |= db.call(queries.insert_articles, feed, [queries.NewArticle(
            entry, canonical_url=None, content_hash=None, story_id=story)], now)
    other = Entry(key="a2", url=None, title="Elsewhere", summary="", body="", author=None,
                  lang="en", published_at=now)
    db.call(queries.insert_articles, "a", [queries.NewArticle(other, None, None, None)], now)
    assert db.call(queries.story_copies, story, ids["a1"]) == [
        {"source": "b", "feed": "b", "url": "https://b.test/1", "title": "Strike b"},
        {"source": "Outlet C", "feed": "c", "url": "https://c.test/1", "title": "Strike c"}]
    assert [c["feed"] for c in db.call(queries.story_copies, story, ids["c1"], 1)] == ["a"]
    db.dispose()


def test_feed_sync_follows_the_config(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    db.upgrade()
    now = datetime.now(UTC)
    db.call(queries.sync_feeds, [("a", "http://a.test/", None), ("b", "http://b.test/", None)], now)
    db.call(queries.sync_feeds, [("a", "http://a2.test/", "A")], now)
    feeds = {f.id: f for f in db.call(queries.list_feeds)}
    assert feeds["a"].url == "http://a2.test/" and feeds["a"].name == "A" and feeds["a"].active
    assert not feeds["b"].active, "a feed removed from the config stops being polled"
    assert [f.id for f in db.call(queries.due_feeds, now, 10)] == ["a"]
    db.dispose()


def test_db_upgrade_command(tmp_path: Path, write_config: WriteConfig,
                            capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config({"database": f"sqlite:///{tmp_path / 'cmd.db'}", "rules": []})
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert "at revision 0008" in capsys.readouterr().out
    assert (tmp_path / "cmd.db").exists()
