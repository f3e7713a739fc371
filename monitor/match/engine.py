"""Rule compilation and evaluation against one document at a time.

All enabled rules are compiled into one candidate index, so a document is
tokenised once and only the rules that can possibly match are evaluated:

* each query is reduced to requirements (cheap necessary conditions): sets
  of conjunctions of keys, a key being a folded word or `prefix*`, of which
  one conjunction must occur entirely (a word, a phrase, an entity alias);
* the most selective requirement becomes the rule's trigger: the rarest key
  of each of its conjunctions goes into an inverted index (key -> rules).
  Rules without any requirement (pure negations) are evaluated always;
* per document, its distinct words are looked up once (each word seen is
  remembered as inert, or with the rules and prefix keys it triggers), the
  candidates' requirements are checked against the document's keys, and
  only then is the query tree evaluated, in rule order, over occurrence
  lists computed at most once per leaf and document.

`Matcher.match_naive` keeps the plain loop over every rule as the reference
the one-pass path is tested against.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from operator import itemgetter
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
    format_query,
    parse_query_with_columns,
    query_terms,
    term_label,
)
from .text import fold_token, token_pattern

__all__ = [
    "CompiledQuery",
    "DocIndex",
    "Document",
    "Evidence",
    "Explanation",
    "Matcher",
    "RuleError",
    "RuleHit",
    "RuleSpec",
    "Verify",
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

# verify(entity_type, field, start, end) -> whether that occurrence really is the entity.
Verify = Callable[[str, str, int, int], bool]


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


@dataclass(frozen=True)
class Explanation:
    """Why a rule did or did not hit a document (see `Matcher.explain`)."""

    rule_id: str
    matched: bool
    reason: str
    # Canonical text of each top-level clause of the query and whether it holds.
    clauses: tuple[tuple[str, bool], ...]


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

# Cheap necessary conditions. A key is a folded word, or a prefix followed by
# "*" (folded tokens never contain "*", so the two cannot collide). A
# conjunction is a set of keys that must all occur (a phrase, an entity
# alias); a requirement is a set of conjunctions of which at least one must
# occur entirely. A query compiles to a list of requirements that all must
# hold. The empty word is never present: it stands for "cannot match at all".
Conj = frozenset[str]
Requirement = frozenset[Conj]
_IMPOSSIBLE: Requirement = frozenset((frozenset(("",)),))

# Words so frequent that no rule should wait on them when it has a choice.
# Length alone would rank these as fairly selective.
_COMMON_TEXT = """
about after also and are because been but can could for from had has have her his how into
its more not one only other over said says some than that the their them then there these
they this those under was were what when where which while who will with would year years
ama bir bile daha gibi icin ile kadar olan olarak sonra veya yeni
dedi etdi ilə ucun
был была были для его как что это
"""
_COMMON_WORDS = frozenset(map(fold_token, _COMMON_TEXT.split()))


def _key_cost(key: str) -> float:
    """Rough chance that `key` occurs in an article: only the ranking matters."""
    prefix = key.endswith("*")
    word = key[:-1] if prefix else key
    if not word:
        return 0.0
    if word in _COMMON_WORDS or len(word) <= 2:
        cost = 1.0
    else:
        cost = 0.5 ** min(len(word), 14)
        if word.isdigit():
            cost *= 8
    if prefix:
        cost = min(1.0, cost * 4)
    return cost


def _rarest(conj: Conj) -> str:
    """The key of `conj` to wait for: all must occur, so the rarest decides."""
    return min(conj, key=lambda k: (_key_cost(k), k))


def _requirement_order(req: Requirement) -> tuple[float, int, list[list[str]]]:
    return (sum(_key_cost(_rarest(c)) for c in req), len(req), sorted(sorted(c) for c in req))


def _minimal(conjs: Iterable[Conj]) -> Requirement:
    """Drop conjunctions that contain another one: the smaller already suffices."""
    unique = set(conjs)
    return frozenset(c for c in unique if not any(o < c for o in unique))


def _entity_requirement(entity: CompiledEntity) -> Requirement:
    if not entity.aliases:
        # An entity without usable aliases can never match; an impossible
        # requirement says so without special cases elsewhere.
        return _IMPOSSIBLE
    return _minimal(frozenset(alias) for alias in entity.aliases)


def _as_one(reqs: list[Requirement]) -> Requirement:
    """One requirement implied by all of `reqs` together (for use inside an OR)."""
    # Single-conjunction requirements combine exactly into one conjunction;
    # of the others, only the most selective is kept.
    single = frozenset(k for req in reqs if len(req) == 1 for conj in req for k in conj)
    several = [req for req in reqs if len(req) > 1]
    if not several:
        return frozenset((single,))
    best = min(several, key=_requirement_order)
    return _minimal(single | conj for conj in best)


def _requirements(
    node: Node, entities: Mapping[str, CompiledEntity], memo: dict[str, Requirement]
) -> list[Requirement]:
    if isinstance(node, Term):
        return [frozenset((frozenset((node.word + "*" if node.prefix else node.word,)),))]
    if isinstance(node, Phrase):
        return [frozenset((frozenset(node.words),))]
    if isinstance(node, EntityRef):
        req = memo.get(node.name)
        if req is None:
            req = memo[node.name] = _entity_requirement(entities[node.name])
        return [req]
    if isinstance(node, And):
        return [req for item in node.items for req in _requirements(item, entities, memo)]
    if isinstance(node, Or):
        conjs: list[Conj] = []
        for item in node.items:
            reqs = _requirements(item, entities, memo)
            if not reqs:
                return []
            conjs.extend(_as_one(reqs))
        return [_minimal(conjs)]
    if isinstance(node, Near):
        return _requirements(node.left, entities, memo) + _requirements(node.right, entities, memo)
    if isinstance(node, (AtLeast, Field)):
        return _requirements(node.item, entities, memo)
    # NOT (and anything under it) promises nothing about what occurs.
    return []


@dataclass(frozen=True)
class CompiledQuery:
    text: str
    node: Node
    # Requirements that all must hold somewhere in the document for the
    # query to have any chance, most selective first: each is a set of
    # conjunctions (sets of words or `prefix*` keys) of which one must occur
    # entirely. An empty tuple means "no cheap test", e.g. for negations.
    required: tuple[Requirement, ...]


def _compile_query(
    text: str, entities: Mapping[str, CompiledEntity], memo: dict[str, Requirement]
) -> CompiledQuery:
    node, columns = parse_query_with_columns(text)
    unknown = entity_refs(node) - entities.keys()
    if unknown:
        name = min(unknown, key=lambda n: columns[n])
        raise QueryError(columns[name], f"unknown entity '@{name}'")
    reqs = list(dict.fromkeys(_requirements(node, entities, memo)))
    # Most selective first, so the cheap pre-check fails as early as it can.
    reqs.sort(key=_requirement_order)
    return CompiledQuery(text, node, tuple(reqs))


def compile_query(text: str, entities: Mapping[str, CompiledEntity]) -> CompiledQuery:
    """Parse `text` and resolve its @entities; raises `QueryError`."""
    return _compile_query(text, entities, {})


# --------------------------------------------------------------------------
# compiled trees
#
# The evaluator walks a copy of each query tree whose leaves are `_Leaf`
# objects, shared by every rule that uses an equal leaf. They hash by
# identity, so per-document caches keyed on them cost a pointer hash, and
# they carry what a lookup needs (folded words, the entity, the label).

_TERM, _PREFIX, _PHRASE, _ENTITY = range(4)


class _Leaf:
    __slots__ = ("entity", "firsts", "key", "kind", "label", "word", "words")

    def __init__(self, node: Leaf, entities: Mapping[str, CompiledEntity]) -> None:
        self.label = term_label(node)
        self.word = ""
        self.key = ""  # the requirement key of a prefix: "grain*"
        self.words: Words = ()
        self.entity: CompiledEntity | None = None
        # Words of which one must be in the document for the leaf to occur.
        self.firsts: frozenset[str] = frozenset()
        if isinstance(node, Term):
            self.kind = _PREFIX if node.prefix else _TERM
            self.word = node.word
            self.key = node.word + "*" if node.prefix else node.word
            self.firsts = frozenset((node.word,))
        elif isinstance(node, Phrase):
            self.kind = _PHRASE
            self.words = node.words
            self.firsts = frozenset(node.words[:1])
        else:
            self.kind = _ENTITY
            self.entity = entities[node.name]
            self.firsts = self.entity.first_words

    def absent(self, vocabulary: set[str]) -> bool:
        """Whether the leaf certainly does not occur in a document with these words."""
        if self.kind == _PREFIX:
            return False
        if self.kind == _PHRASE:
            return not vocabulary.issuperset(self.words)
        return vocabulary.isdisjoint(self.firsts)


class _And(NamedTuple):
    items: tuple[_Tree, ...]


class _Or(NamedTuple):
    items: tuple[_Tree, ...]


class _Not(NamedTuple):
    item: _Tree


class _Field(NamedTuple):
    field: str
    item: _Tree


class _Near(NamedTuple):
    left: _Tree
    right: _Tree
    distance: int
    ordered: bool


class _AtLeast(NamedTuple):
    count: int
    item: _Tree


_Tree = _Leaf | _And | _Or | _Not | _Field | _Near | _AtLeast


def _scoped_fields(tree: _Tree) -> set[str]:
    """The fields that the ``field:`` parts of `tree` point its terms to (bare terms read the
    text fields)."""
    if isinstance(tree, _Field):
        return {*_SCOPES[tree.field], *_scoped_fields(tree.item)}
    if isinstance(tree, (_And, _Or)):
        return set().union(*map(_scoped_fields, tree.items))
    if isinstance(tree, (_Not, _AtLeast)):
        return _scoped_fields(tree.item)
    if isinstance(tree, _Near):
        return _scoped_fields(tree.left) | _scoped_fields(tree.right)
    return set()


class _Compiler:
    """Shared state while compiling one rule set: entity groups and interned leaves."""

    def __init__(self, entities: Mapping[str, CompiledEntity]) -> None:
        self.entities = entities
        self.requirements: dict[str, Requirement] = {}
        self.leaves: dict[Leaf, _Leaf] = {}

    def tree(self, node: Node) -> _Tree:
        if isinstance(node, (Term, Phrase, EntityRef)):
            leaf = self.leaves.get(node)
            if leaf is None:
                leaf = self.leaves[node] = _Leaf(node, self.entities)
            return leaf
        if isinstance(node, And):
            return _And(tuple(map(self.tree, node.items)))
        if isinstance(node, Or):
            return _Or(tuple(map(self.tree, node.items)))
        if isinstance(node, Not):
            return _Not(self.tree(node.item))
        if isinstance(node, Field):
            return _Field(node.field, self.tree(node.item))
        if isinstance(node, Near):
            return _Near(self.tree(node.left), self.tree(node.right), node.distance, node.ordered)
        if isinstance(node, AtLeast):
            return _AtLeast(node.count, self.tree(node.item))
        raise TypeError(f"not a query node: {node!r}")


# --------------------------------------------------------------------------
# per-document index


# `_FieldIndex._locate`: how near a known offset (in tokens) adding up lengths
# beats searching the text, and how many occurrences of a token's text inside
# other tokens a search may skip before it gives up.
_NEAR_TOKENS = 48
_MAX_MISSES = 3


def _occurrences(text: str, token: str, forward: bool) -> Iterator[int]:
    """Offsets where `token` occurs in `text`: from the start, or from the end backwards."""
    if forward:
        at = text.find(token)
        while at >= 0:
            yield at
            at = text.find(token, at + 1)
    else:
        at = text.rfind(token)
        while at >= 0:
            yield at
            at = text.rfind(token, 0, at + len(token) - 1)


class _FieldIndex:
    """One field's folded tokens; positions and character offsets on demand."""

    __slots__ = (
        "_keep", "_marks", "_parts", "_pattern", "_positions", "_sorted_words", "_starts", "text", "vocab",
        "words",
    )

    def __init__(self, text: str) -> None:
        self.text = text
        self._keep: list[int] | None = None
        # Separators and raw tokens, alternately (see `token_pattern`).
        self._parts: list[str] = []
        words: list[str] = []
        # The pattern that tokenised `text` (None for an empty text).
        self._pattern: re.Pattern[str] | None = None
        if text:
            self._pattern = pattern = token_pattern(text)
            self._parts = pattern.split(text)
            words = list(map(fold_token, self._parts[1::2]))
            if "" in words:
                # A raw token that folds to nothing is not a token at all.
                keep = [i for i, w in enumerate(words) if w]
                words = [words[i] for i in keep]
                self._keep = keep
        self.words = words
        self.vocab = set(words)
        self._positions: dict[str, list[int]] = {}
        # Character offset where raw token j starts, for the j asked about so
        # far (`_marks` holds those j sorted): a body has a thousand tokens,
        # its hits need a handful of offsets.
        self._starts: dict[int, int] = {}
        self._marks: list[int] = []
        self._sorted_words: list[str] | None = None

    @property
    def raw_tokens(self) -> list[str]:
        """The field's raw tokens, before folding (``token_pattern(text).findall(text)``)."""
        return self._parts[1::2]

    def _start(self, raw: int) -> int:
        """Character offset where raw token `raw` starts."""
        start = self._starts.get(raw)
        if start is None:
            # Count from the nearest offset known before or after it (the end
            # of the text is known): joining the parts in between and taking
            # the length runs in C.
            parts = self._parts
            marks = self._marks
            k = bisect_left(marks, raw)
            lower = marks[k - 1] if k else -1
            upper = marks[k] if k < len(marks) else len(parts) // 2
            if raw - lower <= upper - raw:
                base = 0 if lower < 0 else self._starts[lower] + len(parts[2 * lower + 1])
                start = base + len("".join(parts[2 * lower + 2 : 2 * raw + 1]))
            else:
                top = self._starts[upper] if k < len(marks) else len(self.text)
                start = top - len("".join(parts[2 * raw + 1 : 2 * upper + 1]))
            marks.insert(k, raw)
            self._starts[raw] = start
        return start

    def _locate(self, kept: int, raw: int) -> int:
        """Character offset where raw token `raw` (kept token `kept`) starts.

        Near an offset already known, adding up lengths (`_start`) is
        cheapest. Far from any, `str.find` looks for the token's text from
        the nearer end of the field: an occurrence whose neighbours are no
        token characters is a whole raw token with that text, so the k-th
        such occurrence is the k-th raw token spelled so (an occurrence of a
        token never overlaps an earlier occurrence: that one would have to
        contain the separator before it). The raw tokens spelled so are
        among the positions of the token's folded word.
        """
        parts = self._parts
        marks = self._marks
        tokens = len(parts) // 2
        k = bisect_left(marks, raw)
        lower = marks[k - 1] if k else -1
        upper = marks[k] if k < len(marks) else tokens
        if min(raw - lower, upper - raw) <= _NEAR_TOKENS:
            return self._start(raw)
        token = parts[2 * raw + 1]
        positions = self.positions(self.words[kept])
        keep = self._keep
        if keep is not None:
            positions = [keep[p] for p in positions]
        same = [r for r in positions if parts[2 * r + 1] == token]
        rank = same.index(raw)
        text = self.text
        size = len(token)
        assert self._pattern is not None  # the text has this token
        match = self._pattern.match
        forward = raw - lower <= upper - raw
        if not forward:
            rank = len(same) - 1 - rank
        misses = 0
        for at in _occurrences(text, token, forward):
            end = at + size
            if (at == 0 or match(text, at - 1, at) is None) and match(text, end, end + 1) is None:
                if not rank:
                    break
                rank -= 1
            else:
                misses += 1
                if misses > _MAX_MISSES:
                    return self._start(raw)
        else:  # pragma: no cover - the token occurs `rank` more times; counting is exact anyway
            return self._start(raw)
        marks.insert(k, raw)
        self._starts[raw] = at
        return at

    def chars(self, first: int, last: int) -> tuple[int, int]:
        """Character offsets `(start, end)` of tokens `first..last`."""
        keep = self._keep
        raw_first = first if keep is None else keep[first]
        start = self._starts.get(raw_first)
        if start is None:
            start = self._locate(first, raw_first)
        parts = self._parts
        if last == first:
            return start, start + len(parts[2 * raw_first + 1])
        raw_last = last if keep is None else keep[last]
        # The tokens of one occurrence are few: count on from its start.
        return start, start + len("".join(parts[2 * raw_first + 1 : 2 * raw_last + 2]))

    def positions(self, word: str) -> list[int]:
        """Token positions of `word`, in text order."""
        found = self._positions.get(word)
        if found is None:
            found = []
            if word in self.vocab:
                # list.index scans in C; cheaper than indexing every word of
                # a long body when only a few words are ever asked about.
                words = self.words
                i = words.index(word)
                try:
                    while True:
                        found.append(i)
                        i = words.index(word, i + 1)
                except ValueError:
                    pass
            self._positions[word] = found
        return found

    def prefixed(self, prefix: str, words: Iterable[str] | None = None) -> list[int]:
        """Positions of tokens starting with `prefix`, in text order.

        `words`, if given, are the document's words with that prefix (the
        matcher knows them from its candidate search); else they are looked
        up in this field's sorted vocabulary.
        """
        if words is None:
            if self._sorted_words is None:
                self._sorted_words = sorted(self.vocab)
            vocab = self._sorted_words
            words = []
            for k in range(bisect_left(vocab, prefix), len(vocab)):
                if not vocab[k].startswith(prefix):
                    break
                words.append(vocab[k])
        found: list[int] = []
        for word in words:
            found.extend(self.positions(word))
        found.sort()
        return found

    def find(self, words: Words) -> list[int]:
        """Start positions of the phrase `words`."""
        starts = self.positions(words[0])
        if len(words) == 1 or not starts:
            return starts
        vocab = self.vocab
        if any(w not in vocab for w in words[1:]):
            return []
        tokens = self.words
        n = len(words)
        limit = len(tokens) - n
        return [
            p for p in starts if p <= limit and all(tokens[p + k] == words[k] for k in range(1, n))
        ]


