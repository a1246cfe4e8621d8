"""Built-in algorithms with EasyMaker's hyperparameters: Image classification (ResNet-50)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from nnc_web.plugins.registry import Param, Plugin, register
from nnc_web.plugins.transfer_learning import complete, train_and_evaluate

if TYPE_CHECKING:
    from nnc_web.engine.training.trainer import TrainConfig


def run(ctx, params: dict) -> dict:
    from nnc_web.engine.training.trainer import TrainConfig

    def config_for(run) -> TrainConfig:
        return TrainConfig(max_epoch=params["num_train_epochs"], batch_size=params["per_device_train_batch_size"],
                           optimizer="adamw", learning_rate=params["learning_rate"], save_best=True,
                           seed=run.config.get("seed", 0), device=run.config.get("device", "auto"),
                           input_size=params["input_size"], train_param="all", pretrained=params["pretrained"],
                           logging_steps=params["logging_steps"])

    return train_and_evaluate(ctx, params["_run"], "resnet50", config_for, params["per_device_eval_batch_size"])


RESNET50_PLUGIN = register(Plugin(
    id="resnet50_classification",
    kind="training",
    title="Image classification (ResNet-50)",
    description="EasyMaker's built-in image classifier: a ResNet-50 trained end to end with AdamW, with "
                "EasyMaker's hyperparameter names. ImageNet weights when present (import them offline with "
                "manage.py import_weights resnet50), or from scratch with pretrained off. Deep Residual "
                "Learning for Image Recognition (He et al., 2016).",
    params=(
        Param("input_size", "int", 224, min=4, max=1024, help="images are resized to this square size"),
        Param("learning_rate", "float", 0.001, min=1e-8, max=10.0, help="AdamW's initial learning rate"),
        Param("per_device_train_batch_size", "int", 16, min=2, max=4096, help="training batch size"),
        Param("per_device_eval_batch_size", "int", 16, min=1, max=4096, help="evaluation batch size"),
        Param("num_train_epochs", "int", 3, min=1, max=10_000, help="epochs"),
        Param("logging_steps", "int", 500, min=1, help="a log line with the loss every so many steps"),
        Param("pretrained", "bool", True, help="start from ImageNet weights (off: train from scratch)"),
    ),
    runner=run,
    completer=complete,
    weights=lambda params: "resnet50" if params["pretrained"] else None,
    config_fields=("seed", "device"),  # epochs, batch size and learning rate are its own parameters
))
