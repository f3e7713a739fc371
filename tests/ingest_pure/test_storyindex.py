"""The in-memory LSH index of recent stories (monitor.ingest.storyindex)."""

from __future__ import annotations

import random

import pytest

from monitor.ingest import dedup
from monitor.ingest.storyindex import StoryIndex, bucket_keys

LEAD = ("Dockworkers in Varnholm ended their strike on Friday night after the port authority "
        "agreed to hire forty more crane operators before the winter season and to pay the "
        "overtime owed since March, the union said in a statement read at the main gate")


def _sig(text: str) -> bytes:
    """A text's signature, packed as the index takes it."""
    return dedup.pack([dedup.signature(text)])[0]


def _variant(words: list[str], rng: random.Random, edits: int) -> str:
    out = list(words)
    for _ in range(edits):
        out[rng.randrange(len(out))] = f"w{rng.randrange(10**6)}"
    return " ".join(out)


def test_a_copy_finds_its_story_and_others_do_not() -> None:
    index = StoryIndex()
    story = _sig(LEAD)
    other = _sig("The regional court suspended dredging works in Kessel Bay on "
                            "Wednesday, ruling that the permit was not yet final")
    index.add([(1, story), (2, other)])
    copy = _sig(LEAD.replace("forty", "40"))
    found, unrelated = index.candidates([copy, _sig("Mayor opens a new library")])
    assert 1 in found and 2 not in found and found[1] >= 1
    assert unrelated == {}
    # the story itself shares every band with itself
    assert index.candidates([story])[0][1] == dedup.NUM_BANDS
    assert index.last_id == 2 and len(index) == 2 * dedup.NUM_BANDS


