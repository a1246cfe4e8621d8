"""Post-processing rules: start a plugin job on a run or a dataset (or headless on server files),
record what it produced, save a table's rows as a CSV, serve the images its cells point at."""
from __future__ import annotations

import json
import math
from pathlib import Path

from django.conf import settings
from django.db import transaction

from nnc_web import storage
from nnc_web.datasets.models import Dataset
from nnc_web.engine.analysis.outputs import reserve_output
from nnc_web.engine.analysis.table import CellResolver
from nnc_web.engine.atomic import replace_atomically
from nnc_web.engine.errors import UserError
from nnc_web.engine.imaging import cached_thumbnail
from nnc_web.engine.nnc_csv import write_csv
from nnc_web.engine.safe_paths import safe_join
from nnc_web.evaluations.models import Postprocess
from nnc_web.evaluations.tables import RowFilter, selected_rows
from nnc_web.evaluations.workspace import dataset_workspace, run_workspace
from nnc_web.jobs.models import Job
from nnc_web.jobs.services import create_job
from nnc_web.plugins import registry
from nnc_web.plugins.context import Workspace
from nnc_web.plugins.postprocess import taken_names
from nnc_web.projects.models import Run

THUMB_SIZE = 96
OUTPUT_KINDS = {".csv": "table", ".png": "image", ".jpg": "image", ".jpeg": "image", ".json": "plot"}


def _postprocess_plugin(plugin_id: str) -> registry.Plugin | None:
    plugin = registry.PLUGINS.get(plugin_id)
    return plugin if plugin is not None and plugin.kind == "postprocess" and not plugin.hidden else None


def start_postprocess(owner, *, plugin_id: str, raw_params: dict, run: Run | None = None,
                      dataset: Dataset | None = None, send: bool = True) -> tuple[Postprocess | None, dict]:
    """Validate the parameters against the run's (or dataset's) files and queue the job in its folder."""
    plugin = _postprocess_plugin(plugin_id)
    if plugin is None:
        return None, {"plugin": f"unknown post-processing plugin {plugin_id!r}"}
    if not isinstance(raw_params, dict):
        return None, {"params": "must be an object of parameter values"}
    workspace = run_workspace(run) if run is not None else dataset_workspace(dataset)
    params, errors = plugin.validate(owner, raw_params, trusted=False, workspace=workspace)
    if errors:
        return None, errors
    target = f"run {run.pk}" if run is not None else f"dataset {dataset.name}"
    context = {"postprocess": "run", "run": run.pk} if run is not None else \
        {"postprocess": "dataset", "dataset": dataset.pk}
    workspace.folder.mkdir(parents=True, exist_ok=True)
    with transaction.atomic():
        job = create_job(owner, plugin, params, title=f"{plugin.title} on {target}", send=send, context=context,
                         result_dir=str(workspace.folder))
        postprocess = Postprocess.objects.create(owner=owner, job=job, run=run, dataset=dataset,
                                                 plugin_id=plugin.id)
    return postprocess, {}


def start_headless_postprocess(owner, plugin: registry.Plugin, params: dict, send: bool = True) -> Job:
    """`run_plugin <id> --param input=/data/x.csv`: the job writes into its own job folder."""
    with transaction.atomic():
        job = create_job(owner, plugin, params, send=send)
        folder = storage.jobs_dir(owner.pk) / str(job.pk)
        given = {str(Path(v["path"]).parent if Path(v["path"]).is_file() else Path(v["path"]))
                 for v in params.values() if isinstance(v, dict) and "path" in v}
        # The folders of the given files, and the user's own data (output_result.csv names its images by path).
        roots = [str(folder), *sorted(given), str(storage.user_dir(owner.pk))]
        Job.objects.filter(pk=job.pk).update(context={"postprocess": "files", "folder": str(folder), "roots": roots},
                                             result_dir=str(folder))
    job.refresh_from_db()
    return job


def record_outputs(job, produced: list[Path] | None) -> None:
    """The completer of every post-processing plugin: the files it wrote, by kind, relative to its folder."""
    folder = Path(job.result_dir).resolve()
    outputs = []
    for path in produced or []:
        path = Path(path).resolve()
        relative = path.relative_to(folder).as_posix()
        kind = "plot" if path.name.endswith(".bokeh.json") else OUTPUT_KINDS.get(path.suffix.lower(), "file")
        outputs.append({"path": relative, "kind": kind})
    Postprocess.objects.filter(job_id=job.pk).update(outputs=outputs)


def workspace_of(run: Run | None = None, dataset: Dataset | None = None) -> Workspace:
    return run_workspace(run) if run is not None else dataset_workspace(dataset)


