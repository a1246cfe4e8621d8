"""Turn a run or a dataset into the Workspace a post-processing job reads and writes."""
from __future__ import annotations

from pathlib import Path

from nnc_web import storage
from nnc_web.datasets.models import Dataset
from nnc_web.evaluations.models import Postprocess
from nnc_web.plugins.context import Workspace
from nnc_web.projects.inputs import run_inputs
from nnc_web.projects.models import Run

EVALUATION_CSV = "output_result.csv"


def _csvs_in(folder: Path, outputs: list[str]) -> dict[str, Path]:
    """The CSVs a csv parameter may choose: those at the top of the folder, then plugin outputs below it."""
    found: dict[str, Path] = {}
    if folder.is_dir():
        names = sorted(p.name for p in folder.glob("*.csv") if p.is_file())
        if EVALUATION_CSV in names:  # the evaluation output first, as NNC's default `input`
            names.remove(EVALUATION_CSV)
            names.insert(0, EVALUATION_CSV)
        found.update({name: folder / name for name in names})
    for relative in outputs:
        path = folder / relative
        if relative.endswith(".csv") and relative not in found and path.is_file():
            found[relative] = path
    return found


def _output_paths(queryset) -> list[str]:
    return [o["path"] for outputs in queryset.values_list("outputs", flat=True) for o in outputs]


def run_workspace(run: Run) -> Workspace:
    folder = run.folder()
    roots = [folder]
    if run.valid_dataset is not None:
        roots.append(run.valid_dataset.folder())
    roots.append(storage.user_dir(run.project.owner_id))
    model = folder / "model"
    return Workspace(folder=folder, roots=tuple(roots),
                     csvs=_csvs_in(folder, _output_paths(Postprocess.objects.filter(run=run))),
                     model=model if (model / "manifest.json").is_file() else None,
                     url_base=f"/api/runs/{run.pk}", run=run_inputs(run))


def dataset_workspace(dataset: Dataset) -> Workspace:
    folder = storage.dataset_outputs_dir(dataset.owner_id, dataset.pk)
    outputs = _csvs_in(folder, _output_paths(Postprocess.objects.filter(dataset=dataset)))
    outputs.pop(dataset.csv_name, None)  # never shadows the dataset's own CSV (new outputs avoid the name)
    csvs = {dataset.csv_name: dataset.csv_path(), **outputs}
    return Workspace(folder=folder, roots=(folder, dataset.folder(), storage.user_dir(dataset.owner_id)),
                     csvs=csvs, url_base=f"/api/datasets/{dataset.pk}")


def resolve_postprocess(user, context: dict) -> dict:
    """The context resolver of post-processing jobs (`{"postprocess": "run"|"dataset", ...}`)."""
    if context["postprocess"] == "run":
        run = Run.objects.select_related("project", "valid_dataset", "train_dataset").get(
            pk=context["run"], project__owner=user)
        return {"_workspace": run_workspace(run)}
    if context["postprocess"] == "dataset":
        return {"_workspace": dataset_workspace(Dataset.objects.get(pk=context["dataset"], owner=user))}
    folder = Path(context["folder"])
    return {"_workspace": Workspace(folder=folder, roots=tuple(Path(r) for r in context.get("roots", [folder])),
                                    csvs={})}
