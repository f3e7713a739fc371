"""Language tags: normalising what feeds declare, detecting what they do not (py3langid).

SPEC §5: an article's language comes from the entry or the feed, else it is
detected. Tags are kept the way rule ``languages:`` compare them
(``monitor.match.engine``): lower case, "-" between subtags, so "en-GB" is
"en-gb" and still matches a rule asking for "en".

The py3langid model ships inside the package; it is loaded once, lazily, on the
first ``detect`` (about a second), under a lock. Classification only reads the
model, so one identifier serves every thread.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import numpy as np

__all__ = ["MAX_CHARS", "MIN_CONFIDENCE", "MIN_LETTERS", "detect", "load", "normalise"]

MIN_LETTERS = 20
"""Fewer letters than this (a word or two, a name) is not enough to tell a language."""

MIN_CONFIDENCE = 0.80
"""Minimum normalised probability of the best language. py3langid calibrates its softmax by
the length of the text, so short texts land well below this unless clear-cut: a four-word
Turkish headline scores about 0.8 (with Azerbaijani and Crimean Tatar next), a sentence 0.98+,
a single word or name 0.05-0.15."""

MAX_CHARS = 600
"""Only the start of a long text is classified: about 100 words, several sentences, where one
sentence is already decided at 0.98+. Its time grows with the length: ~0.1 ms for 600
characters (``_WindowedScores``)."""

# py3langid labels without an ISO 639-1 code, mapped to the macrolanguage that has one.
_TO_639_1 = {
    "ary": "ar", "arz": "ar",  # Moroccan, Egyptian Arabic
    "uzs": "uz",               # Southern Uzbek
    "wuu": "zh", "yue": "zh",  # Wu, Cantonese
    "gug": "gn",               # Paraguayan Guarani
    "fuv": "ff",               # Nigerian Fulfulde
}

# Deprecated ISO 639-1 codes and common ISO 639-2/3 codes of press languages, as feeds write them.
_ALIASES = {
    "iw": "he", "in": "id", "ji": "yi", "jw": "jv", "mo": "ro",
    "eng": "en", "tur": "tr", "aze": "az", "rus": "ru", "deu": "de", "ger": "de", "fra": "fr",
    "fre": "fr", "spa": "es", "ita": "it", "por": "pt", "ara": "ar", "fas": "fa", "per": "fa",
    "ukr": "uk", "kaz": "kk", "uzb": "uz", "kir": "ky", "tuk": "tk", "hye": "hy", "arm": "hy",
    "kat": "ka", "geo": "ka", "zho": "zh", "chi": "zh", "jpn": "ja", "kor": "ko", "nld": "nl",
    "dut": "nl", "pol": "pl", "ell": "el", "gre": "el", "heb": "he", "hin": "hi", "urd": "ur",
}

_TAG = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")
_MAX_TAG = 35  # Article.lang is String(35)

_lock = threading.Lock()
_identifier: Any = None


def normalise(tag: str | None) -> str | None:
    """A feed's language tag in the form rules compare: "en-GB" -> "en-gb", "EN" -> "en".

    Underscores become "-" ("pt_BR" -> "pt-br"); of a list ("en, fr") the first is
    kept; deprecated or three-letter codes with a two-letter one are mapped
    ("iw" -> "he", "eng-US" -> "en-us"); a tag that does not look like BCP 47
    ("English", "x", "12", "") is None. At most 35 characters, whole subtags.
    """
    if not isinstance(tag, str):
        return None
    first = re.split(r"[\s,;]+", tag.strip().lower().replace("_", "-"), maxsplit=1)[0]
    if not _TAG.fullmatch(first):
        return None
    primary, _, rest = first.partition("-")
    primary = _ALIASES.get(primary, primary)
    out = primary
    for sub in rest.split("-") if rest else ():
        if len(out) + 1 + len(sub) > _MAX_TAG:
            break
        out = f"{out}-{sub}"
    return out


def load() -> None:
    """Load the model now (about a second) instead of on the first ``detect``."""
    _get_identifier()


def _get_identifier() -> Any:
    global _identifier
    if _identifier is None:
        with _lock:
            if _identifier is None:
                _identifier = _windowed_identifier()
    return _identifier


def _windowed_identifier() -> Any:
    """py3langid's identifier (its shipped model, normalised probabilities), scoring with
    ``_WindowedScores``."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    class WindowedIdentifier(LanguageIdentifier):  # type: ignore[misc]
        def _raw_score(self, text: bytes) -> Any:
            return self.windowed(text)

    identifier = WindowedIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.windowed = _WindowedScores(identifier)
    return identifier


