"""Matching benchmark (SPEC §9): the one-pass matcher against one regex per rule.

    .venv/bin/python bench/match.py [--articles N] [--seed S] [--quick]

Everything is synthetic and generated here: a Zipf-distributed vocabulary of
invented common words, invented people, places, organisations and topic
words (some spelled with Turkish / Azerbaijani / accented letters), ~500-word
articles that mostly use the common words and now and then mention the rule
vocabulary, and rule sets of 10, 100, 1,000 and 10,000 rules in the styles
users write (names, @entities with several aliases, phrases, AND, OR, NEAR,
prefix*, NOT, exclude). Each smaller rule set is a prefix of the largest.

The baseline compiles, for every rule, one case-insensitive regex with word
boundaries: the alternation of the rule's positive terms (entity aliases,
phrases with any separators between words, prefixes with any ending). It is
only an approximation of the rule, and it is slow, so it runs on as many
articles as fit in a time budget.

Everything runs in this process, pinned to one core where the OS allows.
The last line printed is machine-readable:

    articles_per_s_10k=<n> ratio_10k_vs_10=<x> speedup_vs_regex_10k=<y>
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.match import Document, EntitySpec, Matcher, RuleSpec, fold  # noqa: E402

RULE_COUNTS = (10, 100, 1_000, 10_000)

# --------------------------------------------------------------------------
# vocabulary

_ONSETS = [
    "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r",
    "s", "t", "v", "y", "z", "b", "d", "k", "m", "n", "r", "s",
    "t", "sh", "ch", "tr", "kr", "pl", "st", "br", "dr", "gl",
]
_VOWELS = ["a", "e", "i", "o", "u", "a", "e", "i", "o", "u", "a", "e", "o"]
_CODAS = ["", "", "", "", "n", "r", "l", "s", "m", "k", "t", "z", "nd", "rt"]
# Letters that fold to ASCII (or stay as they are) in the matcher.
_LOCAL_VOWELS = ["ı", "ö", "ü", "ə", "é", "á", "ä"]
_LOCAL_CONSONANTS = ["ş", "ç", "ğ", "ž", "ñ"]
_NAME_ENDINGS = ["ov", "ova", "yev", "oğlu", "ski", "ić", "ian", "son", "er", "an", "ay", "zadə", "eli", "ez"]
_PLACE_ENDINGS = ["abad", "grad", "stan", "ova", "ia", "burg", "kənd", "hisar", "port", "ville", "ada", ""]
_TITLES = ["Minister", "President", "Governor", "Mayor", "Senator", "General", "Chair"]


def _syllable(rng: random.Random, local: float) -> str:
    onset = rng.choice(_ONSETS)
    vowel = rng.choice(_LOCAL_VOWELS) if rng.random() < local else rng.choice(_VOWELS)
    coda = rng.choice(_CODAS)
    if coda and rng.random() < local:
        coda = rng.choice(_LOCAL_CONSONANTS)
    return onset + vowel + coda


def _word(rng: random.Random, syllables: tuple[int, int], local: float) -> str:
    return "".join(_syllable(rng, local) for _ in range(rng.randint(*syllables)))


@dataclass
class Entity:
    spec: EntitySpec
    # How the entity is written in articles, most usual first.
    mentions: tuple[str, ...]
    # Longer names that are someone else (`not_names`), mentioned as decoys.
    decoys: tuple[str, ...] = ()


@dataclass
class Vocabulary:
    common: list[str]
    common_weights: list[float]
    first_names: list[str]
    people: list[Entity]
    places: list[Entity]
    orgs: list[Entity]
    topics: list[str]
    phrases: list[str]
    # (text to insert, popularity) for everything rules may look for.
    mentionable: list[str] = field(default_factory=list)
    mention_weights: list[float] = field(default_factory=list)

    @property
    def entities(self) -> dict[str, EntitySpec]:
        return {e.spec.id: e.spec for e in self.people + self.places + self.orgs}


class _Unique:
    """Hands out generated words whose folded forms never repeat."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def take(self, make: Callable[[], str]) -> str:
        while True:
            word = make()
            key = fold(word)
            if len(key) >= 2 and key not in self.seen:
                self.seen.add(key)
                return word


