"""The fast hit-building paths of `Matcher.match` against the plain ones `match_naive` uses.

`match` builds evidence, snippets and scores with per-document shortcuts
(offsets found in one sweep, shared evidence, a cheaper whitespace collapse,
instances filled without `__init__`); these tests pin each shortcut to the
reference it replaces, and check that nothing leaks from one document into
the next.
"""

from __future__ import annotations

import dataclasses
import random
import re
import sys
from itertools import accumulate

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.match import Document, EntitySpec, Evidence, Matcher, RuleHit, RuleSpec, engine
from tests.match.benchmod import load_bench


def _bench_world(seed: int, rules: int = 300, articles: int = 30) -> tuple[Matcher, list[Document], object]:
    bench = load_bench()
    rng = random.Random(seed)
    vocab = bench.make_vocabulary(rng, size=0.05)
    specs = [r.spec for r in bench.make_rules(vocab, rules, rng)]
    docs = bench.make_articles(vocab, articles, rng)
    return Matcher(specs, vocab.entities), docs, (specs, vocab.entities)


def test_documents_matched_back_to_back_give_what_each_gives_alone() -> None:
    matcher, docs, (specs, entities) = _bench_world(5)
    alone = [Matcher(specs, entities).match(doc) for doc in docs]  # type: ignore[arg-type]
    assert sum(map(len, alone)) > 0
    assert [matcher.match(doc) for doc in docs] == alone
    # And again in reverse, on the same (now warm) matcher.
    assert [matcher.match(doc) for doc in reversed(docs)] == alone[::-1]
    # Interleaved with a document that has no hits and one that is empty.
    for doc, expected in zip(docs, alone, strict=True):
        assert matcher.match(Document()) == []
        assert matcher.match(doc) == expected


def test_phrase_waits_for_its_two_rarest_words() -> None:
    entities = {"org": EntitySpec("org", ("Alpha Beta Gamma", "ABGQ"))}
    rules = [
        RuleSpec("phrase", '"lomoz hamat"'),
        RuleSpec("near", '"lomoz hamat" NEAR/3 tiber'),
        RuleSpec("org", "@org"),
    ]
    matcher = Matcher(rules, entities)
    texts = [
        "hamat alone, lomoz elsewhere far away",
        "the lomoz hamat came near tiber",
        "Alpha and Beta without the third",
        "Alpha Beta Gamma met ABGQ",
        "only hamat here",
    ]
    _agrees_with_naive(matcher, texts)
    assert [h.rule_id for h in matcher.match(Document(body=texts[1]))] == ["phrase", "near"]
    assert [h.rule_id for h in matcher.match(Document(body=texts[3]))] == ["org"]


def test_fast_instances_are_the_dataclass_instances() -> None:
    # The fast constructors fill these fields, in this order, and nothing else.
    assert [f.name for f in dataclasses.fields(Evidence)] == ["term", "text", "field", "start", "end"]
    assert [f.name for f in dataclasses.fields(RuleHit)] == ["rule_id", "matches", "snippet", "score"]
    assert not hasattr(Evidence, "__post_init__") and not hasattr(RuleHit, "__post_init__")
    slow = Evidence("grain*", "grains", "body", 3, 9)
    fast = engine._fast_evidence("grain*", "grains", "body", 3, 9)
    assert type(fast) is Evidence and fast == slow and hash(fast) == hash(slow)
    assert repr(fast) == repr(slow) and vars(fast) == vars(slow)
    assert dataclasses.asdict(fast) == dataclasses.asdict(slow)
    hit = engine._fast_hit("r", (fast,), "…«grains»…", 1.0)
    assert hit == RuleHit("r", (slow,), "…«grains»…", 1.0)
    assert repr(hit) == repr(RuleHit("r", (slow,), "…«grains»…", 1.0))
    try:
        fast.start = 4  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("evidence must stay frozen")


def test_every_whitespace_character_but_the_space_is_unprintable() -> None:
    # `_collapse` relies on this to skip str.split.
    for c in map(chr, range(sys.maxunicode + 1)):
        if c.isspace() and c != " ":
            assert not c.isprintable(), hex(ord(c))