Span = tuple[int, int]  # token positions first..last
# One occurrence as evidence: (field, first token, last token, leaf). A plain
# tuple: these are made by the thousand per document.
_Found = tuple[str, int, int, _Leaf]
_FIRST, _LAST = 1, 2

# The fields a subtree may look at. `None` means no `field:` prefix applies
# yet: bare terms then search the text fields, but a `field:` further down may
# still choose author, url and the other non-text fields.
Scope = tuple[str, ...] | None


class DocIndex:
    """Tokenised fields of one document plus per-leaf occurrence caches."""

    def __init__(
        self,
        doc: Document,
        entities: Mapping[str, CompiledEntity],
        verify: Verify | None = None,
    ) -> None:
        self.doc = doc
        # Feeds often lack a field entirely; tolerate None as well as "".
        self.texts: dict[str, str] = {name: getattr(doc, name) or "" for name in DOC_FIELDS}
        self.entities = entities
        self.verify = verify
        # Prefix key ("grain*") -> the document's words with that prefix, when
        # the caller already knows them.
        self.prefix_words: Mapping[str, list[str]] | None = None
        self._fields: dict[str, _FieldIndex] = {}
        self._occurrences: dict[tuple[_Leaf, str], list[Span]] = {}
        self._found: dict[tuple[_Leaf, Scope], list[_Found]] = {}
        self._vocabulary: set[str] | None = None

    def field(self, name: str) -> _FieldIndex:
        index = self._fields.get(name)
        if index is None:
            index = self._fields[name] = _FieldIndex(self.texts[name])
        return index

    @property
    def vocabulary(self) -> set[str]:
        """Every distinct folded word of the document, all fields together."""
        return self.vocabulary_of(DOC_FIELDS)

    def vocabulary_of(self, fields: Sequence[str]) -> set[str]:
        """Every distinct folded word of `fields` together: those a rule set can look at
        (``Matcher``), whose words alone can make a rule a candidate or a term absent. The
        first call decides: the document's vocabulary is that one from then on."""
        if self._vocabulary is None:
            field = self.field
            self._vocabulary = set().union(*(field(name).vocab for name in fields))
        return self._vocabulary

    def found(self, leaf: _Leaf, scope: Scope) -> list[_Found]:
        """Occurrences of `leaf` in the fields of `scope`, field by field.

        Cached per (leaf, scope) in `_found`, which the evaluator reads
        directly; the lists are shared, so nobody may modify them.
        """
        key = (leaf, scope)
        found = self._found.get(key)
        if found is None:
            found = []
            kind = leaf.kind
            # The words a prefix stands for in this document, when known.
            words: list[str] | None = None
            if kind == _PREFIX:
                known = self.prefix_words
                if known is not None:
                    words = known.get(leaf.key)
                    absent = not words
                else:
                    absent = False
            else:
                vocabulary = self._vocabulary if self._vocabulary is not None else self.vocabulary
                absent = leaf.absent(vocabulary)
            if not absent:
                fields = self._fields
                for f in TEXT_FIELDS if scope is None else scope:
                    index = fields.get(f) or self.field(f)
                    if kind == _TERM:
                        # The commonest leaf, without the per-field cache.
                        if leaf.word in index.vocab:
                            found.extend([(f, p, p, leaf) for p in index.positions(leaf.word)])
                        continue
                    if words is not None:
                        # A prefix whose words are known: straight to their positions.
                        vocab = index.vocab
                        if vocab.isdisjoint(words):
                            continue
                        if len(words) == 1:
                            positions = index.positions(words[0])
                        else:
                            positions = sorted([p for w in words if w in vocab for p in index.positions(w)])
                        found.extend([(f, p, p, leaf) for p in positions])
                        continue
                    # Skip fields the leaf cannot occur in before asking the cache.
                    if kind != _PREFIX and leaf.absent(index.vocab):
                        continue
                    spans = self.occurrences(leaf, f)
                    if spans:
                        found.extend([(f, a, b, leaf) for a, b in spans])
            self._found[key] = found
        return found

    def occurrences(self, leaf: _Leaf, field: str) -> list[Span]:
        key = (leaf, field)
        found = self._occurrences.get(key)
        if found is None:
            found = self._occurrences[key] = self._find(leaf, field)
        return found

    def _find(self, leaf: _Leaf, field: str) -> list[Span]:
        index = self._fields.get(field) or self.field(field)
        kind = leaf.kind
        if kind == _TERM:
            return [(p, p) for p in index.positions(leaf.word)]
        if kind == _PREFIX:
            known = self.prefix_words
            words = None if known is None else known.get(leaf.key, ())
            return [(p, p) for p in index.prefixed(leaf.word, words)]
        if kind == _PHRASE:
            n = len(leaf.words) - 1
            return [(p, p + n) for p in index.find(leaf.words)]
        entity = leaf.entity
        assert entity is not None
        if index.vocab.isdisjoint(leaf.firsts):
            return []
        spans = entity_spans(entity, index.find)
        verify = self.verify
        if spans and entity.verify and verify is not None:
            kind_name = entity.type or ""
            spans = [(a, b) for a, b in spans if verify(kind_name, field, *index.chars(a, b))]
        return spans


