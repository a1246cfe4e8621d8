"""Built-in algorithm: Tabular classifier/regressor (an MLP over a tabular dataset)."""
from __future__ import annotations

import json

from nnc_web.plugins.registry import Param, Plugin, register
from nnc_web.plugins.transfer_learning import complete


def run(ctx, params: dict) -> dict:
    from nnc_web.engine.training.tabular_mlp import (
        load_tabular_csv,
        predict_tabular,
        save_tabular_bundle,
        train_tabular,
        write_tabular_output,
    )

    run = params.pop("_run")
    train = load_tabular_csv(run.train_csv)
    valid = load_tabular_csv(run.valid_csv)
    config = run.config
    result = train_tabular(train, valid, ctx, max_epoch=config["max_epoch"], batch_size=config["batch_size"],
                           learning_rate=config["learning_rate"], seed=config["seed"], hidden=params["hidden"],
                           layers=params["layers"], dropout=params["dropout"])
    write_tabular_output(ctx.workdir / "output_result.csv", valid, predict_tabular(result.model, valid))
    (ctx.workdir / "metrics.json").write_text(json.dumps(result.metrics, indent=1))
    save_tabular_bundle(ctx.workdir / "model", result.model, train, {**config, **params})
    summary = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items() if isinstance(v, float))
    ctx.log(f"validation: {summary}")
    return {"metrics": result.metrics, "history": result.history}


PLUGIN = register(Plugin(
    id="tabular_mlp",
    kind="training",
    title="Tabular classifier/regressor (MLP)",
    description="A multi-layer perceptron over a tabular dataset (x__0.. inputs, categorical ones already "
                "one-hot by the Tabular dataset plugin): a classifier when y has class names, else a "
                "regressor. Inputs are standardised with the training set's statistics. Uses the project's "
                "max_epoch, batch_size, learning_rate and seed.",
    params=(
        Param("hidden", "int", 64, min=1, max=4096, help="units per hidden layer"),
        Param("layers", "int", 2, min=0, max=16, help="hidden layers"),
        Param("dropout", "float", 0.1, min=0.0, max=0.9, help="dropout after each hidden layer"),
    ),
    runner=run,
    completer=complete,
    config_fields=("max_epoch", "batch_size", "learning_rate", "seed"),
))
