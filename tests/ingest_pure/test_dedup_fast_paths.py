"""The fast paths of ``monitor.ingest.dedup`` give exactly what the plain code gave.

Stored content hashes, canonical URLs, story texts and signatures depend on every bit of
these functions, so the plain versions (as they were before the fast paths) are kept here
as references and compared with the module over adversarial text: combining marks (also
alone), soft hyphens and zero-width characters, Turkish dotted/dotless i, characters NFKC
or NFC change, astral characters, and all kinds of whitespace and its runs.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import sys
import unicodedata

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.ingest import dedup
from monitor.ingest.dedup import (
    _INVISIBLE,
    _PATH_SAFE,
    _PERCENT,
    _PERM_SEEDS,
    _QUERY_SAFE,
    LEAD_WORDS,
    MIN_LEAD_WORDS,
    NUM_PERM,
    SHINGLE_WORDS,
    TRACKING_PARAMS,
    TRACKING_PREFIXES,
)
from monitor.match import Document
from monitor.match.engine import DocIndex
from monitor.match.text import fold_token, token_pattern

# --------------------------------------------------------------------------- references

_HEX = "0123456789ABCDEF"


def _ref_is_tracking(piece: str) -> bool:
    name = _PERCENT.sub(lambda m: chr(int(m.group(1), 16)), piece.partition("=")[0]).lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


def _without_plain_parts(fn, *args):  # type: ignore[no-untyped-def]
    """``fn(*args)`` with the plain-URL-part shortcut off: every part goes through the loop."""
    never = re.compile(r"(?!)")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dedup, "_PLAIN", {_PATH_SAFE: never, _QUERY_SAFE: never})
        patch.setattr(dedup, "_is_tracking", _ref_is_tracking)
        return fn(*args)


def _ref_normal_text(text: str) -> str:
    return " ".join(_INVISIBLE.sub("", unicodedata.normalize("NFC", text or "")).split())


def _ref_content_hash(title: str, summary: str, body: str) -> str:
    data = "\x1f".join(_ref_normal_text(t) for t in (title, summary, body))
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()


def _ref_raw_word_hash(raw: str) -> int:
    word = fold_token(raw)
    return dedup._word_hash(word) if word else -1


def _ref_signature(text: str, shingle_words: int = SHINGLE_WORDS) -> tuple[int, ...]:
    hashes = [_ref_raw_word_hash(raw) for raw in token_pattern(text).findall(text)]
    words = np.array([h for h in hashes if h >= 0], dtype=np.uint64)
    n = len(words)
    if n == 0:
        return (0xFFFFFFFF,) * NUM_PERM
    k = min(shingle_words, n)
    h = words[: n - k + 1].copy()
    for j in range(1, k):
        h = dedup._fmix64(h)
        h *= np.uint64(0x9E3779B97F4A7C15 | 1)
        h += words[j : n - k + 1 + j]
    shingles = dedup._fmix64(h)
    x = shingles[:, None] ^ _PERM_SEEDS[None, :]
    return tuple((dedup._fmix64(x) >> np.uint64(32)).min(axis=0).tolist())


def _ref_words(text: str, limit: int | None = None) -> list[str]:
    raw = (m.group() for m in token_pattern(text).finditer(text))
    words = (w for w in map(fold_token, raw) if w)
    return list(words if limit is None else itertools.islice(words, limit))


def _ref_capped(text: str, words: int) -> str:
    for i, m in enumerate(token_pattern(text).finditer(text), 1):
        if i == words:
            return text[: m.end()]
    return text


def _ref_normal_start(text: str, start_chars: int) -> str:
    size = start_chars
    while size < len(text):
        head = _ref_normal_text(text[:size])
        words = itertools.islice(token_pattern(head).finditer(head), LEAD_WORDS + 2)
        if sum(1 for _ in words) == LEAD_WORDS + 2:
            return head
        size *= 4
    return _ref_normal_text(text)


def _ref_story_text(title: str, summary: str, body: str, start_chars: int = 1024) -> str:
    title = _ref_normal_text(title or "")
    summary = _ref_normal_start(summary or "", start_chars)
    body = _ref_normal_start(body or "", start_chars)
    body_words = _ref_words(body, LEAD_WORDS + 1)
    if len(body_words) >= MIN_LEAD_WORDS:
        return _ref_capped(body, LEAD_WORDS)
    summary_words = _ref_words(summary, LEAD_WORDS + 1)
    common = min(len(body_words), len(summary_words))
    if body_words[:common] == summary_words[:common]:
        lead = body if len(body_words) > len(summary_words) else summary
    else:
        lead = f"{summary} {body}"
    lead = _ref_capped(lead, LEAD_WORDS)
    if len(_ref_words(lead, MIN_LEAD_WORDS)) < MIN_LEAD_WORDS:
        return f"{title}\n{lead}".strip()
    return lead


# --------------------------------------------------------------------------- text strategies

_WHITESPACE = [" ", "  ", "\n", "\n\n", "\n\n\n", "\t", "\r\n", "\xa0", "\u2003", "\u3000",
               "\u2028", "\x85", "\x1f", "\x0b"]
_INVISIBLES = ["\u00ad", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]
_MARKS = ["\u0301", "\u0308", "\u0327", "\u0306", "\u0323\u0302", "\u0302\u0323", "\u093f"]
_LETTERS = ["a", "e", "i", "I", "o", "z", "Q", "0", "7", "_", "İ", "ı", "Ə", "ə", "ş", "ğ", "é",
            "ß", "ø", "æ", "ł", "ω", "ж", "ש", "ع", "क", "ก", "中", "한",
            "\u1100\u1161", "\u0b47\u0b3e",                # Hangul jamo, Oriya: NFC composes them
            "½", "ŉ", "ﬁ", "Ａ", "²", "ℌ", "\u2126", "Å",   # NFKC / NFC change these
            "\U0001d400", "\U0001f600", "\U00020000",     # astral
            "ʼ", "ʻ", "'", "’", "-", "—", ".", ",", "!", "?", "(", "\x00", "\ud800"]
_WORDS = ["word", "Kessel", "bay's", "Varnholm", "İstanbul'da", "KÖPRÜ", "açıldı", "x\u0308y",
          "Ko\u0308pru\u0308", "co\u00adop", "2026", "e\u0301", "Aliyev", "Heydər"]
_PIECES = _WHITESPACE + _INVISIBLES + _MARKS + _LETTERS + _WORDS + [" " + m for m in _MARKS]

pieces_text = st.lists(st.sampled_from(_PIECES), max_size=120).map("".join)
# Mostly words and single spaces, so texts reach LEAD_WORDS words and the caps and fast paths
# are exercised, with a sprinkling of everything else.
wordy_text = st.lists(
    st.one_of(st.sampled_from(_WORDS + ["the", "a", "of", "port"]), st.just(" "), st.just(" "),
              st.just("\n\n"), st.sampled_from(_PIECES)),
    max_size=300,
).map("".join)
any_text = st.one_of(pieces_text, wordy_text, st.text(max_size=80))

# Texts of about LEAD_WORDS and MIN_LEAD_WORDS tokens, many of which fold to nothing (lone
# accents), ending in punctuation or not: the edges of the caps and word counts.
_EMPTY_FOLDING = ["\u0301", "\u0308\u0301", "\u20dd", "\u0591", "\u064b"]
_TOKENS = ["word", "Kessel", "ı", "İ", "x\u0308y", "2026", "½", "ŉ", "ß", "co\u00adop"]
_SEPARATORS = [" ", " ", " ", ", ", ". ", "\n\n", " - ", "  ", "\u00ad "]


@st.composite
def counted_text(draw: st.DrawFn) -> str:
    count = draw(st.one_of(st.sampled_from([19, 20, 21, 39, 40, 41, 42, 43]),
                           st.integers(min_value=0, max_value=60)))
    # a token folds to nothing never, 1 time in 21, or 1/3, 1/2, 2/3 of the time
    words, empty = draw(st.sampled_from([(1, 0), (10, 1), (1, 1), (1, 2), (1, 4)]))
    kinds = st.sampled_from(_TOKENS * words + _EMPTY_FOLDING * empty)
    tokens = draw(st.lists(kinds, min_size=count, max_size=count))
    for i in draw(st.lists(st.integers(0, max(count - 1, 0)), max_size=3)) if count else ():
        tokens[i] = "\u0301"  # or just one, two or three of them
    separators = draw(st.lists(st.sampled_from(_SEPARATORS), min_size=count, max_size=count))
    end = draw(st.sampled_from(["", ".", " ", "\u0301", "!"]))
    return "".join(itertools.chain.from_iterable(zip(separators, tokens, strict=True))) + end


# --------------------------------------------------------------------------- tests


def test_printable_text_is_normal() -> None:
    """What ``_normal_text``'s fast path rests on: no printable character but the space is
    one ``str.split`` splits on, or one ``_INVISIBLE`` removes (all of Unicode)."""
    printable = "".join(c for c in map(chr, range(sys.maxunicode + 1))
                        if c.isprintable() and c != " ")
    assert printable.split() == [printable]
    assert _INVISIBLE.search(printable) is None


@given(any_text)
@settings(max_examples=500, deadline=None)
def test_normal_text_and_content_hash(text: str) -> None:
    assert dedup._normal_text(text) == _ref_normal_text(text)
    assert dedup.content_hash(text, text[::2], text[1::3]) == _ref_content_hash(
        text, text[::2], text[1::3])


@given(any_text, any_text, any_text, st.sampled_from([1, 7, 40, 200, 1024]))
@settings(max_examples=500, deadline=None)
def test_story_text_and_signature(title: str, summary: str, body: str, start: int) -> None:
    """Also at other start sizes than 1024, so that starts cut inside words, marks and
    whitespace runs."""
    _check_story(title, summary, body, start)


@given(counted_text(), counted_text(), counted_text(), st.sampled_from([1, 30, 80, 1024]))
@settings(max_examples=400, deadline=None)
def test_story_text_at_the_word_limits(title: str, summary: str, body: str, start: int) -> None:
    _check_story(title, summary, body, start)


@given(counted_text(), st.sampled_from([LEAD_WORDS + 1, LEAD_WORDS + 2, 60]))
@example(" ".join(["word"] * 20 + ["\u0301"] + ["word"] * 30), LEAD_WORDS + 1)  # read on
@example(" ".join(["word"] * 39 + ["\u0301"]) + ".", LEAD_WORDS + 2)  # just LEAD_WORDS tokens
@example(" ".join(["\u0301", "word"] * 19 + ["\u0301", "\u0301", "word"]), LEAD_WORDS + 1)
@settings(max_examples=500, deadline=None)
def test_lead_is_what_it_says(text: str, limit: int) -> None:
    text = dedup._normal_text(text)
    lead = dedup._lead(text, token_pattern(text).split(text, limit))
    assert lead.words == _ref_words(text, LEAD_WORDS + 1)
    assert lead.capped == _ref_capped(text, LEAD_WORDS)
    assert lead.capped_raw == token_pattern(lead.capped).findall(lead.capped)
    assert lead.capped_words == len(_ref_words(lead.capped))


def _check_story(title: str, summary: str, body: str, start: int) -> None:
    for s, b in ((summary, body), (summary, ""), ("", body), (summary, summary[: len(summary) // 2]),
                 (body[: len(body) // 3], body)):
        expected = _ref_story_text(title, s, b, start)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(dedup, "_START_CHARS", start)
            assert dedup.story_text(title, s, b) == expected
            assert dedup.story_signature(title, s, b) == _ref_signature(expected)


def _matcher_tokens(title: str, summary: str, body: str) -> dedup.Tokens:
    """The raw tokens of the three texts as the matcher reads them (parse workers pass these)."""
    index = DocIndex(Document(title=title, summary=summary, body=body), {})
    return index.field("title").raw_tokens, index.field("summary").raw_tokens, \
        index.field("body").raw_tokens


@given(any_text, any_text, any_text)
@settings(max_examples=500, deadline=None)
def test_story_signature_from_a_matchers_tokens(title: str, summary: str, body: str) -> None:
    """Signatures read from the tokens a matcher has are the signatures read from the texts:
    exact, or the texts are read again."""
    stories = [(title, s, b) for s, b in (
        (summary, body), (summary, ""), ("", body), (summary, summary[: len(summary) // 2]),
        (body[: len(body) // 3], body))]
    tokens = [_matcher_tokens(*story) for story in stories]
    assert dedup.story_signatures(stories, tokens) == [dedup.story_signature(*s) for s in stories]
    for story, known in zip(stories, tokens, strict=True):
        raw = dedup._story_tokens(*story, known)
        assert raw is None or raw == dedup._story(*story)[1]


@given(counted_text(), counted_text(), counted_text())
# The lead's first 42 tokens hold 19 words, the text 24: ``_lead`` reads on past them.
@example("Title", "Another text", " ".join(["\u0301"] * 23 + ["word"] * 24))
@settings(max_examples=400, deadline=None)
def test_story_signature_from_a_matchers_tokens_at_the_word_limits(
        title: str, summary: str, body: str) -> None:
    story = (title, summary, body)
    raw = dedup._story_tokens(*story, _matcher_tokens(*story))
    assert raw is None or raw == dedup._story(*story)[1]


def test_story_signature_from_a_matchers_tokens_of_plain_feed_text() -> None:
    """Feed text as ``html_to_text`` gives it - paragraphs, accents, Turkish letters - is read
    from the matcher's tokens, not again: a body lead, a summary only, summary and body."""
    lead = " ".join(["İlham Əliyev Bakıda görüşdü, bildirildi."] * 8)
    for story in (("Başlık", "", f"{lead}\n\nİkinci paragraf."), ("Title", lead, ""),
                  ("Title", "A short blurb of our own.", "Sehr kurzer Text über Karabach."),
                  ("Title", "", "")):
        raw = dedup._story_tokens(*story, _matcher_tokens(*story))
        assert raw is not None and raw == dedup._story(*story)[1], story


