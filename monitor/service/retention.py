"""Retention (SPEC §8): prune what `retention` says is old, in small batches.

Each batch is its own short transaction, so polls and deliveries interleave with a long
clean-up instead of waiting behind it, and PostgreSQL's autovacuum keeps up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from monitor.store import queries
from monitor.store.db import Database

log = logging.getLogger(__name__)

BATCH = 500

Pruner = Callable[[Session, datetime, int], int]


async def apply_retention(db: Database, now: datetime, keep_articles: timedelta,
                          batch: int = BATCH) -> dict[str, int]:
    """Prune old articles without hits, then stories nothing refers to; returns how many
    went, by kind."""
    steps: list[tuple[str, Pruner, datetime]] = [
        ("articles", queries.prune_articles, now - keep_articles),
        ("stories", queries.prune_stories, now - keep_articles),
    ]
    done: dict[str, int] = {}
    for name, prune, before in steps:
        total = 0
        while True:
            count = await db.run(prune, before, batch)
            total += count
            if count < batch:
                break
        done[name] = total
    if any(done.values()):
        log.info("retention: pruned %s", ", ".join(f"{n} {k}" for k, n in done.items()))
    return done
