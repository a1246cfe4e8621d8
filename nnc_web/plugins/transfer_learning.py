"""Training: transfer learning from a pretrained backbone of the model store (NNC's plugin)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from nnc_web import storage
from nnc_web.engine.model_store import BACKBONES
from nnc_web.plugins.context import RunInputs
from nnc_web.plugins.registry import Param, Plugin, register

if TYPE_CHECKING:
    from nnc_web.engine.training.trainer import TrainConfig


def train_config(config: dict, params: dict) -> TrainConfig:
    from nnc_web.engine.training.trainer import TrainConfig

    return TrainConfig(
        max_epoch=config["max_epoch"], batch_size=config["batch_size"], optimizer=config["optimizer"],
        learning_rate=config["learning_rate"], schedule=config["schedule"],
        augmentation=[a for a in config["augmentation"].split(",") if a], save_best=config["save_best"],
        seed=config["seed"], device=config["device"], input_size=params["input_size"],
        train_param=params["train_param"], devices=config.get("devices", 1), nodes=config.get("nodes", ""))


def train_and_evaluate(ctx, run: RunInputs, backbone_id: str, config_for, eval_batch_size: int = 64) -> dict:
    """Train the run's model, evaluate it on the validation dataset, keep the bundle: the body of
    every image-classification training plugin. `config_for(run)` gives the TrainConfig."""
    from nnc_web.engine.training.bundle import save_bundle
    from nnc_web.engine.training.data import load_classification_csv
    from nnc_web.engine.training.evaluation import evaluate_into
    from nnc_web.engine.training.trainer import Trainer

    train = load_classification_csv(run.train_csv)
    valid = load_classification_csv(run.valid_csv)
    trainer = Trainer(backbone_id, train, valid, config_for(run), ctx.workdir, ctx,
                      cache_dir=storage.user_dir(ctx.owner_id) / "cache" / "features")
    result = trainer.run(resume=bool(ctx.context.get("resume")))
    class_names = train.class_names if len(train.class_names) >= trainer.num_classes else valid.class_names
    metrics = evaluate_into(ctx.workdir, result.model, backbone_id, trainer.size, valid, trainer.device, ctx,
                            batch_size=eval_batch_size)
    save_bundle(ctx.workdir / "model", result.model, backbone_id, class_names, trainer.size,
                {**run.config, **run.params, "best_epoch": result.best_epoch},
                {"train": run.train_dataset_id, "valid": run.valid_dataset_id})
    ctx.log("model bundle saved (manifest.json + weights.safetensors)")
    return {"metrics": metrics, "history": result.history}


def run(ctx, params: dict) -> dict:
    return train_and_evaluate(ctx, params["_run"], params["model"], lambda run: train_config(run.config, params))


def complete(job, result: dict) -> None:
    """Every training plugin's completer: the run keeps its metrics and history."""
    from nnc_web.projects.services import record_run_result

    record_run_result(job, result)


PLUGIN = register(Plugin(
    id="transfer_learning",
    kind="training",
    title="Transfer Learning",
    description="Trains a classifier on top of an ImageNet-pretrained backbone. last_fc_only trains only "
                "a new last layer on the backbone's features, computed once and cached (the bottleneck "
                "cache of the TF Hub retraining recipe), fitted as a logistic regression: full-batch L-BFGS, "
                "one weight decay per epoch from strong to weak, the best on the validation set kept. all "
                "first fits that head, then fine-tunes every layer with the project's optimizer, the backbone "
                "at a tenth of the head's learning rate and BatchNorm statistics kept. How transferable are "
                "features in deep neural networks? (Yosinski et al., 2014).",
    params=(
        Param("model", "model", "efficientnet_lite0", choices=tuple(BACKBONES), help="pretrained backbone"),
        Param("train_param", "choice", "last_fc_only", choices=("last_fc_only", "all"),
              help="last_fc_only: fit the new head on cached features; all: fit it, then fine-tune everything"),
        Param("input_size", "int", 224, min=32, max=1024, help="images are resized to this square size"),
    ),
    runner=run,
    completer=complete,
    weights=lambda params: params["model"],
    config_fields=("max_epoch", "batch_size", "optimizer", "learning_rate", "schedule", "augmentation", "save_best", "seed", "device",
                   "devices", "nodes"),
))
