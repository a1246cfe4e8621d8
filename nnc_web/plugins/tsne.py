"""Post-processing: t-SNE (NNC's Utils plugin) - a 2-D or 3-D embedding of a variable, appended to
the table as `<variable>_tsne__0..`; feed it to Scatter Plot next."""
from __future__ import annotations

import numpy as np

from nnc_web.engine.analysis.table import find_columns, load_table, variable_names
from nnc_web.engine.errors import UserError
from nnc_web.engine.reporting import log_list
from nnc_web.plugins.postprocess import (
    input_param,
    max_pixels,
    output_errors,
    output_param,
    output_path,
    record_outputs,
    resolver_for,
)
from nnc_web.plugins.registry import Param, Plugin, register

FEATURES = "features"


def _model_features(ctx, params: dict, table, resolver) -> tuple[np.ndarray, list[int], list[str]]:
    """The model's penultimate features of each row's image (the `x` column)."""
    from nnc_web.engine.analysis.tsne import features_of_images
    from nnc_web.engine.training.trainer import resolve_device

    if params["_workspace"].model is None:
        raise UserError("the features variable needs a trained model: run t-SNE on a training run")
    column = find_columns(table.header, "x")[0]
    paths, rows, skipped = [], [], []
    for index, row in enumerate(table.rows):
        try:
            paths.append(resolver.resolve(row[column]))
            rows.append(index)
        except (UserError, IndexError) as exc:
            skipped.append(f"line {index + 2}: {exc}")  # as load_vectors says it: the CSV's line number
    device = resolve_device("auto")
    ctx.log(f"computing the model's features of {len(paths)} images on {device}")
    features, kept, unreadable = features_of_images(params["_workspace"].model, paths, device, ctx,
                                                    max_pixels=max_pixels())
    return features, [rows[i] for i in kept], skipped + unreadable


def run(ctx, params: dict) -> list:
    from nnc_web.engine.analysis.outputs import append_columns_csv
    from nnc_web.engine.analysis.tsne import embed, embedding_columns, load_vectors, tsne_columns

    table = load_table(params["input"])
    resolver = resolver_for(params, params["input"])
    variable = params["variable"]
    if variable == FEATURES and FEATURES not in variable_names(table.header):  # a column named so wins
        vectors, rows, skipped = _model_features(ctx, params, table, resolver)
    else:
        vectors, rows, skipped = load_vectors(table, variable, resolver, ctx, max_pixels())
    log_list(ctx, "skipped ", skipped)
    ctx.log(f"t-SNE of {len(rows)} rows x {vectors.shape[1] if vectors.ndim == 2 else 0} values, "
            f"dim {params['dim']}, perplexity {params['perplexity']}, seed {params['seed']}")
    embedding = embed(vectors, dim=params["dim"], perplexity=params["perplexity"], seed=params["seed"], reporter=ctx,
                      source=params["input"].name)
    columns = embedding_columns(embedding, rows, len(table.rows))
    path = output_path(ctx, params, (".csv",))
    append_columns_csv(table, tsne_columns(variable, params["dim"]), columns, path)
    ctx.log(f"wrote {path.name}: the input plus {', '.join(tsne_columns(variable, params['dim']))}")
    return [path]


PLUGIN = register(Plugin(
    id="tsne", kind="postprocess", group="Utils", title="t-SNE",
    description="Embeds a variable (an image column, a vector x__0.., or the model's penultimate features, "
                "which separate classes far better than raw pixels) in 2 or 3 dimensions with t-SNE "
                "(openTSNE's FFT-accelerated t-SNE), appending <variable>_tsne__0.. to the table. "
                "Visualizing Data using t-SNE (van der Maaten & Hinton, 2008).",
    params=(
        input_param(),
        Param("variable", "variable", "x", required=True, extras=(FEATURES,),
              help="the variable to embed; `features` = the model's penultimate features of x"),
        Param("dim", "int", 2, choices=(2, 3), help="dimensions of the embedding"),
        Param("perplexity", "float", 30.0, min=1.0, max=1000.0,
              help="effective number of neighbours (lowered, with a log line, when there are too few rows)"),
        Param("seed", "int", 0, min=0, max=2**31 - 1, help="random seed (the same seed gives the same map)"),
        output_param("tsne.csv"),
    ),
    runner=run, completer=record_outputs, cross_check=lambda p: output_errors(p, ".csv"),
    uses_model=lambda params: params.get("variable") == FEATURES,
))
