"""What a plugin gets to know about the run or dataset it works on, as plain data.

Plugins never query the ORM: before a job runs, the app that owns its context (`{"run": id}` for
training and post-processing on a run, `{"dataset": id}` on a dataset) turns it into these objects,
and the plugin reads `params["_run"]` / `params["_workspace"]`. Apps register their resolvers at start.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunInputs:
    """A training run as its plugin needs it: datasets as CSV paths, config and parameters as they were."""

    run_id: int
    folder: Path
    train_csv: Path | None
    valid_csv: Path | None
    train_dataset_id: int | None
    valid_dataset_id: int | None
    config: dict
    params: dict
    metrics: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)  # the training dataset's (its import named them)

    def datasets(self) -> tuple[Path, Path]:
        """The training and validation CSVs; a run that lacks either cannot train."""
        from nnc_web.engine.errors import UserError

        if self.train_csv is None or self.valid_csv is None:
            raise UserError("the run needs a training and a validation dataset")
        return self.train_csv, self.valid_csv

    def dataset_ids(self) -> dict:
        """The bundle's record of the datasets it was trained and validated on."""
        return {"train": self.train_dataset_id, "valid": self.valid_dataset_id}

    def training_record(self, params: dict, best_epoch: int | None) -> dict:
        """The bundle's record of how it was trained: the config, the plugin's own parameters, the best epoch."""
        return {**self.config, **{k: v for k, v in params.items() if not k.startswith("_")}, "best_epoch": best_epoch}


@dataclass(frozen=True)
class Workspace:
    """Where a post-processing job reads and writes (NNC: the result folder is the working folder).

    `csvs` names the CSVs a `csv` parameter may choose; `roots` are the folders whose files a CSV cell
    may point at (the result, its validation dataset, the user's own data); `model` is the bundle."""

    folder: Path
    roots: tuple[Path, ...]
    csvs: dict[str, Path]
    model: Path | None = None
    url_base: str = ""  # /api/runs/<id> or /api/datasets/<id>: where the browser fetches its images
    run: RunInputs | None = None

    def csv(self, name: str) -> Path:
        from nnc_web.engine.errors import UserError

        if name in self.csvs:
            return self.csvs[name]
        raise UserError(f"no CSV {name!r} here; CSVs: {', '.join(self.csvs) or 'none'}")


Resolver = Callable[[Any, dict], dict]
RESOLVERS: dict[str, Resolver] = {}


def register_resolver(key: str, resolver: Resolver) -> None:
    """`resolver(user, context) -> {"_run": ..., "_workspace": ...}` for jobs whose context has `key`."""
    RESOLVERS[key] = resolver


Recorder = Callable[[Any, Any], None]
RECORDERS: dict[str, Recorder] = {}


def register_recorder(kind: str, recorder: Recorder) -> None:
    """`recorder(job, result)`: how the app that owns `kind` of result registers it (post-processing
    outputs), so plugin modules never import the apps that use them."""
    RECORDERS[kind] = recorder


def resolve_context(user, context: dict | None) -> dict:
    extra: dict = {}
    for key, resolver in RESOLVERS.items():
        if context and context.get(key) is not None:
            extra.update(resolver(user, context))
    return extra
