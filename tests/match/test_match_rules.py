"""Rule-level behaviour: shipped rules, exclude, feeds, languages, enabled, errors."""

from __future__ import annotations

import pytest

from monitor.match import Document, EntitySpec, Matcher, RuleError, RuleSpec


def hit_ids(matcher: Matcher, doc: Document) -> list[str]:
    return [hit.rule_id for hit in matcher.match(doc)]


SHIPPED_CASES = [
    (
        Document(title="President Aliyev hosts Erdoğan", body="The two leaders met in Baku."),
        ["aliyev-erdogan"],
    ),
    (
        Document(body="ERDOGAN praised the Heydar Aliyev Foundation."),
        [],
    ),
    (
        Document(body="Əliyev və Erdoğan görüşdü.", lang="az"),
        ["aliyev-erdogan"],
    ),
    (
        Document(body="İlham Əliyev and Tayyip Erdoğan discussed Karabakh'ta roads.", lang="en"),
        ["aliyev-erdogan", "karabakh"],
    ),
    (
        Document(body="Qarabağ FK won the match at home."),
        [],
    ),
    (
        Document(body="Karabakh's football league resumed."),
        [],
    ),
    (
        Document(body="Convoys returned to Nagorno-Karabakh.", lang="en"),
        ["karabakh"],
    ),
    (
        Document(body="Ships carrying grain crossed the Black Sea.", lang="en-GB"),
        ["grain-corridor"],
    ),
    (
        Document(body="The grain corridor reopened.", lang=None),
        ["grain-corridor"],
    ),
    (
        Document(body="The grain corridor reopened.", lang="fr"),
        [],
    ),
    (
        Document(
            body="The Black Sea " + "was calm and the weather was fair all week " * 2 + "grain",
            lang="en",
        ),
        [],
    ),
]


@pytest.mark.parametrize(("doc", "expected"), SHIPPED_CASES)
def test_shipped_rules(
    doc: Document,
    expected: list[str],
    shipped_rules: list[RuleSpec],
    shipped_entities: dict[str, EntitySpec],
) -> None:
    matcher = Matcher(shipped_rules, shipped_entities)
    hits = matcher.match(doc)
    assert [h.rule_id for h in hits] == expected
    for hit in hits:
        assert hit.matches and hit.score > 0 and "«" in hit.snippet
        for e in hit.matches:
            assert getattr(doc, e.field)[e.start : e.end] == e.text


def test_aliyev_erdogan_evidence(
    shipped_rules: list[RuleSpec], shipped_entities: dict[str, EntitySpec]
) -> None:
    doc = Document(
        title="Aliyev meets Erdoğan",
        body="Heydar Aliyev's legacy was discussed; President Aliyev greeted Tayyip Erdoğan.",
    )
    (hit,) = Matcher(shipped_rules, shipped_entities).match(doc)
    assert [(e.term, e.field, e.text) for e in hit.matches] == [
        ("@ilham-aliyev", "title", "Aliyev"),
        ("@erdogan", "title", "Erdoğan"),
        ("@ilham-aliyev", "body", "President Aliyev"),
        ("@erdogan", "body", "Tayyip Erdoğan"),
    ]
    assert hit.score == 3 + 3 + 1 + 1
    assert hit.snippet.startswith("Heydar Aliyev's legacy was discussed; «President Aliyev»")


# (rule, document, expected to hit)
FILTER_CASES = [
    (RuleSpec("r", "grain", exclude="wheat"), Document(body="grain"), True),
    (RuleSpec("r", "grain", exclude="wheat"), Document(body="grain and wheat"), False),
    (RuleSpec("r", "grain", exclude="title:wheat"), Document(body="grain and wheat"), True),
    (RuleSpec("r", "grain", exclude="NOT port"), Document(body="grain"), False),
    (RuleSpec("r", "grain", exclude="NOT port"), Document(body="grain port"), True),
    (RuleSpec("r", "grain", feeds=("reuters-*",)), Document(body="grain", feed_id="reuters-world"), True),
    (RuleSpec("r", "grain", feeds=("reuters-*",)), Document(body="grain", feed_id="ap-world"), False),
    (RuleSpec("r", "grain", feeds=("ap-world",)), Document(body="grain", feed_id="ap-world"), True),
    (RuleSpec("r", "grain", feeds=("ap-world",)), Document(body="grain", feed_id="ap-world-2"), False),
    (RuleSpec("r", "grain", feeds=("a", "b?")), Document(body="grain", feed_id="b1"), True),
    (RuleSpec("r", "grain", feeds=("reuters-*",)), Document(body="grain"), False),
    (RuleSpec("r", "grain"), Document(body="grain", feed_id="anything"), True),
    (RuleSpec("r", "grain", languages=("en",)), Document(body="grain", lang="en"), True),
    (RuleSpec("r", "grain", languages=("en",)), Document(body="grain", lang="EN-gb"), True),
    (RuleSpec("r", "grain", languages=("en",)), Document(body="grain", lang="en_US"), True),
    (RuleSpec("r", "grain", languages=("en",)), Document(body="grain", lang="eng"), False),
    (RuleSpec("r", "grain", languages=("en",)), Document(body="grain", lang="ru"), False),
    (RuleSpec("r", "grain", languages=("en",)), Document(body="grain", lang=None), True),
    (RuleSpec("r", "grain", languages=("ru", "en")), Document(body="grain", lang="en"), True),
    (RuleSpec("r", "grain", languages=("en-GB",)), Document(body="grain", lang="en-US"), False),
    (RuleSpec("r", "grain", enabled=False), Document(body="grain"), False),
    (RuleSpec("r", "grain", enabled=True), Document(body="grain"), True),
]