def _zipf(n: int, s: float) -> list[float]:
    return [1.0 / (rank**s) for rank in range(1, n + 1)]


def make_vocabulary(rng: random.Random, *, size: float = 1.0) -> Vocabulary:
    unique = _Unique()
    n_common = int(6000 * size) or 50
    # Frequent words are short, like in every language.
    common = [
        unique.take(lambda i=i: _word(rng, (1, 1) if i < 60 else (1, 2) if i < 800 else (2, 4), 0.05))
        for i in range(n_common)
    ]
    first_names = [
        unique.take(lambda: _word(rng, (2, 3), 0.2).capitalize()) for _ in range(int(900 * size) or 20)
    ]

    people: list[Entity] = []
    for i in range(int(4000 * size) or 40):
        first = rng.choice(first_names)
        last = unique.take(lambda: (_word(rng, (1, 2), 0.3) + rng.choice(_NAME_ENDINGS)).capitalize())
        full = f"{first} {last}"
        aliases = [full, last]
        mentions = [last, full]
        if rng.random() < 0.4:
            titled = f"{rng.choice(_TITLES)} {last}"
            aliases.append(titled)
            mentions.append(titled)
        if "a" in last and rng.random() < 0.3:
            # The Azerbaijani spelling, folded to the same key by the matcher.
            local = last.replace("a", "ə", 1)
            aliases.append(f"{first} {local}")
            mentions.append(local)
        decoys: tuple[str, ...] = ()
        not_names: tuple[str, ...] = ()
        if rng.random() < 0.2:
            relative = f"{rng.choice(first_names)} {last}"
            if fold(relative) != fold(full):
                not_names = (relative,)
                decoys = (relative,)
        spec = EntitySpec(f"p{i}", tuple(aliases), not_names, "PERSON")
        people.append(Entity(spec, tuple(mentions), decoys))

    places: list[Entity] = []
    for i in range(int(1500 * size) or 15):
        name = unique.take(lambda: (_word(rng, (1, 2), 0.25) + rng.choice(_PLACE_ENDINGS)).capitalize())
        aliases = [name]
        ascii_name = fold(name).capitalize()
        if ascii_name != name:
            aliases.append(ascii_name)
        if rng.random() < 0.25:
            aliases.append(f"Nova-{name}")
        if rng.random() < 0.2:
            other = unique.take(lambda: _word(rng, (2, 3), 0.1).capitalize())
            aliases.append(other)
        spec = EntitySpec(f"g{i}", tuple(aliases), (), "GPE")
        places.append(Entity(spec, tuple(aliases)))

    orgs: list[Entity] = []
    for i in range(int(800 * size) or 8):
        words = [unique.take(lambda: _word(rng, (2, 3), 0.1).capitalize()) for _ in range(rng.randint(2, 3))]
        name = " ".join(words)
        acronym = "".join(w[0] for w in words).upper() + rng.choice("KXQZ")
        aliases = (name, acronym) if fold(acronym) not in unique.seen else (name,)
        unique.seen.add(fold(acronym))
        spec = EntitySpec(f"o{i}", aliases, (), "ORG")
        orgs.append(Entity(spec, aliases))

    topics = [unique.take(lambda: _word(rng, (2, 4), 0.15)) for _ in range(int(2500 * size) or 25)]
    phrase_ends = common[100:2000] or common
    phrases = [f"{rng.choice(topics)} {rng.choice(phrase_ends)}" for _ in range(int(800 * size) or 8)]

    vocab = Vocabulary(common, _zipf(len(common), 1.05), first_names, people, places, orgs, topics, phrases)
    items: list[str] = []
    for entity in people + places + orgs:
        items.extend(entity.mentions[:2])
        items.extend(entity.decoys)
    items.extend(topics)
    # Topic words also turn up inflected, which is what prefix rules are for.
    items.extend(t + rng.choice(["lar", "ler", "ın", "s", "ed", "ing"]) for t in topics[: len(topics) // 2])
    items.extend(phrases)
    rng.shuffle(items)
    vocab.mentionable = items
    vocab.mention_weights = _zipf(len(items), 0.9)
    return vocab


# --------------------------------------------------------------------------
# articles


def _sentences(rng: random.Random, vocab: Vocabulary, words: int) -> list[list[str]]:
    drawn = rng.choices(vocab.common, cum_weights=_cumulative(vocab.common_weights), k=words)
    out: list[list[str]] = []
    i = 0
    while i < len(drawn):
        n = rng.randint(6, 18)
        out.append(drawn[i : i + n])
        i += n
    return out


_CUMULATIVE: dict[int, list[float]] = {}


def _cumulative(weights: list[float]) -> list[float]:
    key = id(weights)
    cached = _CUMULATIVE.get(key)
    if cached is None:
        total = 0.0
        cached = []
        for w in weights:
            total += w
            cached.append(total)
        _CUMULATIVE[key] = cached
    return cached


def _render(sentences: list[list[str]], rng: random.Random) -> str:
    parts: list[str] = []
    for words in sentences:
        if not words:
            continue
        words = list(words)
        words[0] = words[0][:1].upper() + words[0][1:]
        if len(words) > 8 and rng.random() < 0.5:
            k = rng.randint(3, len(words) - 3)
            words[k] = words[k] + ","
        end = "." if rng.random() < 0.9 else rng.choice(["?", "!", ":"])
        parts.append(" ".join(words) + end)
    paragraphs: list[str] = []
    i = 0
    while i < len(parts):
        n = rng.randint(2, 5)
        paragraphs.append(" ".join(parts[i : i + n]))
        i += n
    return "\n\n".join(paragraphs)


def make_articles(vocab: Vocabulary, n: int, rng: random.Random, *, words: int = 500) -> list[Document]:
    cum_mentions = _cumulative(vocab.mention_weights)
    docs: list[Document] = []
    for _ in range(n):
        title = _sentences(rng, vocab, rng.randint(6, 10))[:1]
        summary = _sentences(rng, vocab, 30)
        body = _sentences(rng, vocab, max(10, words - 40))
        mentions = rng.choices(vocab.mentionable, cum_weights=cum_mentions, k=rng.randint(1, 8))
        for mention in mentions:
            where = rng.random()
            target = title if where < 0.15 else summary if where < 0.3 else body
            sentence = rng.choice(target)
            sentence.insert(rng.randint(0, len(sentence)), mention)
        # A possessive or a Turkish case ending now and then: "Name's", "Name'da".
        body_text = _render(body, rng)
        docs.append(
            Document(
                title=_render(title, rng),
                summary=_render(summary, rng),
                body=body_text,
                source=rng.choice(["wire-one", "daily-two", "radio-three"]),
                lang=rng.choice(["en", "en", "tr", "az", "ru", None]),
                feed_id=rng.choice(["wire-one", "daily-two", "daily-three", "radio-four"]),
            )
        )
    return docs


# --------------------------------------------------------------------------
# rules


@dataclass(frozen=True)
class BenchRule:
    spec: RuleSpec
    # Positive terms as the user spelled them, for the regex baseline; a
    # trailing "*" marks a prefix.
    terms: tuple[str, ...]


def _quote(text: str) -> str:
    return f'"{text}"' if " " in text or "-" in text else text


def make_rules(vocab: Vocabulary, n: int, rng: random.Random) -> list[BenchRule]:
    rules: list[BenchRule] = []
    mid_common = vocab.common[300:3000] or vocab.common
    named = vocab.people + vocab.places + vocab.orgs
    # Starts of everyday words: a prefix rule's author picks a stem that is not one, or the
    # rule fires on ordinary text (an early version of this generator had `manı*` hitting
    # 59% of all articles through common words; nobody keeps such a rule).
    common_starts = {fold(w)[:n] for w in vocab.common for n in range(1, len(w) + 1)}

    def person() -> Entity:
        return rng.choice(vocab.people)

    def name_term() -> tuple[str, tuple[str, ...]]:
        """A bare name, a quoted full name or an @entity, with its regex terms."""
        r = rng.random()
        entity = rng.choice(named)
        if r < 0.45:
            return f"@{entity.spec.id}", entity.spec.aliases
        if r < 0.75 and entity.spec.type == "PERSON":
            last = entity.mentions[0]
            return last, (last,)
        text = entity.spec.aliases[0]
        return _quote(text), (text,)

    def topic_term() -> tuple[str, tuple[str, ...]]:
        r = rng.random()
        if r < 0.5:
            t = rng.choice(vocab.topics)
            return t, (t,)
        if r < 0.75:
            p = rng.choice(vocab.phrases)
            return f'"{p}"', (p,)
        t = rng.choice(vocab.topics)
        cut = max(4, len(t) - 2)
        while cut < len(t) and fold(t[:cut]) in common_starts:
            cut += 1
        stem = t[:cut]
        return f"{stem}*", (stem + "*",)

    for i in range(n):
        style = rng.random()
        terms: tuple[str, ...]
        exclude = None
        feeds: tuple[str, ...] = ()
        languages: tuple[str, ...] = ()
        if style < 0.25:
            query, terms = name_term()
        elif style < 0.33:
            query, terms = topic_term()
        elif style < 0.50:
            (a, ta), (b, tb) = name_term(), (topic_term() if rng.random() < 0.6 else name_term())
            if rng.random() < 0.3:
                w = rng.choice(mid_common)
                b, tb = w, (w,)
            query, terms = f"{a} AND {b}", ta + tb
        elif style < 0.62:
            parts = [name_term() if rng.random() < 0.6 else topic_term() for _ in range(rng.randint(2, 4))]
            query, terms = " OR ".join(p for p, _ in parts), tuple(t for _, ts in parts for t in ts)
        elif style < 0.72:
            (a, ta), (b, tb) = name_term(), topic_term()
            query, terms = f"{a} NEAR/10 {b}", ta + tb
        elif style < 0.80:
            (a, ta), (b, _) = name_term(), topic_term()
            query = f"{a} AND NOT {b}" if rng.random() < 0.5 else f"{a} -{b}"
            terms = ta
        elif style < 0.88:
            p = person()
            (b, tb) = topic_term()
            query, terms = f"(@{p.spec.id} OR {b}) AND {rng.choice(mid_common)}", p.spec.aliases + tb
        elif style < 0.93:
            a, ta = name_term()
            query, terms = f"title:{a}" if not a.startswith('"') else f"title:({a})", ta
        else:
            a, ta = topic_term()
            query, terms = f"ATLEAST2({a})", ta
        if rng.random() < 0.1:
            e, _ = topic_term()
            exclude = e if rng.random() < 0.6 else f"{e} OR {rng.choice(vocab.topics)}"
        if rng.random() < 0.05:
            feeds = (rng.choice(["wire-*", "daily-*", "radio-four"]),)
        if rng.random() < 0.05:
            languages = (rng.choice(["en", "tr", "az"]),)
        spec = RuleSpec(f"rule-{i}", query, exclude, feeds, languages)
        rules.append(BenchRule(spec, terms))
    return rules


# --------------------------------------------------------------------------
# the baseline: one regex per rule


def _term_regex(term: str) -> str:
    if term.endswith("*"):
        return re.escape(term[:-1]) + r"\w*"
    return r"\W+".join(re.escape(w) for w in re.split(r"[\s\-]+", term) if w)


def regex_rules(rules: Sequence[BenchRule]) -> list[re.Pattern[str]]:
    return [
        re.compile(r"\b(?:" + "|".join(_term_regex(t) for t in rule.terms) + r")\b", re.IGNORECASE)
        for rule in rules
    ]


def regex_match(patterns: Sequence[re.Pattern[str]], doc: Document) -> int:
    text = "\n".join((doc.title, doc.summary, doc.body))
    return sum(1 for p in patterns if p.search(text) is not None)


# --------------------------------------------------------------------------
# measurement


@dataclass
class Row:
    rules: int
    engine: str
    articles: int
    seconds: float
    hits: int

    @property
    def per_s(self) -> float:
        return self.articles / self.seconds if self.seconds else float("inf")


def _time(
    run: Callable[[Document], int], docs: Sequence[Document], budget: float | None
) -> tuple[int, float, int]:
    gc.collect()
    hits = 0
    done = 0
    start = time.perf_counter()
    for doc in docs:
        hits += run(doc)
        done += 1
        if budget is not None and done >= 10 and time.perf_counter() - start > budget:
            break
    return done, time.perf_counter() - start, hits


def _pin_to_one_core() -> str:
    if hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=2000, help="articles per rule set (default 2000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="fewer articles and a shorter regex budget")
    parser.add_argument("--regex-budget", type=float, default=None, help="seconds per regex run (default 12)")
    parser.add_argument("--counts", default=",".join(map(str, RULE_COUNTS)), help="rule set sizes")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the process to one CPU")
    parser.add_argument("--repeat", type=int, default=3, help="passes of the one-pass matcher (best counts)")
    parser.add_argument(
        "--universe", type=float, default=1.0,
        help="scale of the invented world (people, places, topics); larger means fewer hits per article",
    )
    args = parser.parse_args(argv)
    counts = sorted({int(c) for c in args.counts.split(",")})
    n_articles = args.articles if not args.quick else min(args.articles, 300)
    budget = args.regex_budget if args.regex_budget is not None else (2.0 if args.quick else 12.0)

    pinned = "not pinned" if args.no_pin else _pin_to_one_core()
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    vocab = make_vocabulary(rng, size=args.universe)
    all_rules = make_rules(vocab, max(counts), rng)
    warmup = make_articles(vocab, 100, random.Random(args.seed + 1))
    docs = make_articles(vocab, n_articles, rng)
    words = sum(len((d.title + " " + d.summary + " " + d.body).split()) for d in docs) / len(docs)
    print(
        f"# {len(docs)} articles (~{words:.0f} words), {len(vocab.entities)} entities, "
        f"generated in {time.perf_counter() - t0:.1f}s; {pinned}; python {sys.version.split()[0]}"
    )

    rows: list[Row] = []
    print(f"{'rules':>6} {'engine':<10} {'articles':>8} {'articles/s':>11} {'ms/article':>11} {'hits':>8}")
    for count in counts:
        subset = all_rules[:count]
        t0 = time.perf_counter()
        matcher = Matcher([r.spec for r in subset], vocab.entities)
        compile_s = time.perf_counter() - t0
        for doc in warmup:
            matcher.match(doc)
        # Best of a few passes: other processes on the machine only ever slow a pass down.
        runs = [_time(lambda d, m=matcher: len(m.match(d)), docs, None) for _ in range(args.repeat)]
        done, seconds, hits = min(runs, key=lambda run: run[1])
        rows.append(Row(count, "one-pass", done, seconds, hits))
        patterns = regex_rules(subset)
        done, seconds, hits = _time(lambda d, p=patterns: regex_match(p, d), docs, budget)
        rows.append(Row(count, "regex", done, seconds, hits))
        for row in rows[-2:]:
            print(
                f"{row.rules:>6} {row.engine:<10} {row.articles:>8} {row.per_s:>11.0f} "
                f"{1000 / row.per_s:>11.3f} {row.hits / row.articles:>8.2f}"
            )
        print(f"#      compile {count} rules: {compile_s * 1000:.0f} ms", flush=True)

    def per_s(count: int, engine: str) -> float:
        return next(r.per_s for r in rows if r.rules == count and r.engine == engine)

    top, low = max(counts), min(counts)
    print("# hits = rules hit per article (regex: rules whose pattern occurs, an approximation)")
    print(
        f"articles_per_s_10k={per_s(top, 'one-pass'):.0f} "
        f"ratio_10k_vs_10={per_s(top, 'one-pass') / per_s(low, 'one-pass'):.2f} "
        f"speedup_vs_regex_10k={per_s(top, 'one-pass') / per_s(top, 'regex'):.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
