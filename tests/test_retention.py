"""Retention (SPEC §8): old articles without hits go, in batches; hits, their articles and
dateless entries stay; stories go with their last article."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from monitor.ingest import dedup
from monitor.ingest.parse import Entry
from monitor.service.retention import apply_retention
from monitor.store import queries
from monitor.store.db import Database
from monitor.store.models import Article, Story

NOW = datetime(2026, 9, 1, tzinfo=UTC)
KEEP = timedelta(days=90)


def store(db: Database, key: str, when: datetime, *, dated: bool = True,
          hit: bool = False) -> int:
    text = f"{key} harbour cranes report {key}"
    signature = dedup.pack([dedup.signature(text)])[0]
    story = db.call(queries.assign_stories, feed_id="f", now=when, threshold=0.8,
                    index=db.stories, keys=[queries.StoryKey(key, None, signature)])[0]
    entry = Entry(key=key, url=None, title=key, summary=text, body="", author=None, lang="en",
                  published_at=when if dated else None)
    article = db.call(queries.insert_articles, "f", [
        queries.NewArticle(entry, None, None, story)], when)[key]
    if hit:
        db.call(queries.insert_hit, rule_id="r", article_id=article, matches=[], snippet="",
                score=1.0, alerted=True, now=when, story_id=story)
    return article


def test_retention_prunes_old_articles_without_hits_in_batches(db_url: str) -> None:
    db = Database(db_url)
    db.upgrade()
    db.call(queries.sync_feeds, [("f", "http://a.test/feed", None)], NOW - timedelta(days=400))
    old = NOW - KEEP - timedelta(days=1)
    for i in range(5):
        store(db, f"old{i}", old)
    store(db, "old-hit", old, hit=True)
    store(db, "old-undated", old, dated=False)
    store(db, "recent", NOW - timedelta(days=10))
    store(db, "today", NOW - timedelta(hours=1))

    done = asyncio.run(apply_retention(db, NOW, KEEP, batch=2))

    with db.session() as s:
        left = set(s.scalars(select(Article.entry_key)))
        stories = s.scalar(select(func.count()).select_from(Story))
    assert left == {"old-hit", "old-undated", "recent", "today"}
    assert done["articles"] == 5
    assert stories == 4, "the stories of the pruned articles went with them"
    assert done["stories"] == 5
    # a second run finds nothing more to do
    assert asyncio.run(apply_retention(db, NOW, KEEP)) == {"articles": 0, "stories": 0}
    db.dispose()
