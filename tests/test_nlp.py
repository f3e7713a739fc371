"""NER with the real English spaCy model (the `ner` extra); skipped where it is not installed."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor import nlp
from monitor.config import load_settings
from monitor.demo.server import FeedServer
from monitor.match import Document, EntitySpec, Matcher, RuleSpec
from monitor.service.daemon import Daemon
from monitor.store.models import Alert
from tests.conftest import WriteConfig, rss

pytest.importorskip(nlp.MODEL)


@pytest.fixture(scope="module")
def ner() -> nlp.Ner:
    model = nlp.Ner.load()
    assert model is not None
    return model


def test_entities_people_places_organisations(ner: nlp.Ner) -> None:
    (found,) = ner.entities([Document(
        title="Aliyev hosts Erdoğan",
        body="President Ilham Aliyev met Recep Tayyip Erdoğan in Ankara on Monday.")])
    assert "Ilham Aliyev" in found["PERSON"] and "Recep Tayyip Erdoğan" in found["PERSON"]
    assert "Ankara" in found["GPE"]
    assert "DATE" not in found


def test_trimmed_pipeline_finds_what_the_full_model_finds(ner: nlp.Ner) -> None:
    """pressmon loads only the NER component (its own tok2vec inside): same entities as the
    model with every component, so leaving the rest out costs nothing but time."""
    import spacy

    full = spacy.load(nlp.MODEL)
    texts = [
        "President Ilham Aliyev met Recep Tayyip Erdoğan in Ankara on Monday.",
        "The Black Sea grain corridor talks moved to Istanbul, the United Nations said, "
        "while Ukraine and Turkey asked the World Food Programme for more ships.",
        "Nikol Pashinyan told reporters in Yerevan that the European Union mission would stay "
        "near the border with Azerbaijan until next spring.",
    ]
    expected = [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in full.pipe(texts)]
    assert ner.spans(texts) == expected
    assert any(label == "PERSON" for spans in expected for *_, label in spans)


def test_ner_multiplies_with_numpy_blas_on_one_thread(ner: nlp.Ner) -> None:
    """thinc's BLIS ran ~3x slower than NumPy's BLAS here, and a second BLAS thread only
    doubled the CPU: the loaded model must use NumPy's BLAS, capped at one thread."""
    from threadpoolctl import threadpool_info

    model = nlp._load().get_pipe("ner").model
    assert not model.ops.use_blis
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and all(pool["num_threads"] == 1 for pool in blas)


def test_verify_ner_tells_a_person_from_a_country(ner: nlp.Ner) -> None:
    entities = {"jordan": EntitySpec(id="jordan", aliases=("Jordan",), type="PERSON",
                                     verify="ner")}
    matcher = Matcher([RuleSpec(id="mj", query="@jordan")], entities)
    person = Document(body="Michael Jordan played in Chicago for many years.")
    country = Document(body="Jordan and Egypt signed a water deal on Tuesday.")
    assert [h.rule_id for h in matcher.match(person, verify=ner.verifier(person))] == ["mj"]
    assert matcher.match(country, verify=ner.verifier(country)) == []
    assert [h.rule_id for h in matcher.match(country)] == ["mj"], "no verifier: no check"


def test_alerts_carry_ner_entities(tmp_path: Path, write_config: WriteConfig) -> None:
    feed = rss([{"guid": "1", "title": "Aliyev hosts Erdoğan",
                 "description": "President Ilham Aliyev met Recep Tayyip Erdoğan in Ankara."}])
    with FeedServer({"/f.xml": feed}) as server:
        config = write_config({
            "database": f"sqlite:///{tmp_path / 'n.db'}",
            "poll": {"allow_private_networks": True},
            "feeds": [{"id": "f", "url": server.url("/f.xml")}],
        }, {"rules": [{"id": "erdogan", "query": "erdogan"}]})
        daemon = Daemon(load_settings(config), console=io.StringIO())
        assert asyncio.run(daemon.run_once()) == 0
    with daemon.db.session() as session:
        (alert,) = session.scalars(select(Alert))
    assert "Ilham Aliyev" in alert.payload["entities"]["PERSON"]
    assert "Ankara" in alert.payload["entities"]["GPE"]