# --------------------------------------------------------------------------
# evaluation



def _fields(scope: Scope) -> tuple[str, ...]:
    return TEXT_FIELDS if scope is None else scope


def _narrow(scope: Scope, field: str) -> tuple[str, ...]:
    allowed = _SCOPES[field]
    # Nested scopes intersect, so `title:(body:x)` can never match.
    return allowed if scope is None else tuple(f for f in scope if f in allowed)


class _Evaluator:
    def __init__(self, index: DocIndex) -> None:
        self.index = index
        self.found = index.found
        self.cache = index._found

    def positions(self, node: _Tree, scope: Scope) -> list[_Found]:
        """Occurrences of a positional node (leaf, OR-group or field of those)."""
        if type(node) is _Leaf:
            found = self.cache.get((node, scope))
            return self.found(node, scope) if found is None else found
        if type(node) is _Or:
            return [found for item in node.items for found in self.positions(item, scope)]
        if type(node) is _Field:
            return self.positions(node.item, _narrow(scope, node.field))
        raise TypeError(f"not a positional node: {node!r}")  # the parser rejects these

    def holds(self, node: _Tree, scope: Scope) -> bool:
        """Whether `node` matches; stops at the first occurrence that decides."""
        kind = type(node)
        if kind is _Leaf:
            found = self.cache.get((node, scope))
            return bool(self.found(node, scope) if found is None else found)
        if kind is _And:
            return all(self.holds(item, scope) for item in node.items)
        if kind is _Or:
            return any(self.holds(item, scope) for item in node.items)
        if kind is _Not:
            return not self.holds(node.item, scope)
        if kind is _Field:
            return self.holds(node.item, _narrow(scope, node.field))
        return self.evaluate(node, scope)[0]

    def evaluate(self, node: _Tree, scope: Scope) -> tuple[bool, list[_Found]]:
        """Whether `node` matches, and the evidence from its positive branches."""
        kind = type(node)
        if kind is _Leaf:
            found = self.cache.get((node, scope))
            if found is None:
                found = self.found(node, scope)
            return bool(found), found
        if kind is _And:
            evidence: list[_Found] = []
            for item in node.items:
                ok, ev = self.evaluate(item, scope)
                if not ok:
                    return False, []
                evidence.extend(ev)
            return True, evidence
        if kind is _Or:
            matched = False
            evidence = []
            for item in node.items:
                ok, ev = self.evaluate(item, scope)
                if ok:
                    matched = True
                    evidence.extend(ev)
            return matched, evidence
        if kind is _Not:
            return not self.holds(node.item, scope), []
        if kind is _Field:
            return self.evaluate(node.item, _narrow(scope, node.field))
        if kind is _AtLeast:
            assert isinstance(node, _AtLeast)
            found = self.positions(node.item, scope)
            # An occurrence reached through two alternatives (`grain OR
            # grain*`) is still one occurrence.
            distinct = {f[:3] for f in found}
            if len(distinct) < node.count:
                return False, []
            return True, found
        if kind is _Near:
            assert isinstance(node, _Near)
            return self.near(node, scope)
        raise TypeError(f"not a query node: {node!r}")

    def near(self, node: _Near, scope: Scope) -> tuple[bool, list[_Found]]:
        evidence: list[_Found] = []
        n = node.distance
        # Proximity never crosses fields, so pair up occurrences field by field.
        for field in _fields(scope):
            lefts = self.positions(node.left, (field,))
            if not lefts:
                continue
            rights = sorted(self.positions(node.right, (field,)), key=itemgetter(_FIRST))
            if not rights:
                continue
            firsts = [r[_FIRST] for r in rights]
            widest = max(r[_LAST] - r[_FIRST] for r in rights)
            used_right: set[int] = set()
            for left in lefts:
                a_first, a_last = left[_FIRST], left[_LAST]
                if node.ordered:
                    lo = bisect_right(firsts, a_last)
                else:
                    lo = bisect_left(firsts, a_first - n - widest)
                hi = bisect_right(firsts, a_last + n)
                paired = False
                for k in range(lo, hi):
                    b_first, b_last = rights[k][_FIRST], rights[k][_LAST]
                    # Overlapping occurrences are the same words, not two
                    # mentions near each other.
                    if b_first > a_last:
                        gap = b_first - a_last
                    elif not node.ordered and a_first > b_last:
                        gap = a_first - b_last
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
    rows: list[tuple[int, int, int, str, str]] = []
    for field, first, last, leaf in set(found):
        start, end = index.field(field).chars(first, last)
        rows.append((_FIELD_ORDER[field], start, end, leaf.label, field))
    rows.sort()
    texts = index.texts
    return tuple(
        Evidence(term, texts[field][start:end], field, start, end)
        for _, start, end, term, field in rows
    )


