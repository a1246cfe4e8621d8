"""The callback protocol through which engine code reports progress and checks for cancellation."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

from nnc_web.engine.errors import JobCancelled, UserError
from nnc_web.engine.safe_paths import safe_join

__all__ = ["ConsoleReporter", "JobCancelled", "Reporter", "UserError", "check_stop", "log_list"]


class Reporter(Protocol):
    def log(self, message: str) -> None: ...

    def progress(self, done: int, total: int) -> None: ...

    def metric(self, name: str, step: int, value: float) -> None: ...

    def should_stop(self) -> bool: ...

    def path(self, name: str) -> Path: ...


class ConsoleReporter:
    """A reporter for scripts, benchmarks and tests: prints logs, keeps metrics, never stops."""

    def __init__(self, workdir: Path, quiet: bool = False) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.quiet = quiet
        self.lines: list[str] = []
        self.metrics: list[tuple[str, int, float]] = []
        self.last_progress: tuple[int, int] | None = None
        self.stop_requested = False

    def log(self, message: str) -> None:
        self.lines.append(message)
        if not self.quiet:
            print(message, flush=True)

    def progress(self, done: int, total: int) -> None:
        self.last_progress = (done, total)

    def metric(self, name: str, step: int, value: float) -> None:
        self.metrics.append((name, step, value))

    def should_stop(self) -> bool:
        return self.stop_requested

    def path(self, name: str) -> Path:
        return safe_join(self.workdir, name)


def check_stop(reporter: Reporter) -> None:
    """Raise JobCancelled when the job was asked to stop."""
    if reporter.should_stop():
        raise JobCancelled("cancelled by the user")


def log_list(reporter: Reporter, prefix: str, items: list[str], limit: int = 200) -> None:
    """Log one line per item, up to `limit`, then how many more there were."""
    for item in items[:limit]:
        reporter.log(f"{prefix}{item}")
    if len(items) > limit:
        reporter.log(f"... and {len(items) - limit} more")
