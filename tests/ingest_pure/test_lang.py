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


# The identifier walks its automaton with numpy (``_WindowedScores``); py3langid's own walk
# is the reference: the same scores, bit for bit, on every kind of text.
_ALPHABET = ("abcdefghijklmnopqrstuvwxyz ABCÇĞIİÖŞÜ çğışöüə ñéèàâäßøåæœ абвгдежзийклмнопрстуфхцчш "
             "αβγδεζηθ 日本語中文한국어 ארבע ابتث 0123456789 .,;:!?'\"-\n\t🙂")


def test_windowed_scores_are_py3langid_scores() -> None:
    import random

    import numpy as np
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    from monitor.ingest import lang

    reference = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    ours = lang._get_identifier()
    assert ours.windowed.depth >= 4   # byte n-grams up to several bytes: the walk is real
    rng = random.Random(5)
    texts = [*SENTENCES.values(), "", "a", "abcdef", "abcdefg", "Əliyev", SENTENCES["ru"].upper()]
    texts += ["".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 700)))
              for _ in range(400)]
    texts += [rng.choice(list(SENTENCES.values()))[rng.randint(0, 40):] * rng.randint(1, 4)
              for _ in range(100)]
    # Random text rarely reaches the automaton's deepest states: spell each one out.
    texts += [b"The " + path + b" river " + path for path in _deepest_paths(ours.windowed)]
    for text in texts:
        data = reference._encode(text)
        assert np.array_equal(ours._decide(data), reference._decide(data)), text
        assert ours.classify(text) == reference.classify(text)


def _deepest_paths(windowed: object) -> list[bytes]:
    """The bytes that lead from the root to each state at the automaton's greatest depth."""
    import numpy as np

    nextmove, rowbase = windowed.nextmove, windowed.rowbase  # type: ignore[attr-defined]
    parent = np.full(len(rowbase), -1, dtype=np.intp)
    via = np.zeros(len(rowbase), dtype=np.intp)
    parent[0] = 0
    frontier, deepest = np.array([0], dtype=np.intp), np.array([0], dtype=np.intp)
    while len(frontier):
        targets = nextmove[(rowbase[frontier][:, None] + np.arange(256)).ravel()]
        targets, first = np.unique(targets, return_index=True)
        new = parent[targets] < 0
        targets, first = targets[new], first[new]
        parent[targets], via[targets] = frontier[first // 256], first % 256
        if len(targets):
            deepest = targets
        frontier = targets
    paths = []
    for state in deepest.tolist():
        path = []
        while state:
            path.append(int(via[state]))
            state = int(parent[state])
        paths.append(bytes(reversed(path)))
    assert len(paths[0]) == windowed.depth  # type: ignore[attr-defined]
    return paths
