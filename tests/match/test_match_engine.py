"""Query semantics against documents: one table row per syntax, positives and decoys."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.match import Document, EntitySpec, Evidence, Matcher, RuleHit, RuleSpec


def run(query: str, entities: dict[str, EntitySpec], **doc: Any) -> RuleHit | None:
    hits = Matcher([RuleSpec(id="r", query=query)], entities).match(Document(**doc))
    assert len(hits) <= 1
    return hits[0] if hits else None


def field_text(doc: Document, field: str) -> str:
    value = getattr(doc, field)
    return value if value is not None else ""


# (query, body, expected) -- the sample sentences are invented for the tests.
SYNTAX_CASES = [
    # word: whole token, never a substring
    ("grain", "Grain exports rose again.", True),
    ("grain", "Mr Grainger spoke to reporters.", False),
    ("grain", "The grains were stored.", False),
    ("Aliyev", "Aliyev arrived on Monday.", True),
    ("Aliyev", "Aliyeva arrived on Monday.", False),
    # prefix
    ("grain*", "The grains were stored.", True),
    ("grain*", "An ingrained habit.", False),
    # phrase: consecutive tokens, in order
    ('"black sea grain"', "The Black Sea grain deal held.", True),
    ('"black sea grain"', "The Black Sea wheat and grain deal held.", False),
    ('"black sea grain"', "Grain from the Black Sea arrived.", False),
    ('"black sea grain"', "A black sea. Grain", True),
    # AND and juxtaposition
    ("grain AND port", "Grain left the port.", True),
    ("grain port", "Grain left the port.", True),
    ("grain port", "Grain left the harbour.", False),
    ("grain and port", "Grain or port.", False),
    ("grain and port", "Grain and port.", True),
    # OR
    ("wheat OR grain", "Grain left the port.", True),
    ("wheat OR barley", "Grain left the port.", False),
    # NOT, -
    ("grain NOT wheat", "Grain left the port.", True),
    ("grain NOT wheat", "Grain and wheat left the port.", False),
    ("grain -wheat", "Grain and wheat left the port.", False),
    ("NOT wheat", "Grain left the port.", True),
    ("NOT wheat", "Wheat left the port.", False),
    ("-wheat -barley", "Grain left the port.", True),
    # NEAR: either order, within n tokens
    ("grain NEAR/3 port", "grain left the port", True),
    ("grain NEAR/3 port", "port received the grain", True),
    ("grain NEAR/3 port", "grain was later moved to a port", False),
    ("grain NEAR port", "grain one two three four port", True),
    ("grain NEAR port", "grain one two three four five port", False),
    ('"black sea" NEAR/2 grain', "black sea and grain", True),
    ('"black sea" NEAR/2 grain', "grain, then black sea", True),
    ('"black sea" NEAR/2 grain', "black sea one two grain", False),
    ("(wheat OR grain) NEAR/2 port", "port of grain", True),
    ("grain NEAR/5 port", "The grain was sold.\n\nSeparately, a port", True),
    ("grain NEAR/4 port", "The grain was sold.\n\nSeparately, a port", False),
    # ONEAR: a before b
    ("grain ONEAR/3 port", "grain left the port", True),
    ("grain ONEAR/3 port", "port received the grain", False),
    # ATLEAST
    ("ATLEAST3(grain)", "Grain, grain and more grain.", True),
    ("ATLEAST3(grain)", "Grain and more grain.", False),
    ("ATLEAST3(grain OR wheat)", "Grain, wheat and more grain.", True),
    ("ATLEAST2(grain OR grain*)", "Grain stocks fell.", False),
    # grouping
    ("(wheat OR grain) AND port", "Grain left the port.", True),
    ("wheat OR (grain AND harbour)", "Grain left the port.", False),
    # folding: case, accents, Turkish, Azerbaijani, German, Cyrillic
    ("Erdogan", "ERDOĞAN spoke.", True),
    ("Erdogan", "erdoğan spoke.", True),
    ("ERDOĞAN", "Erdogan spoke.", True),
    ("Erdogan", "Erdoganov spoke.", False),
    ("istanbul", "Talks in İstanbul ended.", True),
    ("İstanbul", "Talks in ISTANBUL ended.", True),
    ("qarabag", "Qarabağ is mentioned.", True),
    ("aliyev", "Əliyev is mentioned.", True),
    ("strasse", "Die Straße ist lang.", True),
    ("Straße", "STRASSE 5", True),
    ("Алиев", "Президент Алиев заявил.", True),
    ("Алиев", "ПРЕЗИДЕНТ АЛИЕВ ЗАЯВИЛ.", True),
    ("Алиев", "Президент Алиева заявил.", False),
    # apostrophes and hyphens separate tokens
    ("Karabakh", "Karabakh's future", True),
    ("Karabakh", "Karabakh'ta seçim", True),
    ("Karabakh", "Karabakh’s future", True),
    ("Karabakh", "Karabakh‘s future", True),
    ("Karabakh", "Nagorno-Karabakh talks", True),
    ("Karabakh", "Karabakhi talks", False),
    ('"Nagorno Karabakh"', "Nagorno-Karabakh talks", True),
]


@pytest.mark.parametrize(("query", "body", "expected"), SYNTAX_CASES)
def test_syntax_table(
    query: str, body: str, expected: bool, shipped_entities: dict[str, EntitySpec]
) -> None:
    hit = run(query, shipped_entities, body=body)
    assert (hit is not None) is expected
    if hit is not None:
        for e in hit.matches:
            assert e.field == "body"
            assert body[e.start : e.end] == e.text


# (query, body, expected matched texts) for the shipped entities
ENTITY_CASES = [
    ("@karabakh", "Talks on Nagorno-Karabakh resumed.", ["Nagorno-Karabakh"]),
    ("@karabakh", "Karabakh's roads and Karabakh'ta.", ["Karabakh", "Karabakh"]),
    ("@karabakh", "Karabakh’s roads.", ["Karabakh"]),
    ("@karabakh", "QARABAĞ and qarabag and Karabağ.", ["QARABAĞ", "qarabag", "Karabağ"]),
    ("@karabakh", "Karabakhi roads.", []),
    ("@ilham-aliyev", "Aliyev spoke.", ["Aliyev"]),
    ("@ilham-aliyev", "Mehriban Aliyeva spoke.", []),
    ("@ilham-aliyev", "The Heydar Aliyev Centre opened.", []),
    ("@ilham-aliyev", "HEYDAR ALİYEV airport.", []),
    ("@ilham-aliyev", "Heydər Əliyev airport.", []),
    ("@ilham-aliyev", "President Aliyev spoke.", ["President Aliyev"]),
    ("@ilham-aliyev", "İlham Əliyev çıxış etdi.", ["İlham Əliyev"]),
    ("@ilham-aliyev", "Ильхам Алиев заявил.", ["Ильхам Алиев"]),
    ("@ilham-aliyev", "ИЛЬХАМ АЛИЕВ заявил.", ["ИЛЬХАМ АЛИЕВ"]),
    (
        "@ilham-aliyev",
        "Heydar Aliyev's son, Ilham Aliyev, spoke; later Aliyev left.",
        ["Ilham Aliyev", "Aliyev"],
    ),
    ("@erdogan", "Recep Tayyip Erdoğan spoke.", ["Recep Tayyip Erdoğan"]),
    ("@erdogan", "Tayyip ERDOGAN spoke.", ["Tayyip ERDOGAN"]),
    ("@erdogan", "Эрдоган заявил.", ["Эрдоган"]),
    ("@erdogan", "Erdoğanlar spoke.", []),
]


@pytest.mark.parametrize(("query", "body", "texts"), ENTITY_CASES)
def test_entity_aliases(
    query: str, body: str, texts: list[str], shipped_entities: dict[str, EntitySpec]
) -> None:
    hit = run(query, shipped_entities, body=body)
    found = [] if hit is None else [e.text for e in hit.matches]
    assert found == texts
    if hit is not None:
        assert {e.term for e in hit.matches} == {query}
        assert all(body[e.start : e.end] == e.text for e in hit.matches)


def test_longer_alias_of_another_entity_wins() -> None:
    entities = {
        "ilham": EntitySpec("ilham", ("Aliyev",)),
        "heydar": EntitySpec("heydar", ("Heydar Aliyev",)),
    }
    body = "The Heydar Aliyev Centre. Aliyev spoke."
    ilham = run("@ilham", entities, body=body)
    heydar = run("@heydar", entities, body=body)
    assert ilham is not None and [(e.text, e.start) for e in ilham.matches] == [("Aliyev", 26)]
    assert heydar is not None and [e.text for e in heydar.matches] == ["Heydar Aliyev"]


@pytest.mark.parametrize(
    ("aliases", "body", "texts"),
    [
        (("Black Sea", "Black Sea Fleet"), "The Black Sea Fleet sailed.", ["Black Sea Fleet"]),
        (("Sea Fleet", "Black Sea Fleet"), "The Black Sea Fleet sailed.", ["Black Sea Fleet"]),
        (("Black Sea", "Sea Fleet"), "The Black Sea Fleet sailed.", ["Black Sea"]),
        (("Black Sea", "Black Sea Fleet"), "Black Sea, Black Sea Fleet", ["Black Sea", "Black Sea Fleet"]),
    ],
)
def test_overlapping_aliases_of_one_entity_report_the_longest_once(
    aliases: tuple[str, ...], body: str, texts: list[str]
) -> None:
    hit = run("@fleet", {"fleet": EntitySpec("fleet", aliases)}, body=body)
    assert hit is not None
    assert [e.text for e in hit.matches] == texts


# (query, document fields, expected)
FIELD_CASES = [
    ("title:grain", {"title": "Grain prices", "body": "Nothing."}, True),
    ("title:grain", {"title": "Prices", "body": "Grain."}, False),
    ("title:(grain OR wheat)", {"title": "Wheat prices"}, True),
    ("summary:grain", {"summary": "Grain prices"}, True),
    ("body:grain", {"title": "Grain prices"}, False),
    ("text:grain", {"summary": "Grain prices"}, True),
    ("grain", {"author": "Ann Grain"}, False),
    ("author:grain", {"author": "Ann Grain"}, True),
    ("source:reuters", {"source": "reuters-world Reuters World reuters.com"}, True),
    ("source:reuters", {"body": "Reuters reported."}, False),
    ("url:grain", {"url": "https://example.com/news/grain-deal"}, True),
    ('url:"example.com"', {"url": "https://example.com/x"}, True),
    ("url:grain", {"url": "https://example.com/ingrained"}, False),
    ("lang:en", {"lang": "en"}, True),
    ("lang:en", {"lang": "en-US"}, True),
    ("lang:en", {"lang": "fr"}, False),
    ("lang:en", {}, False),
    ("title:grain NEAR/2 port", {"title": "Grain at port", "body": "grain port"}, True),
    ("title:grain NEAR/2 port", {"title": "Grain", "body": "port"}, False),
    ("grain NEAR/3 port", {"title": "Prices of grain", "summary": "port news"}, False),
    ('"grain port"', {"title": "News about grain", "summary": "port news"}, False),
    ("title:(body:grain)", {"title": "grain", "body": "grain"}, False),
]


@pytest.mark.parametrize(("query", "fields", "expected"), FIELD_CASES)
def test_field_scopes(
    query: str, fields: dict[str, str], expected: bool, shipped_entities: dict[str, EntitySpec]
) -> None:
    doc = Document(**fields)
    hit = run(query, shipped_entities, **fields)
    assert (hit is not None) is expected
    if hit is not None:
        assert hit.matches
        for e in hit.matches:
            assert field_text(doc, e.field)[e.start : e.end] == e.text
            assert query.startswith(e.field) or e.field in ("title", "summary", "body")


def ev(term: str, text: str, field: str, start: int) -> Evidence:
    return Evidence(term=term, text=text, field=field, start=start, end=start + len(text))


# (query, title, body, expected evidence)
EVIDENCE_CASES = [
    ("grain -wheat", "", "Grain, no wheat", None),
    ("grain -barley", "", "Grain only", [ev("grain", "Grain", "body", 0)]),
    (
        "grain OR wheat",
        "Wheat",
        "Grain and wheat",
        [
            ev("wheat", "Wheat", "title", 0),
            ev("grain", "Grain", "body", 0),
            ev("wheat", "wheat", "body", 10),
        ],
    ),
    (
        "grain NEAR/2 port",
        "",
        "grain far far far far away. The port took grain.",
        [ev("port", "port", "body", 32), ev("grain", "grain", "body", 42)],
    ),
    (
        '"grain corridor" OR ("Black Sea" NEAR/10 grain*)',
        "",
        "Across the Black Sea, grains moved.",
        [ev('"black sea"', "Black Sea", "body", 11), ev("grain*", "grains", "body", 22)],
    ),
    ("NOT wheat", "", "Grain", []),
    (
        "@erdogan title:erdogan",
        "Erdoğan visits",
        "Erdoğan said",
        [
            ev("@erdogan", "Erdoğan", "title", 0),
            ev("erdogan", "Erdoğan", "title", 0),
            ev("@erdogan", "Erdoğan", "body", 0),
        ],
    ),
]


@pytest.mark.parametrize(("query", "title", "body", "expected"), EVIDENCE_CASES)
def test_evidence_lists_only_contributing_positive_terms(
    query: str,
    title: str,
    body: str,
    expected: list[Evidence] | None,
    shipped_entities: dict[str, EntitySpec],
) -> None:
    hit = run(query, shipped_entities, title=title, body=body)
    if expected is None:
        assert hit is None
        return
    assert hit is not None
    assert list(hit.matches) == expected


def test_score_counts_title_occurrences_three_times(shipped_entities: dict[str, EntitySpec]) -> None:
    hit = run("grain", shipped_entities, title="Grain", summary="grain", body="grain grain")
    assert hit is not None
    assert hit.score == 3 + 1 + 2


def test_snippet_highlights_first_body_match_and_cuts_long_text(
    shipped_entities: dict[str, EntitySpec],
) -> None:
    filler = "Nothing of note happened here today. " * 10
    body = filler + "The  Black Sea\n grain deal held.  " + filler
    hit = run('"black sea" NEAR/3 grain', shipped_entities, title="Grain news", body=body)
    assert hit is not None
    assert "«Black Sea» «grain» deal held." in hit.snippet
    assert hit.snippet.startswith("…") and hit.snippet.endswith("…")
    assert "  " not in hit.snippet and "\n" not in hit.snippet
    assert len(hit.snippet) <= 260
    # cut at word boundaries
    assert hit.snippet[1:].split(" ")[0] in filler.split(" ")


def test_snippet_uses_title_when_only_title_matches(shipped_entities: dict[str, EntitySpec]) -> None:
    hit = run("grain", shipped_entities, title="Grain   prices rise", body="Markets were calm.")
    assert hit is not None
    assert hit.snippet == "«Grain» prices rise"


def test_snippet_prefers_body_over_title(shipped_entities: dict[str, EntitySpec]) -> None:
    hit = run("grain", shipped_entities, title="Grain prices", body="Farmers sold grain.")
    assert hit is not None
    assert hit.snippet == "Farmers sold «grain»."


def test_snippet_merges_overlapping_matches(shipped_entities: dict[str, EntitySpec]) -> None:
    hit = run('"black sea" AND sea', shipped_entities, body="The Black Sea is calm.")
    assert hit is not None
    assert hit.snippet == "The «Black Sea» is calm."


# --------------------------------------------------------------------------
# properties over random documents

_VOCAB = ["grain", "Grains", "port", "Black", "Sea", "ERDOĞAN", "Aliyev", "Heydar", "Karabakh's"]
_SEPARATORS = [" ", ", ", "-", "’", "\n\n", ". "]
_ATOMS = ["grain", "grain*", "port", '"black sea"', "@erdogan", "@ilham-aliyev", "@karabakh",
          "title:port", "(grain OR sea)", "ATLEAST2(grain OR port)"]

_texts = st.lists(
    st.tuples(st.sampled_from(_VOCAB), st.sampled_from(_SEPARATORS)), max_size=12
).map(lambda pairs: "".join(w + sep for w, sep in pairs))


@st.composite
def _simple_queries(draw: st.DrawFn) -> str:
    left, right = draw(st.sampled_from(_ATOMS[:7])), draw(st.sampled_from(_ATOMS))
    op = draw(st.sampled_from([" AND ", " OR ", " NEAR/2 ", " ONEAR/3 ", " -"]))
    if op.startswith(" NEAR") or op.startswith(" ONEAR"):
        right = draw(st.sampled_from(_ATOMS[:7]))
    return left + op + right


@settings(max_examples=300, deadline=None)
@given(_simple_queries(), _texts, _texts)
def test_negation_is_the_complement_and_evidence_points_into_the_text(
    query: str, title: str, body: str
) -> None:
    entities = {
        "erdogan": EntitySpec("erdogan", ("Erdoğan",)),
        "ilham-aliyev": EntitySpec("ilham-aliyev", ("Aliyev",), ("Heydar Aliyev",)),
        "karabakh": EntitySpec("karabakh", ("Karabakh", "Black Sea Karabakh")),
    }
    rules = [RuleSpec("q", query), RuleSpec("not-q", f"NOT ({query})")]
    doc = Document(title=title, body=body)
    hits = Matcher(rules, entities).match(doc)
    assert len(hits) == 1
    for e in hits[0].matches:
        assert field_text(doc, e.field)[e.start : e.end] == e.text
        assert e.text


def test_only_the_fields_some_rule_can_look_at_are_tokenised() -> None:
    """Bare terms read the text fields; a document's author, source, URL and language are
    tokenised only when some rule's ``field:`` points there, and then still match."""
    from monitor.match.engine import DocIndex

    doc = Document(title="Port news", body="Grain at the port", author="Leyla Mammadova",
                   source="harbour-wire Harbour Wire", url="https://wire.example/grain")
    text_only = Matcher([RuleSpec(id="grain", query="grain"),
                         RuleSpec(id="t", query="title:port")], {})
    index = DocIndex(doc, text_only.entities)
    assert [h.rule_id for h in text_only.match_index(index)] == ["grain", "t"]
    assert set(index._fields) == {"title", "summary", "body"}

    by_author = Matcher([RuleSpec(id="grain", query="grain"),
                         RuleSpec(id="leyla", query='author:mammadova AND NOT source:"tass"'),
                         RuleSpec(id="wire", query="(grain NEAR/3 port) -(url:tass)")], {})
    index = DocIndex(doc, by_author.entities)
    assert sorted(h.rule_id for h in by_author.match_index(index)) == ["grain", "leyla", "wire"]
    assert set(index._fields) == {"title", "summary", "body", "author", "source", "url"}
    # a word only in an untokenised field makes no rule a candidate there
    assert Matcher([RuleSpec(id="m", query="mammadova")], {}).match(doc) == []
