"""PaDiM and PatchCore: ours against anomalib 2.7.0's torch modules, same data, same backbone, one run.

Data: scikit-image brick crops (normal) and brick crops with a pasted grass square (anomalous, with
masks), 224 px, 51 training images (39,984 patches at PatchCore's 28 x 28 grid: the "40k patches").
Backbone: EfficientNet-Lite0 with the offline ImageNet weights, loaded into anomalib's timm feature
extractor too. Every measurement runs in its own process, so peak memory (ru_maxrss) is per method.

    bash benchmarks/anomalib_env.sh      # once: .venv-bench = .venv + anomalib (benchmark-only)
    .venv-bench/bin/python benchmarks/anomaly_vs_anomalib.py [padim|coreset|patchcore]
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TRAIN, GOOD, BAD = 51, 20, 20
PADIM_RATIO = 100 / 176  # the paper's Rd100: lite0's three layers have 24 + 40 + 112 channels
PADIM_FEATURES = sum(max(1, round(c * PADIM_RATIO)) for c in (24, 40, 112))  # ours keeps this many per layer
CORESET_RATIOS = (0.1, 0.01)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_data(folder: Path) -> dict:
    import numpy as np
    from PIL import Image

    from tests.sample_data import write_texture_set

    data = write_texture_set(folder, train=TRAIN, good=GOOD, bad=BAD)
    data["mask_arrays"] = np.stack([np.asarray(Image.open(m)) > 0 for m in data["masks"]])
    return data


def tensors(paths, backbone: str = "efficientnet_lite0"):
    import torch

    from nnc_web.engine.anomaly.features import image_transform, load_rgb

    transform = image_transform(backbone, 224)
    return torch.stack([transform(load_rgb(p, 10**9)) for p in paths])


def aurocs(data: dict, scores, maps) -> dict:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    return {"image_auroc": float(roc_auc_score(data["labels"], np.asarray(scores))),
            "pixel_auroc": float(roc_auc_score(data["mask_arrays"].ravel(), np.asarray(maps).ravel()))}


def anomalib_model(kind: str, **kwargs):
    """An anomalib torch module on tf_efficientnet_lite0 carrying our offline ImageNet weights."""
    from anomalib.models.image.padim.torch_model import PadimModel
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    from nnc_web.engine.model_store import load_backbone

    if kind == "padim":
        model = PadimModel("tf_efficientnet_lite0", ["blocks.1", "blocks.2", "blocks.4"], pre_trained=False, **kwargs)
    else:
        model = PatchcoreModel(["blocks.2", "blocks.4"], "tf_efficientnet_lite0", pre_trained=False, **kwargs)
    weights = load_backbone("efficientnet_lite0").state_dict()
    missing, _ = model.feature_extractor.feature_extractor.load_state_dict(weights, strict=False)
    assert not missing, missing
    return model


def measure_ours(model, data: dict) -> dict:
    """Fit on the training images and score the test images, timed; AUROCs and memory."""
    from nnc_web.engine.reporting import ConsoleReporter

    base = peak_mb()
    start = time.perf_counter()
    model.fit(data["train"], ConsoleReporter(Path(tempfile.mkdtemp()), quiet=True), batch_size=16)
    fit = time.perf_counter() - start
    start = time.perf_counter()
    prediction = model.predict(data["test"])
    infer = (time.perf_counter() - start) / len(data["test"])
    return {"fit_s": fit, "infer_ms": infer * 1000, "dim": model.dim, **aurocs(data, prediction.scores, prediction.maps),
            "peak_mb": peak_mb(), "growth_mb": peak_mb() - base}


def measure_anomalib(model, data: dict, finish_fit, dim: int) -> dict:
    """anomalib's recipe: train-mode forwards collect embeddings, `finish_fit(model)` fits, eval-mode
    forwards score; image loading inside the timings, as in ours."""
    import torch

    base = peak_mb()
    start = time.perf_counter()
    model.train()
    with torch.no_grad():
        for i in range(0, len(data["train"]), 16):
            model(tensors(data["train"][i:i + 16]))
        finish_fit(model)
    fit = time.perf_counter() - start
    model.eval()
    start = time.perf_counter()
    scores, maps = [], []
    with torch.no_grad():
        for i in range(0, len(data["test"]), 16):
            out = model(tensors(data["test"][i:i + 16]))
            scores += out.pred_score.flatten().tolist()
            maps += list(out.anomaly_map[:, 0].numpy())
    infer = (time.perf_counter() - start) / len(data["test"])
    return {"fit_s": fit, "infer_ms": infer * 1000, "dim": dim, **aurocs(data, scores, maps),
            "peak_mb": peak_mb(), "growth_mb": peak_mb() - base}


def part_ours_padim(data: dict) -> dict:
    from nnc_web.engine.anomaly.padim import Padim

    return measure_ours(Padim("efficientnet_lite0", "dense", feature_ratio=PADIM_RATIO), data)


def part_anomalib_padim(data: dict) -> dict:
    return measure_anomalib(anomalib_model("padim", n_features=PADIM_FEATURES), data, lambda m: m.fit(),
                            PADIM_FEATURES)


def our_patch_bank(data: dict):
    """The 39,984 x 152 locally aware patch features of the training images (all channels)."""
    import torch

    from nnc_web.engine.anomaly.patchcore import Patchcore

    model = Patchcore("efficientnet_lite0", feature_ratio=1.0)
    with torch.no_grad():
        embedding = torch.cat([model.embed(tensors(data["train"][i:i + 16])) for i in range(0, TRAIN, 16)])
    return embedding.permute(0, 2, 3, 1).reshape(-1, model.dim).contiguous()


def part_coreset(data: dict, which: str, ratio: float) -> dict:
    bank = our_patch_bank(data)
    base = peak_mb()
    start = time.perf_counter()
    if which == "ours":
        from nnc_web.engine.anomaly.coreset import greedy_coreset

        chosen = greedy_coreset(bank, int(len(bank) * ratio), seed=0)
    else:
        from anomalib.models.components.sampling import KCenterGreedy

        chosen = KCenterGreedy(bank, ratio).select_coreset_idxs()
    elapsed = time.perf_counter() - start
    return {"patches": len(bank), "dim": bank.shape[1], "ratio": ratio, "coreset_s": elapsed, "size": len(chosen),
            "peak_mb": peak_mb(), "growth_mb": peak_mb() - base}


def part_ours_patchcore(data: dict, ratio: float, feature_ratio: float) -> dict:
    from nnc_web.engine.anomaly.patchcore import Patchcore

    return measure_ours(Patchcore("efficientnet_lite0", ratio, feature_ratio=feature_ratio), data)


def part_anomalib_patchcore(data: dict, ratio: float) -> dict:
    return measure_anomalib(anomalib_model("patchcore", num_neighbors=9), data,
                            lambda m: m.subsample_embedding(ratio), 152)


PARTS = {
    "ours_padim": part_ours_padim,
    "anomalib_padim": part_anomalib_padim,
    "ours_coreset_0.1": lambda d: part_coreset(d, "ours", 0.1),
    "anomalib_coreset_0.1": lambda d: part_coreset(d, "anomalib", 0.1),
    "ours_coreset_0.01": lambda d: part_coreset(d, "ours", 0.01),
    "anomalib_coreset_0.01": lambda d: part_coreset(d, "anomalib", 0.01),
    "ours_patchcore_0.1_all": lambda d: part_ours_patchcore(d, 0.1, 1.0),
    "anomalib_patchcore_0.1": lambda d: part_anomalib_patchcore(d, 0.1),
    "ours_patchcore_defaults": lambda d: part_ours_patchcore(d, 0.01, 0.25),
}


def run_part(name: str, folder: Path) -> dict:
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(2)
    if name.startswith("anomalib"):
        import anomalib.models  # noqa: F401 - its import (Lightning) is not part of any timing
    return PARTS[name](load_data(folder))


def main() -> None:
    if len(sys.argv) == 3:  # a child process: one measurement
        print(json.dumps(run_part(sys.argv[1], Path(sys.argv[2]))))
        return
    folder = Path(tempfile.mkdtemp(prefix="anomaly-bench-"))
    results = {}
    wanted = [n for n in PARTS if len(sys.argv) < 2 or sys.argv[1] in n]  # e.g. `padim`: only those parts
    for name in wanted:
        done = subprocess.run([sys.executable, __file__, name, str(folder)], capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name:26s} {json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in results[name].items()})}",
              flush=True)
    if len(wanted) < len(PARTS):
        return
    ours, theirs = results["ours_padim"], results["anomalib_padim"]
    print(f"\nPaDiM (Rd{PADIM_FEATURES}, dense): image AUROC {ours['image_auroc']:.4f} vs {theirs['image_auroc']:.4f}, "
          f"pixel {ours['pixel_auroc']:.4f} vs {theirs['pixel_auroc']:.4f}; fit ratio ours/anomalib "
          f"{ours['fit_s'] / theirs['fit_s']:.2f} (target <= 1.0); memory growth {ours['growth_mb']:.0f} MB vs "
          f"{theirs['growth_mb']:.0f} MB")
    for ratio in CORESET_RATIOS:
        a, b = results[f"ours_coreset_{ratio}"], results[f"anomalib_coreset_{ratio}"]
        print(f"coreset {a['patches']} patches x {a['dim']} dims at {ratio}: ours {a['coreset_s']:.2f} s, anomalib "
              f"{b['coreset_s']:.2f} s -> {b['coreset_s'] / a['coreset_s']:.1f}x faster (target >= 3x)")
    ours, theirs = results["ours_patchcore_0.1_all"], results["anomalib_patchcore_0.1"]
    print(f"PatchCore (0.1, all 152 channels): image AUROC {ours['image_auroc']:.4f} vs {theirs['image_auroc']:.4f}, "
          f"pixel {ours['pixel_auroc']:.4f} vs {theirs['pixel_auroc']:.4f}; fit {ours['fit_s']:.1f} s vs "
          f"{theirs['fit_s']:.1f} s; memory growth {ours['growth_mb']:.0f} MB vs {theirs['growth_mb']:.0f} MB")
    default = results["ours_patchcore_defaults"]
    print(f"PatchCore, our defaults (feature_ratio 0.25, sample_ratio 0.01): image AUROC {default['image_auroc']:.4f}, "
          f"pixel {default['pixel_auroc']:.4f}, fit {default['fit_s']:.1f} s, {default['infer_ms']:.0f} ms/image")


if __name__ == "__main__":
    main()
