"""Run `pressmon` as a real subprocess, the way an operator does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class DaemonProcess:
    def __init__(self, config: Path, log_dir: Path, *args: str, global_args: bool = False) -> None:
        self.config = config
        self.args = args
        self.global_args = global_args   # args go before the command (--log-level, --log-format)
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> DaemonProcess:
        self.runs += 1
        self.stdout = self.log_dir / f"daemon-{self.runs}.out"
        self.stderr = self.log_dir / f"daemon-{self.runs}.err"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("PRESSMON_DATABASE_URL", None)
        before, after = (self.args, ()) if self.global_args else ((), self.args)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", *before, "run", "--config", str(self.config),
             *after],
            cwd=ROOT, env=env, stdout=self.stdout.open("wb"), stderr=self.stderr.open("wb"))
        return self

    def stop(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds it took)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"daemon did not stop within {timeout}s\n{self.logs()}") from None
        return code, time.monotonic() - started

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logs(self) -> str:
        return self.stderr.read_text(errors="replace") if self.stderr.exists() else ""

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()