def test_empty_folding_tokens_are_tokens() -> None:
    for token in _EMPTY_FOLDING:
        assert token_pattern(f" {token} ").findall(f" {token} ") == [token]
        assert fold_token(token) == ""


@given(any_text)
@settings(max_examples=500, deadline=None)
def test_signature(text: str) -> None:
    assert dedup.signature(text) == _ref_signature(text)


@given(st.lists(st.one_of(any_text, counted_text()), max_size=12), st.sampled_from([1, 2, 3]))
@example(["", "one", "", "two words", "three more words", ""], 3)
@example([], SHINGLE_WORDS)
@settings(max_examples=300, deadline=None)
def test_signatures_of_many_texts_are_each_texts_signature(texts: list[str], k: int) -> None:
    """Together (a poll's entries), each text gets what it gets alone: no shingle spans two
    texts, empty and short texts (fewer words than a shingle) included, at other shingle
    sizes too."""
    raws = [token_pattern(t).findall(t) for t in texts]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dedup, "SHINGLE_WORDS", k)
        assert dedup.signatures(raws) == [_ref_signature(t, k) for t in texts]


def test_signature_of_long_texts_and_fmix() -> None:
    words = ["Varnholm", "council", "bridge", "Kessel", "İstanbul", "ı", "\u0301", "½", "x"]
    for n in (0, 1, 2, 3, 40, 500):
        text = " ".join(itertools.islice(itertools.cycle(words), n))
        assert dedup.signature(text) == _ref_signature(text)
    values = np.random.default_rng(1).integers(0, 2**64 - 1, 1000, dtype=np.uint64, endpoint=True)
    assert [dedup._fmix64_int(int(v)) for v in values] == dedup._fmix64(values.copy()).tolist()