_WHITESPACE = [" ", "  ", "\n", "\n\n", "\n\n\n", "\t", "\r\n", "\xa0", "\u2003", "\u3000", "\x1c"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_WHITESPACE), st.text(max_size=6)), max_size=30))
def test_collapse_is_split_and_join(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert engine._collapse(text) == " ".join(text.split())


_words = st.text(alphabet="abcdeğıə'-.,", min_size=1, max_size=9)


@st.composite
def _field_texts(draw: st.DrawFn) -> str:
    words = draw(st.lists(_words, min_size=1, max_size=120))
    separator = st.sampled_from([*_WHITESPACE, ", ", ". ", "—"])
    seps = draw(st.lists(separator, min_size=len(words), max_size=len(words)))
    return "".join(w + s for w, s in zip(words, seps, strict=True))


@settings(max_examples=300, deadline=None)
@given(_field_texts(), st.randoms(use_true_random=False))
def test_token_offsets_in_any_order_equal_a_full_running_sum(text: str, rnd: random.Random) -> None:
    index = engine._FieldIndex(text)
    n = len(index.words)
    if not n:
        return
    bounds = list(accumulate(map(len, index._parts)))
    keep = index._keep or list(range(n))
    queries = [(a, min(n - 1, a + rnd.randrange(3))) for a in (rnd.randrange(n) for _ in range(12))]
    for first, last in queries:
        expected = (bounds[2 * keep[first]], bounds[2 * keep[last] + 1])
        assert index.chars(first, last) == expected
        start, end = expected
        assert text[start:end].strip() == text[start:end]


def _plain_snippet(texts: dict[str, str], matches: list[Evidence]) -> str:
    """The snippet rules written out plainly: the reference for `engine._snippet`."""
    field = None
    in_title = False
    for m in matches:
        if m.field in ("summary", "body"):
            field = m.field
            break
        in_title = in_title or m.field == "title"
    if field is None:
        if in_title:
            field = "title"
        elif matches:
            field = matches[0].field
        else:
            field = next((f for f in ("summary", "body", "title") if texts[f].strip()), "body")
    text = texts[field]
    spans: list[list[int]] = []
    for s, e in sorted((m.start, m.end) for m in matches if m.field == field):
        if spans and s < spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], e)
        else:
            spans.append([s, e])
    size = len(text)
    start, end = 0, size
    if size > engine.SNIPPET_WIDTH:
        first_start, first_end = (spans[0][0], spans[0][1]) if spans else (0, 0)
        start = max(0, first_start - 60)
        end = min(size, max(start + engine.SNIPPET_WIDTH, first_end))
        if end == size:
            start = max(0, min(start, end - engine.SNIPPET_WIDTH))
        if start > 0 and not text[start - 1].isspace():
            space = re.compile(r"\s+").search(text, start, first_start if spans else size)
            if space:
                start = space.end()
        if end < size and not text[end].isspace():
            cut = end
            while cut > first_end and not text[cut - 1].isspace():
                cut -= 1
            if cut > max(start, first_end):
                end = cut
    parts: list[str] = []
    pos = start
    for s, e in spans:
        if s < start or e > end:
            continue
        parts.extend((text[pos:s], "«", text[s:e], "»"))
        pos = e
    parts.append(text[pos:end])
    out = " ".join("".join(parts).split())
    return ("…" if start > 0 else "") + out + ("…" if end < size else "")


