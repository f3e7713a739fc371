"""Query language: AST, parser and canonical formatter.

The AST is the contract between the parser and any evaluator (the tree
walker in `engine.py` today, possibly a multi-rule automaton later), so it
holds only folded, normalised values: two queries that mean the same thing
spelled differently (`Erdoğan` / `erdogan`, `-a` / `NOT a`, `NEAR` /
`NEAR/5`) parse to equal trees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .text import tokenize

__all__ = [
    "DEFAULT_NEAR",
    "FIELDS",
    "And",
    "AtLeast",
    "EntityRef",
    "Field",
    "Near",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "QueryError",
    "Term",
    "entity_refs",
    "format_query",
    "parse_query",
    "query_terms",
]

FIELDS: tuple[str, ...] = ("title", "summary", "body", "text", "author", "source", "url", "lang")
DEFAULT_NEAR = 5
# Deep nesting is never meaningful in a rule, and refusing it keeps the
# recursive-descent parser (and every tree walker after it) far from
# Python's recursion limit.
MAX_DEPTH = 64
# int() refuses strings over 4300 digits; no sane count or distance needs more than this.
_MAX_NUMBER_DIGITS = 6


class QueryError(ValueError):
    """A query that cannot be parsed or compiled; `column` is 1-based."""

    def __init__(self, column: int, message: str) -> None:
        super().__init__(f"column {column}: {message}")
        self.column = column
        self.message = message

    def __reduce__(self) -> tuple[type[QueryError], tuple[int, str]]:
        return (QueryError, (self.column, self.message))


@dataclass(frozen=True)
class Term:
    """One folded word; with `prefix`, any token starting with it."""

    word: str
    prefix: bool = False


@dataclass(frozen=True)
class Phrase:
    """Two or more folded words that must be consecutive tokens."""

    words: tuple[str, ...]


@dataclass(frozen=True)
class EntityRef:
    name: str


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class Near:
    left: Node
    right: Node
    distance: int = DEFAULT_NEAR
    ordered: bool = False


@dataclass(frozen=True)
class AtLeast:
    count: int
    item: Node


@dataclass(frozen=True)
class Field:
    field: str
    item: Node


Node = Term | Phrase | EntityRef | And | Or | Not | Near | AtLeast | Field
Leaf = Term | Phrase | EntityRef


# --------------------------------------------------------------------------
# lexer


@dataclass(frozen=True)
class _Tok:
    kind: str  # word | entity | field | lp | rp | and | or | not | near | atleast | eof
    col: int
    raw: str
    node: Node | None = None  # word/phrase: the leaf; entity: EntityRef
    name: str = ""  # field name
    number: int = 0  # near distance / atleast count
    ordered: bool = False


_QUOTES = '"“”'
_WORD_STOP = set("()" + _QUOTES)
_FIELD_RE = re.compile(r"([A-Za-z]+):")
_NEAR_RE = re.compile(r"(O?NEAR)(?:/(.*))?", re.DOTALL)
_ATLEAST_RE = re.compile(r"ATLEAST([0-9]*)")
_ENTITY_RE = re.compile(r"@([\w.\-]*)")


def _number(digits: str, col: int, what: str) -> int:
    if not digits.isascii() or not digits.isdigit():
        raise QueryError(col, f"expected a number after {what}")
    if len(digits) > _MAX_NUMBER_DIGITS:
        raise QueryError(col, f"number after {what} is too large")
    return int(digits)


def _word_leaf(raw: str, col: int) -> Node:
    if "*" in raw:
        body = raw.rstrip("*")
        if "*" in body or len(raw) - len(body) > 1:
            bad = raw.index("*") if "*" in body else len(body) + 1
            raise QueryError(col + bad, "'*' is only allowed once, at the end of a word")
        tokens = tokenize(body)
        if len(tokens) != 1:
            raise QueryError(col, f"'*' needs a single word before it, got {raw!r}")
        return Term(tokens[0].folded, prefix=True)
    tokens = tokenize(raw)
    if not tokens:
        raise QueryError(col, f"{raw!r} has no letters or digits to search for")
    if len(tokens) == 1:
        return Term(tokens[0].folded)
    # Hyphens and apostrophes split tokens in text, so `Nagorno-Karabakh`
    # typed bare means the phrase.
    return Phrase(tuple(t.folded for t in tokens))


def _lex(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        col = i + 1
        if c == "(":
            toks.append(_Tok("lp", col, c))
            i += 1
        elif c == ")":
            toks.append(_Tok("rp", col, c))
            i += 1
        elif c in _QUOTES:
            j = i + 1
            while j < n and text[j] not in _QUOTES:
                j += 1
            if j >= n:
                raise QueryError(n + 1, f"expected '\"' to close the phrase opened at column {col}")
            tokens = tokenize(text[i + 1 : j])
            if not tokens:
                raise QueryError(col, "empty phrase: expected words between the quotes")
            words = tuple(t.folded for t in tokens)
            leaf: Node = Term(words[0]) if len(words) == 1 else Phrase(words)
            toks.append(_Tok("word", col, text[i : j + 1], node=leaf))
            i = j + 1
        elif c == "@":
            m = _ENTITY_RE.match(text, i)
            assert m is not None  # the pattern accepts an empty name
            name = m.group(1)
            if not name:
                raise QueryError(col, "expected an entity name after '@'")
            j = m.end()
            if j < n and not text[j].isspace() and text[j] not in _WORD_STOP:
                raise QueryError(j + 1, f"unexpected {text[j]!r} in entity name '@{name}'")
            toks.append(_Tok("entity", col, m.group(), node=EntityRef(name)))
            i = j
        elif (
            c == "-"
            and (i == 0 or text[i - 1].isspace() or text[i - 1] in "(:")
            and i + 1 < n
            and not text[i + 1].isspace()
            and text[i + 1] != ")"
        ):
            toks.append(_Tok("not", col, "-"))
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in _WORD_STOP:
                j += 1
            raw = text[i:j]
            fm = _FIELD_RE.match(raw)
            if fm:
                name = fm.group(1).lower()
                if name not in FIELDS:
                    known = ", ".join(FIELDS)
                    raise QueryError(col, f"unknown field {fm.group(1)!r} (fields: {known})")
                toks.append(_Tok("field", col, fm.group(), name=name))
                i += fm.end()
                continue
            i = j
            if raw in ("AND", "OR", "NOT"):
                toks.append(_Tok(raw.lower(), col, raw))
                continue
            nm = _NEAR_RE.fullmatch(raw)
            if nm:
                op = nm.group(1)
                distance = DEFAULT_NEAR
                if nm.group(2) is not None:
                    distance = _number(nm.group(2), col + len(op) + 1, f"'{op}/'")
                    if distance < 1:
                        raise QueryError(col + len(op) + 1, f"{op} distance must be at least 1")
                toks.append(_Tok("near", col, raw, number=distance, ordered=op == "ONEAR"))
                continue
            am = _ATLEAST_RE.fullmatch(raw)
            if am:
                k = j
                while k < n and text[k].isspace():
                    k += 1
                opens = k < n and text[k] == "("
                if am.group(1):
                    count = _number(am.group(1), col + 7, "ATLEAST")
                    if count < 1:
                        raise QueryError(col + 7, "ATLEAST needs a count of at least 1")
                    toks.append(_Tok("atleast", col, raw, number=count))
                    continue
                if opens:
                    raise QueryError(col + 7, "expected a count after ATLEAST, e.g. ATLEAST3(...)")
            toks.append(_Tok("word", col, raw, node=_word_leaf(raw, col)))
    toks.append(_Tok("eof", n + 1, "end of query"))
    return toks


# --------------------------------------------------------------------------
# parser

_STARTS = frozenset({"word", "entity", "lp", "not", "field", "atleast"})


def _flatten(kind: type[And] | type[Or], items: list[Node]) -> Node:
    flat: list[Node] = []
    for item in items:
        if isinstance(item, kind):
            flat.extend(item.items)
        else:
            flat.append(item)
    return flat[0] if len(flat) == 1 else kind(tuple(flat))


def _positional(node: Node) -> bool:
    """Whether `node` yields token positions (usable under NEAR / ATLEAST)."""
    if isinstance(node, (Term, Phrase, EntityRef)):
        return True
    if isinstance(node, Or):
        return all(_positional(item) for item in node.items)
    if isinstance(node, Field):
        return _positional(node.item)
    return False


def _describe(tok: _Tok) -> str:
    # Operator keywords read best bare ("after AND"); punctuation and field
    # prefixes are quoted so they stand out in the message.
    if tok.kind in ("and", "or", "not", "near", "atleast", "eof") and tok.raw != "-":
        return tok.raw
    return f"'{tok.raw}'"


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _lex(text)
        self.pos = 0
        self.depth = 0
        self.entity_columns: dict[str, int] = {}

    def peek(self) -> _Tok:
        return self.toks[self.pos]

    def take(self) -> _Tok:
        tok = self.toks[self.pos]
        if tok.kind != "eof":
            self.pos += 1
        return tok

    def enter(self, tok: _Tok) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QueryError(tok.col, f"query is nested too deeply (more than {MAX_DEPTH} levels)")

    def parse(self) -> Node:
        node = self.or_expr(None)
        tok = self.peek()
        if tok.kind == "rp":
            raise QueryError(tok.col, "unexpected ')' without a matching '('")
        if tok.kind != "eof":
            raise QueryError(
                tok.col, f"unexpected {_describe(tok)}: expected AND, OR or end of query"
            )
        return node

    def or_expr(self, after: _Tok | None) -> Node:
        items = [self.and_expr(after)]
        while self.peek().kind == "or":
            op = self.take()
            items.append(self.and_expr(op))
        return _flatten(Or, items)

    def and_expr(self, after: _Tok | None) -> Node:
        items = [self.not_expr(after)]
        while True:
            tok = self.peek()
            if tok.kind == "and":
                self.take()
                items.append(self.not_expr(tok))
            elif tok.kind in _STARTS:
                items.append(self.not_expr(None))
            else:
                return _flatten(And, items)

    def not_expr(self, after: _Tok | None) -> Node:
        tok = self.peek()
        if tok.kind == "not":
            self.take()
            self.enter(tok)
            item = self.not_expr(tok)
            self.depth -= 1
            return Not(item)
        return self.near_expr(after)

    def near_expr(self, after: _Tok | None) -> Node:
        first = self.peek()
        left = self.unary(after)
        if self.peek().kind != "near":
            return left
        op = self.take()
        opname = f"{'ONEAR' if op.ordered else 'NEAR'}/{op.number}"
        operands = f"{opname} operands must be words, phrases, @entities or OR-groups of those"
        if not _positional(left):
            raise QueryError(first.col, operands)
        second = self.peek()
        right = self.unary(op)
        if not _positional(right):
            raise QueryError(second.col, operands)
        nxt = self.peek()
        if nxt.kind == "near":
            raise QueryError(
                nxt.col, f"{nxt.raw} cannot follow {opname}; combine proximity conditions with AND"
            )
        return Near(left, right, op.number, op.ordered)

    def unary(self, after: _Tok | None) -> Node:
        tok = self.peek()
        if tok.kind == "field":
            self.take()
            self.enter(tok)
            item = self.unary(tok)
            self.depth -= 1
            return Field(tok.name, item)
        if tok.kind == "atleast":
            self.take()
            lp = self.peek()
            if lp.kind != "lp":
                raise QueryError(lp.col, f"expected '(' after {tok.raw}")
            self.take()
            self.enter(lp)
            inner = self.peek()
            item = self.or_expr(lp)
            self.close(lp)
            self.depth -= 1
            if not _positional(item):
                what = "words, phrases, @entities or OR-groups of those"
                raise QueryError(inner.col, f"{tok.raw} applies to {what}")
            return AtLeast(tok.number, item)
        return self.primary(after)

    def close(self, lp: _Tok) -> None:
        tok = self.peek()
        if tok.kind != "rp":
            raise QueryError(tok.col, f"expected ')' to close '(' opened at column {lp.col}")
        self.take()

    def primary(self, after: _Tok | None) -> Node:
        tok = self.peek()
        if tok.kind == "word":
            self.take()
            assert tok.node is not None
            return tok.node
        if tok.kind == "entity":
            self.take()
            assert isinstance(tok.node, EntityRef)
            self.entity_columns.setdefault(tok.node.name, tok.col)
            return tok.node
        if tok.kind == "lp":
            self.take()
            self.enter(tok)
            node = self.or_expr(tok)
            self.close(tok)
            self.depth -= 1
            return node
        if after is not None:
            raise QueryError(after.col, f"expected a term after {_describe(after)}")
        if tok.kind == "eof":
            raise QueryError(tok.col, "expected a term")
        raise QueryError(tok.col, f"expected a term before {_describe(tok)}")


def parse_query_with_columns(text: str) -> tuple[Node, dict[str, int]]:
    """Parse `text`; also return the column of the first use of each @entity."""
    parser = _Parser(text)
    node = parser.parse()
    return node, parser.entity_columns


def parse_query(text: str) -> Node:
    """Parse a query; raises only `QueryError`."""
    return parse_query_with_columns(text)[0]


# --------------------------------------------------------------------------
# formatting and inspection

_LEVEL_OR, _LEVEL_AND, _LEVEL_NOT, _LEVEL_NEAR, _LEVEL_ATOM = 1, 2, 3, 4, 5


def _level(node: Node) -> int:
    if isinstance(node, Or):
        return _LEVEL_OR
    if isinstance(node, And):
        return _LEVEL_AND
    if isinstance(node, Not):
        return _LEVEL_NOT
    if isinstance(node, Near):
        return _LEVEL_NEAR
    return _LEVEL_ATOM


def _fmt(node: Node, min_level: int) -> str:
    text = _fmt_bare(node)
    return f"({text})" if _level(node) < min_level else text


def _fmt_bare(node: Node) -> str:
    if isinstance(node, Term):
        return node.word + ("*" if node.prefix else "")
    if isinstance(node, Phrase):
        return '"' + " ".join(node.words) + '"'
    if isinstance(node, EntityRef):
        return "@" + node.name
    if isinstance(node, Or):
        return " OR ".join(_fmt(item, _LEVEL_AND) for item in node.items)
    if isinstance(node, And):
        return " AND ".join(_fmt(item, _LEVEL_NOT) for item in node.items)
    if isinstance(node, Not):
        return "NOT " + _fmt(node.item, _LEVEL_NOT)
    if isinstance(node, Near):
        op = "ONEAR" if node.ordered else "NEAR"
        left, right = _fmt(node.left, _LEVEL_ATOM), _fmt(node.right, _LEVEL_ATOM)
        return f"{left} {op}/{node.distance} {right}"
    if isinstance(node, AtLeast):
        return f"ATLEAST{node.count}({_fmt(node.item, _LEVEL_OR)})"
    if isinstance(node, Field):
        return f"{node.field}:{_fmt(node.item, _LEVEL_ATOM)}"
    raise TypeError(f"not a query node: {node!r}")


def format_query(node: Node) -> str:
    """Canonical text of `node`: `parse_query(format_query(n)) == n` for parsed trees."""
    return _fmt(node, _LEVEL_OR)


def term_label(leaf: Leaf) -> str:
    """How a leaf is named in evidence: `erdogan`, `grain*`, `"grain corridor"`, `@karabakh`."""
    return _fmt_bare(leaf)


def query_terms(node: Node, *, positive_only: bool = False) -> tuple[Leaf, ...]:
    """Leaves of `node` in query order, without duplicates.

    With `positive_only`, leaves under an odd number of NOTs are left out:
    those are the ones that can appear in evidence.
    """
    seen: dict[Leaf, None] = {}

    def walk(n: Node, negated: bool) -> None:
        if isinstance(n, (Term, Phrase, EntityRef)):
            if not (positive_only and negated):
                seen.setdefault(n, None)
        elif isinstance(n, (And, Or)):
            for item in n.items:
                walk(item, negated)
        elif isinstance(n, Not):
            walk(n.item, not negated)
        elif isinstance(n, Near):
            walk(n.left, negated)
            walk(n.right, negated)
        else:
            walk(n.item, negated)

    walk(node, False)
    return tuple(seen)


def entity_refs(node: Node) -> set[str]:
    """Names used with `@` anywhere in `node`."""
    return {leaf.name for leaf in query_terms(node) if isinstance(leaf, EntityRef)}
