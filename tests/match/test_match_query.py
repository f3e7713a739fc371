"""Parser, canonical formatter and error messages of the query language."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.match import (
    And,
    AtLeast,
    EntityRef,
    Field,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    QueryError,
    Term,
    entity_refs,
    format_query,
    parse_query,
    query_terms,
)

g, s, c = Term("grain"), Term("sea"), Term("corridor")


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("grain", g),
        ("GRAIN", g),
        ("Erdoğan", Term("erdogan")),
        ("grain*", Term("grain", prefix=True)),
        ('"black sea grain"', Phrase(("black", "sea", "grain"))),
        ("“black sea”", Phrase(("black", "sea"))),
        ('"grain"', g),
        ("Nagorno-Karabakh", Phrase(("nagorno", "karabakh"))),
        ("Karabakh's", Phrase(("karabakh", "s"))),
        ("@karabakh", EntityRef("karabakh")),
        ("grain AND sea", And((g, s))),
        ("grain sea", And((g, s))),
        ("grain and sea", And((g, Term("and"), s))),
        ("grain OR sea", Or((g, s))),
        ("grain or sea", And((g, Term("or"), s))),
        ("NOT grain", Not(g)),
        ("-grain", Not(g)),
        ("sea -grain", And((s, Not(g)))),
        ("non-grain", Phrase(("non", "grain"))),
        ("grain NEAR/3 sea", Near(g, s, 3)),
        ("grain NEAR sea", Near(g, s, 5)),
        ("grain ONEAR/2 sea", Near(g, s, 2, ordered=True)),
        ("ATLEAST3(grain)", AtLeast(3, g)),
        ("ATLEAST2 (grain OR sea)", AtLeast(2, Or((g, s)))),
        ("title:grain", Field("title", g)),
        ("TITLE:grain", Field("title", g)),
        ("title:(grain OR sea)", Field("title", Or((g, s)))),
        ("lang:en", Field("lang", Term("en"))),
        ("(grain)", g),
        # precedence: field/ATLEAST > NEAR > NOT > AND > OR
        ("grain sea OR corridor", Or((And((g, s)), c))),
        ("grain (sea OR corridor)", And((g, Or((s, c))))),
        ("NOT grain sea", And((Not(g), s))),
        ("NOT grain NEAR/2 sea", Not(Near(g, s, 2))),
        ("title:grain NEAR/2 sea", Near(Field("title", g), s, 2)),
        ("(grain OR sea) NEAR/4 corridor", Near(Or((g, s)), c, 4)),
        ("grain AND (sea AND corridor)", And((g, s, c))),
        ("(grain OR sea) OR corridor", Or((g, s, c))),
        ("NOT NOT grain", Not(Not(g))),
    ],
)
def test_parse(query: str, tree: Node) -> None:
    assert parse_query(query) == tree


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ("Erdoğan  and   -Grain*", "erdogan AND and AND NOT grain*"),
        ("a b OR c", "a AND b OR c"),
        ("a (b OR c)", "a AND (b OR c)"),
        ("NOT (a b)", "NOT (a AND b)"),
        ("(a OR b) NEAR c", "(a OR b) NEAR/5 c"),
        ("title:(a b)", "title:(a AND b)"),
        ("title:(NOT a)", "title:(NOT a)"),
        ("x ONEAR/7 @karabakh", "x ONEAR/7 @karabakh"),
        ("ATLEAST2((a OR b))", "ATLEAST2(a OR b)"),
        ("“Black Sea”", '"black sea"'),
    ],
)
def test_format_is_canonical_and_round_trips(query: str, canonical: str) -> None:
    tree = parse_query(query)
    assert format_query(tree) == canonical
    assert parse_query(canonical) == tree


@pytest.mark.parametrize(
    ("query", "column", "message"),
    [
        ("a AND (b OR c", 14, "expected ')' to close '(' opened at column 7"),
        ("titel:grain", 1, "unknown field 'titel' (fields: title, summary, body, text, "
         "author, source, url, lang)"),
        ("abc AND", 5, "expected a term after AND"),
        ("grain OR OR sea", 7, "expected a term after OR"),
        ("grain NOT", 7, "expected a term after NOT"),
        ("title:", 1, "expected a term after 'title:'"),
        ("", 1, "expected a term"),
        ("   ", 4, "expected a term"),
        ("AND grain", 1, "expected a term before AND"),
        ("grain)", 6, "unexpected ')' without a matching '('"),
        ('"black sea', 11, "expected '\"' to close the phrase opened at column 1"),
        ('""', 1, "empty phrase: expected words between the quotes"),
        ("@", 1, "expected an entity name after '@'"),
        ("@karabakh's", 10, "unexpected \"'\" in entity name '@karabakh'"),
        ("gr*ain", 3, "'*' is only allowed once, at the end of a word"),
        ("grain**", 7, "'*' is only allowed once, at the end of a word"),
        ("black-sea*", 1, "'*' needs a single word before it, got 'black-sea*'"),
        ("a NEAR/x b", 8, "expected a number after 'NEAR/'"),
        ("a NEAR/0 b", 8, "NEAR distance must be at least 1"),
        ("a NEAR b NEAR c", 10, "NEAR cannot follow NEAR/5; combine proximity conditions with AND"),
        ("(a AND b) NEAR c", 1,
         "NEAR/5 operands must be words, phrases, @entities or OR-groups of those"),
        ("a NEAR -b", 3, "expected a term after NEAR"),
        ("ATLEAST3 grain", 10, "expected '(' after ATLEAST3"),
        ("ATLEAST(grain)", 8, "expected a count after ATLEAST, e.g. ATLEAST3(...)"),
        ("ATLEAST0(grain)", 8, "ATLEAST needs a count of at least 1"),
        ("ATLEAST2(a AND b)", 10, "ATLEAST2 applies to words, phrases, @entities or OR-groups of those"),
        ("& grain", 1, "'&' has no letters or digits to search for"),
        ("(" * 100 + "a" + ")" * 100, 65, "query is nested too deeply (more than 64 levels)"),
    ],
)
def test_parse_errors_name_column_and_expectation(query: str, column: int, message: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(query)
    assert (info.value.column, info.value.message) == (column, message)
    assert str(info.value) == f"column {column}: {message}"


def test_query_terms_and_entity_refs() -> None:
    tree = parse_query('@erdogan (grain* OR "black sea") -@karabakh title:@erdogan')
    assert entity_refs(tree) == {"erdogan", "karabakh"}
    assert query_terms(tree) == (
        EntityRef("erdogan"),
        Term("grain", prefix=True),
        Phrase(("black", "sea")),
        EntityRef("karabakh"),
    )
    assert EntityRef("karabakh") not in query_terms(tree, positive_only=True)


# --------------------------------------------------------------------------
# properties

_PIECES = [
    "(", ")", '"', "“", "”", " ", " ", "  ", "AND", "OR", "NOT", "NEAR", "NEAR/", "NEAR/3",
    "ONEAR/2", "NEAR/0", "ATLEAST", "ATLEAST2", "ATLEAST2(", "ATLEAST0", "@", "@karabakh", "*",
    ":", "-", "title:", "lang:", "titel:", "TEXT:", "grain", "Black", "sea", "Erdoğan", "and",
    "ı", "’", "'", "9", "12345678901", "_", "\t", "\n", "x-y", "İ", "ẞ", "½", "ŉ",
]


@settings(max_examples=500)
@given(st.lists(st.sampled_from(_PIECES), max_size=25).map("".join))
def test_query_alphabet_raises_only_query_error_and_round_trips(query: str) -> None:
    _parse_or_query_error(query)


@settings(max_examples=500)
@given(st.text())
def test_arbitrary_text_raises_only_query_error_and_round_trips(query: str) -> None:
    _parse_or_query_error(query)


def _parse_or_query_error(query: str) -> None:
    try:
        tree = parse_query(query)
    except QueryError as exc:
        assert exc.column >= 1
        assert str(exc) == f"column {exc.column}: {exc.message}"
        return
    canonical = format_query(tree)
    assert parse_query(canonical) == tree
    assert format_query(parse_query(canonical)) == canonical


_words = st.sampled_from(["grain", "sea", "and", "or", "not", "erdogan", "алиев", "x1", "2024"])
_leaf = st.one_of(
    st.builds(Term, _words, st.booleans()),
    st.lists(_words, min_size=2, max_size=3).map(lambda ws: Phrase(tuple(ws))),
    st.sampled_from(["karabakh", "ilham-aliyev", "a.b_c"]).map(EntityRef),
)
_fields = st.sampled_from(["title", "summary", "body", "text", "author", "source", "url", "lang"])


def _flat(kind: type[And] | type[Or], items: list[Node]) -> Node:
    # The parser flattens nested AND/OR, so generated trees must be flat too.
    flat: list[Node] = []
    for item in items:
        flat.extend(item.items if isinstance(item, kind) else (item,))
    return kind(tuple(flat))


_positional = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: _flat(Or, xs)),
        st.builds(Field, _fields, inner),
    ),
    max_leaves=4,
)
_base = st.one_of(
    _positional,
    st.builds(Near, _positional, _positional, st.integers(1, 40), st.booleans()),
    st.builds(AtLeast, st.integers(1, 9), _positional),
)
_queries = st.recursive(
    _base,
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: _flat(And, xs)),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: _flat(Or, xs)),
        st.builds(Not, inner),
        st.builds(Field, _fields, inner),
    ),
    max_leaves=12,
)


@settings(max_examples=400)
@given(_queries)
def test_generated_trees_round_trip(tree: Node) -> None:
    assert parse_query(format_query(tree)) == tree
