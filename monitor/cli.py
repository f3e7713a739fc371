"""The command surface (SPEC §7). Parsing arguments and printing only; the work lives elsewhere.

Exit codes: 0 ok, 1 user error (bad config, bad query), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor import __version__

EXIT_OK, EXIT_USER, EXIT_USAGE = 0, 1, 2


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, metavar="PATH",
                        help="config file (default: $PRESSMON_CONFIG or config/pressmon.yaml)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pressmon",
        description="Press-monitoring daemon: polls news feeds, matches watch rules, "
                    "stores hits and sends alerts.")
    parser.add_argument("--version", action="version", version=f"pressmon {__version__}")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper,
                        help="log verbosity on stderr (default INFO)")
    parser.add_argument("--log-format", default="text", choices=["text", "json"],
                        help="log lines for people (text, default) or collectors (json)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="run the daemon")
    _add_config(run)
    run.add_argument("--once", action="store_true",
                     help="poll every feed once, deliver what is due, and exit")

    check = commands.add_parser("check", help="validate the config and rules; exit 1 on any error")
    _add_config(check)

    test = commands.add_parser(
        "test", help="run a rule or a query over articles and explain; stores and sends nothing")
    _add_config(test)
    test.add_argument("target", metavar="QUERY_OR_RULE_ID",
                      help="a configured rule id, or else a query")
    source = test.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=Path, help="a .json article or list, a .txt, or a feed file")
    source.add_argument("--url", help="a feed URL, or a web page taken as one article")
    source.add_argument("--archive", action="store_true", help="the stored articles")
    test.add_argument("--since", default="7d", help="with --archive: how far back (default 7d)")
    test.add_argument("--json", action="store_true", help="print the stable JSON document")

    backfill = commands.add_parser(
        "backfill", help="run rules over stored articles; store new hits (and alert with --alert)")
    _add_config(backfill)
    backfill.add_argument("--rule", help="only this rule id")
    backfill.add_argument("--since", default="30d", help="articles first seen since (default 30d)")
    backfill.add_argument("--alert", action="store_true",
                          help="also send alerts for the new hits (asks first; see --yes)")
    backfill.add_argument("--yes", action="store_true", help="with --alert: do not ask")
    backfill.add_argument("--json", action="store_true", help="print the summary as JSON")

    schema = commands.add_parser("schema", help="JSON Schema of the config and rules files")
    schema.add_argument("which", nargs="?", choices=["config", "rules"],
                        help="only this schema (default: both, as one JSON object)")
    schema.add_argument("--output-dir", type=Path, metavar="DIR",
                        help="write pressmon.schema.json and rules.schema.json into DIR")

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = db_commands.add_parser("upgrade", help="apply database migrations")
    _add_config(upgrade)

    feeds = commands.add_parser("feeds", help="feeds and their health")
    feeds_commands = feeds.add_subparsers(dest="feeds_command", metavar="ACTION")
    feeds_list = feeds_commands.add_parser("list", help="list feeds (the default)")
    for p in (feeds, feeds_list):
        _add_config(p)
        p.add_argument("--json", action="store_true", help="print JSON")
    feeds_add = feeds_commands.add_parser(
        "add", help="check a feed URL (or find the feed a web page links) and print its entry")
    _add_config(feeds_add)
    feeds_add.add_argument("url", metavar="URL", help="a feed URL or a web page that links one")
    feeds_add.add_argument("--id", help="feed id (default: from the feed's title)")
    feeds_import = feeds_commands.add_parser(
        "import", help="read an OPML file and print its feeds as YAML entries for the config")
    _add_config(feeds_import)
    feeds_import.add_argument("file", type=Path, metavar="FILE", help="an OPML file")
    feeds_export = feeds_commands.add_parser("export", help="write the configured feeds as OPML")
    _add_config(feeds_export)
    feeds_export.add_argument("--output", "-o", type=Path, metavar="FILE",
                              help="write to FILE (default: standard output)")

    hits = commands.add_parser("hits", help="recent hits")
    _add_config(hits)
    hits.add_argument("--rule", help="only this rule id")
    hits.add_argument("--since", default="1d", help="how far back (default 1d)")
    hits.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    hits.add_argument("--json", action="store_true", help="print JSON")

    alerts = commands.add_parser("alerts", help="the alert outbox")
    alerts_commands = alerts.add_subparsers(dest="alerts_command", metavar="ACTION")
    alerts_list = alerts_commands.add_parser("list", help="list deliveries (the default)")
    for p in (alerts, alerts_list):
        _add_config(p)
        p.add_argument("--status", choices=["pending", "held", "throttled", "sent", "folded", "failed"],
                       help="only this status")
        p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
        p.add_argument("--json", action="store_true", help="print JSON")
    retry = alerts_commands.add_parser("retry", help="requeue failed deliveries")
    _add_config(retry)
    retry.add_argument("ids", nargs="*", type=int, metavar="ID", help="delivery ids")
    retry.add_argument("--all-failed", action="store_true", help="requeue every failed delivery")

    demo = commands.add_parser("demo", help="a self-contained tour on bundled sample feeds")
    demo.add_argument("--once", action="store_true", help="one poll, print the alerts, exit")
    demo.add_argument("--port", type=int, default=0, help="port for the sample feed server")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from monitor import logs

    args = build_parser().parse_args(argv)
    logs.setup(args.log_level, args.log_format)
    handler = {
        "run": cmd_run, "check": cmd_check, "db": cmd_db, "feeds": cmd_feeds, "hits": cmd_hits,
        "alerts": cmd_alerts, "demo": cmd_demo, "test": cmd_test,
        "schema": cmd_schema, "backfill": cmd_backfill,
    }[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


# --------------------------------------------------------------------------- helpers

def _settings(args: argparse.Namespace) -> Any:
    from monitor import logs
    from monitor.config import ConfigError, load_settings

    try:
        settings = load_settings(args.config)
        logs.set_secrets(settings.secrets())
        return settings
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} error(s); see `pressmon check`", file=sys.stderr)
        raise SystemExit(EXIT_USER) from None


def _database(args: argparse.Namespace) -> Any:
    from monitor.store.db import Database

    db = Database(_settings(args).database_url)
    db.upgrade()
    return db


def _table(rows: list[list[str]], headers: list[str]) -> str:
    """A table: drawn with rich on a terminal, plain aligned columns when piped."""
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*headers, box=None, header_style="bold", pad_edge=False)
        for row in rows:
            table.add_row(*row)
        console = Console()
        with console.capture() as captured:
            console.print(table)
        return captured.get().rstrip("\n")
    return _plain_table(rows, headers)


def _plain_table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


# --------------------------------------------------------------------------- commands

def cmd_run(args: argparse.Namespace) -> int:
    from monitor.service.daemon import Daemon
    from monitor.service.lock import AlreadyRunning, InstanceLock

    settings = _settings(args)
    try:
        with InstanceLock(settings.database_url):
            daemon = Daemon(settings)
            return asyncio.run(daemon.run_once() if args.once else daemon.run())
    except AlreadyRunning as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER


def cmd_check(args: argparse.Namespace) -> int:
    from monitor import nlp
    from monitor.config import ConfigError, default_config_path, load_settings

    path = args.config or default_config_path()
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}")
        print(f"{path}: {len(exc.problems)} error(s)")
        return EXIT_USER
    for warning in settings.warnings:
        print(f"warning: {warning}")
    print(f"features: NER {nlp.status()}")
    print(f"{path}: OK — {len(settings.feeds)} feeds, {len(settings.rules)} rules, "
          f"{len(settings.entities)} entities, {len(settings.channels)} channels")
    return EXIT_OK


def cmd_db(args: argparse.Namespace) -> int:
    from monitor.store.db import current_revision, redact_url

    db = _database(args)
    print(f"{redact_url(db.url)}: at revision {current_revision(db.engine)}")
    db.dispose()
    return EXIT_OK


def cmd_feeds(args: argparse.Namespace) -> int:
    if args.feeds_command == "add":
        return cmd_feeds_add(args)
    if args.feeds_command == "import":
        return cmd_feeds_import(args)
    if args.feeds_command == "export":
        return cmd_feeds_export(args)
    return cmd_feeds_list(args)


def cmd_feeds_add(args: argparse.Namespace) -> int:
    import yaml

    from monitor.config import default_config_path
    from monitor.ingest.discover import DiscoveryError, discover
    from monitor.ingest.opml import slug

    try:
        found = asyncio.run(discover(args.url))
    except DiscoveryError as exc:
        print(f"error: {args.url}: {exc}", file=sys.stderr)
        return EXIT_USER
    config_path = args.config or default_config_path()
    taken = {f.id for f in _settings(args).feeds} if config_path.exists() else set()
    feed_id = args.id or slug(found.title or found.url)
    if feed_id in taken:
        print(f"error: a feed with id {feed_id!r} is already configured; pass --id", file=sys.stderr)
        return EXIT_USER
    entry = {"id": feed_id, "name": found.title, "url": found.url}
    print(yaml.safe_dump([entry], allow_unicode=True, sort_keys=False), end="")
    via = f" (linked from {args.url})" if found.url != args.url else ""
    print(f"{found.entries} entries in the feed{via}; paste the entry under `feeds:` in "
          f"{config_path}", file=sys.stderr)
    return EXIT_OK


def cmd_feeds_import(args: argparse.Namespace) -> int:
    import yaml

    from monitor.config import default_config_path
    from monitor.ingest.opml import OpmlError, read_opml

    config_path = args.config or default_config_path()
    taken: set[str] = set()
    if config_path.exists():
        taken = {f.id for f in _settings(args).feeds}
    try:
        feeds = read_opml(args.file.read_bytes(), taken=taken)
    except OSError as exc:
        print(f"error: {args.file}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USER
    except OpmlError as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return EXIT_USER
    entries = [{"id": f.id, "name": f.name, "url": f.url, **({"tags": list(f.tags)} if f.tags else {})}
               for f in feeds]
    print(yaml.safe_dump(entries, allow_unicode=True, sort_keys=False), end="")
    print(f"{len(feeds)} feeds from {args.file}: paste them under `feeds:` in {config_path}, "
          f"or list the file itself there as `- opml: {args.file}`", file=sys.stderr)
    return EXIT_OK


def cmd_feeds_export(args: argparse.Namespace) -> int:
    from monitor.ingest.opml import OpmlFeed, write_opml

    settings = _settings(args)
    document = write_opml([OpmlFeed(f.id, f.url, f.name, tuple(f.tags)) for f in settings.feeds])
    if args.output:
        args.output.write_bytes(document)
        print(f"wrote {len(settings.feeds)} feeds to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(document.decode())
    return EXIT_OK


def cmd_feeds_list(args: argparse.Namespace) -> int:
    from monitor.store import queries

    db = _database(args)
    feeds = db.call(queries.list_feeds)
    db.dispose()
    if args.json:
        print(json.dumps([{
            "id": f.id, "url": f.url, "name": f.name, "active": f.active, "status": f.status,
            "last_success_at": f.last_success_at and f.last_success_at.isoformat(),
            "last_error": f.last_error,
            "next_poll_at": f.next_poll_at and f.next_poll_at.isoformat(),
            "consecutive_failures": f.consecutive_failures, "entries_per_day": f.entries_per_day,
            "interval_s": f.interval_s, "health": f.health_state,
            "websub": f.websub_state, "polled_by": f.lease_owner} for f in feeds], indent=2))
        return EXIT_OK
    rows = [[f.id, f.status if f.active else "removed", _when(f.last_success_at),
             f"now, by {f.lease_owner}" if f.lease_owner else _when(f.next_poll_at),
             f"{f.entries_per_day:.1f}" if f.entries_per_day is not None else "-",
             (f.last_error or "")[:60]] for f in feeds]
    print(_table(rows, ["ID", "STATUS", "LAST SUCCESS", "NEXT POLL", "ENTRIES/DAY", "LAST ERROR"]))
    return EXIT_OK


def cmd_hits(args: argparse.Namespace) -> int:
    from monitor.store import queries
    from monitor.units import parse_duration

    try:
        since = datetime.now(UTC) - parse_duration(args.since)
    except ValueError as exc:
        print(f"error: --since: {exc}", file=sys.stderr)
        return EXIT_USER
    db = _database(args)
    rows = db.call(queries.recent_hits, since=since, rule_id=args.rule, limit=args.limit)
    db.dispose()
    if args.json:
        print(json.dumps([{
            "id": hit.id, "rule": hit.rule_id, "score": hit.score, "alerted": hit.alerted,
            "created_at": hit.created_at.isoformat(), "matches": hit.matches,
            "snippet": hit.snippet,
            "article": {"id": article.id, "feed": article.feed_id, "title": article.title,
                        "url": article.url}} for hit, article in rows], indent=2,
            ensure_ascii=False))
        return EXIT_OK
    table = [[_when(hit.created_at), hit.rule_id, f"{hit.score:g}", article.feed_id,
              article.title[:70]] for hit, article in rows]
    print(_table(table, ["WHEN", "RULE", "SCORE", "FEED", "TITLE"]))
    return EXIT_OK


def cmd_alerts(args: argparse.Namespace) -> int:
    from monitor.store import queries

    if args.alerts_command == "retry":
        if not args.ids and not args.all_failed:
            print("error: give delivery ids or --all-failed", file=sys.stderr)
            return EXIT_USAGE
        db = _database(args)
        count = db.call(queries.retry_deliveries, datetime.now(UTC), ids=args.ids,
                        all_failed=args.all_failed)
        db.dispose()
        print(f"requeued {count} deliveries")
        return EXIT_OK
    db = _database(args)
    rows = db.call(queries.list_deliveries, status=args.status, limit=args.limit)
    db.dispose()
    if args.json:
        print(json.dumps([{
            "id": d.id, "alert_id": d.alert_id, "channel": d.channel, "status": d.status,
            "attempts": d.attempts, "last_error": d.last_error, "rule": a.rule_id,
            "created_at": d.created_at.isoformat(),
            "sent_at": d.sent_at and d.sent_at.isoformat()} for d, a in rows], indent=2))
        return EXIT_OK
    table = [[str(d.id), d.status, d.channel, a.rule_id or a.kind, str(d.attempts),
              _when(d.sent_at or d.next_attempt_at), (d.last_error or "")[:50]] for d, a in rows]
    print(_table(table, ["ID", "STATUS", "CHANNEL", "RULE", "ATTEMPTS", "WHEN", "LAST ERROR"]))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo import run_demo

    return run_demo(once=args.once, port=args.port)


def cmd_test(args: argparse.Namespace) -> int:
    from monitor import nlp, testrun
    from monitor.config import default_config_path
    from monitor.match import Matcher
    from monitor.units import parse_duration

    config_path = args.config or default_config_path()
    settings = _settings(args) if args.config or config_path.exists() else None
    entities = settings.entities if settings else {}
    rule = settings.rule(args.target) if settings else None
    if rule is not None:
        spec, rule_id, json_rule = rule.spec(), rule.id, rule.id
    else:
        spec = testrun.adhoc_rule(args.target)
        rule_id, json_rule = spec.id, None
        errors = Matcher.check([spec], entities)
        if errors:
            error = errors[0]
            print(f"error: query: column {error.column}: {error.message}", file=sys.stderr)
            print(f"  {args.target}\n  {' ' * (error.column - 1)}^", file=sys.stderr)
            return EXIT_USER
    matcher = Matcher([spec], entities)
    try:
        if args.file:
            docs = testrun.load_file(args.file)
        elif args.url:
            docs = testrun.load_url(args.url)
        else:
            if settings is None:
                print("error: --archive needs a configuration (--config)", file=sys.stderr)
                return EXIT_USER
            docs = testrun.load_archive(settings.database_url, parse_duration(args.since))
    except (testrun.InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER
    needs_ner = any(e.verify == "ner" for e in entities.values())
    ner = nlp.Ner.load() if needs_ner else None
    outcomes = testrun.run(matcher, rule_id, docs, explain=not args.json,
                           verifier=ner.verifier if ner else None)
    if args.json:
        print(json.dumps(testrun.to_json(outcomes, json_rule), ensure_ascii=False, indent=2))
        return EXIT_OK
    for outcome in outcomes:
        title = outcome.sample.doc.title or "(untitled)"
        if outcome.hit is not None:
            print(f"[{outcome.sample.index}] MATCH score={outcome.hit.score:g}  {title}")
            for m in outcome.hit.matches:
                print(f"      {m.field}[{m.start}:{m.end}] {m.text!r}  ({m.term})")
            print(f"      {outcome.hit.snippet}")
        elif outcome.explanation is not None:
            ex = outcome.explanation
            parts = ", ".join(f"{text}: {'yes' if ok else 'no'}" for text, ok in ex.clauses)
            detail = f" ({parts})" if parts and ex.reason == "query did not match" else ""
            print(f"[{outcome.sample.index}] no match: {ex.reason}{detail}  {title}")
    matched = sum(1 for o in outcomes if o.hit is not None)
    print(f"{len(outcomes)} article(s), {matched} matched")
    if needs_ner and ner is None:
        print(f"note: NER is {nlp.status()}; verify: ner entities matched without it",
              file=sys.stderr)
    return EXIT_OK


SCHEMA_FILES = {"config": "pressmon.schema.json", "rules": "rules.schema.json"}


def cmd_schema(args: argparse.Namespace) -> int:
    from monitor.config import json_schemas

    schemas = json_schemas()
    if args.output_dir:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        for name, file in SCHEMA_FILES.items():
            path = args.output_dir / file
            path.write_text(json.dumps(schemas[name], indent=2, ensure_ascii=False) + "\n",
                            encoding="utf-8")
            print(f"wrote {path}")
        return EXIT_OK
    document = schemas[args.which] if args.which else schemas
    print(json.dumps(document, indent=2, ensure_ascii=False))
    return EXIT_OK


def cmd_backfill(args: argparse.Namespace) -> int:
    from monitor import backfill
    from monitor.units import parse_duration

    settings = _settings(args)
    try:
        since = datetime.now(UTC) - parse_duration(args.since)
    except ValueError as exc:
        print(f"error: --since: {exc}", file=sys.stderr)
        return EXIT_USER
    rules = [r for r in settings.rules if r.config.enabled and (not args.rule or r.id == args.rule)]
    if args.rule and not rules:
        print(f"error: no enabled rule {args.rule!r}", file=sys.stderr)
        return EXIT_USER
    db = _database(args)
    try:
        with _progress("matching stored articles") as progress:
            plan = backfill.plan(db, settings, rules=rules, since=since, progress=progress)
        alerts = sum(plan.alerts_by_channel.values())
        summary = {"articles": plan.articles, "hits": plan.matched, "new_hits": len(plan.new),
                   "alerts": alerts if args.alert else 0,
                   "alerts_by_channel": dict(plan.alerts_by_channel) if args.alert else {}}
        if not args.json:
            print(f"{plan.articles} articles since {args.since}: {plan.matched} hits, "
                  f"{len(plan.new)} new", file=sys.stderr)
        if args.alert and alerts and not args.yes:
            channels = ", ".join(f"{n} to {c}" for c, n in plan.alerts_by_channel.items())
            print(f"--alert would send {alerts} alerts ({channels}).", file=sys.stderr)
            if not sys.stdin.isatty():
                print("error: pass --yes to send them", file=sys.stderr)
                return EXIT_USER
            if input("send them? [y/N] ").strip().lower() not in ("y", "yes"):
                print("nothing written", file=sys.stderr)
                return EXIT_OK
        hits, written = backfill.apply(db, settings, plan, alert=args.alert, now=datetime.now(UTC))
        summary.update(written_hits=hits, written_alerts=written)
    finally:
        db.dispose()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"stored {hits} new hits" + (f", queued {written} alerts (the daemon sends them)"
                                           if args.alert else ""))
    return EXIT_OK


class _progress:
    """A progress bar on a terminal; a line per 10% on a pipe."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._bar: Any = None
        self._task: Any = None
        self._last = -1

    def __enter__(self) -> Callable[[int, int], None]:
        if sys.stderr.isatty():
            from rich.progress import Progress

            self._bar = Progress(transient=True)
            self._bar.start()
        return self.update

    def update(self, done: int, total: int) -> None:
        if self._bar is not None:
            if self._task is None:
                self._task = self._bar.add_task(self.label, total=total)
            self._bar.update(self._task, completed=done)
            return
        tenth = done * 10 // max(total, 1)
        if tenth != self._last:
            self._last = tenth
            print(f"{self.label}: {done}/{total}", file=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
