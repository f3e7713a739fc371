"""Folding and tokenisation: the ground both queries and documents stand on."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.match import fold, tokenize


def words(text: str) -> list[str]:
    return [t.folded for t in tokenize(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Erdoğan ERDOĞAN erdoğan Erdogan", ["erdogan"] * 4),
        (unicodedata.normalize("NFD", "Erdoğan"), ["erdogan"]),
        ("İstanbul ISTANBUL ıstanbul istanbul", ["istanbul"] * 4),
        ("Qarabağ QARABAĞ qarabag", ["qarabag"] * 3),
        ("Əliyev ƏLİYEV aliyev", ["aliyev"] * 3),
        ("Straße STRASSE strasse STRAẞE", ["strasse"] * 4),
        ("Łódź Øresund", ["lodz", "oresund"]),
        ("АЛИЕВ Алиев алиев", ["алиев"] * 3),
        ("ΨΥΧΉ ψυχή", ["ψυχη"] * 2),
        ("ｆｕｌｌ ＷＩＤＴＨ", ["full", "width"]),
    ],
)
def test_folding_makes_variants_equal(text: str, expected: list[str]) -> None:
    assert words(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Karabakh's", ["karabakh", "s"]),
        ("Karabakh'ta", ["karabakh", "ta"]),
        ("Karabakh’ta Karabakh‘s Karabakhʼs", ["karabakh", "ta", "karabakh", "s", "karabakh", "s"]),
        ("Nagorno-Karabakh", ["nagorno", "karabakh"]),
        ("snake_case", ["snake", "case"]),
        ("U.S.-led, (2024)!", ["u", "s", "led", "2024"]),
        ("Kara\u00adbakh", ["karabakh"]),
        ("नमस्ते दुनिया", ["नमस्ते", "दुनिया"]),
        ("   ", []),
        ("-- ... ’", []),
    ],
)
def test_tokens_split_on_punctuation_only(text: str, expected: list[str]) -> None:
    assert words(text) == expected


def test_offsets_point_into_the_original_string() -> None:
    text = "  ERDOĞAN’s visit to İstanbul\u00a0— and Straße."
    tokens = tokenize(text)
    assert [text[t.start : t.end] for t in tokens] == [
        "ERDOĞAN",
        "s",
        "visit",
        "to",
        "İstanbul",
        "and",
        "Straße",
    ]


def test_fold_is_case_and_accent_insensitive_for_whole_strings() -> None:
    assert fold("Recep Tayyip ERDOĞAN") == fold("recep tayyip erdogan") == "recep tayyip erdogan"
    assert fold("ß") == "ss"
    assert fold("İ") == fold("ı") == fold("I") == "i"


@settings(max_examples=300)
@given(st.text())
def test_tokens_are_stable_under_retokenisation(text: str) -> None:
    # A folded token printed into a query must parse back to the same token.
    for token in tokenize(text):
        assert words(token.folded) == [token.folded]
        assert 0 <= token.start < token.end <= len(text)
        assert words(text[token.start : token.end]) == [token.folded]


def test_folded_tokens_are_remembered_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """``fold_token`` remembers what it folded, at most ``FOLD_CACHE`` tokens (then it starts
    afresh), and gives the same keys either way."""
    from monitor.match import text

    monkeypatch.setattr(text, "FOLD_CACHE", 50)
    cache = text.fold_token.__self__  # type: ignore[attr-defined]
    cache.clear()
    raws = [f"Ərdoğan{i}" for i in range(120)]
    sizes = []
    for raw in raws:
        assert text.fold_token(raw) == text._fold_token(raw) == f"ardogan{raw[7:]}"
        sizes.append(len(cache))
    assert max(sizes) == 50 and sizes[:50] == list(range(1, 51))
    assert text.fold_token(raws[-1]) == "ardogan119" and len(cache) == sizes[-1], "a hit"
    cache.clear()
