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

import threading
from collections.abc import Iterable, Sequence
from datetime import datetime

import numpy as np

from monitor.ingest.dedup import NUM_PERM, band_keys, is_empty

__all__ = ["StoryIndex"]


class StoryIndex:
    MERGE_AT = 1 << 16
    """Keys gathered in a dict before they are merged into the sorted arrays."""

    def __init__(self) -> None:
        self.last_id = 0          # the highest story id added
        self.floor_id = 0         # stories below this id are out of the window
        self.floor_checked_at: datetime | None = None   # when the caller last set floor_id
        self._keys = np.empty(0, dtype=np.uint64)     # sorted
        self._ids = np.empty(0, dtype=np.int64)       # story of each key
        self._recent: dict[int, list[int]] = {}       # added since the last merge
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
        with self._lock:
            ids: list[int] = []
            signatures: list[Sequence[int]] = []
            top = self.last_id
            for story_id, signature in stories:
                if story_id <= self.last_id:
                    continue
                top = max(top, story_id)
                if signature is not None and len(signature) == NUM_PERM:
                    ids.append(story_id)
                    signatures.append(signature)
            self.last_id = top
            if not ids:
                return
            array = np.array(signatures, dtype=np.uint64)
            keep = ~is_empty(array)
            keys = band_keys(array[keep]).tolist()
            recent = self._recent
            for story_id, row in zip(np.array(ids)[keep].tolist(), keys, strict=True):
                for key in row:
                    found = recent.get(key)
                    if found is None:
                        recent[key] = [story_id]
                    else:
                        found.append(story_id)
            self._recent_count += len(keys) * (len(keys[0]) if keys else 0)
            if self._recent_count >= self.MERGE_AT:
                self._merge()

    def candidates(self, signatures: Sequence[Sequence[int]]) -> list[dict[int, int]]:
        """For each signature, the indexed stories sharing a bucket with it and how many
        buckets each shares (more shared buckets: a likelier near-duplicate)."""
        out: list[dict[int, int]] = [{} for _ in signatures]
        rows = [i for i, s in enumerate(signatures) if len(s) == NUM_PERM]
        if not rows:
            return out
        array = np.array([signatures[i] for i in rows], dtype=np.uint64)
        keep = ~is_empty(array)
        rows = [i for i, k in zip(rows, keep.tolist(), strict=True) if k]
        if not rows:
            return out
        keys = band_keys(array[keep])
        with self._lock:
            flat = keys.ravel()
            lo = np.searchsorted(self._keys, flat, side="left")
            hi = np.searchsorted(self._keys, flat, side="right")
            width = keys.shape[1]
            hits = np.nonzero(hi > lo)[0].tolist()
            ids = self._ids
            for position in hits:
                shared = out[rows[position // width]]
                for story_id in ids[lo[position]:hi[position]].tolist():
                    shared[story_id] = shared.get(story_id, 0) + 1
            recent = self._recent
            if recent:
                for i, row in zip(rows, keys.tolist(), strict=True):
                    shared = out[i]
                    for key in row:
                        for story_id in recent.get(key, ()):
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
        keys = [self._keys]
        ids = [self._ids]
        if self._recent:
            counts = [len(v) for v in self._recent.values()]
            keys.append(np.repeat(np.fromiter(self._recent, dtype=np.uint64,
                                              count=len(self._recent)), counts))
            ids.append(np.fromiter((s for v in self._recent.values() for s in v),
                                   dtype=np.int64, count=sum(counts)))
        all_keys, all_ids = np.concatenate(keys), np.concatenate(ids)
        live = all_ids >= self.floor_id
        all_keys, all_ids = all_keys[live], all_ids[live]
        order = np.argsort(all_keys, kind="stable")
        self._keys, self._ids = all_keys[order], all_ids[order]
        self._recent = {}
        self._recent_count = 0