class _WindowedScores:
    """py3langid's ``_raw_score`` with its byte-by-byte walk done by numpy, all positions at once.

    py3langid walks an Aho-Corasick automaton over the text's bytes in a Python loop and
    counts the feature each state stands for. A state is the longest suffix of what was read
    that is a prefix of some feature, so it never depends on more than the last ``depth``
    bytes (the longest path in the trie): walking ``depth`` steps from the root, for every
    position at once, reaches the same states. Features are then counted and scored exactly
    as py3langid does (same order, same arithmetic). Per 600 characters: the walk 130 -> 25
    us, a whole classification ~300 -> ~150 us.

    Scoring multiplies the counts by the model's float16 weights of the features found,
    which numpy widens to float32 first, slowly (~60 us for ~350 rows). Here each weight's
    16 bits index a table of the 65,536 float32 values (256 KB): the same floats in half the
    time. Widening the whole model instead would cost 57 MB.
    """

    def __init__(self, identifier: Any) -> None:
        from py3langid.langid import RAW_FLOOR

        self.identifier = identifier
        self.nextmove = np.frombuffer(identifier.tk_nextmove, dtype=np.uint32)
        self.rowbase = np.asarray(identifier._rowbase, dtype=np.intp)
        self.output = np.asarray(identifier.tk_output, dtype=np.intp)
        self.depth = _trie_depth(self.nextmove, self.rowbase)
        self.floor = RAW_FLOOR
        self.weight_bits = identifier.nb_ptc.view(np.uint16)
        self.widened = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)

    def __call__(self, text: bytes) -> Any:
        me = self.identifier
        data = np.frombuffer(text, dtype=np.uint8).astype(np.intp)
        states = np.zeros(len(data), dtype=np.intp)
        for back in range(min(self.depth, len(data)) - 1, -1, -1):
            # Every position i >= back reads byte i - back; earlier ones have not started.
            states[back:] = self.nextmove[self.rowbase[states[back:]] + data[: len(data) - back]]
        features = self.output[states]
        features = features[features >= 0]
        if not len(features):
            fill = 0.0 if me._norm_probs else self.floor
            return np.full(len(me.nb_classes), fill, dtype=np.float32)
        # py3langid counts with a Counter: features in the order first seen.
        found, first, counts = np.unique(features, return_index=True, return_counts=True)
        order = np.argsort(first)
        weights = np.take(self.widened, np.take(self.weight_bits, found[order], axis=0))
        return np.log1p(counts[order].astype(np.float32)) @ weights + me.nb_pc


def _trie_depth(nextmove: Any, rowbase: Any) -> int:
    """The most steps from the root to any state of the automaton (breadth first, a thousand
    states at a time so that no temporary array is large)."""
    seen = np.zeros(len(rowbase), dtype=bool)
    seen[0] = True
    frontier = np.array([0], dtype=np.intp)
    depth = 0
    while True:
        found = []
        for part in np.array_split(frontier, -(-len(frontier) // 1024)):
            targets = nextmove[(rowbase[part][:, None] + np.arange(256)).ravel()]
            targets = np.unique(targets[~seen[targets]])
            seen[targets] = True
            found.append(targets)
        frontier = np.concatenate(found)
        if not len(frontier):
            return depth
        depth += 1


def detect(text: str) -> str | None:
    """The ISO 639-1 code of `text`'s language, or None when too short or unsure.

    Needs ``MIN_LETTERS`` letters and a probability of at least ``MIN_CONFIDENCE``;
    languages without a two-letter code (and "no language") give None.
    """
    if not isinstance(text, str):
        return None
    sample = " ".join(text[:MAX_CHARS].split())
    if sum(map(str.isalpha, sample)) < MIN_LETTERS:
        return None
    code, confidence = _get_identifier().classify(sample)
    if confidence < MIN_CONFIDENCE:
        return None
    code = _TO_639_1.get(code, code)
    return code if len(code) == 2 else None
