"""Pure matching core: query language, entities and rule evaluation.

No I/O, clock or logging here; callers hand in rules, entities and
documents and get back hits with their evidence.
"""

from .engine import (
    CompiledQuery,
    Document,
    Evidence,
    Explanation,
    Matcher,
    RuleError,
    RuleHit,
    RuleSpec,
    compile_query,
)
from .entities import EntitySpec
from .query import (
    FIELDS,
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
from .text import Token, fold, tokenize

__all__ = [
    "FIELDS",
    "And",
    "AtLeast",
    "CompiledQuery",
    "Document",
    "EntityRef",
    "EntitySpec",
    "Evidence",
    "Explanation",
    "Field",
    "Matcher",
    "Near",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "QueryError",
    "RuleError",
    "RuleHit",
    "RuleSpec",
    "Term",
    "Token",
    "compile_query",
    "entity_refs",
    "fold",
    "format_query",
    "parse_query",
    "query_terms",
    "tokenize",
]