def test_without_the_model_everything_else_works(tmp_path: Path, write_config: WriteConfig,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    monkeypatch.setattr(nlp, "MODEL", "no_such_spacy_model_installed")
    assert not nlp.available() and nlp.Ner.load() is None
    feed = rss([{"guid": "1", "title": "Erdoğan in Baku", "description": "x"}])
    with FeedServer({"/f.xml": feed}) as server:
        config = write_config({
            "database": f"sqlite:///{tmp_path / 'n.db'}",
            "poll": {"allow_private_networks": True},
            "feeds": [{"id": "f", "url": server.url("/f.xml")}],
        }, {"entities": {"erdogan": {"type": "PERSON", "aliases": ["Erdoğan"], "verify": "ner"}},
            "rules": [{"id": "erdogan", "query": "@erdogan"}]})
        assert main(["check", "--config", str(config)]) == 0
        out = capsys.readouterr().out
        assert "features: NER off (model no_such_spacy_model_installed not installed" in out
        assert "warning:" in out and "matched without verification" in out
        daemon = Daemon(load_settings(config), console=io.StringIO())
        assert asyncio.run(daemon.run_once()) == 0
    with daemon.db.session() as session:
        (alert,) = session.scalars(select(Alert))
    assert alert.payload["entities"] == {}


def test_ner_process_answers_like_ner_in_process_and_survives_a_crash(ner: nlp.Ner) -> None:
    """The daemon's NER runs in a worker process; same spans, a killed worker is replaced."""
    import os
    import signal

    from tests.procs import alive

    texts = ["President Ilham Aliyev met Recep Tayyip Erdoğan in Ankara on Monday.",
             "No names at all in this one."]
    process = nlp.NlpWorkers()
    try:
        remote = process.load()
        assert remote is not None and process.ner_pool.started
        assert remote.spans(texts) == ner.spans(texts)
        assert process.languages(["Bugün Bakü'de hava çok güzel ve güneşli olacak.",
                                  "Today the weather in Baku will be sunny and warm.", "x"]) \
            == ["tr", "en", None]
        (pid,) = process.ner_pool.processes
        (languages_pid,) = process.languages_pool.processes
        assert len({pid, languages_pid, os.getpid()}) == 3
        os.kill(pid, signal.SIGKILL)
        # The batch that finds the worker dead is tried again in a new one.
        assert remote.spans(texts) == ner.spans(texts)
        (new_pid,) = process.ner_pool.processes
        assert new_pid != pid
        assert process.languages_pool.processes == [languages_pid]
    finally:
        process.shutdown()
    assert not alive(new_pid) and not alive(languages_pid)
    assert process.load() is None, "after shutdown NER is off"


def test_polls_asking_at_once_share_ner_batches_with_the_same_entities(ner: nlp.Ner) -> None:
    """Threads asking the NER process at once (as polls do) are answered in fewer calls,
    each with what NER in process finds in its own documents."""
    from concurrent.futures import ThreadPoolExecutor

    docs = [[Document(title=f"Talks in Ankara, day {i}",
                      body=f"Ilham Aliyev met Recep Tayyip Erdoğan in Baku on day {i}.")]
            for i in range(12)] + [[Document(title="Nothing", body="no names here")]]
    process = nlp.NlpWorkers()
    calls: list[int] = []
    spans_now = process._spans_now

    def counted(texts: Sequence[str]) -> list[list[nlp.Span]]:
        calls.append(len(texts))
        return spans_now(texts)

    process._batched_spans = nlp._Batched(counted)
    try:
        remote = process.load()
        assert remote is not None
        with ThreadPoolExecutor(len(docs)) as pool:
            found = list(pool.map(remote.entities, docs))
    finally:
        process.shutdown()
    assert found == [ner.entities(d) for d in docs]
    assert sum(calls) == len(docs) and len(calls) < len(docs)


def test_the_ner_process_is_renewed_when_its_vocabulary_has_grown(
        ner: nlp.Ner, monkeypatch: pytest.MonkeyPatch) -> None:
    """spaCy's vocabulary only grows: past ``NER_MAX_WORDS`` a fresh NER process takes over,
    answering the same, and the old one exits."""
    from tests.procs import alive

    texts = ["President Ilham Aliyev met Recep Tayyip Erdoğan in Ankara on Monday."]
    process = nlp.NlpWorkers()
    try:
        remote = process.load()
        assert remote is not None
        monkeypatch.setattr(nlp, "NER_CHECK_EVERY", 2)
        (first,) = process.ner_pool.processes
        assert remote.spans(texts) == ner.spans(texts)
        assert process.ner_pool.processes == [first], "not looked at yet"
        monkeypatch.setattr(nlp, "NER_MAX_WORDS", 10**9)
        assert remote.spans(texts) == ner.spans(texts)
        assert process.ner_pool.processes == [first], "looked at, small enough"
        monkeypatch.setattr(nlp, "NER_MAX_WORDS", 10)
        for _ in range(2):
            assert remote.spans(texts) == ner.spans(texts)
        deadline = time.monotonic() + 30
        while alive(first) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(first)
        (second,) = process.ner_pool.processes
        assert second != first
        assert remote.spans(texts) == ner.spans(texts)
    finally:
        process.shutdown()


def _loaded(texts: list[str]) -> tuple[bool, bool]:
    """In an NLP process: whether the language model is loaded, and whether NER is, multiplying
    with NumPy's BLAS capped at one thread."""
    from threadpoolctl import threadpool_info

    from monitor.ingest import lang

    ner = nlp._nlp is not None and not nlp._nlp.get_pipe("ner").model.ops.use_blis and all(
        pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")
    return lang._identifier is not None, ner


def test_started_nlp_processes_have_their_models_before_their_first_call() -> None:
    """``start`` (a daemon calls it as polling begins) spawns both processes at once; each
    loads its model ahead of its first call, languages in one, NER in the other."""
    process = nlp.NlpWorkers()
    try:
        process.start()
        (languages_pid,) = process.languages_pool.processes
        (ner_pid,) = process.ner_pool.processes
        assert process._call(process.languages_pool, _loaded, []) == (True, False)
        assert process._call(process.ner_pool, _loaded, []) == (False, True)
        process.start()
        assert process.languages_pool.processes == [languages_pid], "a second start: nothing"
        assert process.ner_pool.processes == [ner_pid]
    finally:
        process.shutdown()


def test_ner_process_without_the_model_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nlp, "MODEL", "no_such_spacy_model_installed")
    process = nlp.NlpWorkers()
    assert process.load() is None
    process.start()
    try:
        assert process.languages_pool.started and not process.ner_pool.started
    finally:
        process.shutdown()


def _hang(texts: list[str]) -> None:
    time.sleep(60)


def test_a_hung_nlp_process_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that stops answering would hold every poll: the call fails after the
    timeout, the worker is killed, and the next call gets a new one."""
    from tests.procs import alive

    process = nlp.NlpWorkers()
    try:
        assert process.languages(["Today the weather in Baku will be sunny and warm."]) == ["en"]
        (pid,) = process.languages_pool.processes
        monkeypatch.setattr(nlp, "CALL_TIMEOUT", 1.0)
        with pytest.raises(RuntimeError, match="did not answer in 1s"):
            process._call(process.languages_pool, _hang, [])
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid)
        monkeypatch.setattr(nlp, "CALL_TIMEOUT", 60.0)
        assert process.languages(["Bugün Bakü'de hava çok güzel ve güneşli olacak."]) == ["tr"]
        assert process.languages_pool.processes and process.languages_pool.processes[0] != pid
    finally:
        process.shutdown()
