"""Post-processing: Parameter Stats (NNC's Utils plugin) - statistics of every tensor of a model."""
from __future__ import annotations

from nnc_web.plugins.postprocess import output_errors, output_param, output_path, record_outputs
from nnc_web.plugins.registry import Param, Plugin, register


def run(ctx, params: dict) -> list:
    from nnc_web.engine.analysis.parameter_stats import (
        bundle_weight_files,
        parameter_stats,
        write_parameter_stats,
    )

    files = bundle_weight_files(params["model"])
    stats = parameter_stats(files)
    path = output_path(ctx, params, (".csv",))
    write_parameter_stats(path, stats)
    total = sum(int(s["size"]) for s in stats)
    ctx.log(f"{len(stats)} tensors, {total:,} values, written to {path.name}")
    return [path]


PLUGIN = register(Plugin(
    id="parameter_stats", kind="postprocess", group="Utils", title="Parameter Stats",
    description="For every tensor of the trained model (classifiers, the tabular MLP, PaDiM's Gaussians, "
                "PatchCore's memory bank): name, shape, size, max, min, max_abs, min_abs, mean and the "
                "population standard deviation.",
    params=(
        Param("model", "model", "model", required=True, help="this run's model bundle"),
        output_param("parameter_stats.csv"),
    ),
    runner=run, completer=record_outputs, cross_check=lambda p: output_errors(p, ".csv"),
))