def _score(matches: Sequence[Evidence]) -> float:
    return sum(TITLE_WEIGHT if e.field == "title" else 1.0 for e in matches)


_SPACES = re.compile(r"\s+")
# Up to the last whitespace of a range (for `match(text, pos, endpos)`).
_LAST_SPACE = re.compile(r".*\s", re.DOTALL)


def _snippet(texts: Mapping[str, str], matches: Sequence[Evidence]) -> str:
    """The hit's field around its first match there, with the matches marked «so»."""
    if len(matches) == 1:
        m = matches[0]
        return _window(texts[m.field], ((m.start, m.end),))
    field = _snippet_field(texts, matches)
    return _window(texts[field], _merged(sorted([(m.start, m.end) for m in matches if m.field == field])))


def _snippet_field(texts: Mapping[str, str], matches: Sequence[Evidence]) -> str:
    """The first summary or body match decides the field (matches come in
    field order), else the title, else whatever field matched."""
    in_title = False
    for m in matches:
        field = m.field
        if field == "summary" or field == "body":
            return field
        if field == "title":
            in_title = True
    if in_title:
        return "title"
    if matches:
        return matches[0].field
    # Pure-negative queries have no evidence; show where the article starts.
    return next((f for f in ("summary", "body", "title") if texts[f].strip()), "body")


