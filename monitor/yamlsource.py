"""YAML documents that remember where every key came from, with ``${VAR}`` interpolation.

Configuration errors must name the file, the line and the key, so loading keeps a
map from each key path (``("channels", "desk", "url")``) to its 1-based line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]

_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a warning) in a configuration file."""

    file: Path
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


@dataclass
class Source:
    """A parsed YAML file: its data, and the line of every key and list item."""

    file: Path
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        # Fall back to the closest enclosing key: a missing key is reported at its parent.
        for cut in range(len(path), -1, -1):
            line = self.lines.get(path[:cut])
            if line is not None:
                return line
        return None

    def problem(self, path: Path_, message: str) -> Problem:
        return Problem(self.file, self.line_of(path), format_key(path), message)


def format_key(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None,
                f"duplicate key {key!r} (first defined on line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping  # type: ignore[arg-type]
)


def _collect_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            child = (*path, key)
            lines[child] = key_node.start_mark.line + 1
            _collect_lines(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines[child] = item.start_mark.line + 1
            _collect_lines(item, child, lines)


def load_source(file: Path) -> tuple[Source | None, list[Problem]]:
    """Read and parse one YAML file; problems instead of exceptions."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [Problem(file, None, "", f"cannot read file: {exc.strerror or exc}")]
    except UnicodeDecodeError as exc:
        return None, [Problem(file, None, "", f"not UTF-8 text: {exc}")]
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        detail = exc.problem or str(exc)
        if exc.context:
            detail = f"{exc.context}: {detail}" if exc.problem else exc.context
        return None, [Problem(file, line, "", f"invalid YAML: {detail}")]
    except yaml.YAMLError as exc:
        return None, [Problem(file, None, "", f"invalid YAML: {exc}")]
    source = Source(file, {} if data is None else data)
    if root is not None:
        _collect_lines(root, (), source.lines)
    return source, []


def interpolate(source: Source, environ: Mapping[str, str] | None = None) -> list[Problem]:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string value, in place."""
    env = os.environ if environ is None else environ
    problems: list[Problem] = []

    def expand(text: str, path: Path_) -> str:
        def repl(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name, default = m.group(1), m.group(2)
            value = env.get(name)
            if value is None or (value == "" and default is not None):
                if default is not None:
                    return default
                problems.append(source.problem(
                    path, f"environment variable {name} is not set "
                          f"(write ${{{name}:-default}} to give a default)"))
                return ""
            return value

        return _ENV.sub(repl, text)

    def walk(value: Any, path: Path_) -> Any:
        if isinstance(value, str):
            return expand(value, path)
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        return value

    source.data = walk(source.data, ())
    return problems
