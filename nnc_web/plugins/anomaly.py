"""Training: PaDiM and PatchCore anomaly detection (NNC's plugins), fitted on normal images only."""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from nnc_web.engine.anomaly.options import AUTO, GAUSSIAN_MODES, parse_feature_ratio
from nnc_web.engine.model_store import BACKBONES
from nnc_web.engine.reporting import UserError
from nnc_web.plugins.context import RunInputs
from nnc_web.plugins.registry import Param, Plugin, register
from nnc_web.plugins.transfer_learning import complete


def fit_and_evaluate(ctx, run: RunInputs, build) -> dict:
    """The body of both plugins: check the datasets, fit `build(device, seed)` on the normal training
    images, score the validation set, keep the bundle."""
    from nnc_web.engine.anomaly.bundle import save_anomaly_bundle
    from nnc_web.engine.anomaly.data import load_anomaly_csv
    from nnc_web.engine.anomaly.evaluation import evaluate_anomaly
    from nnc_web.engine.anomaly.features import check_rgb
    from nnc_web.engine.training.trainer import resolve_device

    train = load_anomaly_csv(run.train_csv)
    valid = load_anomaly_csv(run.valid_csv)
    warnings = []
    normal = train.normal_images()
    if len(normal) < len(train):
        warnings.append(f"the training dataset has {len(train) - len(normal)} images labelled anomalous; they "
                        f"were left out (these methods learn from normal images only)")
        ctx.log(f"warning: {warnings[-1]}")
    if not normal:
        raise UserError("the training dataset has no normal images (label 0)")
    if valid.labels is None:
        ctx.log("the validation dataset has no labels: scores and maps only, no AUROC")
    check_rgb(normal, "training", settings.NNC_MAX_IMAGE_PIXELS)
    check_rgb(valid.images, "validation", settings.NNC_MAX_IMAGE_PIXELS)
    device = resolve_device(run.config["device"])
    ctx.log(f"device: {device}")
    model = build(device, run.config["seed"])
    model.fit(normal, ctx, batch_size=run.config["batch_size"])
    metrics = evaluate_anomaly(model, valid, ctx.workdir, ctx, batch_size=run.config["batch_size"],
                               extra={"warnings": warnings})
    save_anomaly_bundle(ctx.workdir / "model", model, {
        "threshold": metrics["threshold"], "map_range": metrics["map_range"],
        "training": {**run.config, **run.params}, "datasets": {"train": run.train_dataset_id,
                                                               "valid": run.valid_dataset_id}})
    ctx.log("model bundle saved (manifest.json + weights.safetensors)")
    return {"metrics": metrics, "history": []}


def run_padim(ctx, params: dict) -> dict:
    from nnc_web.engine.anomaly.padim import Padim

    return fit_and_evaluate(ctx, params["_run"], lambda device, seed: Padim(
        params["model"], params["gaussian"], input_size=params["input_size"], feature_ratio=params["feature_ratio"],
        seed=seed, device=device, max_pixels=settings.NNC_MAX_IMAGE_PIXELS))


def run_patchcore(ctx, params: dict) -> dict:
    from nnc_web.engine.anomaly.patchcore import Patchcore

    return fit_and_evaluate(ctx, params["_run"], lambda device, seed: Patchcore(
        params["model"], params["sample_ratio"], input_size=params["input_size"],
        feature_ratio=params["feature_ratio"], seed=seed, device=device, max_pixels=settings.NNC_MAX_IMAGE_PIXELS))


def _input_size_errors(params: dict) -> dict[str, str]:
    return {"input_size": "must be a multiple of 32"} if params["input_size"] % 32 else {}


@dataclass(frozen=True)
class FeatureRatio(Param):
    """`auto` or a share of the channels: a text field whose value reaches the engine as "auto" or a float."""

    def clean(self, value, user, trusted, workspace=None):
        try:
            return parse_feature_ratio(super().clean(value, user, trusted, workspace))
        except UserError as exc:
            raise ValueError(str(exc).removeprefix("feature_ratio ")) from None


MODEL = Param("model", "model", "efficientnet_lite0", choices=tuple(BACKBONES),
              help="pretrained backbone whose mid-level features are modelled")
FEATURE_RATIO = FeatureRatio(
    "feature_ratio", "text", AUTO,
    help="channels kept: auto = the method's own number (PaDiM: the paper's 100 dimensions; PatchCore: every "
         "channel, up to 1024), or a share of each layer's channels such as 0.25 (NNC's rule); a fixed random "
         "selection, saved with the model")
INPUT_SIZE = Param("input_size", "int", 224, min=64, max=1024,
                   help="images are resized to this square size (a multiple of 32; NNC uses 224)")

PADIM = register(Plugin(
    id="padim",
    kind="training",
    title="PaDiM (anomaly detection)",
    description="Learns the distribution of normal images' features (no network to design, no anomalous "
                "images needed) and maps how far each pixel of a new image is from it. Train on normal images "
                "only; validate on normal and anomalous ones. PaDiM: a Patch Distribution Modeling Framework for "
                "Anomaly Detection and Localization (Defard et al., 2020).",
    params=(MODEL, FEATURE_RATIO,
            Param("gaussian", "choice", "dense", choices=GAUSSIAN_MODES,
                  help="dense: a Gaussian per position of the finest feature map (the paper); 1/16: per position "
                       "of the coarsest map (16x smaller model); single: one for the whole image (smallest)"),
            INPUT_SIZE),
    runner=run_padim,
    completer=complete,
    cross_check=_input_size_errors,
    weights=lambda params: params["model"],
    config_fields=("batch_size", "seed", "device"),  # one pass: no epochs, optimizer or learning rate
))

PATCHCORE = register(Plugin(
    id="patchcore",
    kind="training",
    title="PatchCore (anomaly detection)",
    description="Keeps a coreset of normal images' locally aware patch features as a memory bank; a patch is "
                "as anomalous as it is far from its nearest bank item. Train on normal images only. Towards Total "
                "Recall in Industrial Anomaly Detection (Roth et al., CVPR 2022).",
    params=(MODEL, FEATURE_RATIO,
            Param("sample_ratio", "float", 0.01, min=0.0001, max=1.0,
                  help="share of the training patches kept in the memory bank (greedy k-center coreset)"),
            INPUT_SIZE),
    runner=run_patchcore,
    completer=complete,
    cross_check=_input_size_errors,
    weights=lambda params: params["model"],
    config_fields=("batch_size", "seed", "device"),  # one pass: no epochs, optimizer or learning rate
))
