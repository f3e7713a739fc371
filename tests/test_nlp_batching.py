"""Calls for NER made while one runs go together in the next batch (``monitor.nlp._Batched``)."""

from __future__ import annotations

import threading
import time

import pytest

from monitor.nlp import _Batched


class SlowLengths:
    """A stand-in for the NER process: the length of each text, the first batch held until
    ``release`` is set, every batch recorded."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, texts: list[str]) -> list[int]:
        self.batches.append(list(texts))
        self.started.set()
        assert self.release.wait(10)
        if "boom" in texts:
            raise RuntimeError("the NER process died")
        return [len(t) for t in texts]


def _call_in_threads(batched: _Batched[int], calls: list[list[str]], fn: SlowLengths
                     ) -> dict[int, list[int] | BaseException]:
    """The first call, then the others (in order) while it runs; each thread's outcome."""
    out: dict[int, list[int] | BaseException] = {}

    def run(i: int) -> None:
        try:
            out[i] = batched(calls[i])
        except BaseException as exc:  # noqa: BLE001 - compared below
            out[i] = exc

    first = threading.Thread(target=run, args=(0,))
    first.start()
    assert fn.started.wait(10)
    others = [threading.Thread(target=run, args=(i,)) for i in range(1, len(calls))]
    for waiting, t in enumerate(others, 1):     # one by one, in order
        t.start()
        deadline = time.monotonic() + 10
        while len(batched._waiting) < waiting and time.monotonic() < deadline:
            time.sleep(0.002)
    fn.release.set()
    for t in [first, *others]:
        t.join(10)
    return out


def test_calls_waiting_for_a_batch_go_together_and_each_gets_its_own_results() -> None:
    fn = SlowLengths()
    batched = _Batched(fn, max_texts=64)
    calls = [["a"], ["bb", "ccc"], ["dddd"], [], ["eeeee"]]
    out = _call_in_threads(batched, calls, fn)
    assert out == {i: [len(t) for t in texts] for i, texts in enumerate(calls)}
    assert fn.batches[0] == ["a"]
    assert fn.batches[1:] == [["bb", "ccc", "dddd", "eeeee"]]
    assert not batched._busy and not batched._waiting
    assert batched(["ff"]) == [2] and fn.batches[-1] == ["ff"]   # idle: straight through


def test_a_batch_holds_at_most_max_texts_but_always_one_call() -> None:
    fn = SlowLengths()
    batched = _Batched(fn, max_texts=3)
    calls = [["a"], ["b", "c"], ["d", "e"], ["f", "g", "h", "i"]]
    out = _call_in_threads(batched, calls, fn)
    assert out == {i: [len(t) for t in texts] for i, texts in enumerate(calls)}
    assert [len(b) for b in fn.batches] == [1, 2, 2, 4]    # 2 + 2 > 3; 4 alone


def test_an_error_reaches_every_caller_of_its_batch_and_no_other() -> None:
    fn = SlowLengths()
    batched = _Batched(fn, max_texts=64)
    out = _call_in_threads(batched, [["a"], ["boom"], ["ccc"]], fn)
    assert out[0] == [1]
    assert isinstance(out[1], RuntimeError) and out[2] is out[1]
    assert batched(["xy"]) == [2], "the next call runs as usual"
    with pytest.raises(RuntimeError):
        batched(["boom"])
