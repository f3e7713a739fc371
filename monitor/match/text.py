"""Text folding and tokenisation shared by queries, entity aliases and documents.

Queries, aliases and article text all go through the same two functions, so
whatever `fold` does to one side it does to the other; matching is then plain
equality of folded tokens.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["Token", "fold", "fold_token", "token_pattern", "tokenize"]


def _mark_codepoints() -> list[int]:
    # Python's \w does not include combining marks, so a decomposed "ğ"
    # (g + U+0306) or a Devanagari vowel sign would otherwise split a word in
    # two. Marks only occur below U+20000 and in the variation-selector
    # supplement, so scanning those ranges is enough and keeps import cheap.
    return [
        c
        for block in (range(0x20000), range(0xE0100, 0xE01F0))
        for c in block
        if unicodedata.category(chr(c)).startswith("M")
    ]


def _char_class(codepoints: list[int]) -> str:
    """Regex class body (without brackets) for sorted `codepoints`."""
    ranges: list[str] = []
    start = prev = codepoints[0]
    for c in codepoints[1:] + [-2]:
        if c == prev + 1:
            prev = c
            continue
        lo, hi = re.escape(chr(start)), re.escape(chr(prev))
        ranges.append(lo if start == prev else f"{lo}-{hi}")
        start = prev = c
    return "".join(ranges)


_MARK_CODEPOINTS = _mark_codepoints()
_MARKS = _char_class(_MARK_CODEPOINTS)
# Soft hyphen and zero-width (non-)joiners sit inside words in real text
# (hyphenation hints, Persian/Indic orthography); they must not split a token.
_INVISIBLE_IN_WORD = "\u00ad\u200c\u200d"
# Letters, digits and marks; underscore and the modifier-letter apostrophes
# (ʻ ʼ are category Lm, hence \w) are excluded so they separate tokens like
# the straight and curly apostrophes do.
_TOKEN_CHAR = rf"[^\W_\u02bb\u02bc]|[{_MARKS}{_INVISIBLE_IN_WORD}]"
_TOKEN_RE = re.compile(rf"(?:{_TOKEN_CHAR})+")
_NON_TOKEN_RE = re.compile(rf"(?:(?!{_TOKEN_CHAR}).)+", re.DOTALL)


def _bmp_token_codepoints() -> list[int]:
    # `_TOKEN_RE` is exact but slow: the alternation inside the repeat costs
    # about a microsecond per token. The same per-character predicate spelled
    # out as one explicit class of BMP code points compiles to a bitmap, which
    # the regex engine scans several times faster. Astral characters would
    # land in a slow range list, so text containing any keeps the exact
    # pattern (see `token_pattern`). For str patterns \w is "isalnum() or
    # underscore", hence the predicate below.
    extra = {c for c in _MARK_CODEPOINTS if c < 0x10000}
    extra.update(map(ord, _INVISIBLE_IN_WORD))
    excluded = {ord("_"), 0x02BB, 0x02BC}
    return [
        c
        for c in range(0x10000)
        if c in extra or (c not in excluded and chr(c).isalnum())
    ]


# Each pattern is one capturing group, so `split` returns the separators and
# the tokens alternately, separators first (see `token_pattern`).
_SPLIT_RE = re.compile(rf"({_TOKEN_RE.pattern})")
_BMP_TOKEN_RE = re.compile(f"([{_char_class(_bmp_token_codepoints())}]+)")
_ASCII_TOKEN_RE = re.compile(r"([A-Za-z0-9]+)")
_ASTRAL_RE = re.compile("[\U00010000-\U0010FFFF]")


def token_pattern(text: str) -> re.Pattern[str]:
    """The fastest pattern that finds exactly the raw tokens of `text`.

    It has one capturing group around the token, so `findall` returns the raw
    tokens and `split` returns `[separator, token, separator, ..., separator]`,
    from which the offsets of every token follow by adding up lengths.
    """
    if text.isascii():
        return _ASCII_TOKEN_RE
    if _ASTRAL_RE.search(text) is None:
        return _BMP_TOKEN_RE
    return _SPLIT_RE


# Applied before casefold: the Turkic dotless/dotted i pair would otherwise
# fold to two different letters ("ı" stays "ı", "İ" becomes "i̇"), and "ə" is
# romanised as "a" in the press (Əliyev -> Aliyev, Heydər -> Heydar).
_PRE_CASEFOLD = str.maketrans({"İ": "i", "ı": "i", "Ə": "a", "ə": "a", "Ǝ": "a", "ǝ": "a"})
# Letters that carry their "accent" in the base glyph rather than as a
# combining mark, so NFD cannot strip it.
_POST_STRIP = str.maketrans(
    {
        "ø": "o",
        "ł": "l",
        "đ": "d",
        "ð": "d",
        "ħ": "h",
        "ŀ": "l",
        "ŧ": "t",
        "æ": "ae",
        "œ": "oe",
        "þ": "th",
        "\u00ad": None,
        "\u200c": None,
        "\u200d": None,
    }
)


def _accent_table() -> dict[int, None]:
    # Only marks that are optional accents are removed: the generic
    # combining diacritics (Latin, Greek, Cyrillic after NFD), Hebrew points
    # and Arabic harakat. Marks of other scripts (Indic viramas and vowel
    # signs, Thai tone marks, ...) spell different words and are kept.
    blocks = (
        (0x0300, 0x036F),
        (0x0483, 0x0489),
        (0x0591, 0x05C7),
        (0x0610, 0x061A),
        (0x064B, 0x065F),
        (0x0670, 0x0670),
        (0x06D6, 0x06ED),
        (0x1AB0, 0x1AFF),
        (0x1DC0, 0x1DFF),
        (0x20D0, 0x20FF),
        (0xFE20, 0xFE2F),
    )
    return {
        c: None
        for lo, hi in blocks
        for c in range(lo, hi + 1)
        if unicodedata.category(chr(c)) in ("Mn", "Me")
    }


_ACCENTS = _accent_table()


class Token(NamedTuple):
    folded: str
    start: int
    end: int


def fold(s: str) -> str:
    """Case- and accent-insensitive key for `s` (Turkic i, ə and ß aware)."""
    s = unicodedata.normalize("NFKC", s).translate(_PRE_CASEFOLD).casefold()
    s = unicodedata.normalize("NFD", s).translate(_ACCENTS).translate(_POST_STRIP)
    return unicodedata.normalize("NFC", s)


def _fold_token(raw: str) -> str:
    """Fold one raw token; the result re-tokenises to exactly itself (or is empty).

    NFKC can turn a letter into punctuation-bearing text ("½" -> "1⁄2",
    "ŉ" -> "ʼn"); those characters are dropped so that a folded key can be
    printed back into a query and parsed to the same key.
    """
    key = _NON_TOKEN_RE.sub("", fold(raw))
    # Folding is not always idempotent on exotic input (a compatibility
    # decomposition can expose another foldable character); iterate to a
    # fixed point, which in practice takes one extra step at most.
    for _ in range(3):
        again = _NON_TOKEN_RE.sub("", fold(key))
        if again == key:
            break
        key = again
    return key


FOLD_CACHE = 1 << 16
"""Raw tokens whose folding ``fold_token`` remembers; past this many it starts afresh."""


class _Folded(dict[str, str]):
    """``_fold_token`` of each raw token asked for: a hit is one dict lookup, in C."""

    __slots__ = ()

    def __missing__(self, raw: str) -> str:
        if len(self) >= FOLD_CACHE:
            self.clear()
        key = self[raw] = _fold_token(raw)
        return key


fold_token: Callable[[str], str] = _Folded().__getitem__
"""``_fold_token``, remembered. A document's words are ``map(fold_token, raw_tokens)``, where
a dict lookup beats ``functools.lru_cache``, whose every hit also moves the token in its
recency list (``bench/match.py``, two runs each: 3-12% more articles/s at 10 rules, 3-5% at
10,000)."""


def tokenize(text: str) -> list[Token]:
    """Word tokens of `text` with offsets into the original string."""
    tokens: list[Token] = []
    for m in token_pattern(text).finditer(text):
        key = fold_token(m.group())
        if key:
            tokens.append(Token(key, m.start(), m.end()))
    return tokens
