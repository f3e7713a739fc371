"""`pressmon schema`: editors get a JSON Schema that agrees with the validator."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from monitor.cli import main
from monitor.config import json_schemas
from tests.conftest import ROOT

SCHEMA_DIR = ROOT / "config" / "schema"


def test_committed_schemas_are_current(tmp_path: Path) -> None:
    assert main(["schema", "--output-dir", str(tmp_path)]) == 0
    for name in ("pressmon.schema.json", "rules.schema.json"):
        assert (tmp_path / name).read_text() == (SCHEMA_DIR / name).read_text(), (
            f"config/schema/{name} is stale: run `pressmon schema --output-dir config/schema`")


def test_shipped_files_validate_against_the_schema() -> None:
    schemas = json_schemas()
    config = yaml.safe_load((ROOT / "config" / "pressmon.yaml").read_text())
    jsonschema.validate(config, schemas["config"])
    for rules_file in (ROOT / "config" / "rules").glob("*.yaml"):
        jsonschema.validate(yaml.safe_load(rules_file.read_text()), schemas["rules"])


@pytest.mark.parametrize(("document", "which"), [
    ({"poll": {"intervall": "5m"}}, "config"),
    ({"poll": {"interval": "five minutes"}}, "config"),
    ({"poll": {"max_body": "lots"}}, "config"),
    ({"channels": {"x": {"type": "pager"}}}, "config"),
    ({"rules": [{"id": "r", "query": "x", "priority": "urgent"}]}, "rules"),
    ({"rules": [{"id": "r", "query": "x", "throttle": "often"}]}, "rules"),
    ({"rules": [{"query": "x"}]}, "rules"),
])
def test_schema_rejects_what_the_validator_rejects(document: dict[str, object], which: str) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, json_schemas()[which])


def test_schema_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "rules"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "pressmon rules file"
    assert "rules" in schema["properties"] and "entities" in schema["properties"]