@settings(max_examples=500, deadline=None)
@given(
    _field_texts(),
    st.lists(
        st.tuples(st.integers(0, 2000), st.integers(0, 12), st.sampled_from(["title", "summary", "body"]))
    ),
)
def test_snippet_equals_the_plain_rules(text: str, spans: list[tuple[int, int, str]]) -> None:
    texts = {"title": text[:80], "summary": text[: len(text) // 2], "body": text}
    for name in ("author", "source", "url", "lang"):
        texts[name] = ""
    matches = []
    for start, width, field in spans:
        size = len(texts[field])
        start = min(start, size)
        end = min(size, start + width)
        matches.append(Evidence("x", texts[field][start:end], field, start, end))
    order = {"title": 0, "summary": 1, "body": 2}
    matches.sort(key=lambda m: (order[m.field], m.start, m.end))
    assert engine._snippet(texts, matches) == _plain_snippet(texts, matches)


# Words that occur inside one another ("ab" in "abab", "b" in "ab"), a soft
# hyphen that folds to nothing (so raw and kept token numbers differ), and
# separators that are no token characters.
_nested_words = st.sampled_from(["ab", "abab", "b", "Ab", "bab", "ğa", "\u00ad", "a\u00adb", "ǝb", "1b"])


@st.composite
def _nested_texts(draw: st.DrawFn) -> str:
    words = draw(st.lists(_nested_words, min_size=1, max_size=80))
    separator = st.sampled_from([" ", ", ", "\n\n", "-", "’", "_"])
    seps = draw(st.lists(separator, min_size=len(words), max_size=len(words)))
    return "".join(w + s for w, s in zip(words, seps, strict=True))


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(_nested_texts(), _field_texts()), st.randoms(use_true_random=False), st.sampled_from([0, 2, 48])
)
def test_token_offsets_found_by_searching_the_text_equal_a_full_running_sum(
    text: str, rnd: random.Random, near: int
) -> None:
    # With `_NEAR_TOKENS` at 0 every offset not asked before is searched for
    # in the text (forwards or backwards), which must find the same token.
    saved = engine._NEAR_TOKENS
    engine._NEAR_TOKENS = near
    try:
        index = engine._FieldIndex(text)
        n = len(index.words)
        if not n:
            return
        bounds = list(accumulate(map(len, index._parts)))
        keep = index._keep or list(range(n))
        for _ in range(10):
            first = rnd.randrange(n)
            last = min(n - 1, first + rnd.randrange(3))
            assert index.chars(first, last) == (bounds[2 * keep[first]], bounds[2 * keep[last] + 1])
    finally:
        engine._NEAR_TOKENS = saved


def test_searching_for_a_token_skips_occurrences_inside_other_tokens() -> None:
    saved = engine._NEAR_TOKENS
    engine._NEAR_TOKENS = 0
    try:
        # "ab" occurs inside "abab" and "xab" before its own occurrences, more
        # often than a search may skip (then offsets are counted instead).
        for text in ("abab xab ab ab", "abab xab abab xab cab ab", "ab\u00ad ab", "ABab ab Ab ab"):
            index = engine._FieldIndex(text)
            bounds = list(accumulate(map(len, index._parts)))
            keep = index._keep or list(range(len(index.words)))
            for order in (range(len(index.words)), reversed(range(len(index.words)))):
                index = engine._FieldIndex(text)
                for i in order:
                    assert index.chars(i, i) == (bounds[2 * keep[i]], bounds[2 * keep[i] + 1]), (text, i)
    finally:
        engine._NEAR_TOKENS = saved


def test_a_trigger_word_waits_for_the_next_requirement() -> None:
    entities = {
        "org": EntitySpec("org", ("Alpha", "Betacorp", "Gamma Delta")),
        "pair": EntitySpec("pair", ("Lomoz", "Hamat")),
    }
    rules = [
        RuleSpec("and", "tiberian AND wheat"),
        RuleSpec("entity", "@pair AND grain*"),
        RuleSpec("or", "tiberian AND (wheat OR barley)"),
        RuleSpec("three", "tiberian AND wheat AND barley"),
        RuleSpec("mixed", "@org AND wheat"),
        RuleSpec("not", "tiberian AND NOT wheat"),
    ]
    matcher = Matcher(rules, entities)
    # Single keys with a single-key requirement left are proven by their pairs.
    by_id = {rule.spec.id: i for i, rule in enumerate(matcher._rules)}
    assert matcher._rest[by_id["and"]] == () and matcher._rest[by_id["entity"]] == ()
    assert matcher._rest[by_id["or"]] == ()
    # A third requirement, or a phrase alias among the trigger's, still checks.
    assert matcher._rest[by_id["three"]] != () and matcher._rest[by_id["mixed"]] != ()
    texts = [
        "tiberian alone",
        "tiberian and wheat",
        "the tiberian barley",
        "tiberian wheat barley",
        "Lomoz grains",
        "Hamat grain here, Lomoz",
        "hamat without the other",
        "Gamma Delta wheat",
        "Alpha wheat, Betacorp",
        "Gamma wheat",
    ]
    _agrees_with_naive(matcher, texts)
    candidates = {
        text: {matcher._rules[i].spec.id for i in matcher._candidates({w for w in text.lower().split()})[0]}
        for text in texts
    }
    assert "and" not in candidates["tiberian alone"] and "and" in candidates["tiberian and wheat"]
    assert "entity" not in candidates["hamat without the other"]
    assert [h.rule_id for h in matcher.match(Document(body="tiberian wheat barley"))] == [
        "and", "or", "three",
    ]


def _agrees_with_naive(matcher: Matcher, texts: list[str]) -> None:
    for text in texts:
        doc = Document(title="t", body=text)
        assert matcher.match(doc) == matcher.match_naive(doc), text
