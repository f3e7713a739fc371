"""Configuration: the schema of ``pressmon.yaml`` and rules files, loading and validation.

Every problem is reported with file, line and key (SPEC §3); loading collects all of
them before failing so that ``pressmon check`` can print the whole list at once.
"""

from __future__ import annotations

import difflib
import fnmatch
import glob
import ipaddress
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from monitor import nlp
from monitor.ingest.opml import OpmlError, read_opml
from monitor.match import EntitySpec, Matcher, RuleSpec
from monitor.notify.webhook import decode_secret
from monitor.units import format_duration, parse_duration, parse_rate, parse_size
from monitor.yamlsource import Problem, Source, interpolate, load_source

DEFAULT_CONFIG = Path("config/pressmon.yaml")
CONFIG_ENV = "PRESSMON_CONFIG"
DATABASE_ENV = "PRESSMON_DATABASE_URL"

Duration = Annotated[timedelta, BeforeValidator(parse_duration), WithJsonSchema({
    "anyOf": [{"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d|w)\s*)+$"},
              {"type": "number", "minimum": 0}],
    "description": "a duration: 90s, 10m, 2h, 1d, 1h30m, or seconds"})]
ByteSize = Annotated[int, BeforeValidator(parse_size), WithJsonSchema({
    "anyOf": [{"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*([kKmMgG]i?[bB]?|[bB])?\s*$"},
              {"type": "integer", "minimum": 0}],
    "description": "a size: 512KiB, 15MiB, 1GB, or bytes"})]
Rate = Annotated[tuple[int, timedelta], BeforeValidator(parse_rate), WithJsonSchema({
    "type": "string", "pattern": r"^\s*\d+\s*/\s*(\d+(\.\d+)?)?\s*(ms|s|m|h|d|w)\s*$",
    "description": "a rate: N/period, e.g. 20/h or 100/1d"})]
def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)]


class _Strict(BaseModel):
    # Attribute docstrings become descriptions in the JSON Schema (editor hover help).
    model_config = ConfigDict(extra="forbid", populate_by_name=True, use_attribute_docstrings=True)


# --------------------------------------------------------------------------- pressmon.yaml

def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP network (e.g. 10.0.0.0/8 or 192.168.1.5/32)") from None
    return value


class PollSettings(_Strict):
    interval: Duration = timedelta(minutes=10)
    """How often a feed is polled, unless the feed sets its own interval."""
    min_interval: Duration = timedelta(minutes=2)
    """Lower bound for adaptive polling intervals."""
    max_interval: Duration = timedelta(hours=6)
    """Upper bound: failing feeds back off up to this."""
    concurrency: Annotated[int, Field(ge=1, le=10_000)] = 50
    """Requests in flight at once."""
    per_host: Annotated[int, Field(ge=1, le=1_000)] = 4
    """Requests in flight to one host at once."""
    timeout: Duration = timedelta(seconds=20)
    """Total time allowed for one fetch, body included."""
    max_body: ByteSize = 15 * 1024 * 1024
    """Largest feed body accepted (counted after decompression)."""
    max_article_age: Duration = timedelta(hours=48)
    """Older entries are stored and matched but never alerted."""
    allow_private_networks: bool | list[Annotated[str, AfterValidator(_network)]] = False
    """true allows feeds on loopback and private addresses; a list allows just those networks
    (CIDRs such as 10.20.0.0/16 for an intranet)."""
    lease: Duration = timedelta(minutes=2)
    """How long a daemon holds a feed while it polls it. With several daemons on one
    PostgreSQL, a killed daemon's feeds are polled by another once this lapses. Must be
    longer than `timeout` (a poll also parses and stores)."""

    @model_validator(mode="after")
    def _lease_outlasts_fetch(self) -> PollSettings:
        if self.lease < 2 * self.timeout:
            raise ValueError(f"lease ({format_duration(self.lease)}) must be at least twice "
                             f"timeout ({format_duration(self.timeout)}), or a slow poll would "
                             "lose its feed mid-way")
        return self


class ServerSettings(_Strict):
    listen: str = "127.0.0.1:8080"
    """host:port of the HTTP endpoints (health, metrics, WebSub)."""
    public_url: str | None = None
    """The URL at which hubs reach this server (WebSub)."""


class FeedConfig(_Strict):
    id: Identifier
    """Unique feed id (letters, digits, '.', '_', '-'); rules refer to it in `feeds`."""
    url: HttpUrl
    """The feed's http(s) URL."""
    name: str | None = None
    """Display name in alerts (default: the id)."""
    interval: Duration | None = None
    """Polling interval for this feed (default: poll.interval)."""
    tags: list[str] = []
    """Free labels."""
    fulltext: bool = False
    """Fetch each article page and extract its main text into the body before matching."""


