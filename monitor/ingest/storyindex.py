"""Near-duplicate candidates in memory: the LSH bucket keys and signatures of the recent
stories.

SPEC §5: copies of one wire story join it (similarity >= ~0.8). Finding them means looking
up a new article's ``NUM_BANDS`` bucket keys (``dedup.band_keys``) among those of the
stories of the last few days, and comparing its signature with theirs. Kept in SQL, the keys
were 16 rows per new story written at random places of one B-tree (~270 of the ~360 µs a
first poll spent storing an article), and reading the candidates' signatures back (a JSON
list each) cost more than the rest of assigning a story. Here a new story costs an insertion
into a small sorted array and a row of another, and ``near`` scores a poll's candidates in
one NumPy pass.

The index is a cache of the ``stories`` table and nothing else: keys are derived from
``stories.signature``, which never changes once written; ``monitor.store.queries.
assign_stories`` fills it from the table on first use and then reads the stories added
since ``last_id`` before each assignment, under the stories lock, so daemons sharing a
database see each other's stories and a restart loses nothing. What it finds similar is
checked against the table (age, feed) before an article joins it, so a stale entry costs a
lookup, never a wrong join.

Memory: 16 bytes a key in sorted numpy arrays (16 keys a story) and 256 bytes a signature,
~26 MB for 50,000 stories. Stories below ``forget_before`` (out of the near-duplicate window)
are dropped.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

import numpy as np

from monitor.ingest.dedup import NUM_BANDS, NUM_PERM, SIGNATURE_BYTES, band_keys, is_empty

__all__ = ["BucketKeys", "StoryIndex", "bucket_keys"]


class StoryIndex:
    MERGE_AT = 1 << 14
    """Keys gathered in the small sorted level before it is merged into the large one: a
    new story's keys are inserted into an array of at most this many, and a merge copies
    the large one (~13 MB at 50,000 stories)."""

    def __init__(self) -> None:
        self.last_id = 0          # the highest story id added
        self.floor_id = 0         # stories below this id are out of the window
        self.floor_checked_at: datetime | None = None   # when the caller last set floor_id
        # Two levels of (key, story) pairs sorted by key: the recent ones, small (a new
        # story's keys are inserted there), and the rest, merged into now and then.
        self._keys = np.empty(0, dtype=np.uint64)
        self._ids = np.empty(0, dtype=np.int64)
        self._recent_keys = np.empty(0, dtype=np.uint64)
        self._recent_ids = np.empty(0, dtype=np.int64)
        self._rows: dict[int, int] = {}         # story -> its row of _signatures
        self._signatures = np.empty((0, NUM_PERM), dtype=np.uint32)   # rows in use: _used
        self._used = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many (key, story) entries it holds."""
        return len(self._keys) + len(self._recent_keys)

    def add(self, stories: Iterable[tuple[int, bytes | None]]) -> None:
        """Index stories newer than ``last_id``: ``(story id, packed signature)`` pairs
        (``dedup.pack``), in any order. The index holds every story up to ``last_id``, so
        older ones are already in (read back by one caller after another has added them)
        and are skipped. Stories without a signature (or with an empty text's) are
        remembered as seen, nothing more."""
        stories = list(stories)
        keyed = bucket_keys([s for _, s in stories])
        self.add_keyed(keyed, [(story_id, i) for i, (story_id, _) in enumerate(stories)])

    def add_keyed(self, keyed: BucketKeys, stories: Sequence[tuple[int, int]]) -> None:
        """``add`` for stories whose bucket keys are known: ``(story id, position)`` pairs,
        the story's signature at ``position`` in ``keyed`` (one without keys is only seen)."""
        with self._lock:
            fresh = [(i, p) for i, p in stories if i > self.last_id]
            if not fresh:
                return
            self.last_id = max(i for i, _ in fresh)
            row = keyed.row_of
            pairs = [(i, row[p]) for i, p in fresh if p in row]
            if not pairs:
                return
            story_ids = [i for i, _ in pairs]
            rows = np.array([j for _, j in pairs], dtype=np.intp)
            self._store_signatures(story_ids, keyed.signatures[rows])
            self._recent_keys, self._recent_ids = _insert(
                self._recent_keys, self._recent_ids, keyed.keys[rows].ravel(),
                np.repeat(np.array(story_ids, dtype=np.int64), NUM_BANDS))
            if len(self._recent_keys) >= self.MERGE_AT:
                self._merge()

    def candidates(self, signatures: Sequence[bytes | None] | BucketKeys
                   ) -> list[dict[int, int]]:
        """For each signature, the indexed stories sharing a bucket with it and how many
        buckets each shares (more shared buckets: a likelier near-duplicate). Takes the
        packed signatures or their ``bucket_keys``."""
        keyed = signatures if isinstance(signatures, BucketKeys) else bucket_keys(signatures)
        out: list[dict[int, int]] = [{} for _ in range(keyed.count)]
        with self._lock:
            for (j, story_id), shared in self._shared(keyed).items():
                out[keyed.rows[j]][story_id] = shared
        return out

    def near(self, keyed: BucketKeys, threshold: float) -> list[list[tuple[int, float]]]:
        """For each signature, the indexed stories at least ``threshold`` similar to it
        (``dedup.similarity``), with their similarity: the most similar first, then the
        one sharing more buckets, then the older. Only stories sharing a bucket are
        compared, all in one pass."""
        out: list[list[tuple[int, float]]] = [[] for _ in range(keyed.count)]
        with self._lock:
            shared = self._shared(keyed)
            if not shared:
                return out
            pairs = [(j, self._rows[story_id]) for j, story_id in shared]
            mine, theirs = np.array(pairs, dtype=np.intp).T
            equal = np.count_nonzero(keyed.signatures[mine] == self._signatures[theirs], axis=1)
        scores = (equal / NUM_PERM).tolist()
        ranked = sorted(((-score, -count, story_id, j)
                         for ((j, story_id), count), score in zip(shared.items(), scores,
                                                                   strict=True)
                         if score >= threshold))
        for score, _, story_id, j in ranked:
            out[keyed.rows[j]].append((story_id, -score))
        return out

    def _shared(self, keyed: BucketKeys) -> Counter[tuple[int, int]]:
        """How many buckets each (signature ``j`` of ``keyed``, story) pair shares: one
        vectorised search of each level."""
        shared: Counter[tuple[int, int]] = Counter()
        if not keyed.rows:
            return shared
        flat = keyed.keys.ravel()
        # Searched in order, each search starts near where the last one ended.
        order = np.argsort(flat)
        needles = flat[order]
        for indexed, ids in ((self._keys, self._ids), (self._recent_keys, self._recent_ids)):
            if not len(indexed):
                continue
            # Most keys are not there, and one that is rarely has more than one story.
            first = np.searchsorted(indexed, needles)
            hit = np.flatnonzero(indexed[np.minimum(first, len(indexed) - 1)] == needles)
            if len(hit):
                starts = first[hit]
                counts = np.searchsorted(indexed, needles[hit], side="right") - starts
                at = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(
                    int(counts.sum()))
                shared.update(zip((np.repeat(order[hit], counts) // NUM_BANDS).tolist(),
                                  ids[at].tolist(), strict=True))
        return shared

    def forget_before(self, story_id: int) -> None:
        """Drop the stories below ``story_id`` (out of the window): they are not nominated
        from then on."""
        with self._lock:
            if story_id > self.floor_id:
                self.floor_id = story_id
                self._merge()
                live = self._ids >= story_id
                self._keys, self._ids = self._keys[live], self._ids[live]
                kept = {s: r for s, r in self._rows.items() if s >= story_id}
                if len(kept) < len(self._rows):
                    self._rows = {}
                    self._used = 0
                    self._store_signatures(list(kept), self._signatures[list(kept.values())])

    def _store_signatures(self, stories: list[int], signatures: np.ndarray) -> None:
        """Append the stories' signatures (``(len(stories), NUM_PERM)`` uint32)."""
        needed = self._used + len(stories)
        if needed > len(self._signatures):
            grown = np.empty((max(needed, 2 * len(self._signatures), 1024), NUM_PERM),
                             dtype=np.uint32)
            grown[:self._used] = self._signatures[:self._used]
            self._signatures = grown
        self._signatures[self._used:needed] = signatures
        self._rows.update(zip(stories, range(self._used, needed), strict=True))
        self._used = needed

    def _merge(self) -> None:
        """Fold the recent level into the large one."""
        self._keys, self._ids = _insert(self._keys, self._ids, self._recent_keys,
                                        self._recent_ids, ordered=True)
        self._recent_keys = np.empty(0, dtype=np.uint64)
        self._recent_ids = np.empty(0, dtype=np.int64)


def _insert(keys: np.ndarray, ids: np.ndarray, new_keys: np.ndarray, new_ids: np.ndarray,
            *, ordered: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``keys`` (and their ``ids``) with the new pairs inserted in order: one pass
    over the arrays (``ordered``: the new keys are sorted already)."""
    if not ordered:
        order = np.argsort(new_keys, kind="stable")
        new_keys, new_ids = new_keys[order], new_ids[order]
    at = np.searchsorted(keys, new_keys, side="right")
    return np.insert(keys, at, new_keys), np.insert(ids, at, new_ids)


@dataclass(frozen=True)
class BucketKeys:
    """The bucket keys of ``count`` signatures: ``keys[j]`` are those of signature
    ``rows[j]``, ``signatures[j]`` the signature; signatures of another scheme or of an empty
    text have none."""

    count: int
    rows: list[int]
    keys: np.ndarray          # (len(rows), NUM_BANDS) uint64
    signatures: np.ndarray    # (len(rows), NUM_PERM) uint32

    @cached_property
    def row_of(self) -> dict[int, int]:
        """The row of ``keys`` and ``signatures`` of each signature that has keys, by its
        position."""
        return {position: j for j, position in enumerate(self.rows)}


def bucket_keys(signatures: Sequence[bytes | None]) -> BucketKeys:
    """The LSH bucket keys of packed signatures (``dedup.pack``), computed once for a lookup
    and the index's later ``add_keyed``."""
    rows: list[int] = []         # positions of the signatures of this scheme
    packed: list[bytes] = []
    for i, signature in enumerate(signatures):
        if signature is not None and len(signature) == SIGNATURE_BYTES:
            rows.append(i)
            packed.append(signature)
    if not rows:
        return BucketKeys(len(signatures), [], np.empty((0, NUM_BANDS), dtype=np.uint64),
                          np.empty((0, NUM_PERM), dtype=np.uint32))
    array = np.frombuffer(b"".join(packed), dtype="<u4").reshape(-1, NUM_PERM)
    keep = ~is_empty(array)
    array = array[keep].astype(np.uint32, copy=False)     # the mask copied it already
    return BucketKeys(len(signatures), [i for i, k in zip(rows, keep.tolist(), strict=True) if k],
                      band_keys(array), array)
