"""Training: CLIP zero-shot image classification (NNC's clip_zero_shot_image_classification). Nothing is
trained: the classes' text features are computed once and kept in the model bundle, then the validation
dataset is evaluated like any classifier's. Learning Transferable Visual Models From Natural Language
Supervision (Radford et al., 2021)."""
from __future__ import annotations

from nnc_web.engine.clip.architectures import ARCHITECTURES, WEIGHTS_FILES
from nnc_web.engine.clip.prompts import TEMPLATE_IDS, parse_query_text, read_query_file
from nnc_web.engine.reporting import UserError
from nnc_web.plugins.context import RunInputs
from nnc_web.plugins.registry import Param, Plugin, register
from nnc_web.plugins.transfer_learning import complete


def classes_of(params: dict) -> list[str]:
    if params.get("query_text"):
        return parse_query_text(params["query_text"])
    return read_query_file(params["query_text_csv_file"])


def run(ctx, params: dict) -> dict:
    from nnc_web.engine.clip.evaluation import evaluate_zero_shot
    from nnc_web.engine.clip.model import save_clip_bundle
    from nnc_web.engine.clip.zero_shot import build_zero_shot
    from nnc_web.engine.training.trainer import resolve_device

    run_inputs: RunInputs = params["_run"]
    if run_inputs.valid_csv is None:
        raise UserError("the project's validation dataset was deleted")
    classes = classes_of(params)
    device = resolve_device(run_inputs.config["device"])
    ctx.log(f"device: {device}; {len(classes)} classes: {', '.join(classes[:20])}{' ...' if len(classes) > 20 else ''}")
    model, manifest = build_zero_shot(params["model"], classes, params["template"], device, ctx)
    metrics = evaluate_zero_shot(ctx.workdir, model, manifest, run_inputs.valid_csv, device, ctx,
                                 batch_size=run_inputs.config["batch_size"])
    save_clip_bundle(ctx.workdir / "model", model, {
        **manifest, "training": {**run_inputs.config, **run_inputs.params},
        "datasets": {"train": run_inputs.train_dataset_id, "valid": run_inputs.valid_dataset_id}})
    ctx.log("model bundle saved (manifest.json + weights.safetensors)")
    return {"metrics": metrics, "history": []}


def cross_check(params: dict) -> dict[str, str]:
    """Exactly one of query_text and query_text_csv_file (NNC's rule); a text is checked here, a file
    when the job reads it."""
    text, file = params.get("query_text"), params.get("query_text_csv_file")
    if text and file:
        return {"query_text_csv_file": "give query_text or query_text_csv_file, not both"}
    if not text and not file:
        return {"query_text": "give the classes: query_text (comma-separated) or query_text_csv_file (one per line)"}
    if text:
        try:
            parse_query_text(text)
        except UserError as exc:
            return {"query_text": str(exc)}
    return {}


_REPOS = "; ".join(f"{a.id}: huggingface.co/{a.hf_repo}" for a in ARCHITECTURES.values())

PLUGIN = register(Plugin(
    id="clip_zero_shot",
    kind="training",
    title="CLIP zero-shot classification",
    description="Classifies images into classes named in words, with no training: CLIP compares each image "
                "with the text of each class (softmax over cosine similarities). Give the classes as a "
                "comma-separated text or a file with one class per line; the validation dataset is evaluated "
                "as a classifier's, with metrics when its class names are the query classes. Learning "
                "Transferable Visual Models From Natural Language Supervision (Radford et al., 2021).",
    params=(
        Param("model", "model", "vitb32", choices=tuple(ARCHITECTURES), label="CLIP model",
              help=f"OpenAI's CLIP weights in open_clip's format ({WEIGHTS_FILES[0]} or {WEIGHTS_FILES[1]}; "
                   f"{_REPOS}); offline, an administrator imports the file with "
                   f"`python manage.py import_weights <model> <file>`"),
        Param("query_text", "text", None, label="Classes",
              help="comma-separated classes or prompts (cat, dog, a photo of a bird); class indices follow this "
                   "order; at most 500 characters (more classes: the file)"),
        Param("query_text_csv_file", "file", None, label="Classes file",
              help="instead of Classes: a text or CSV file with one class per line"),
        Param("template", "choice", "none", choices=TEMPLATE_IDS, label="Prompt template",
              help="none: each class as written (NNC); photo: 'a photo of a {}.'; ensemble: the mean of CLIP's "
                   "80 ImageNet prompts ('a bad photo of a {}.', 'a sculpture of a {}.', ...), usually the best"),
    ),
    runner=run,
    completer=complete,
    cross_check=cross_check,
    weights=lambda params: params["model"],
    config_fields=("batch_size", "device"),  # nothing is trained: no epochs, optimizer or learning rate
))