def _merged(pairs: list[tuple[int, int]]) -> list[list[int]]:
    """Sorted character spans with the overlapping ones joined."""
    merged: list[list[int]] = []
    for s, e in pairs:
        if merged and s < merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1][1] = e
        else:
            merged.append([s, e])
    return merged


def _window(text: str, spans: Sequence[Sequence[int]]) -> str:
    """Up to `SNIPPET_WIDTH` characters of `text` around the first of `spans`
    (sorted, disjoint), with each span inside marked and whitespace collapsed."""
    size = len(text)
    if size <= SNIPPET_WIDTH:
        start, end = 0, size
    else:
        if spans:
            first_start, first_end = spans[0]
        else:
            first_start = first_end = 0
        start = first_start - _SNIPPET_LEAD
        if start < 0:
            start = 0
        end = start + SNIPPET_WIDTH
        if first_end > end:
            end = first_end
        if end >= size:
            end = size
            start = max(0, min(start, end - SNIPPET_WIDTH))
        # Do not cut words in half at either edge (unless that would cut a match).
        if start > 0 and not text[start - 1].isspace():
            space = _SPACES.search(text, start, first_start if spans else size)
            if space:
                start = space.end()
        if end < size and not text[end].isspace():
            # The last whitespace in text[first_end:end]: cut after it.
            last = _LAST_SPACE.match(text, first_end, end)
            if last is not None and last.end() > start:
                end = last.end()
    if len(spans) == 1:
        s, e = spans[0]
        # A match outside the window is not marked.
        out = text[start:end] if s < start or e > end else f"{text[start:s]}«{text[s:e]}»{text[e:end]}"
    else:
        parts: list[str] = []
        pos = start
        for s, e in spans:
            if s < start or e > end:
                continue
            parts += (text[pos:s], "«", text[s:e], "»")
            pos = e
        parts.append(text[pos:end])
        out = "".join(parts)
    out = _collapse(out)
    if start > 0:
        return f"…{out}…" if end < size else "…" + out
    return out + "…" if end < size else out


def _collapse(text: str) -> str:
    """`" ".join(text.split())`: each run of whitespace becomes one space, none at the ends.

    Splitting a window into words and joining them again is most of the cost
    of a snippet; usually the window's only whitespace is single spaces and
    paragraph breaks. Replacing a run of whitespace by a shorter one changes
    nothing the split would see, and a printable string has no whitespace but
    the space (`str.isprintable` rejects every other `str.isspace` character).
    """
    if "\n\n" in text:
        text = text.replace("\n\n", " ")
    if "  " not in text and text.isprintable():
        return text.strip()
    return " ".join(text.split())