@pytest.mark.parametrize(("rule", "doc", "expected"), FILTER_CASES)
def test_rule_filters(rule: RuleSpec, doc: Document, expected: bool) -> None:
    assert (hit_ids(Matcher([rule], {}), doc) == ["r"]) is expected


def test_hits_come_in_rule_order_and_rule_ids_list_every_rule() -> None:
    rules = [
        RuleSpec("c", "port"),
        RuleSpec("a", "grain"),
        RuleSpec("off", "grain", enabled=False),
        RuleSpec("b", "grain OR port"),
    ]
    matcher = Matcher(rules, {})
    assert matcher.rule_ids == ("c", "a", "off", "b")
    assert hit_ids(matcher, Document(body="grain at the port")) == ["c", "a", "b"]
    assert hit_ids(matcher, Document(body="grain only")) == ["a", "b"]


def test_matcher_is_reusable_across_documents(
    shipped_rules: list[RuleSpec], shipped_entities: dict[str, EntitySpec]
) -> None:
    matcher = Matcher(shipped_rules, shipped_entities)
    first = Document(body="Aliyev and Erdoğan spoke.")
    second = Document(body="Aliyev spoke alone.")
    assert hit_ids(matcher, first) == ["aliyev-erdogan"]
    assert hit_ids(matcher, second) == []
    assert hit_ids(matcher, first) == ["aliyev-erdogan"]


BAD_RULES = [
    RuleSpec("ok", "grain"),
    RuleSpec("bad-query", "grain AND (port"),
    RuleSpec("bad-exclude", "grain", exclude="titel:x"),
    RuleSpec("unknown-entity", "grain OR @karabakh OR @nowhere"),
    RuleSpec("both", "", exclude="x NEAR"),
    RuleSpec("disabled-but-broken", "(", enabled=False),
]
EXPECTED_ERRORS = [
    ("bad-query", "query", 16, "expected ')' to close '(' opened at column 11"),
    (
        "bad-exclude",
        "exclude",
        1,
        "unknown field 'titel' (fields: title, summary, body, text, author, source, url, lang)",
    ),
    ("unknown-entity", "query", 23, "unknown entity '@nowhere'"),
    ("both", "query", 1, "expected a term"),
    ("both", "exclude", 3, "expected a term after NEAR"),
    ("disabled-but-broken", "query", 1, "expected a term after '('"),
]


def test_check_reports_every_error(shipped_entities: dict[str, EntitySpec]) -> None:
    errors = Matcher.check(BAD_RULES, shipped_entities)
    assert [(e.rule_id, e.key, e.column, e.message) for e in errors] == EXPECTED_ERRORS
    assert str(errors[0]) == (
        "rule 'bad-query', query: column 16: expected ')' to close '(' opened at column 11"
    )
    assert Matcher.check(BAD_RULES[:1], shipped_entities) == []


def test_constructor_raises_the_first_error(shipped_entities: dict[str, EntitySpec]) -> None:
    with pytest.raises(RuleError) as info:
        Matcher(BAD_RULES, shipped_entities)
    assert (info.value.rule_id, info.value.key, info.value.column) == ("bad-query", "query", 16)
    assert isinstance(info.value, ValueError)


def test_unknown_entity_is_a_compile_error_not_a_parse_error() -> None:
    with pytest.raises(RuleError) as info:
        Matcher([RuleSpec("r", "x", exclude="-@karabakh")], {})
    assert (info.value.key, info.value.column, info.value.message) == (
        "exclude",
        2,
        "unknown entity '@karabakh'",
    )