def save_rows(workspace: Workspace, csv_name: str, name: str, chosen: RowFilter, anomaly: bool,
              rows: list[int] | None = None) -> dict:
    """*Save these rows as CSV*: the header and the chosen rows, kept beside the source (never over it)."""
    table, indices = selected_rows(workspace, csv_name, chosen, anomaly, rows)
    if not indices:
        raise UserError("no rows to save: the filter matches none")
    stem = (name or "rows").strip().removesuffix(".csv")
    workspace.folder.mkdir(parents=True, exist_ok=True)
    target = reserve_output(workspace.folder, f"{stem}.csv", (".csv",), taken=taken_names(workspace))
    write_csv(target, table.header, [table.rows[i] for i in indices])
    return {"name": target.name, "rows": len(indices)}


IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff"}


def cell_file(workspace: Workspace, cell: str) -> tuple[Path, str]:
    """The image a table cell points at, found only inside the workspace's roots, and its content type:
    only files whose name ends in an image suffix (never `x.png.html`), served as that type."""
    path = CellResolver(workspace.folder, list(workspace.roots)).resolve(cell)
    if path.suffix.lower() not in IMAGE_TYPES:
        raise UserError("not an image")
    return path, IMAGE_TYPES[path.suffix.lower()]


def cell_thumbnail(workspace: Workspace, user_id: int, cell: str) -> Path:
    """A small JPEG of a cell's image, made once in the user's hidden thumbnail cache."""
    source, _ = cell_file(workspace, cell)
    root = storage.user_dir(user_id).resolve()
    try:
        key = source.resolve().relative_to(root).as_posix()
    except ValueError:
        key = source.resolve().as_posix().lstrip("/")
    return cached_thumbnail(source, root / ".thumbs" / (key + ".jpg"), THUMB_SIZE, settings.NNC_MAX_IMAGE_PIXELS)


def output_file(workspace: Workspace, relative: str) -> Path:
    """A file in the workspace folder (an output to download or show); nothing outside it."""
    path = safe_join(workspace.folder, relative)
    if not path.is_file() or path.name in ("checkpoint.pt", "best.pt"):
        raise FileNotFoundError(relative)
    return path


def evaluate_run(run: Run, send: bool = True):
    """Queue a fresh evaluation of a finished run (output_result.csv and metrics.json are rewritten)."""
    if not (run.folder() / "model" / "manifest.json").exists():
        raise UserError("this run has no trained model yet")
    if run.valid_dataset_id is None:
        raise UserError("the run's validation dataset was deleted")
    with transaction.atomic():
        # One writer of output_result.csv at a time: the row lock orders two clicks on Evaluate again.
        Run.objects.select_for_update().filter(pk=run.pk).first()
        busy = Job.objects.filter(plugin_id="evaluation", context__run=run.pk,
                                  state__in=(Job.State.QUEUED, Job.State.RUNNING))
        if busy.exists() or (run.job is not None and not run.job.finished):
            raise UserError("this run is being trained or evaluated: wait for that job to end")
        return create_job(run.project.owner, registry.PLUGINS["evaluation"], {}, title=f"Evaluation of run {run.pk}",
                          send=send, context={"run": run.pk}, result_dir=str(run.folder()))


def set_threshold(run: Run, value) -> Run:
    """Keep the user's anomaly threshold on the run and in its bundle (what inference will use)."""
    if run.metrics.get("kind") != "anomaly":
        raise UserError("only anomaly-detection runs have a threshold")
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise UserError("threshold must be a number") from None
    if not math.isfinite(threshold):
        raise UserError("threshold must be a finite number")
    manifest_path = run.folder() / "model" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["threshold"] = threshold
    replace_atomically(manifest_path, lambda path: path.write_text(json.dumps(manifest, indent=1)))
    run.metrics = {**run.metrics, "chosen_threshold": threshold}
    run.save(update_fields=["metrics"])
    return run


def csv_to_dataset(owner, workspace: Workspace, context: dict, csv_name: str, name: str,
                   send: bool = True) -> tuple[Job | None, dict]:
    """*Make a dataset from this CSV*: a conversion job whose dataset appears in the user's list."""
    plugin = registry.PLUGINS["csv_dataset"]
    params, errors = plugin.validate(owner, {"input": csv_name, "name": name}, trusted=False, workspace=workspace)
    if errors:
        return None, errors
    job = create_job(owner, plugin, params, title=f"Dataset {params['name']} from {csv_name}", send=send,
                     context=context)
    return job, {}