def _feed_matches(patterns: tuple[str, ...], feed_id: str | None) -> bool:
    return feed_id is not None and any(fnmatchcase(feed_id, pattern) for pattern in patterns)


def _normal_lang(lang: str) -> str:
    return lang.strip().lower().replace("_", "-")


def _lang_matches(wanted: tuple[str, ...], lang: str | None) -> bool:
    if not wanted or not lang:
        return True
    lang = _normal_lang(lang)
    return any(lang == w or lang.startswith(w + "-") for w in wanted)


@dataclass(frozen=True)
class _Rule:
    spec: RuleSpec
    query: CompiledQuery
    exclude: CompiledQuery | None
    languages: tuple[str, ...]
    tree: _Tree
    exclude_tree: _Tree | None
    # Cheap pre-check of the exclude (`_holds`): it can only match if these hold.
    exclude_checks: _Checks = ()


def _make_hit(index: DocIndex, rule_id: str, found: Iterable[_Found]) -> RuleHit:
    """One hit, built the plain way (`match_naive`); `_make_hits` is the fast twin."""
    matches = _evidence(index, found)
    return RuleHit(rule_id, matches, _snippet(index.texts, matches), _score(matches))


_by_row = itemgetter(0)
_by_position = itemgetter(0, 1)
_new = object.__new__


def _fast_evidence(term: str, text: str, field: str, start: int, end: int) -> Evidence:
    """`Evidence(term, text, field, start, end)`, built the way unpickling builds it.

    A frozen dataclass's `__init__` sets each field through
    `object.__setattr__`; filling the instance dict directly makes the very
    same object (equal, same hash and repr) in a third of the time. The tests
    pin the field lists, so a new field or a `__post_init__` cannot be missed.
    """
    evidence = _new(Evidence)
    d = evidence.__dict__
    d["term"] = term
    d["text"] = text
    d["field"] = field
    d["start"] = start
    d["end"] = end
    return evidence


def _fast_hit(rule_id: str, matches: tuple[Evidence, ...], snippet: str, score: float) -> RuleHit:
    """`RuleHit(rule_id, matches, snippet, score)`; see `_fast_evidence`."""
    hit = _new(RuleHit)
    d = hit.__dict__
    d["rule_id"] = rule_id
    d["matches"] = matches
    d["snippet"] = snippet
    d["score"] = score
    return hit


def _make_hits(index: DocIndex, pending: Sequence[tuple[str, list[_Found]]]) -> list[RuleHit]:
    """The hits of one document, equal to `_make_hit` on each of `pending`.

    Each distinct occurrence becomes one `Evidence`, shared by every hit that
    has it (they are frozen, so sharing is invisible). Occurrences are taken
    in field and token order, so the character offsets of each field are
    found in one sweep (see `_FieldIndex.chars`).
    """
    occurrences: set[_Found] = set()
    for _, found in pending:
        occurrences.update(found)
    texts = index.texts
    fields = index._fields
    # occurrence -> (sort key as in `_evidence`, evidence, score weight)
    made: dict[_Found, tuple[tuple[int, int, int, str, str], Evidence, float]] = {}
    for occurrence in sorted(occurrences, key=_by_position) if len(occurrences) > 1 else occurrences:
        field, first, last, leaf = occurrence
        start, end = (fields.get(field) or index.field(field)).chars(first, last)
        label = leaf.label
        made[occurrence] = (
            (_FIELD_ORDER[field], start, end, label, field),
            _fast_evidence(label, texts[field][start:end], field, start, end),
            TITLE_WEIGHT if field == "title" else 1.0,
        )
    # occurrence -> (matches, snippet, score) of a hit with that evidence alone,
    # which several rules often share.
    alone: dict[_Found, tuple[tuple[Evidence, ...], str, float]] = {}
    hits: list[RuleHit] = []
    for rule_id, found in pending:
        if len(found) == 1:
            shared = alone.get(found[0])
            if shared is None:
                _, evidence, weight = made[found[0]]
                matches: tuple[Evidence, ...] = (evidence,)
                shared = alone[found[0]] = (matches, _snippet(texts, matches), weight)
            hits.append(_fast_hit(rule_id, *shared))
            continue
        rows = sorted(map(made.__getitem__, set(found)), key=_by_row)
        matches = tuple([row[1] for row in rows])
        # Summed in the order `_score` sums them (an empty sum is int 0 there too).
        score = sum([row[2] for row in rows])
        hits.append(_fast_hit(rule_id, matches, _snippet(texts, matches), score))
    return hits


def _top_clauses(node: Node, tree: _Tree) -> list[tuple[Node, _Tree]]:
    if isinstance(node, (And, Or)):
        assert isinstance(tree, (_And, _Or))
        return list(zip(node.items, tree.items, strict=True))
    return [(node, tree)]


# Requirements as tuples of conjunctions, ready for `_holds`.
_Checks = tuple[tuple[Conj, ...], ...]


def _checks(reqs: Iterable[Requirement]) -> _Checks:
    # Smaller conjunctions first: they are the likelier ones to be complete.
    return tuple(tuple(sorted(req, key=lambda c: (len(c), sorted(c)))) for req in reqs)


def _holds(checks: _Checks, keys: set[str]) -> bool:
    """Whether every requirement has a conjunction whose keys all are in `keys`."""
    for req in checks:
        for conj in req:
            if conj <= keys:
                break
        else:
            return False
    return True


# Distinct words remembered with what they trigger (`Matcher._learn`); all
# forgotten when full so a long-running daemon's vocabulary cannot grow them
# without bound.
_WORD_CACHE_SIZE = 1 << 17


class _WordMemory:
    """What each word seen so far does: nothing (`inert`), or it triggers rules
    and/or has prefix keys (`known`). Most words of an article are inert, so
    later articles skip them with one set difference.

    Only ever added to (the matcher swaps in a new one when it is full), so
    concurrent `match` calls from several threads stay consistent.
    """

    __slots__ = ("inert", "known", "pair_keys", "pairs", "paired", "prefixed", "prefixes", "rules")

    def __init__(self) -> None:
        self.inert: set[str] = set()
        self.known: set[str] = set()
        self.rules: dict[str, tuple[int, ...]] = {}
        self.prefixes: dict[str, tuple[str, ...]] = {}
        self.prefixed: set[str] = set()  # the keys of `prefixes`
        # word -> (other key, rule) pairs: each rule if its other key occurs
        # too; and word -> those other keys as a set, for a quick first test.
        self.pairs: dict[str, tuple[tuple[str, int], ...]] = {}
        self.pair_keys: dict[str, frozenset[str]] = {}
        self.paired: set[str] = set()  # the keys of `pairs` and `pair_keys`