_URL_PIECES = ["https://", "http://", "HTTP://", "ftp://", "//", "Example.ORG", "xn--bcher-kva.de",
               "bücher.de", "[::1]", "user:pw@", ":80", ":443", ":8080", ":99999", ":x", "/", "/a",
               "/./", "/../", "..", ".", "?", "&", "=", "#", "#!", "%", "%2f", "%7E", "%41", "%zz",
               "%E2%82%AC", "utm_source=rss", "UTM_Medium=x", "%75tm_campaign=y", "fbclid=1",
               "id=5", "q=a+b", "a b", "é", "€", "\U0001f600", "'", "\"", "<", "|", "~", "@", " ",
               "\t", "\n", "\x00", "\ud800"]
url_text = st.lists(st.sampled_from(_URL_PIECES), max_size=20).map("".join)


@given(st.one_of(url_text, st.text(max_size=40)))
@settings(max_examples=1000, deadline=None)
def test_canonical_url(url: str) -> None:
    assert dedup.canonical_url(url) == _without_plain_parts(dedup.canonical_url, url)
    for safe in (_PATH_SAFE, _QUERY_SAFE):
        assert dedup._normalise_escapes(url, safe) == _without_plain_parts(
            dedup._normalise_escapes, url, safe)
    assert dedup._is_tracking(url) == _ref_is_tracking(url)


def test_plain_url_parts_are_exactly_the_safe_characters() -> None:
    for safe in (_PATH_SAFE, _QUERY_SAFE):
        plain = [chr(c) for c in range(0x3000) if dedup._PLAIN[safe].fullmatch(chr(c))]
        assert set(plain) == safe and "%" not in safe
    assert not dedup._PLAIN[_PATH_SAFE].fullmatch("a\n")
    assert re.escape("-") in dedup._PLAIN[_PATH_SAFE].pattern
