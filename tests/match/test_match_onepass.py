"""The one-pass matcher against the reference loop, plus the NER hook and explain()."""

from __future__ import annotations

import random
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.match import (
    Document,
    EntitySpec,
    Explanation,
    Matcher,
    RuleSpec,
    format_query,
    parse_query,
)
from monitor.match import engine as engine_module
from tests.match.benchmod import load_bench


def assert_same_hits(matcher: Matcher, doc: Document, **kwargs: object) -> list[str]:
    fast = matcher.match(doc, **kwargs)  # type: ignore[arg-type]
    slow = matcher.match_naive(doc, **kwargs)  # type: ignore[arg-type]
    assert fast == slow
    return [hit.rule_id for hit in fast]


# --------------------------------------------------------------------------
# equivalence on the benchmark's own generator


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bench_rules_and_articles_give_the_same_hits_both_ways(seed: int) -> None:
    bench = load_bench()
    rng = random.Random(seed)
    vocab = bench.make_vocabulary(rng, size=0.05)
    rules = bench.make_rules(vocab, 100, rng)
    docs = bench.make_articles(vocab, 20, rng)
    matcher = Matcher([r.spec for r in rules], vocab.entities)
    total = 0
    for doc in docs:
        total += len(assert_same_hits(matcher, doc))
    # A small vocabulary makes hits common, so the comparison is not vacuous.
    assert total > 0


