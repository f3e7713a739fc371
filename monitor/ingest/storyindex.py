"""Near-duplicate candidates in memory: the LSH bucket keys of the recent stories.

SPEC §5: copies of one wire story join it (similarity >= ~0.8). Finding the candidates means
looking up a new article's ``NUM_BANDS`` bucket keys (``dedup.band_keys``) among those of
the stories of the last few days. Kept in SQL, that was 16 rows per new story written at
random places of one B-tree: ~270 of the ~360 µs a first poll spent storing an article
(mostly the WAL pages each commit wrote). Here a new story costs a few dict entries.

The index is a cache of the ``stories`` table and nothing else: keys are derived from
``stories.signature``; ``monitor.store.queries.assign_stories`` fills it from the table on
first use and then reads the stories added since ``last_id`` before each assignment, under
the stories lock, so daemons sharing a database see each other's stories and a restart
loses nothing. What it nominates is checked against the table (age, feed, signature), so
a stale entry costs a lookup, never a wrong join.

Memory: 16 bytes a key in sorted numpy arrays (16 keys a story: ~13 MB for 50,000 stories),
plus a dict of the keys added since the last merge (at most ``MERGE_AT``). Stories below
``forget_before`` (out of the near-duplicate window) are dropped at the next merge.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

import numpy as np

from monitor.ingest.dedup import NUM_BANDS, NUM_PERM, band_keys, is_empty

__all__ = ["BucketKeys", "StoryIndex", "bucket_keys"]


class StoryIndex:
    MERGE_AT = 1 << 16
    """Keys gathered in a dict before they are merged into the sorted arrays."""

    def __init__(self) -> None:
        self.last_id = 0          # the highest story id added
        self.floor_id = 0         # stories below this id are out of the window
        self.floor_checked_at: datetime | None = None   # when the caller last set floor_id
        self._keys = np.empty(0, dtype=np.uint64)     # sorted
        self._ids = np.empty(0, dtype=np.int64)       # story of each key
        self._recent: dict[int, int] = {}       # added since the last merge: key -> story
        self._more: dict[int, list[int]] = {}   # ... and the other stories of a shared key
        self._recent_count = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many (key, story) entries it holds."""
        return len(self._keys) + self._recent_count

    def add(self, stories: Iterable[tuple[int, Sequence[int] | None]]) -> None:
        """Index stories newer than ``last_id``: ``(story id, signature)`` pairs, in any
        order. The index holds every story up to ``last_id``, so older ones are already in
        (read back by one caller after another has added them) and are skipped. Stories
        without a signature (or with an empty text's) are remembered as seen, nothing more."""
        stories = list(stories)
        keyed = bucket_keys([s for _, s in stories])
        self.add_keyed([(story_id, keyed.of(i)) for i, (story_id, _) in enumerate(stories)])

    def add_keyed(self, stories: Sequence[tuple[int, np.ndarray | None]]) -> None:
        """``add`` for stories whose bucket keys are known (``BucketKeys.of``; None: none)."""
        with self._lock:
            fresh = [(i, k) for i, k in stories if i > self.last_id]
            if not fresh:
                return
            self.last_id = max(i for i, _ in fresh)
            fresh = [(i, k) for i, k in fresh if k is not None]
            if not fresh:
                return
            keys = np.concatenate([k for _, k in fresh])
            ids = np.repeat(np.array([i for i, _ in fresh], dtype=np.int64), NUM_BANDS)
            recent, more = self._recent, self._more
            for key, story_id in zip(keys.ravel().tolist(), ids.tolist(), strict=True):
                if recent.setdefault(key, story_id) != story_id:
                    more.setdefault(key, []).append(story_id)
            self._recent_count += ids.size
            if self._recent_count >= self.MERGE_AT:
                self._merge()

    def candidates(self, signatures: Sequence[Sequence[int] | None] | BucketKeys
                   ) -> list[dict[int, int]]:
        """For each signature, the indexed stories sharing a bucket with it and how many
        buckets each shares (more shared buckets: a likelier near-duplicate). Takes the
        signatures or their ``bucket_keys``."""
        keyed = signatures if isinstance(signatures, BucketKeys) else bucket_keys(signatures)
        out: list[dict[int, int]] = [{} for _ in range(keyed.count)]
        rows, keys = keyed.rows, keyed.keys
        if not rows:
            return out
        width = keys.shape[1]
        flat = keys.ravel()
        with self._lock:
            indexed, ids = self._keys, self._ids
            if len(indexed):
                # One search, for the keys in order (each search starts where the last
                # ended); most are not there, and the rest rarely have more than one story.
                order = np.argsort(flat)
                at = np.searchsorted(indexed, flat[order])
                found = indexed[np.minimum(at, len(indexed) - 1)] == flat[order]
                for position, start in zip(order[found].tolist(), at[found].tolist(),
                                           strict=True):
                    shared = out[rows[position // width]]
                    key, end = flat[position], start
                    while end < len(indexed) and indexed[end] == key:
                        story_id = int(ids[end])
                        shared[story_id] = shared.get(story_id, 0) + 1
                        end += 1
            recent, more = self._recent, self._more
            if recent:
                for position, key in enumerate(flat.tolist()):
                    first = recent.get(key)
                    if first is None:
                        continue
                    shared = out[rows[position // width]]
                    for story_id in (first, *more.get(key, ())):
                        shared[story_id] = shared.get(story_id, 0) + 1
        return out

    def forget_before(self, story_id: int) -> None:
        """Drop the stories below ``story_id`` (out of the window) at the next merge; they
        are not nominated from then on."""
        with self._lock:
            if story_id > self.floor_id:
                self.floor_id = story_id
                self._merge()

    def _merge(self) -> None:
        """Fold the recent keys into the sorted arrays, leaving out forgotten stories."""
        keys, ids = [self._keys], [self._ids]
        if self._recent:
            keys.append(np.fromiter(self._recent, dtype=np.uint64, count=len(self._recent)))
            ids.append(np.fromiter(self._recent.values(), dtype=np.int64,
                                   count=len(self._recent)))
            for key, extra in self._more.items():
                keys.append(np.full(len(extra), key, dtype=np.uint64))
                ids.append(np.array(extra, dtype=np.int64))
        all_keys, all_ids = np.concatenate(keys), np.concatenate(ids)
        live = all_ids >= self.floor_id
        order = np.argsort(all_keys[live], kind="stable")
        self._keys, self._ids = all_keys[live][order], all_ids[live][order]
        self._recent, self._more = {}, {}
        self._recent_count = 0


@dataclass(frozen=True)
class BucketKeys:
    """The bucket keys of ``count`` signatures: ``keys[j]`` are those of signature
    ``rows[j]``; signatures of another scheme or of an empty text have none."""

    count: int
    rows: list[int]
    keys: np.ndarray      # (len(rows), NUM_BANDS) uint64

    def of(self, position: int) -> np.ndarray | None:
        """The keys of the signature at ``position`` (a ``(1, NUM_BANDS)`` array), or None."""
        row = self._row.get(position)
        return None if row is None else self.keys[row:row + 1]

    @cached_property
    def _row(self) -> dict[int, int]:
        return {position: j for j, position in enumerate(self.rows)}


def bucket_keys(signatures: Sequence[Sequence[int] | None]) -> BucketKeys:
    """The LSH bucket keys of signatures, computed once for a lookup and the index's later
    ``add_keyed``."""
    rows = [i for i, s in enumerate(signatures) if s is not None and len(s) == NUM_PERM]
    if not rows:
        return BucketKeys(len(signatures), [], np.empty((0, NUM_BANDS), dtype=np.uint64))
    array = np.fromiter(itertools.chain.from_iterable(signatures[i] for i in rows),
                        dtype=np.uint64, count=len(rows) * NUM_PERM).reshape(-1, NUM_PERM)
    keep = ~is_empty(array)
    return BucketKeys(len(signatures), [i for i, k in zip(rows, keep.tolist(), strict=True) if k],
                      band_keys(array[keep]))