class OpmlImport(_Strict):
    opml: str
    """An OPML subscription list (relative to this file) whose feeds are polled too."""


def _feed_kind(value: Any) -> str:
    return "opml" if isinstance(value, dict) and "opml" in value else "feed"


FeedEntry = Annotated[
    Annotated[FeedConfig, Tag("feed")] | Annotated[OpmlImport, Tag("opml")],
    Discriminator(_feed_kind),
]


class DigestSettings(_Strict):
    every: Duration
    """Length of a digest period, e.g. 1h or 1d."""
    at: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] | None = None
    """Local time (HH:MM) at which periods end, e.g. "08:00"; default: midnight."""
    timezone: str = "UTC"
    """IANA time zone of `at`, e.g. Europe/Istanbul."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as "
                             "Europe/Istanbul)") from None
        return value

    @field_validator("every")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise ValueError("a digest period must be at least 1m")
        return value


class Delivery(_Strict):
    """Retry policy and digest shared by every channel type."""

    max_attempts: Annotated[int, Field(ge=1, le=1000)] = 10
    """Attempts before a delivery is marked failed."""
    max_age: Duration = timedelta(hours=24)
    """Age after which a delivery that still fails is marked failed."""
    timeout: Duration = timedelta(seconds=15)
    """Time allowed for one delivery attempt."""
    digest: DigestSettings | None = None
    """Gather alerts and send one message per period (priority high is sent at once)."""


class ConsoleChannel(Delivery):
    type: Literal["console"]
    """Print alerts on standard output."""


class WebhookChannel(Delivery):
    type: Literal["webhook"]
    """POST JSON alerts, signed per Standard Webhooks when `secret` is set."""
    url: HttpUrl
    """The receiver's http(s) URL."""
    secret: str | None = None
    """Signing secret: base64, optionally prefixed whsec_ (use ${VAR})."""
    headers: dict[str, str] = {}
    """Extra HTTP headers sent with every delivery."""

    @field_validator("secret")
    @classmethod
    def _standard_webhooks_secret(cls, value: str | None) -> str | None:
        if value:
            decode_secret(value)
        return value


class SlackChannel(Delivery):
    type: Literal["slack"]
    """Post Block Kit messages to a Slack incoming webhook."""
    webhook_url: HttpUrl
    """The incoming-webhook URL (a secret: use ${SLACK_WEBHOOK_URL})."""


SMTP_SCHEMES = ("smtp://", "smtps://", "smtp+starttls://")


class EmailChannel(Delivery):
    type: Literal["email"]
    """Send multipart text + HTML email over SMTP."""
    smtp_url: str
    """smtp://, smtps:// or smtp+starttls://[user:password@]host[:port] (use ${SMTP_URL})."""
    from_: str = Field(alias="from")
    """Sender address."""
    to: Annotated[list[str], Field(min_length=1)]
    """Recipient addresses."""
    subject_prefix: str = "[pressmon]"
    """Put before every subject."""

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str) -> str:
        if not value.startswith(SMTP_SCHEMES):
            raise ValueError("smtp_url must start with smtp://, smtps:// or smtp+starttls://")
        return value


class AppriseChannel(Delivery):
    type: Literal["apprise"]
    """Notify through any Apprise URL: Telegram, Teams, Discord, ntfy…"""
    url: str
    """The Apprise URL (use ${APPRISE_URL}: it usually carries a token)."""


ChannelConfig = Annotated[ConsoleChannel | WebhookChannel | SlackChannel | EmailChannel
                          | AppriseChannel, Field(discriminator="type")]
AnyChannel = ConsoleChannel | WebhookChannel | SlackChannel | EmailChannel | AppriseChannel


class RetentionSettings(_Strict):
    articles: Duration = timedelta(days=90)
    """Articles without hits published and fetched longer ago than this are pruned (daily, in
    small batches); hits and their articles stay."""


class HealthSettings(_Strict):
    notify: list[str] = []
    """Channels for feed health alerts."""
    failing_for: Duration = timedelta(hours=1)
    """A feed failing this long raises a health alert (and a recovery message when it ends)."""
    silent_for: Duration = timedelta(days=2)
    """A feed with no new entry this long raises a health alert."""


class DefaultSettings(_Strict):
    notify: list[str] = ["console"]
    """Channels for rules that do not name their own."""