def test_bench_main_runs_and_prints_the_summary_line(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench()
    bench.main(["--articles", "6", "--quick", "--regex-budget", "0.01", "--counts", "10,40", "--no-pin"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("articles_per_s_10k=") and " ratio_10k_vs_10=" in last
    assert " speedup_vs_regex_10k=" in last


def test_word_memory_is_bounded_and_forgetting_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = load_bench()
    rng = random.Random(11)
    vocab = bench.make_vocabulary(rng, size=0.05)
    rules = bench.make_rules(vocab, 60, rng)
    docs = bench.make_articles(vocab, 8, rng)
    monkeypatch.setattr(engine_module, "_WORD_CACHE_SIZE", 50)
    matcher = Matcher([r.spec for r in rules], vocab.entities)
    for doc in docs + docs:
        assert_same_hits(matcher, doc)
        memory = matcher._memory
        assert len(memory.inert) + len(memory.known) <= 50 + 1000


def test_concurrent_matching_with_a_tiny_word_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # The poller matches from several threads at once; the word memory is
    # shared and is replaced when full while other threads may be using it.
    bench = load_bench()
    rng = random.Random(5)
    vocab = bench.make_vocabulary(rng, size=0.05)
    rules = bench.make_rules(vocab, 80, rng)
    docs = bench.make_articles(vocab, 12, rng, words=120)
    matcher = Matcher([r.spec for r in rules], vocab.entities)
    expected = [matcher.match_naive(doc) for doc in docs]
    monkeypatch.setattr(engine_module, "_WORD_CACHE_SIZE", 120)
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            for _ in range(5):
                results = list(pool.map(matcher.match, docs))
                assert results == expected
    finally:
        sys.setswitchinterval(old_interval)


# --------------------------------------------------------------------------
# equivalence on generated queries and documents

_ENTITIES = {
    "erdogan": EntitySpec("erdogan", ("Recep Tayyip Erdoğan", "Erdoğan"), type="PERSON"),
    "aliyev": EntitySpec(
        "aliyev", ("Ilham Aliyev", "Aliyev", "President Aliyev"), ("Heydar Aliyev",), "PERSON"
    ),
    "karabakh": EntitySpec("karabakh", ("Karabakh", "Qarabağ", "Nagorno-Karabakh"), type="GPE"),
    "fleet": EntitySpec("fleet", ("Black Sea Fleet", "Sea Fleet"), type="ORG", verify="ner"),
    "nobody": EntitySpec("nobody", ("...",)),
}
_WORDS = ["grain", "Grains", "port", "Black", "Sea", "Fleet", "ERDOĞAN", "Aliyev", "Heydar",
          "Ilham", "President", "Karabakh's", "Nagorno", "Qarabag", "corridor", "wheat", "İstanbul"]
_SEPARATORS = [" ", " ", ", ", "-", "’", "\n\n", ". "]
_ATOMS = ["grain", "grain*", "gra*", "port", "wheat", "sea", "corridor", "istanbul", '"black sea"',
          '"grain corridor"', "@erdogan", "@aliyev", "@karabakh", "@fleet", "@nobody", "title:port",
          "summary:grain", "source:wire", "author:ann", "lang:en", "url:grain"]

_texts = st.lists(
    st.tuples(st.sampled_from(_WORDS), st.sampled_from(_SEPARATORS)), max_size=14
).map(lambda pairs: "".join(w + sep for w, sep in pairs))


def _queries(depth: int) -> st.SearchStrategy[str]:
    atoms = st.sampled_from(_ATOMS)
    if depth == 0:
        return atoms
    inner = _queries(depth - 1)
    groups = st.lists(atoms, min_size=2, max_size=3).map(lambda a: "(" + " OR ".join(a) + ")")
    positional = st.one_of(atoms, groups)
    return st.one_of(
        atoms,
        st.lists(inner, min_size=2, max_size=3).map(lambda a: "(" + " AND ".join(a) + ")"),
        st.lists(inner, min_size=2, max_size=3).map(lambda a: "(" + " OR ".join(a) + ")"),
        inner.map(lambda q: f"NOT {q}"),
        st.tuples(positional, st.sampled_from(["NEAR/2", "ONEAR/3", "NEAR"]), positional).map(" ".join),
        st.tuples(st.integers(1, 3), positional).map(lambda t: f"ATLEAST{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(["title", "body", "text"]), inner).map(lambda t: f"{t[0]}:({t[1]})"),
    )


_rules = st.lists(
    st.tuples(
        _queries(2),
        st.one_of(st.none(), _queries(1)),
        st.sampled_from([(), ("wire-*",), ("other",)]),
        st.sampled_from([(), ("en",), ("tr", "az")]),
        st.booleans(),
    ),
    min_size=1,
    max_size=8,
)


@st.composite
def _documents(draw: st.DrawFn) -> Document:
    return Document(
        title=draw(_texts),
        summary=draw(st.one_of(st.just(""), _texts)),
        body=draw(_texts),
        author=draw(st.sampled_from(["", "Ann Grain", "Bob"])),
        source=draw(st.sampled_from(["", "wire-one Wire One", "port-daily"])),
        url=draw(st.sampled_from(["", "https://example.org/grain-port"])),
        lang=draw(st.sampled_from([None, "en", "tr", "en-GB"])),
        feed_id=draw(st.sampled_from([None, "wire-one", "other"])),
    )


def _ner(kind: str, field: str, start: int, end: int) -> bool:
    # A stand-in model: confirms occurrences that start at an even offset.
    return start % 2 == 0


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rules, _documents(), st.sampled_from([None, _ner]))
def test_one_pass_equals_reference_on_generated_rules(
    rules: list[tuple[str, str | None, tuple[str, ...], tuple[str, ...], bool]],
    doc: Document,
    verify: object,
) -> None:
    specs = [
        RuleSpec(f"r{i}", query, exclude, feeds, languages, enabled)
        for i, (query, exclude, feeds, languages, enabled) in enumerate(rules)
    ]
    matcher = Matcher(specs, _ENTITIES)
    hit_ids = assert_same_hits(matcher, doc, verify=verify)
    for spec in specs:
        explanation = matcher.explain(doc, spec.id, verify=verify)  # type: ignore[arg-type]
        assert explanation.matched is (spec.id in hit_ids)
        assert explanation.reason == "matched" or not explanation.matched


# --------------------------------------------------------------------------
# tokeniser fast paths


def test_fast_token_class_agrees_with_the_exact_pattern_on_every_bmp_character() -> None:
    from monitor.match import text

    for c in range(0x10000):
        ch = chr(c)
        assert bool(text._BMP_TOKEN_RE.fullmatch(ch)) is bool(text._TOKEN_RE.fullmatch(ch)), hex(c)
    for c in range(0x80):
        ch = chr(c)
        assert bool(text._ASCII_TOKEN_RE.fullmatch(ch)) is bool(text._TOKEN_RE.fullmatch(ch)), hex(c)


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_token_pattern_finds_the_same_tokens_as_the_exact_pattern(s: str) -> None:
    from monitor.match import text

    expected = [m.span() for m in text._TOKEN_RE.finditer(s)]
    assert [m.span() for m in text.token_pattern(s).finditer(s)] == expected
    parts = text.token_pattern(s).split(s)
    assert parts[1::2] == [s[a:b] for a, b in expected]
    assert "".join(parts) == s


# --------------------------------------------------------------------------
# the NER verification hook

_NER_ENTITIES = {
    "fleet": EntitySpec("fleet", ("Black Sea Fleet",), type="ORG", verify="ner"),
    "karabakh": EntitySpec("karabakh", ("Karabakh",), type="GPE"),
    "person": EntitySpec("person", ("Rosa",), verify="ner"),
}


class Recorder:
    def __init__(self, answer: bool = True, reject_at: int | None = None) -> None:
        self.calls: list[tuple[str, str, int, int]] = []
        self.answer = answer
        self.reject_at = reject_at

    def __call__(self, kind: str, field: str, start: int, end: int) -> bool:
        self.calls.append((kind, field, start, end))
        return self.answer and start != self.reject_at


def test_verify_gets_type_field_and_offsets_and_filters_occurrences() -> None:
    matcher = Matcher([RuleSpec("r", "@fleet")], _NER_ENTITIES)
    body = "The Black Sea Fleet sailed; later the black sea fleet returned."
    second = body.lower().rindex("black sea fleet")
    recorder = Recorder(reject_at=second)
    (hit,) = matcher.match(Document(title="Fleet news", body=body), verify=recorder)
    assert recorder.calls == [("ORG", "body", 4, 19), ("ORG", "body", second, second + 15)]
    assert [(e.start, e.text) for e in hit.matches] == [(4, "Black Sea Fleet")]
    assert matcher.match_naive(Document(title="Fleet news", body=body), verify=recorder) == [hit]


def test_verify_rejecting_everything_means_no_hit_and_none_means_no_check() -> None:
    matcher = Matcher([RuleSpec("r", "@fleet"), RuleSpec("p", "@person")], _NER_ENTITIES)
    doc = Document(body="Rosa watched the Black Sea Fleet.")
    assert matcher.match(doc, verify=Recorder(answer=False)) == []
    assert [h.rule_id for h in matcher.match(doc)] == ["r", "p"]


def test_verify_is_called_with_empty_type_when_the_entity_has_none() -> None:
    recorder = Recorder()
    Matcher([RuleSpec("p", "@person")], _NER_ENTITIES).match(Document(body="Rosa."), verify=recorder)
    assert recorder.calls == [("", "body", 0, 4)]


def test_verify_is_lazy() -> None:
    recorder = Recorder()
    rules = [
        RuleSpec("plain", "@karabakh"),
        # The trigger (`zzz`) is absent, so this rule is never evaluated.
        RuleSpec("absent", "zzz AND @fleet"),
        # Short-circuit: the first AND item fails, the entity is not needed.
        RuleSpec("and", "title:karabakh AND @fleet"),
        RuleSpec("disabled", "@fleet", enabled=False),
        RuleSpec("other-feed", "@fleet", feeds=("nowhere",)),
    ]
    matcher = Matcher(rules, _NER_ENTITIES)
    doc = Document(title="News", body="Karabakh and the Black Sea Fleet.")
    assert [h.rule_id for h in matcher.match(doc, verify=recorder)] == ["plain"]
    assert recorder.calls == []
    # Needed by one rule, verified once per occurrence even when two rules use it.
    twice = Matcher([RuleSpec("a", "@fleet"), RuleSpec("b", "@fleet OR karabakh")], _NER_ENTITIES)
    assert [h.rule_id for h in twice.match(doc, verify=recorder)] == ["a", "b"]
    assert recorder.calls == [("ORG", "body", 17, 32)]


def test_entities_without_verify_ignore_the_callback() -> None:
    recorder = Recorder(answer=False)
    matcher = Matcher([RuleSpec("k", "@karabakh")], _NER_ENTITIES)
    assert [h.rule_id for h in matcher.match(Document(body="Karabakh"), verify=recorder)] == ["k"]
    assert recorder.calls == []


def test_entity_spec_rejects_unknown_verify_modes() -> None:
    with pytest.raises(ValueError, match="verify"):
        EntitySpec("x", ("X",), verify="spacy")
    assert EntitySpec("x", ("X",), verify="ner").verify == "ner"


# --------------------------------------------------------------------------
# explain


def explain(rule: RuleSpec, doc: Document, entities: dict[str, EntitySpec] | None = None) -> Explanation:
    return Matcher([RuleSpec("other", "x"), rule], entities or {}).explain(doc, rule.id)


def test_explain_lists_top_level_clauses(shipped_entities: dict[str, EntitySpec]) -> None:
    rule = RuleSpec("ae", "@ilham-aliyev AND @erdogan")
    result = explain(rule, Document(body="President Aliyev spoke."), shipped_entities)
    assert result == Explanation(
        "ae", False, "query did not match", (("@ilham-aliyev", True), ("@erdogan", False))
    )
    hit = explain(rule, Document(body="Aliyev met Erdoğan."), shipped_entities)
    assert hit == Explanation("ae", True, "matched", (("@ilham-aliyev", True), ("@erdogan", True)))


@pytest.mark.parametrize(
    ("rule", "doc", "reason", "clauses"),
    [
        (RuleSpec("r", "grain OR wheat"), Document(body="wheat"), "matched",
         (("grain", False), ("wheat", True))),
        (RuleSpec("r", '"black sea" NEAR/3 grain*'), Document(body="grain"), "query did not match",
         (('"black sea" NEAR/3 grain*', False),)),
        (RuleSpec("r", "NOT wheat"), Document(body="grain"), "matched", (("NOT wheat", True),)),
        (RuleSpec("r", "grain -wheat"), Document(body="grain wheat"), "query did not match",
         (("grain", True), ("NOT wheat", False))),
        (RuleSpec("r", "grain", enabled=False), Document(body="grain"), "rule is disabled",
         (("grain", True),)),
        (RuleSpec("r", "grain", feeds=("wire-*",)), Document(body="grain", feed_id="ap"),
         "feed 'ap' is not in the rule's feeds", (("grain", True),)),
        (RuleSpec("r", "grain", feeds=("wire-*",)), Document(body="grain"),
         "feed '' is not in the rule's feeds", (("grain", True),)),
        (RuleSpec("r", "grain", languages=("en", "tr")), Document(body="grain", lang="ru"),
         "language 'ru' is not in [en, tr]", (("grain", True),)),
        (RuleSpec("r", "grain", exclude='Football OR "Qarabağ  FK"'), Document(body="grain, qarabag fk"),
         'excluded by: football OR "qarabag fk"', (("grain", True),)),
        (RuleSpec("r", "grain", exclude="football"), Document(body="grain"), "matched", (("grain", True),)),
        (RuleSpec("r", "title:(grain OR port) AND ATLEAST2(wheat)"), Document(title="port", body="wheat"),
         "query did not match", (("title:(grain OR port)", True), ("ATLEAST2(wheat)", False))),
    ],
)
def test_explain_reasons(
    rule: RuleSpec, doc: Document, reason: str, clauses: tuple[tuple[str, bool], ...]
) -> None:
    result = explain(rule, doc)
    assert (result.rule_id, result.reason, result.clauses) == ("r", reason, clauses)
    assert result.matched is (reason == "matched")
    for text, _ in result.clauses:
        assert format_query(parse_query(text)) == text


def test_explain_takes_verify_and_rejects_unknown_rules() -> None:
    matcher = Matcher([RuleSpec("r", "@fleet")], _NER_ENTITIES)
    doc = Document(body="The Black Sea Fleet.")
    assert matcher.explain(doc, "r").matched
    refused = matcher.explain(doc, "r", verify=Recorder(answer=False))
    assert (refused.matched, refused.reason) == (False, "query did not match")
    assert refused.clauses == (("@fleet", False),)
    with pytest.raises(KeyError):
        matcher.explain(doc, "missing")


def test_explanation_is_frozen() -> None:
    result = explain(RuleSpec("r", "grain"), Document(body="grain"))
    with pytest.raises(AttributeError):
        result.reason = "x"  # type: ignore[misc]
