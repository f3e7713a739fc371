"""Entities: named alias lists that queries refer to as `@id`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .text import tokenize

__all__ = ["CompiledEntity", "EntitySpec", "compile_entities", "entity_spans"]

Words = tuple[str, ...]


VERIFY_MODES: tuple[str, ...] = ("ner",)


@dataclass(frozen=True)
class EntitySpec:
    id: str
    aliases: tuple[str, ...]
    not_names: tuple[str, ...] = ()
    type: str | None = None
    # "ner": each occurrence must also be confirmed by the caller's `verify`
    # callback (a NER model outside this package); None: aliases suffice.
    verify: str | None = None

    def __post_init__(self) -> None:
        if self.verify is not None and self.verify not in VERIFY_MODES:
            raise ValueError(f"entity {self.id!r}: verify must be 'ner' or None, got {self.verify!r}")


@dataclass(frozen=True)
class CompiledEntity:
    id: str
    aliases: tuple[Words, ...]
    # Longer phrases that, where they occur, swallow an alias occurrence they
    # contain: the entity's own `not` names plus longer aliases of other
    # entities ("Heydar Aliyev" hides the "Aliyev" inside it).
    blockers: tuple[Words, ...]
    type: str | None = None
    # Occurrences must be confirmed by the `verify` callback given to `Matcher.match`.
    verify: bool = False

    @property
    def first_words(self) -> frozenset[str]:
        return frozenset(alias[0] for alias in self.aliases)


def _words(name: str) -> Words:
    return tuple(t.folded for t in tokenize(name))


def _contains(longer: Words, shorter: Words) -> bool:
    n = len(shorter)
    return any(longer[i : i + n] == shorter for i in range(len(longer) - n + 1))


def compile_entities(entities: Mapping[str, EntitySpec]) -> dict[str, CompiledEntity]:
    """Fold every alias; keyed by the mapping key, which is the name used after `@`."""
    aliases: dict[str, tuple[Words, ...]] = {}
    for key, spec in entities.items():
        # An alias made only of punctuation can never match; dropping it is
        # kinder than failing the whole configuration.
        folded = (w for w in map(_words, spec.aliases) if w)
        aliases[key] = tuple(dict.fromkeys(folded))

    # Index every alias by each of its words so finding the longer aliases of
    # other entities that contain one of ours stays cheap with many entities.
    by_word: dict[str, set[tuple[str, Words]]] = {}
    for key, words_list in aliases.items():
        for words in words_list:
            for w in words:
                by_word.setdefault(w, set()).add((key, words))

    compiled: dict[str, CompiledEntity] = {}
    for key, spec in entities.items():
        own = aliases[key]
        blockers: dict[Words, None] = {}
        for name in spec.not_names:
            words = _words(name)
            if words and any(_contains(words, alias) for alias in own):
                blockers[words] = None
        for alias in own:
            for other_key, other in by_word.get(alias[0], ()):
                if other_key != key and len(other) > len(alias) and _contains(other, alias):
                    blockers[other] = None
        compiled[key] = CompiledEntity(
            key, own, tuple(sorted(blockers)), spec.type, spec.verify == "ner"
        )
    return compiled


def entity_spans(
    entity: CompiledEntity, find: Callable[[Words], Sequence[int]]
) -> list[tuple[int, int]]:
    """Token spans (first, last) of the entity's mentions in one field.

    `find(words)` returns the start positions of a phrase in that field.
    Occurrences inside a blocker are dropped; where aliases overlap the
    longest wins, so each mention is reported once.
    """
    blocked = [(p, p + len(b) - 1) for b in entity.blockers for p in find(b)]
    candidates: list[tuple[int, int]] = []
    for alias in entity.aliases:
        last_offset = len(alias) - 1
        for p in find(alias):
            q = p + last_offset
            if not any(bs <= p and q <= be for bs, be in blocked):
                candidates.append((p, q))
    if len(candidates) < 2:
        return candidates
    candidates.sort(key=lambda span: (span[0] - span[1], span[0]))
    covered: set[int] = set()
    taken: list[tuple[int, int]] = []
    for first, last in candidates:
        positions = range(first, last + 1)
        if covered.isdisjoint(positions):
            covered.update(positions)
            taken.append((first, last))
    taken.sort()
    return taken