class Matcher:
    """Evaluates a fixed rule set against documents."""

    def __init__(self, rules: Sequence[RuleSpec], entities: Mapping[str, EntitySpec]) -> None:
        self.entities = compile_entities(entities)
        compiled, errors = self._compile(rules, self.entities)
        if errors:
            raise errors[0]
        self._rules = compiled
        # The fields any rule can look at: a document's other fields are not even tokenised.
        scoped = set().union(*(_scoped_fields(tree) for rule in compiled
                               for tree in (rule.tree, rule.exclude_tree) if tree is not None))
        self._fields = tuple(f for f in DOC_FIELDS if f in TEXT_FIELDS or f in scoped)
        self.rule_ids: tuple[str, ...] = tuple(rule.id for rule in rules)
        self._by_id: dict[str, int] = {}
        for i, rule in enumerate(compiled):
            self._by_id.setdefault(rule.spec.id, i)
        self._build_index()

    # -- compilation ---------------------------------------------------------

    @staticmethod
    def _compile(
        rules: Sequence[RuleSpec], entities: Mapping[str, CompiledEntity]
    ) -> tuple[list[_Rule], list[RuleError]]:
        compiled: list[_Rule] = []
        errors: list[RuleError] = []
        compiler = _Compiler(entities)
        for spec in rules:
            parts: dict[str, CompiledQuery | None] = {"query": None, "exclude": None}
            failed = False
            for key, text in (("query", spec.query), ("exclude", spec.exclude)):
                if text is None:
                    continue
                try:
                    parts[key] = _compile_query(text, entities, compiler.requirements)
                except QueryError as exc:
                    errors.append(RuleError(spec.id, key, exc.column, exc.message))
                    failed = True
            query = parts["query"]
            if not failed and query is not None:
                languages = tuple(_normal_lang(lang) for lang in spec.languages)
                exclude = parts["exclude"]
                exclude_tree = exclude_checks = None
                if exclude is not None:
                    exclude_tree = compiler.tree(exclude.node)
                    exclude_checks = _checks(exclude.required)
                tree = compiler.tree(query.node)
                compiled.append(
                    _Rule(spec, query, exclude, languages, tree, exclude_tree, exclude_checks or ())
                )
        return compiled, errors

    def _build_index(self) -> None:
        trigger: dict[str, list[int]] = {}
        # Conjunctions of several keys wait for their rarest key and, before
        # the rule becomes a candidate, check the next rarest: key -> [(other
        # key, rule)]. A phrase whose rarest-looking word is common then costs
        # a set lookup, not a candidate. Single trigger keys pair up the same
        # way with the rule's next requirement (see below).
        paired: dict[str, list[tuple[str, int]]] = {}
        always: list[int] = []
        # Per rule position: the requirements still to check once the trigger
        # fired (None for rules that are never candidates).
        rest: list[_Checks | None] = []
        prefixes: set[str] = set()
        for i, rule in enumerate(self._rules):
            reqs = rule.query.required
            for query in (rule.query, rule.exclude):
                if query is not None:
                    # Every prefix leaf, not only those in requirement groups:
                    # the candidate search then also finds the words each
                    # prefix stands for, and evaluation reuses them.
                    prefixes.update(
                        t.word for t in query_terms(query.node) if isinstance(t, Term) and t.prefix
                    )
            if not rule.spec.enabled:
                rest.append(None)
                continue
            if not reqs:
                always.append(i)
                rest.append(())
                continue
            best = reqs[0]  # the most selective
            single: set[str] = set()
            pairs: set[tuple[str, str]] = set()
            for conj in best:
                ranked = sorted(conj, key=lambda k: (_key_cost(k), k))
                if len(ranked) == 1:
                    single.add(ranked[0])
                else:
                    pairs.add((ranked[0], ranked[1]))
            # A trigger of one- and two-key conjunctions proves its requirement.
            proven = all(len(conj) <= 2 for conj in best)
            others = reqs[1:] if proven else reqs
            checks = _checks(others)
            if single and proven and others:
                # The next requirement decides most candidates (`A AND B`
                # with A the trigger is a candidate wherever A occurs, but
                # matches only where B occurs too): each single key of the
                # trigger also waits for the rarest key of some conjunction
                # of that requirement. If those conjunctions are single keys,
                # nothing else is left and no two-key conjunction can make
                # the rule a candidate without them, the rest is proven.
                after = sorted({_rarest(conj) for conj in others[0]})
                if not pairs and len(others) == 1 and all(len(conj) == 1 for conj in others[0]):
                    checks = ()
                pairs.update((key, other) for key in single for other in after)
                single = set()
            for key in sorted(single):
                trigger.setdefault(key, []).append(i)
            for key, other in sorted(pairs):
                paired.setdefault(key, []).append((other, i))
            rest.append(checks)
        self._trigger = {key: tuple(ids) for key, ids in trigger.items()}
        self._paired = {key: tuple(pairs) for key, pairs in paired.items()}
        self._always = tuple(always)
        self._rest = rest
        self._prefix_of = {p: p + "*" for p in prefixes}
        self._prefix_lengths = tuple(sorted({len(p) for p in prefixes}))
        self._memory = _WordMemory()

    @staticmethod
    def check(rules: Sequence[RuleSpec], entities: Mapping[str, EntitySpec]) -> list[RuleError]:
        """Every compile error in `rules`, in rule order (query before exclude)."""
        return Matcher._compile(rules, compile_entities(entities))[1]

    # -- candidates ----------------------------------------------------------

    def _learn(self, memory: _WordMemory, word: str) -> None:
        """Classify a word not seen before: the rules it triggers, its prefix keys."""
        keys: list[str] = []
        prefix_of = self._prefix_of
        for n in self._prefix_lengths:
            if n > len(word):
                break
            key = prefix_of.get(word[:n])
            if key is not None:
                keys.append(key)
        trigger = self._trigger
        rules: list[int] = list(trigger.get(word, ()))
        for key in keys:
            rules.extend(trigger.get(key, ()))
        paired = self._paired
        pairs: list[tuple[str, int]] = list(paired.get(word, ()))
        for key in keys:
            pairs.extend(paired.get(key, ()))
        if not rules and not keys and not pairs:
            memory.inert.add(word)
            return
        # Tables first, `known` last: a concurrent reader that sees the word
        # as known also sees what it triggers.
        if rules:
            memory.rules[word] = tuple(rules)
        if pairs:
            memory.pairs[word] = tuple(pairs)
            memory.pair_keys[word] = frozenset(p[0] for p in pairs)
            memory.paired.add(word)
        if keys:
            memory.prefixes[word] = tuple(keys)
            memory.prefixed.add(word)
        memory.known.add(word)

    def _candidates(self, vocabulary: set[str]) -> tuple[list[int], dict[str, list[str]]]:
        """Rule positions worth evaluating, in rule order, and the prefix keys present.

        The keys map to the document's words that have that prefix.
        """
        memory = self._memory
        rest = vocabulary - memory.inert
        unknown = rest - memory.known
        if unknown:
            if len(memory.inert) + len(memory.known) + len(unknown) > _WORD_CACHE_SIZE:
                # Bounded memory for a long-running daemon: start afresh. A
                # new object, so threads still using the old one are not upset.
                memory = self._memory = _WordMemory()
                rest = set(vocabulary)
                unknown = rest
            for word in unknown:
                self._learn(memory, word)
            rest -= memory.inert
        prefix_words: dict[str, list[str]] = {}
        if memory.prefixed:
            word_prefixes = memory.prefixes
            for word in rest & memory.prefixed:
                for key in word_prefixes[word]:
                    words = prefix_words.get(key)
                    if words is None:
                        prefix_words[key] = [word]
                    else:
                        words.append(word)
        # All in C: the union of the rule tuples of every interesting word.
        candidates = set(self._always).union(*filter(None, map(memory.rules.get, rest)))
        if memory.paired:
            # Keys present: the words, and the prefixes some word has. The
            # caller's vocabulary takes the prefix keys too (no folded word
            # contains "*", so no lookup of a word changes).
            if prefix_words:
                vocabulary.update(prefix_words)
            # Most of the document's paired words have none of their other
            # keys present. A set disjointness test says so comparing stored
            # hashes, without touching the key strings scattered in memory.
            pair_keys = memory.pair_keys
            for word in rest & memory.paired:
                if not pair_keys[word].isdisjoint(vocabulary):
                    candidates.update([rule for other, rule in memory.pairs[word] if other in vocabulary])
        return sorted(candidates), prefix_words

    # -- matching ------------------------------------------------------------

    def match(self, doc: Document, *, verify: Verify | None = None) -> list[RuleHit]:
        """Hits for `doc`, in rule order; disabled rules are skipped.

        `verify(entity_type, field, start, end)` confirms each occurrence of
        an entity declared with `verify="ner"` (offsets into that field's
        text); it is called only for occurrences a candidate rule needs.
        Without it every alias occurrence counts.
        """
        return self.match_index(DocIndex(doc, self.entities, verify))

    def match_index(self, index: DocIndex) -> list[RuleHit]:
        """`match` of the index's document, through an index the caller keeps (its fields'
        tokens serve the caller after matching: ``DocIndex.field``)."""
        vocabulary = index.vocabulary_of(self._fields)
        candidates, prefix_words = self._candidates(vocabulary)
        if not candidates:
            return []
        index.prefix_words = prefix_words
        # Requirement keys present: the words, and the prefixes some word has.
        # The prefix keys ("grain*") go into the vocabulary itself rather than
        # a copy: no folded word contains "*", so no lookup of a word changes,
        # and this index never leaves this call.
        if prefix_words:
            vocabulary.update(prefix_words)
        keys = vocabulary
        evaluator = _Evaluator(index)
        rules = self._rules
        rest = self._rest
        feed_id, lang = index.doc.feed_id, index.doc.lang
        pending: list[tuple[str, list[_Found]]] = []
        for i in candidates:
            checks = rest[i]
            if checks and not _holds(checks, keys):
                continue
            rule = rules[i]
            spec = rule.spec
            if spec.feeds and not _feed_matches(spec.feeds, feed_id):
                continue
            if rule.languages and not _lang_matches(rule.languages, lang):
                continue
            ok, found = evaluator.evaluate(rule.tree, None)
            if not ok:
                continue
            exclude = rule.exclude_tree
            if exclude is not None and _holds(rule.exclude_checks, keys) and evaluator.holds(exclude, None):
                continue
            pending.append((spec.id, found))
        return _make_hits(index, pending) if pending else []

    def match_naive(self, doc: Document, *, verify: Verify | None = None) -> list[RuleHit]:
        """Reference for `match`: every rule evaluated in full, no index, no pre-checks."""
        index = DocIndex(doc, self.entities, verify)
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
            ok, found = evaluator.evaluate(rule.tree, None)
            if not ok:
                continue
            if rule.exclude_tree is not None and evaluator.evaluate(rule.exclude_tree, None)[0]:
                continue
            hits.append(_make_hit(index, spec.id, found))
        return hits

    def explain(self, doc: Document, rule_id: str, *, verify: Verify | None = None) -> Explanation:
        """Whether rule `rule_id` hits `doc`, why, and which top-level clauses hold.

        Raises `KeyError` for an unknown rule id.
        """
        position = self._by_id.get(rule_id)
        if position is None:
            raise KeyError(rule_id)
        rule = self._rules[position]
        spec = rule.spec
        evaluator = _Evaluator(DocIndex(doc, self.entities, verify))
        clauses = tuple(
            (format_query(clause), evaluator.holds(tree, None))
            for clause, tree in _top_clauses(rule.query.node, rule.tree)
        )
        if not spec.enabled:
            reason = "rule is disabled"
        elif spec.feeds and not _feed_matches(spec.feeds, doc.feed_id):
            reason = f"feed '{doc.feed_id or ''}' is not in the rule's feeds"
        elif not _lang_matches(rule.languages, doc.lang):
            reason = f"language '{doc.lang}' is not in [{', '.join(rule.languages)}]"
        elif not evaluator.holds(rule.tree, None):
            reason = "query did not match"
        elif (
            rule.exclude is not None
            and rule.exclude_tree is not None
            and evaluator.holds(rule.exclude_tree, None)
        ):
            reason = f"excluded by: {format_query(rule.exclude.node)}"
        else:
            reason = "matched"
        return Explanation(spec.id, reason == "matched", reason, clauses)