class ConfigFile(_Strict):
    database: str = "sqlite:///data/pressmon.db"
    """SQLAlchemy URL: sqlite:///path or postgresql://…; PRESSMON_DATABASE_URL wins."""
    poll: PollSettings = PollSettings()
    """Polling settings."""
    server: ServerSettings = ServerSettings()
    """HTTP server settings."""
    feeds: list[FeedEntry] = []
    """Feeds to poll."""
    rules: list[str] = ["rules/*.yaml"]
    """Rules files or globs, relative to this file."""
    channels: dict[Identifier, ChannelConfig] = {"console": ConsoleChannel(type="console")}
    """Alert channels by name."""
    retention: RetentionSettings = RetentionSettings()
    """How long to keep articles."""
    health: HealthSettings = HealthSettings()
    """Feed health alerts."""
    defaults: DefaultSettings = DefaultSettings()
    """Defaults for rules."""


# --------------------------------------------------------------------------- rules files

class EntityConfig(_Strict):
    type: str | None = None
    """Kind of entity: PERSON, GPE, LOC, ORG… (checked by NER with verify: ner)."""
    aliases: Annotated[list[str], Field(min_length=1)]
    """Names that mean this entity; each matches as a phrase."""
    not_: list[str] = Field(default=[], alias="not")
    """Longer names that contain an alias but are someone or something else."""
    verify: Literal["ner"] | None = None
    """'ner': count an occurrence only if NER gives it this entity's type."""


class RuleConfig(_Strict):
    id: Identifier
    """Unique rule id."""
    name: str | None = None
    """Display name in alerts (default: the id)."""
    query: str
    """The query: words, "phrases", @entities, AND/OR/NOT, NEAR/n, fields…"""
    exclude: str | None = None
    """A query; articles it matches do not hit."""
    feeds: list[str] = []
    """Feed ids or globs this rule applies to (default: all)."""
    tags: list[str] = []
    """Free labels."""
    languages: list[str] = []
    """Languages this rule applies to, e.g. [en] (default: all)."""
    notify: list[str] | None = None
    """Channels for this rule's alerts (default: defaults.notify; [] stores only)."""
    priority: Literal["low", "normal", "high"] = "normal"
    """low, normal or high."""
    throttle: Rate | None = None
    """At most N alerts per period, e.g. 20/h (not enforced yet)."""
    enabled: bool = True
    """false skips the rule."""


class RulesFile(_Strict):
    entities: dict[Identifier, EntityConfig] = {}
    """Named entities by id; queries refer to them as @id."""
    rules: list[RuleConfig] = []
    """Watch rules."""


# --------------------------------------------------------------------------- loaded result

@dataclass(frozen=True)
class Rule:
    """A validated rule, with where it was defined and where its alerts go."""

    config: RuleConfig
    file: Path
    notify: tuple[str, ...]

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def name(self) -> str:
        return self.config.name or self.config.id

    def spec(self) -> RuleSpec:
        c = self.config
        return RuleSpec(id=c.id, query=c.query, exclude=c.exclude, feeds=tuple(c.feeds),
                        languages=tuple(c.languages), enabled=c.enabled)


@dataclass
class Settings:
    """Everything the daemon needs, validated."""

    path: Path
    file: ConfigFile
    database_url: str
    feeds: list[FeedConfig]
    rules: list[Rule]
    entities: dict[str, EntitySpec]
    warnings: list[Problem] = field(default_factory=list)

    @property
    def poll(self) -> PollSettings:
        return self.file.poll

    @property
    def channels(self) -> dict[str, AnyChannel]:
        return self.file.channels

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def secrets(self) -> list[str]:
        """Every configured value that must never appear in a log line or an error."""
        from urllib.parse import urlsplit

        out: list[str] = []
        for channel in self.channels.values():
            for key in ("url", "webhook_url", "secret", "smtp_url"):
                value = getattr(channel, key, None)
                if not value:
                    continue
                out.append(str(value))
                if key != "secret":
                    parts = urlsplit(str(value))
                    out += [p for p in (parts.password, parts.path, parts.query) if p and len(p) > 8]
        password = _url_password(self.database_url)
        if password:
            out.append(password)
        return out

    def matcher(self) -> Matcher:
        return Matcher([r.spec() for r in self.rules], self.entities)


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas of ``pressmon.yaml`` and of a rules file, for editors (``pressmon schema``)."""
    schemas = {}
    for name, model, title in (("config", ConfigFile, "pressmon configuration"),
                               ("rules", RulesFile, "pressmon rules file")):
        schema = model.model_json_schema(by_alias=True)
        schemas[name] = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                         "title": title, **{k: v for k, v in schema.items() if k != "title"}}
    return schemas


def watched_files(settings: Settings) -> list[Path]:
    """The config file and every rules file its globs match now (new files count too)."""
    files = [settings.path]
    files += [_opml_path(settings.path, f) for f in settings.file.feeds if isinstance(f, OpmlImport)]
    base = settings.path.parent
    for pattern in settings.file.rules:
        full = pattern if os.path.isabs(pattern) else str(base / pattern)
        files += [Path(p) for p in sorted(glob.glob(full))] if glob.has_magic(full) else [Path(full)]
    return files


def _url_password(url: str) -> str | None:
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def default_config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


# --------------------------------------------------------------------------- validation helpers

def _known_keys() -> set[str]:
    models: tuple[type[BaseModel], ...] = (
        PollSettings, ServerSettings, FeedConfig, OpmlImport, ConsoleChannel, WebhookChannel,
        SlackChannel, EmailChannel, AppriseChannel, DigestSettings,
        RetentionSettings, HealthSettings, DefaultSettings, ConfigFile, EntityConfig, RuleConfig,
        RulesFile)
    return {f.alias or name for m in models for name, f in m.model_fields.items()}


_ALL_KEYS = _known_keys()


def _data_path(data: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Map a pydantic error location onto real keys, dropping union tags and the like."""
    path: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part not in _ALL_KEYS | {"not"}:
            continue  # a discriminator tag or a validator name, not a key
        else:
            path.append(part)  # a missing key: report it under its parent's line
            node = None
    return tuple(path)


