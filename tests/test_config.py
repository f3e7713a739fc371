"""Configuration: validation, errors that name file, line and key, `pressmon check`."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import ConfigError, load_settings
from monitor.units import parse_duration, parse_rate, parse_size
from tests.conftest import ROOT

SHIPPED = ROOT / "config" / "pressmon.yaml"


def test_shipped_config_passes_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(SHIPPED)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "error" not in out
    settings = load_settings(SHIPPED)
    assert {"aliyev-erdogan", "karabakh", "grain-corridor"} <= {r.id for r in settings.rules}
    assert len(settings.feeds) >= 10
    assert all(r.notify == ("console",) for r in settings.rules)


def test_check_as_a_command_exits_1_and_names_every_problem(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "watch.yaml").write_text(
        "entities:\n"
        "  karabakh:\n"
        "    aliases: [Karabakh]\n"
        "rules:\n"
        "  - id: ok\n"
        "    query: '@karabakh'\n"
        "  - id: broken\n"
        "    query: '(Karabakh OR'\n"
        "  - id: nowhere\n"
        "    query: 'Baku'\n"
        "    notify: [slack-desk]\n", encoding="utf-8")
    config = tmp_path / "pressmon.yaml"
    config.write_text(
        "database: sqlite:///x.db\n"
        "poll:\n"
        "  intervall: 5m\n"
        "rules: [rules/*.yaml]\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "monitor", "check", "--config", str(config)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(f"{config}:3: poll.intervall: unknown key 'intervall'; did you mean 'interval'?"
               in line for line in lines), result.stdout
    rules = tmp_path / "rules" / "watch.yaml"
    assert any(f"{rules}:8: rules[1].query: column" in line for line in lines), result.stdout
    assert any(f"{rules}:11: rules[2].notify[0]: unknown channel 'slack-desk'" in line
               for line in lines), result.stdout
    assert "3 error(s)" in result.stdout


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pressmon.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return [str(p) for p in info.value.problems]


def test_wrong_types_and_bad_units_are_located(tmp_path: Path) -> None:
    path = write(tmp_path, "poll:\n  timeout: soon\n  max_body: lots\n  concurrency: many\n"
                           "rules: []\n")
    found = problems(path)
    assert any(":2: poll.timeout: invalid duration 'soon'" in p for p in found), found
    assert any(":3: poll.max_body: invalid size 'lots'" in p for p in found), found
    assert any(":4: poll.concurrency:" in p for p in found), found


def test_unknown_channel_type_and_missing_required_key(tmp_path: Path) -> None:
    path = write(tmp_path, "channels:\n  desk:\n    type: pager\n  ops:\n    type: webhook\n"
                           "rules: []\n")
    found = problems(path)
    assert any(":3: channels.desk.type: unknown type 'pager'" in p for p in found), found
    assert any(":4: channels.ops.url: required key is missing" in p for p in found), found


def test_env_interpolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_URL", "http://127.0.0.1:9/hook")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    path = write(tmp_path, "channels:\n  ops:\n    type: webhook\n    url: ${HOOK_URL}\n"
                           "  other:\n    type: webhook\n"
                           "    url: ${NOT_SET_ANYWHERE:-http://127.0.0.1:9/default}\n"
                           "defaults:\n  notify: [ops]\nrules: []\n")
    settings = load_settings(path)
    assert settings.channels["ops"].url == "http://127.0.0.1:9/hook"  # type: ignore[union-attr]
    assert settings.channels["other"].url == "http://127.0.0.1:9/default"  # type: ignore[union-attr]

    path = write(tmp_path, "database: ${NOT_SET_ANYWHERE}\nrules: []\n")
    found = problems(path)
    assert any(":1: database: environment variable NOT_SET_ANYWHERE is not set" in p
               for p in found), found


def test_database_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRESSMON_DATABASE_URL", "sqlite:///elsewhere.db")
    settings = load_settings(write(tmp_path, "database: sqlite:///here.db\nrules: []\n"))
    assert settings.database_url == "sqlite:///elsewhere.db"


def test_yaml_syntax_error_and_duplicate_keys(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "poll:\n  interval: 5m\n   timeout: [\n"))
    assert len(found) == 1 and "invalid YAML" in found[0] and str(tmp_path) in found[0]
    found = problems(write(tmp_path, "poll:\n  interval: 5m\n  interval: 6m\n"))
    assert any(":3:" in p and "duplicate key 'interval' (first defined on line 2)" in p
               for p in found), found


def test_duplicate_ids_and_unknown_entity(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "a.yaml").write_text(
        "rules:\n  - id: r1\n    query: '@nobody'\n  - id: r1\n    query: x\n", encoding="utf-8")
    found = problems(write(tmp_path, "feeds:\n  - {id: f, url: 'http://a.test/'}\n"
                                     "  - {id: f, url: 'http://b.test/'}\nrules: [rules/*.yaml]\n"))
    assert any(":3: feeds[1].id: duplicate feed id 'f'" in p for p in found), found
    assert any(":4: rules[1].id: duplicate rule id 'r1'" in p for p in found), found
    assert any(":3: rules[0].query:" in p and "nobody" in p for p in found), found


def test_rules_glob_that_matches_nothing(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "rules: [missing/*.yaml]\n"))
    assert any(":1: rules[0]: no rules file matches 'missing/*.yaml'" in p for p in found), found


def test_webhook_secret_must_be_base64(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "channels:\n  ops:\n    type: webhook\n"
                                     "    url: http://127.0.0.1:9/\n    secret: 'not base64!'\n"
                                     "rules: []\n"))
    assert any(":5: channels.ops.secret: secret must be base64" in p for p in found), found


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("500ms", 0.5),
    (45, 45),
])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "10", "m", "10 minutes", "1h junk", "-5m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(("text", "size"), [
    ("15MiB", 15 * 1024**2), ("512KiB", 512 * 1024), ("10MB", 10_000_000), ("1GiB", 1024**3),
    (2048, 2048), ("100", 100),
])
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size


def test_rates() -> None:
    assert parse_rate("20/h") == (20, timedelta(hours=1))
    assert parse_rate("100/2d") == (100, timedelta(days=2))
    for bad in ("20", "x/h", "0/h", "5/never"):
        with pytest.raises(ValueError):
            parse_rate(bad)
