"""Language tags and detection (monitor.ingest.lang). Sentences are our own."""

from __future__ import annotations

import threading

import pytest

from monitor.ingest.lang import detect, normalise

SENTENCES = {
    "en": "The harbour ferry will run every twenty minutes from Monday, the city transport office said.",
    "tr": "Belediye, liman feribotunun pazartesiden itibaren her yirmi dakikada bir sefer "
          "yapacağını açıkladı.",
    "az": "Şəhər nəqliyyat idarəsi bildirib ki, bazar ertəsindən etibarən liman bərəsi hər iyirmi "
          "dəqiqədən bir hərəkət edəcək.",
    "ru": "Городское транспортное управление сообщило, что с понедельника портовый паром будет "
          "ходить каждые двадцать минут.",
    "de": "Die Hafenfähre fährt ab Montag alle zwanzig Minuten, teilte das städtische Verkehrsamt mit.",
}


@pytest.mark.parametrize(("code", "text"), SENTENCES.items())
def test_detects_languages_of_whole_sentences(code: str, text: str) -> None:
    assert detect(text) == code


@pytest.mark.parametrize("code", SENTENCES)
def test_detects_a_headline_length_text(code: str) -> None:
    headline = {
        "en": "Harbour ferry to run every twenty minutes",
        "tr": "Liman feribotu her yirmi dakikada bir sefer yapacak",
        "az": "Liman bərəsi hər iyirmi dəqiqədən bir hərəkət edəcək",
        "ru": "Портовый паром будет ходить каждые двадцать минут",
        "de": "Hafenfähre fährt künftig alle zwanzig Minuten",
    }[code]
    assert detect(headline) == code


@pytest.mark.parametrize("text", ["", "   ", "Baku", "Hello", "OK, thanks", "12:30 – 14:45 (GMT+4)",
                                  "Ankara, İzmir", "https://a.test/x?id=1", "!!! ???"])
def test_too_short_or_unclear_is_none(text: str) -> None:
    assert detect(text) is None


def test_detect_is_robust() -> None:
    assert detect(None) is None  # type: ignore[arg-type]
    long = SENTENCES["de"] * 500  # only the start is classified
    assert detect(long) == "de"
    assert detect(SENTENCES["en"].upper()) == "en"


def test_detect_from_threads() -> None:
    results: list[str | None] = []

    def work(text: str) -> None:
        for _ in range(20):
            results.append(detect(text))

    threads = [threading.Thread(target=work, args=(t,)) for t in SENTENCES.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(results)) == sorted(SENTENCES)
    assert len(results) == 100


@pytest.mark.parametrize(("tag", "expected"), [
    ("en", "en"), ("EN", "en"), (" en-GB ", "en-gb"), ("pt_BR", "pt-br"), ("zh-Hant-TW", "zh-hant-tw"),
    ("az-Latn-AZ", "az-latn-az"), ("tr-TR", "tr-tr"), ("en-us, fr", "en-us"), ("de;q=0.9", "de"),
    ("iw", "he"), ("eng", "en"), ("ENG-US", "en-us"), ("tur", "tr"), ("fil", "fil"),
    ("en-" + "abcdefgh-" * 5 + "x", "en-abcdefgh-abcdefgh-abcdefgh"),
    (None, None), ("", None), ("   ", None), ("English", None), ("e", None), ("12", None),
    ("en--us", None), ("en-", None), ("en-toolongsubtag", None), ("*", None), ("x-klingon", None),
])
def test_normalise(tag: str | None, expected: str | None) -> None:
    assert normalise(tag) == expected
    if expected is not None:
        assert normalise(expected) == expected
        assert len(expected) <= 35
