"""Pre-processing: anomaly-detection datasets from an archive in the MVTec AD layout."""
from __future__ import annotations

from pathlib import Path

from nnc_web.engine.anomaly.dataset import build_anomaly_datasets
from nnc_web.plugins.common import SOURCE_HELP, register_datasets, shaping_of, shaping_params
from nnc_web.plugins.registry import NAME_PATTERN, Param, Plugin, register
from nnc_web.plugins.sources import prepare_source


def run(ctx, params: dict) -> list:
    source = prepare_source(ctx, Path(params["source"]))
    return build_anomaly_datasets(source, ctx.path("build"), shaping_of(params), params["prefix"], ctx)


def _prefix_errors(params: dict) -> dict[str, str]:
    if params["channel"] != 3:
        return {"channel": "PaDiM and PatchCore need RGB images: use 3"}
    prefix = params.get("prefix") or ""
    return {} if not prefix or NAME_PATTERN.match(prefix + "train") else {"prefix": "use letters, digits, '.', '_' or '-'"}


PLUGIN = register(Plugin(
    id="anomaly_detection_dataset",
    kind="preprocess",
    title="Anomaly detection (MVTec AD layout)",
    description="Creates the two datasets PaDiM and PatchCore need from an archive in the MVTec AD layout: "
                "<prefix>train from train/good (normal images only) and <prefix>test from test/good (label 0) "
                "and test/<defect> (label 1) with the masks of ground_truth/<defect>/<name>_mask.png as a mask "
                "column, for pixel-level AUROC. Images are shaped to width x height (224 x 224 as NNC asks).",
    params=(
        Param("source", "file", required=True, label="MVTec AD archive",
              help=f"{SOURCE_HELP} with train/good, test/... and ground_truth/..."),
        *shaping_params(width=224, height=224, mode="resize"),
        Param("prefix", "text", "", label="Dataset name prefix",
              help="prefix of the two dataset names (e.g. bottle_)"),
    ),
    runner=run,
    completer=register_datasets,
    cross_check=_prefix_errors,
))