def test_results_are_the_same_before_and_after_merges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys start in a dict and move to sorted arrays; lookups see both the same way."""
    rng = random.Random(3)
    words = LEAD.split()
    signatures = [_sig(_variant(words, rng, rng.randrange(0, 12))) for _ in range(60)]
    probes = [_sig(_variant(words, rng, 3)) for _ in range(10)]

    def build(merge_at: int) -> list[dict[int, int]]:
        monkeypatch.setattr(StoryIndex, "MERGE_AT", merge_at)
        index = StoryIndex()
        for start in range(0, 60, 7):     # added in batches, some merges in between
            index.add(list(enumerate(signatures, 1))[start:start + 7])
        return index.candidates(probes)

    unmerged, merged = build(10**9), build(50)
    assert unmerged == merged
    assert all(found for found in merged), "close variants share bands with some story"
    # a count is exactly the number of shared band keys
    keys = {i: set(dedup.bands(dedup.unpack(s))) for i, s in enumerate(signatures, 1)}
    for probe, found in zip(probes, merged, strict=True):
        mine = set(dedup.bands(dedup.unpack(probe)))
        assert found == {i: len(k & mine) for i, k in keys.items() if k & mine}


def test_forgotten_stories_are_no_longer_nominated() -> None:
    index = StoryIndex()
    index.add([(5, _sig(LEAD)), (9, _sig(LEAD + " later"))])
    index.forget_before(6)
    (found,) = index.candidates([_sig(LEAD)])
    assert 5 not in found and 9 in found
    assert index.floor_id == 6 and len(index) == dedup.NUM_BANDS


def test_stories_without_a_signature_only_move_last_id() -> None:
    index = StoryIndex()
    empty = _sig(" -- ")
    other_scheme = dedup.pack([(1, 2, 3)])[0]
    index.add([(3, None), (4, empty), (7, other_scheme)])   # none, empty text, another scheme
    assert index.last_id == 7 and len(index) == 0
    assert index.candidates([empty, b"", _sig(LEAD)]) == [{}, {}, {}]


def test_keys_computed_for_a_lookup_index_the_same_as_signatures() -> None:
    """assign_stories computes a batch's bucket keys once, looks them up, and on commit
    adds the new stories with those keys: the index must end up as ``add`` would leave it."""
    rng = random.Random(5)
    words = LEAD.split()
    signatures: list[bytes | None] = [
        _sig(_variant(words, rng, rng.randrange(0, 12))) for _ in range(20)]
    signatures[3] = _sig("")      # an empty text: no keys
    signatures[7] = None                     # no signature at all
    signatures[9] = dedup.pack([(1, 2, 3)])[0]    # another scheme: no keys
    probes = [_sig(_variant(words, rng, 3)) for _ in range(5)]

    by_signature, by_keys = StoryIndex(), StoryIndex()
    by_signature.add(list(enumerate(signatures, 1)))
    keyed = bucket_keys(signatures)
    assert keyed.count == 20 and not {3, 7, 9} & keyed.row_of.keys() and 0 in keyed.row_of
    assert keyed.keys[keyed.row_of[0]].tolist() == dedup.bands(dedup.unpack(signatures[0]))
    assert keyed.signatures[keyed.row_of[0]].tobytes() == signatures[0]
    by_keys.add_keyed(keyed, [(i + 1, i) for i in range(20)])

    assert by_keys.last_id == by_signature.last_id == 20
    assert len(by_keys) == len(by_signature) == 17 * dedup.NUM_BANDS
    assert by_keys.candidates(probes) == by_signature.candidates(bucket_keys(probes))
    assert by_keys.candidates(probes) == by_signature.candidates(probes)
    assert by_keys.near(bucket_keys(probes), 0.5) == by_signature.near(bucket_keys(probes), 0.5)


def _indexes(monkeypatch: pytest.MonkeyPatch, signatures: list[bytes]) -> list[StoryIndex]:
    """The same stories indexed with their keys all in the dict, and all merged."""
    out = []
    for merge_at in (10**9, 50):
        monkeypatch.setattr(StoryIndex, "MERGE_AT", merge_at)
        index = StoryIndex()
        for start in range(0, len(signatures), 7):
            index.add(list(enumerate(signatures, 1))[start:start + 7])
        out.append(index)
    return out


def test_near_gives_the_similar_stories_with_their_similarity(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``near`` scores every candidate as ``dedup.similarity`` does, keeps those at or above
    the threshold, most similar first, and gives each signature its own list."""
    rng = random.Random(11)
    words = LEAD.split()
    signatures = [_sig(_variant(words, rng, rng.randrange(0, 10))) for _ in range(40)]
    probes = [_sig(_variant(words, rng, 2)) for _ in range(6)]
    probes.insert(2, _sig("Mayor opens a new library in the old town"))
    probes.insert(4, _sig(""))
    for index in _indexes(monkeypatch, signatures):
        for threshold in (0.0, 0.5, 0.8):
            found = index.near(bucket_keys(probes), threshold)
            assert len(found) == len(probes)
            for probe, candidates, near in zip(
                    probes, index.candidates(probes), found, strict=True):
                expected = {story: dedup.similarity(dedup.unpack(probe),
                                                    dedup.unpack(signatures[story - 1]))
                            for story in candidates}
                assert dict(near) == {s: v for s, v in expected.items() if v >= threshold}
                assert [v for _, v in near] == sorted((v for _, v in near), reverse=True)
            assert found[2] == [] and found[4] == []
        assert any(len(near) > 1 for near in index.near(bucket_keys(probes), 0.5))


def test_near_breaks_ties_by_shared_buckets_then_age() -> None:
    index = StoryIndex()
    story = _sig(LEAD)
    index.add([(3, story), (8, story), (5, story)])
    assert index.near(bucket_keys([story]), 0.8) == [[(3, 1.0), (5, 1.0), (8, 1.0)]]


def test_forgetting_keeps_the_signatures_of_the_stories_left() -> None:
    index = StoryIndex()
    rng = random.Random(2)
    words = LEAD.split()
    signatures = [_sig(_variant(words, rng, 1)) for _ in range(30)]
    index.add(list(enumerate(signatures, 1)))
    before = index.near(bucket_keys(signatures), 0.0)
    index.forget_before(21)
    after = index.near(bucket_keys(signatures), 0.0)
    assert after == [[(s, v) for s, v in near if s >= 21] for near in before]
    index.add([(31, signatures[0])])     # new stories after a forget find their place
    assert index.near(bucket_keys([signatures[0]]), 1.0) == [[(31, 1.0)]]


def test_packed_signatures_hold_the_values() -> None:
    signature = dedup.signature(LEAD)
    (packed,) = dedup.pack([signature])
    assert len(packed) == dedup.SIGNATURE_BYTES and dedup.unpack(packed) == signature
    assert packed[:4] == signature[0].to_bytes(4, "little")
    assert dedup.pack([signature, (1, 2, 3)])[1] == b"\x01\0\0\0\x02\0\0\0\x03\0\0\0"
    assert dedup.pack([]) == []
