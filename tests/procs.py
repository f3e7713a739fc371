"""Processes as Linux shows them in /proc: what tests need to check that workers come and go."""

from __future__ import annotations

from pathlib import Path


def _stat(path: Path) -> list[str] | None:
    """The fields of a ``stat`` file after the command name (state, ppid, …)."""
    try:
        return path.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    fields = _stat(Path(f"/proc/{pid}/stat"))
    return fields is not None and fields[0] != "Z"


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, children first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        if (fields := _stat(stat)) is not None:
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out
