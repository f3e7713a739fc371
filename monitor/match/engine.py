"""Rule compilation and evaluation against one document at a time.

Split in two so a faster candidate finder can replace the per-leaf lookups
later: `DocIndex` answers "where does this leaf occur in this field", and the
evaluator only combines those answers according to the AST.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import NamedTuple

from .entities import CompiledEntity, EntitySpec, Words, compile_entities, entity_spans
from .query import (
    And,
    AtLeast,
    EntityRef,
    Field,
    Leaf,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    QueryError,
    Term,
    entity_refs,
    parse_query_with_columns,
    term_label,
)
from .text import Token, tokenize

__all__ = [
    "CompiledQuery",
    "DocIndex",
    "Document",
    "Evidence",
    "Matcher",
    "RuleError",
    "RuleHit",
    "RuleSpec",
    "compile_query",
]

TEXT_FIELDS: tuple[str, ...] = ("title", "summary", "body")
DOC_FIELDS: tuple[str, ...] = ("title", "summary", "body", "author", "source", "url", "lang")
_FIELD_ORDER = {name: i for i, name in enumerate(DOC_FIELDS)}
_SCOPES: dict[str, tuple[str, ...]] = {name: (name,) for name in DOC_FIELDS}
_SCOPES["text"] = TEXT_FIELDS
TITLE_WEIGHT = 3.0
SNIPPET_WIDTH = 240
# Context kept before the first highlighted match when the field is cut.
_SNIPPET_LEAD = 60


@dataclass(frozen=True)
class RuleSpec:
    id: str
    query: str
    exclude: str | None = None
    feeds: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    enabled: bool = True


@dataclass(frozen=True)
class Document:
    title: str = ""
    summary: str = ""
    body: str = ""
    author: str = ""
    source: str = ""
    url: str = ""
    lang: str | None = None
    feed_id: str | None = None


@dataclass(frozen=True)
class Evidence:
    term: str
    text: str
    field: str
    start: int
    end: int


@dataclass(frozen=True)
class RuleHit:
    rule_id: str
    matches: tuple[Evidence, ...]
    snippet: str
    score: float


class RuleError(ValueError):
    """A rule whose `query` or `exclude` does not compile."""

    def __init__(self, rule_id: str, key: str, column: int, message: str) -> None:
        super().__init__(f"rule {rule_id!r}, {key}: column {column}: {message}")
        self.rule_id = rule_id
        self.key = key
        self.column = column
        self.message = message

    def __reduce__(self) -> tuple[type[RuleError], tuple[str, str, int, str]]:
        return (RuleError, (self.rule_id, self.key, self.column, self.message))


# --------------------------------------------------------------------------
# compilation


@dataclass(frozen=True)
class CompiledQuery:
    text: str
    node: Node
    # Each set lists words of which at least one must occur somewhere in the
    # document for the query to have any chance; an empty tuple means "no
    # cheap test", e.g. for negations and prefixes.
    required: tuple[frozenset[str], ...]


def _requirements(node: Node, entities: Mapping[str, CompiledEntity]) -> list[frozenset[str]]:
    if isinstance(node, Term):
        return [] if node.prefix else [frozenset((node.word,))]
    if isinstance(node, Phrase):
        return [frozenset((w,)) for w in node.words]
    if isinstance(node, EntityRef):
        firsts = entities[node.name].first_words
        # An entity without usable aliases can never match; an impossible
        # requirement says so without special cases elsewhere.
        return [firsts] if firsts else [frozenset(("",))]
    if isinstance(node, And):
        return [req for item in node.items for req in _requirements(item, entities)]
    if isinstance(node, Or):
        alternatives: set[str] = set()
        for item in node.items:
            reqs = _requirements(item, entities)
            if not reqs:
                return []
            alternatives |= reqs[0]
        return [frozenset(alternatives)]
    if isinstance(node, Near):
        return _requirements(node.left, entities) + _requirements(node.right, entities)
    if isinstance(node, (AtLeast, Field)):
        return _requirements(node.item, entities)
    return []


def compile_query(text: str, entities: Mapping[str, CompiledEntity]) -> CompiledQuery:
    """Parse `text` and resolve its @entities; raises `QueryError`."""
    node, columns = parse_query_with_columns(text)
    unknown = entity_refs(node) - entities.keys()
    if unknown:
        name = min(unknown, key=lambda n: columns[n])
        raise QueryError(columns[name], f"unknown entity '@{name}'")
    return CompiledQuery(text, node, tuple(_requirements(node, entities)))


# --------------------------------------------------------------------------
# per-document index


class Occ(NamedTuple):
    """One occurrence: token positions `first..last`, characters `start:end`."""

    first: int
    last: int
    start: int
    end: int


class _FieldIndex:
    __slots__ = ("_sorted_words", "positions", "text", "tokens")

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[Token] = tokenize(text)
        positions: dict[str, list[int]] = {}
        for i, tok in enumerate(self.tokens):
            positions.setdefault(tok.folded, []).append(i)
        self.positions = positions
        self._sorted_words: list[str] | None = None

    def prefixed(self, prefix: str) -> list[int]:
        """Positions of tokens starting with `prefix`, in text order."""
        if self._sorted_words is None:
            self._sorted_words = sorted(self.positions)
        words = self._sorted_words
        found: list[int] = []
        for k in range(bisect_left(words, prefix), len(words)):
            if not words[k].startswith(prefix):
                break
            found.extend(self.positions[words[k]])
        found.sort()
        return found

    def find(self, words: Words) -> list[int]:
        starts = self.positions.get(words[0], [])
        if len(words) == 1:
            return starts
        tokens = self.tokens
        n = len(words)
        limit = len(tokens) - n
        return [
            p
            for p in starts
            if p <= limit and all(tokens[p + k].folded == words[k] for k in range(1, n))
        ]

    def occ(self, first: int, last: int) -> Occ:
        return Occ(first, last, self.tokens[first].start, self.tokens[last].end)


class DocIndex:
    """Lazily tokenised fields of one document plus per-leaf occurrence caches."""

    def __init__(self, doc: Document, entities: Mapping[str, CompiledEntity]) -> None:
        # Feeds often lack a field entirely; tolerate None as well as "".
        self.texts: dict[str, str] = {name: getattr(doc, name) or "" for name in DOC_FIELDS}
        self.entities = entities
        self._fields: dict[str, _FieldIndex] = {}
        self._occurrences: dict[tuple[Leaf, str], list[Occ]] = {}
        self._vocabulary: set[str] | None = None

    def field(self, name: str) -> _FieldIndex:
        index = self._fields.get(name)
        if index is None:
            index = self._fields[name] = _FieldIndex(self.texts[name])
        return index

    @property
    def vocabulary(self) -> set[str]:
        if self._vocabulary is None:
            vocab: set[str] = set()
            for name in DOC_FIELDS:
                vocab.update(self.field(name).positions)
            self._vocabulary = vocab
        return self._vocabulary

    def occurrences(self, leaf: Leaf, field: str) -> list[Occ]:
        key = (leaf, field)
        found = self._occurrences.get(key)
        if found is None:
            found = self._occurrences[key] = self._find(leaf, self.field(field))
        return found

    def _find(self, leaf: Leaf, index: _FieldIndex) -> list[Occ]:
        if isinstance(leaf, Term):
            if not leaf.prefix:
                return [index.occ(p, p) for p in index.positions.get(leaf.word, ())]
            return [index.occ(p, p) for p in index.prefixed(leaf.word)]
        if isinstance(leaf, Phrase):
            n = len(leaf.words) - 1
            return [index.occ(p, p + n) for p in index.find(leaf.words)]
        return [index.occ(a, b) for a, b in entity_spans(self.entities[leaf.name], index.find)]


# --------------------------------------------------------------------------
# evaluation


class _Found(NamedTuple):
    field: str
    occ: Occ
    term: str


# The fields a subtree may look at. `None` means no `field:` prefix applies
# yet: bare terms then search the text fields, but a `field:` further down may
# still choose author, url and the other non-text fields.
Scope = tuple[str, ...] | None


def _fields(scope: Scope) -> tuple[str, ...]:
    return TEXT_FIELDS if scope is None else scope


def _narrow(scope: Scope, field: str) -> tuple[str, ...]:
    allowed = _SCOPES[field]
    # Nested scopes intersect, so `title:(body:x)` can never match.
    return allowed if scope is None else tuple(f for f in scope if f in allowed)


class _Evaluator:
    def __init__(self, index: DocIndex) -> None:
        self.index = index

    def positions(self, node: Node, scope: Scope) -> list[_Found]:
        """Occurrences of a positional node (leaf, OR-group or field of those)."""
        if isinstance(node, (Term, Phrase, EntityRef)):
            label = term_label(node)
            return [
                _Found(f, occ, label)
                for f in _fields(scope)
                for occ in self.index.occurrences(node, f)
            ]
        if isinstance(node, Or):
            return [found for item in node.items for found in self.positions(item, scope)]
        if isinstance(node, Field):
            return self.positions(node.item, _narrow(scope, node.field))
        raise TypeError(f"not a positional node: {node!r}")  # the parser rejects these

    def evaluate(self, node: Node, scope: Scope, want: bool) -> tuple[bool, list[_Found]]:
        """Whether `node` matches, and (if `want`) the evidence from positive branches."""
        if isinstance(node, (Term, Phrase, EntityRef)):
            found = self.positions(node, scope)
            return bool(found), found
        if isinstance(node, And):
            evidence: list[_Found] = []
            for item in node.items:
                ok, ev = self.evaluate(item, scope, want)
                if not ok:
                    return False, []
                evidence.extend(ev)
            return True, evidence
        if isinstance(node, Or):
            matched = False
            evidence = []
            for item in node.items:
                ok, ev = self.evaluate(item, scope, want)
                if ok:
                    if not want:
                        return True, []
                    matched = True
                    evidence.extend(ev)
            return matched, evidence
        if isinstance(node, Not):
            ok, _ = self.evaluate(node.item, scope, False)
            return not ok, []
        if isinstance(node, Field):
            return self.evaluate(node.item, _narrow(scope, node.field), want)
        if isinstance(node, AtLeast):
            found = self.positions(node.item, scope)
            # An occurrence reached through two alternatives (`grain OR
            # grain*`) is still one occurrence.
            distinct = {(f.field, f.occ.first, f.occ.last) for f in found}
            if len(distinct) < node.count:
                return False, []
            return True, found
        if isinstance(node, Near):
            return self.near(node, scope)
        raise TypeError(f"not a query node: {node!r}")

    def near(self, node: Near, scope: Scope) -> tuple[bool, list[_Found]]:
        evidence: list[_Found] = []
        n = node.distance
        # Proximity never crosses fields, so pair up occurrences field by field.
        for field in _fields(scope):
            lefts = self.positions(node.left, (field,))
            if not lefts:
                continue
            rights = sorted(self.positions(node.right, (field,)), key=lambda f: f.occ.first)
            if not rights:
                continue
            firsts = [r.occ.first for r in rights]
            widest = max(r.occ.last - r.occ.first for r in rights)
            used_right: set[int] = set()
            for left in lefts:
                a = left.occ
                if node.ordered:
                    lo = bisect_right(firsts, a.last)
                else:
                    lo = bisect_left(firsts, a.first - n - widest)
                hi = bisect_right(firsts, a.last + n)
                paired = False
                for k in range(lo, hi):
                    b = rights[k].occ
                    # Overlapping occurrences are the same words, not two
                    # mentions near each other.
                    if b.first > a.last:
                        gap = b.first - a.last
                    elif not node.ordered and a.first > b.last:
                        gap = a.first - b.last
                    else:
                        continue
                    if gap <= n:
                        paired = True
                        used_right.add(k)
                if paired:
                    evidence.append(left)
            evidence.extend(rights[k] for k in sorted(used_right))
        return bool(evidence), evidence


# --------------------------------------------------------------------------
# rules


def _evidence(index: DocIndex, found: Iterable[_Found]) -> tuple[Evidence, ...]:
    unique = {(f.field, f.occ.start, f.occ.end, f.term) for f in found}
    ordered = sorted(unique, key=lambda u: (_FIELD_ORDER[u[0]], u[1], u[2], u[3]))
    return tuple(
        Evidence(term, index.texts[field][start:end], field, start, end)
        for field, start, end, term in ordered
    )


def _score(matches: Sequence[Evidence]) -> float:
    return sum(TITLE_WEIGHT if e.field == "title" else 1.0 for e in matches)


_SPACES = re.compile(r"\s+")


def _snippet(texts: Mapping[str, str], matches: Sequence[Evidence]) -> str:
    fields = [e.field for e in matches]
    field = next((f for f in fields if f in ("summary", "body")), None)
    if field is None:
        field = "title" if "title" in fields else (fields[0] if fields else None)
    if field is None:
        # Pure-negative queries have no evidence; show where the article starts.
        field = next((f for f in ("summary", "body", "title") if texts[f].strip()), "body")
    text = texts[field]

    spans: list[list[int]] = []
    for s, e in sorted((m.start, m.end) for m in matches if m.field == field):
        if spans and s < spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], e)
        else:
            spans.append([s, e])

    start, end = 0, len(text)
    if len(text) > SNIPPET_WIDTH:
        first_start, first_end = (spans[0][0], spans[0][1]) if spans else (0, 0)
        start = max(0, first_start - _SNIPPET_LEAD)
        end = min(len(text), max(start + SNIPPET_WIDTH, first_end))
        if end == len(text):
            start = max(0, min(start, end - SNIPPET_WIDTH))
        # Do not cut words in half at either edge (unless that would cut a match).
        if start > 0 and not text[start - 1].isspace():
            space = _SPACES.search(text, start, first_start if spans else len(text))
            if space:
                start = space.end()
        if end < len(text) and not text[end].isspace():
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
        parts.append(_SPACES.sub(" ", text[pos:s]))
        parts.append("«" + _SPACES.sub(" ", text[s:e]) + "»")
        pos = e
    parts.append(_SPACES.sub(" ", text[pos:end]))
    out = "".join(parts).strip()
    if start > 0:
        out = "…" + out
    if end < len(text):
        out += "…"
    return out


def _feed_matches(patterns: tuple[str, ...], feed_id: str | None) -> bool:
    return feed_id is not None and any(fnmatchcase(feed_id, pattern) for pattern in patterns)


def _lang_matches(wanted: tuple[str, ...], lang: str | None) -> bool:
    if not wanted or not lang:
        return True
    lang = lang.strip().lower().replace("_", "-")
    return any(lang == w or lang.startswith(w + "-") for w in wanted)


@dataclass(frozen=True)
class _Rule:
    spec: RuleSpec
    query: CompiledQuery
    exclude: CompiledQuery | None
    languages: tuple[str, ...]


class Matcher:
    """Evaluates a fixed rule set against documents."""

    def __init__(self, rules: Sequence[RuleSpec], entities: Mapping[str, EntitySpec]) -> None:
        self.entities = compile_entities(entities)
        compiled, errors = self._compile(rules, self.entities)
        if errors:
            raise errors[0]
        self._rules = compiled
        self.rule_ids: tuple[str, ...] = tuple(rule.id for rule in rules)

    @staticmethod
    def _compile(
        rules: Sequence[RuleSpec], entities: Mapping[str, CompiledEntity]
    ) -> tuple[list[_Rule], list[RuleError]]:
        compiled: list[_Rule] = []
        errors: list[RuleError] = []
        for spec in rules:
            parts: dict[str, CompiledQuery | None] = {"query": None, "exclude": None}
            failed = False
            for key, text in (("query", spec.query), ("exclude", spec.exclude)):
                if text is None:
                    continue
                try:
                    parts[key] = compile_query(text, entities)
                except QueryError as exc:
                    errors.append(RuleError(spec.id, key, exc.column, exc.message))
                    failed = True
            query = parts["query"]
            if not failed and query is not None:
                languages = tuple(lang.strip().lower().replace("_", "-") for lang in spec.languages)
                compiled.append(_Rule(spec, query, parts["exclude"], languages))
        return compiled, errors

    @staticmethod
    def check(rules: Sequence[RuleSpec], entities: Mapping[str, EntitySpec]) -> list[RuleError]:
        """Every compile error in `rules`, in rule order (query before exclude)."""
        return Matcher._compile(rules, compile_entities(entities))[1]

    def match(self, doc: Document) -> list[RuleHit]:
        """Hits for `doc`, in rule order; disabled rules are skipped."""
        index = DocIndex(doc, self.entities)
        evaluator = _Evaluator(index)
        hits: list[RuleHit] = []
        for rule in self._rules:
            spec = rule.spec
            if not spec.enabled:
                continue
            if spec.feeds and not _feed_matches(spec.feeds, doc.feed_id):
                continue
            if not _lang_matches(rule.languages, doc.lang):
                continue
            if not _may_match(rule.query, index):
                continue
            ok, found = evaluator.evaluate(rule.query.node, None, True)
            if not ok:
                continue
            exclude = rule.exclude
            if (
                exclude is not None
                and _may_match(exclude, index)
                and evaluator.evaluate(exclude.node, None, False)[0]
            ):
                continue
            matches = _evidence(index, found)
            hits.append(RuleHit(spec.id, matches, _snippet(index.texts, matches), _score(matches)))
        return hits


def _may_match(query: CompiledQuery, index: DocIndex) -> bool:
    if not query.required:
        return True
    vocabulary = index.vocabulary
    return all(not vocabulary.isdisjoint(group) for group in query.required)