def _message(error: Any, key: str | int | None) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(key), sorted(_ALL_KEYS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown key '{key}'{hint}"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        return f"unknown type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return "'type' is required"
    message: str = error["msg"]
    return message.removeprefix("Value error, ")


def _validate(model: type[BaseModel], source: Source) -> tuple[Any, list[Problem]]:
    try:
        return model.model_validate(source.data), []
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path = _data_path(source.data, tuple(error["loc"]))
            if error["type"] == "union_tag_invalid":
                path = (*path, "type")
            key = path[-1] if path else None
            problems.append(source.problem(path, _message(error, key)))
        return None, problems


def _load_rules_files(config_file: Path, patterns: list[str], main: Source) -> tuple[
        list[tuple[Source, RulesFile]], list[Problem]]:
    base = config_file.parent
    loaded: list[tuple[Source, RulesFile]] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    for index, pattern in enumerate(patterns):
        full = pattern if os.path.isabs(pattern) else str(base / pattern)
        matches = sorted(glob.glob(full)) if glob.has_magic(full) else [full]
        if not matches:
            problems.append(main.problem(("rules", index), f"no rules file matches {pattern!r}"))
        for name in matches:
            path = Path(name)
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            source, errs = load_source(path)
            problems += errs
            if source is None:
                continue
            problems += interpolate(source)
            rules_file, errs = _validate(RulesFile, source)
            problems += errs
            if rules_file is not None:
                loaded.append((source, rules_file))
    return loaded, problems


def _opml_path(config_path: Path, entry: OpmlImport) -> Path:
    path = Path(entry.opml)
    return path if path.is_absolute() else config_path.parent / path


def _expand_feeds(config: ConfigFile, config_path: Path, main: Source,
                  problems: list[Problem]) -> list[FeedConfig]:
    """Feeds in config order, with each ``opml:`` entry replaced by the feeds it lists.

    A feed listed explicitly wins over the same URL in an OPML file.
    """
    explicit = [f for f in config.feeds if isinstance(f, FeedConfig)]
    taken = {f.id for f in explicit}
    urls = {f.url for f in explicit}
    feeds: list[FeedConfig] = []
    for index, entry in enumerate(config.feeds):
        if isinstance(entry, FeedConfig):
            feeds.append(entry)
            continue
        path = _opml_path(config_path, entry)
        try:
            imported = read_opml(path.read_bytes(), taken=taken)
        except OSError as exc:
            problems.append(main.problem(("feeds", index, "opml"),
                                         f"cannot read {path}: {exc.strerror or exc}"))
            continue
        except OpmlError as exc:
            problems.append(main.problem(("feeds", index, "opml"), f"{path}: {exc}"))
            continue
        for feed in imported:
            if feed.url not in urls:
                urls.add(feed.url)
                feeds.append(FeedConfig(id=feed.id, url=feed.url, name=feed.name,
                                        tags=list(feed.tags)))
    return feeds


def _salvage(data: Any) -> ConfigFile:
    """The parts of an invalid config that rules validation needs: rule globs, channel names."""
    data = data if isinstance(data, dict) else {}
    rules = data.get("rules")
    channels = data.get("channels")
    return ConfigFile.model_construct(
        rules=rules if isinstance(rules, list) and all(isinstance(r, str) for r in rules)
        else ["rules/*.yaml"],
        channels=dict.fromkeys(channels) if isinstance(channels, dict)
        else {"console": ConsoleChannel(type="console")},
        feeds=[], defaults=DefaultSettings.model_construct(notify=[]),
        health=HealthSettings.model_construct(notify=[]))


def load_settings(path: Path | str | None = None, *, check_queries: bool = True) -> Settings:
    """Load and validate the config and every rules file it includes.

    Raises ConfigError listing every problem found.
    """
    config_path = Path(path) if path is not None else default_config_path()
    main, problems = load_source(config_path)
    if main is None:
        raise ConfigError(problems)
    problems += interpolate(main)
    config, errs = _validate(ConfigFile, main)
    problems += errs
    if config is None:
        # Keep going with what can be read, so one run reports the rules files' errors too.
        config = _salvage(main.data)
    warnings: list[Problem] = []

    feeds = _expand_feeds(config, config_path, main, problems)
    seen_feeds: dict[str, int] = {}
    for index, entry in enumerate(config.feeds):
        if isinstance(entry, FeedConfig):
            if entry.id in seen_feeds:
                problems.append(main.problem(
                    ("feeds", index, "id"),
                    f"duplicate feed id {entry.id!r} (also feeds[{seen_feeds[entry.id]}])"))
            seen_feeds[entry.id] = index

    channel_names = set(config.channels)

    def check_channels(source: Source, path: tuple[str | int, ...], names: list[str]) -> None:
        for i, name in enumerate(names):
            if name not in channel_names:
                known = ", ".join(sorted(channel_names)) or "none"
                problems.append(source.problem((*path, i),
                                               f"unknown channel {name!r} (channels: {known})"))

    check_channels(main, ("defaults", "notify"), config.defaults.notify)
    check_channels(main, ("health", "notify"), config.health.notify)

    rules_files, errs = _load_rules_files(config_path, config.rules, main)
    problems += errs

    entities: dict[str, EntitySpec] = {}
    entity_files: dict[str, Path] = {}
    rules: list[Rule] = []
    rule_sources: dict[str, tuple[Source, int]] = {}
    for source, rules_file in rules_files:
        for entity_id, entity in rules_file.entities.items():
            if entity_id in entities:
                problems.append(source.problem(
                    ("entities", entity_id),
                    f"entity {entity_id!r} is already defined in {entity_files[entity_id]}"))
                continue
            entities[entity_id] = EntitySpec(id=entity_id, aliases=tuple(entity.aliases),
                                             not_names=tuple(entity.not_), type=entity.type,
                                             verify=entity.verify)
            entity_files[entity_id] = source.file
            if entity.verify == "ner":
                if not entity.type:
                    problems.append(source.problem(("entities", entity_id, "verify"),
                                                   "verify: ner needs the entity's type "
                                                   "(PERSON, GPE, LOC, ORG…)"))
                elif not nlp.available():
                    warnings.append(source.problem(
                        ("entities", entity_id, "verify"),
                        f"NER is {nlp.status()}; matched without verification"))
        for index, rule in enumerate(rules_file.rules):
            if rule.id in rule_sources:
                other, other_index = rule_sources[rule.id]
                problems.append(source.problem(
                    ("rules", index, "id"),
                    f"duplicate rule id {rule.id!r} (also {other.file}, rules[{other_index}])"))
                continue
            rule_sources[rule.id] = (source, index)
            if rule.notify is not None:
                check_channels(source, ("rules", index, "notify"), rule.notify)
            for i, pattern in enumerate(rule.feeds):
                if not any(fnmatch.fnmatchcase(f.id, pattern) for f in feeds):
                    warnings.append(source.problem(("rules", index, "feeds", i),
                                                   f"{pattern!r} matches no configured feed"))
            notify = tuple(rule.notify if rule.notify is not None else config.defaults.notify)
            rules.append(Rule(config=rule, file=source.file, notify=notify))

    if check_queries:
        for error in Matcher.check([r.spec() for r in rules], entities):
            source, index = rule_sources[error.rule_id]
            problems.append(source.problem(("rules", index, error.key),
                                           f"column {error.column}: {error.message}"))

    if problems:
        raise ConfigError(problems)
    database_url = os.environ.get(DATABASE_ENV) or config.database
    return Settings(path=config_path, file=config, database_url=database_url, feeds=feeds,
                    rules=rules, entities=entities, warnings=warnings)
