"""The training config of a project (NNC's "Config" tab), validated like plugin parameters."""
from __future__ import annotations

from nnc_web.engine.errors import UserError
from nnc_web.engine.training.distributed import parse_devices, parse_nodes
from nnc_web.engine.training.options import AUGMENTATIONS, OPTIMIZERS, SCHEDULES
from nnc_web.plugins.registry import Param

CONFIG_PARAMS = (
    Param("max_epoch", "int", 10, min=1, max=10_000, label="Epochs", help="epochs to train"),
    Param("batch_size", "int", 32, min=1, max=4096, label="Batch size", help="images per step"),
    Param("optimizer", "choice", "adam", choices=OPTIMIZERS, label="Optimizer",
          help="adam, adamw, or sgd with momentum 0.9"),
    Param("learning_rate", "float", 0.001, min=1e-8, max=10, label="Learning rate",
          # The truth is in engine/training/trainer.py: last_fc_only with the feature cache fits the head
          # by L-BFGS (linear_head.py) and uses no learning rate; `all` fine-tunes with it.
          help="step size of the optimizer when training by gradient steps: with train_param all (fine-tuning), "
               "the new head's rate, the backbone at a tenth of it. Not used by last_fc_only, whose head is "
               "fitted as a logistic regression by full-batch L-BFGS (weight decay chosen on the validation "
               "split)"),
    Param("schedule", "choice", "none", choices=SCHEDULES, label="Learning-rate schedule",
          help="how the learning rate changes over the epochs"),
    Param("augmentation", "text", "", label="Augmentation", help=f"comma-separated: {', '.join(AUGMENTATIONS)}"),
    Param("save_best", "bool", True, label="Keep the best epoch", help="keep the epoch with the lowest validation error"),
    Param("seed", "int", 0, min=0, max=2**31 - 1, label="Random seed", help="the same seed repeats a run"),
    Param("device", "choice", "auto", choices=("auto", "cpu", "gpu"), label="Device",
          help="auto: the GPU when there is one"),
    Param("devices", "text", "1", label="Devices (processes)",
          help="how many GPUs (or, with device cpu, CPU processes) one training uses on each machine: 1 (one "
               "process), auto (every visible GPU, 1 without one), or 2, 4 ... (at most the worker's GPUs, or its "
               "cores on CPU). Above 1 the epochs of the image classifier, the offline detector and the "
               "offline segmenter run under torch.distributed (DistributedDataParallel, BatchNorm over the "
               "global batch); the global batch is batch_size. last_fc_only's cached head stays in one process"),
    Param("nodes", "text", "", label="Nodes (multi-machine)",
          help="empty for one machine; else the host names of every machine of the training, comma-separated, "
               "the first hosting the rendezvous (MASTER_ADDR; port MASTER_PORT, else a free one it picks). Each machine runs "
               "`devices` processes on the shared job folder (the image classifier, the offline detector and the offline segmenter). Only machines "
               "an administrator lists in NNC_TRAINING_NODES can be named"),
)


def clean_config(raw: dict) -> tuple[dict, dict[str, str]]:
    config, errors = {}, {}
    unknown = set(raw) - {p.name for p in CONFIG_PARAMS}
    errors.update({name: "unknown setting" for name in unknown})
    for param in CONFIG_PARAMS:
        value = raw.get(param.name)
        if value is None or value == "":
            config[param.name] = param.default
            continue
        try:
            config[param.name] = param.clean(value, None, trusted=False)
        except ValueError as exc:
            errors[param.name] = str(exc)
    augmentation = [a.strip() for a in str(config.get("augmentation") or "").split(",") if a.strip()]
    bad = [a for a in augmentation if a not in AUGMENTATIONS]
    if bad:
        errors["augmentation"] = f"unknown: {', '.join(bad)} (use {', '.join(AUGMENTATIONS)})"
    config["augmentation"] = ",".join(augmentation)
    for name, check in (("devices", lambda value: parse_devices(value, cuda_count=0)), ("nodes", parse_nodes)):
        try:
            check(config.get(name))
        except UserError as exc:  # the engine's own message; GPUs are counted on the worker
            errors[name] = str(exc)
    return config, errors
