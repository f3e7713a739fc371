"""The `reader` feed library on the ingest bench's feeds: the SPEC §9 yardstick, measured here.

SPEC §9 states the ingest targets as "twice the speed of `reader` 3.26 (feedparser + SQLite,
32 workers)" and gives the times it measured on some machine. Wall-clock times move with the
machine (the same pressmon code has taken 26 s and 40 s on two machines of one kind), so
``bench/ingest.py`` runs `reader` itself, on the same feeds from the same loopback server, in
the same run, and prints the ratios.

This module runs in its own process (``python bench/reader_baseline.py DB URLS_FILE``), so its
CPU time and memory are its own. It speaks the bench driver protocol: prints ``{"ready": true}``,
then for each ``cycle`` line on stdin updates every feed once with ``update_feeds(workers=32)``
and prints one JSON line (wall, CPU, statuses, new entries); ``quit`` prints peak RSS.

`reader` is optional (``pip install -e '.[bench]'``); without it the bench says so and skips it.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path

WORKERS = 32          # as in SPEC §9's measurement


def available() -> str | None:
    """The installed `reader` version, or None."""
    try:
        from importlib.metadata import PackageNotFoundError, version
        return version("reader")
    except PackageNotFoundError:
        return None


def _cycle(reader: object) -> dict[str, object]:
    from reader import ParseError, UpdatedFeed

    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    statuses: Counter[str] = Counter()
    new = 0
    errors: set[str] = set()
    # scheduled=False: every feed, every cycle, like pressmon's poll_all_once.
    for result in reader.update_feeds_iter(workers=WORKERS, scheduled=False):  # type: ignore[attr-defined]
        value = result.value
        if isinstance(value, UpdatedFeed):
            statuses["ok" if value.new or value.modified else "unchanged"] += 1
            new += value.new
        elif value is None:
            statuses["not_modified"] += 1
        else:
            statuses["error"] += 1
            errors.add(f"{type(value).__name__}: {value}"[:200])
            if not isinstance(value, ParseError):
                raise value
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu0
    return {"wall": wall, "cpu": cpu, "cpu_daemon": cpu, "statuses": dict(statuses), "new": new,
            "hits": 0, "alerts": 0, "errors": sorted(errors)[:3], "workers": 0}


def main(argv: list[str]) -> int:
    from reader import make_reader

    db, urls_file = argv
    reader = make_reader(db)
    for url in Path(urls_file).read_text(encoding="utf-8").split():
        reader.add_feed(url, exist_ok=True)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        print(json.dumps(_cycle(reader)), flush=True)
    reader.close()
    print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}),
          flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
