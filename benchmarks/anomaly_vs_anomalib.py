"""PaDiM and PatchCore: ours against anomalib 2.7.0's torch modules, same data, same backbone, one run.

Two cases, 224 px crops of scikit-image's brick texture (normal) with masks:
  easy  51 training images (39,984 patches at PatchCore's 28 x 28 grid: the "40k patches"), 20 normal
        and 20 test crops with a pasted grass square (a sixth to a quarter of the crop);
  hard  120 training images, 40 normal and 40 test crops with defects that are hard to see: a small
        (10-18 px) patch of grass given the brick's own brightness and contrast, blended half-way, or a
        2 px scratch 30-50 px long, darker by 0.8 of the crop's standard deviation.
Backbone: EfficientNet-Lite0 with the offline ImageNet weights, loaded into anomalib's timm feature
extractor too. PaDiM keeps 100 dimensions in both (ours: `feature_ratio` auto; anomalib:
n_features=100); anomalib has only the dense mode, so our 1/16 and single rows face its dense model.
PatchCore: ours with `auto` (all 152 channels, as anomalib). Every measurement runs in its own process,
so peak memory (ru_maxrss) is per method; "growth" is the peak minus the peak before the model was
built (anomalib imported, data loaded): "fit growth" up to the end of the fit, "growth" after scoring.

    bash benchmarks/anomalib_env.sh      # once: .venv-bench = .venv + anomalib (benchmark-only)
    .venv-bench/bin/python benchmarks/anomaly_vs_anomalib.py [filters, e.g. hard or easy_ours,padim]
    .venv-bench/bin/python benchmarks/anomaly_vs_anomalib.py --summary <results.json>...

Without anomalib (plain .venv) only our parts run.
"""
from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CASES = {"easy": (51, 20, 20), "hard": (120, 40, 40)}  # training, normal test, anomalous test images
PADIM_DIMS = 100  # the paper's Rd100; ours: feature_ratio auto
CORESET_RATIOS = (0.1, 0.01)
BATCH = 16
SEEDS = range(5)  # channel draws of the seed sweeps (`seeds` parts: PaDiM's random 100 of 176 channels)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hard_crops(count: int, anomalous: bool, seed: int, size: int = 224) -> list:
    """(RGB crop, mask) pairs of brick; anomalous ones alternate a faint small patch and a faint scratch."""
    import numpy as np
    from PIL import Image, ImageDraw
    from skimage import data

    rng = np.random.default_rng(seed)
    base, other = data.brick().astype(np.float32), data.grass().astype(np.float32)
    pairs = []
    for number in range(count):
        top, left = rng.integers(0, base.shape[0] - size, 2)
        crop = base[top:top + size, left:left + size].copy()
        mask = np.zeros((size, size), bool)
        if anomalous and number % 2 == 0:
            side = int(rng.integers(10, 19))
            y, x = rng.integers(0, size - side, 2)
            sy, sx = rng.integers(0, other.shape[0] - side, 2)
            under, patch = crop[y:y + side, x:x + side], other[sy:sy + side, sx:sx + side]
            patch = (patch - patch.mean()) / (patch.std() + 1e-6) * under.std() + under.mean()
            crop[y:y + side, x:x + side] = 0.5 * under + 0.5 * patch
            mask[y:y + side, x:x + side] = True
        elif anomalous:
            length, angle = int(rng.integers(30, 51)), rng.uniform(0, np.pi)
            y0, x0 = rng.integers(length, size - length, 2)
            line = Image.new("L", (size, size))
            ImageDraw.Draw(line).line([(x0, y0), (int(x0 + length * np.cos(angle)), int(y0 + length * np.sin(angle)))],
                                      fill=255, width=2)
            mask = np.asarray(line) > 0
            crop[mask] -= 0.8 * crop.std()
        pairs.append((Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).convert("RGB"),
                      Image.fromarray(mask.astype(np.uint8) * 255)))
    return pairs


def write_hard_set(folder: Path, train: int, good: int, bad: int) -> dict:
    result: dict[str, list] = {"train": [], "test": [], "labels": [], "masks": []}
    for number, (image, _) in enumerate(hard_crops(train, False, 0)):
        result["train"].append(folder / f"train_{number:03d}.png")
        image.save(result["train"][-1])
    for number, (image, mask) in enumerate(hard_crops(good, False, 1) + hard_crops(bad, True, 2)):
        result["test"].append(folder / f"test_{number:03d}.png")
        result["masks"].append(folder / f"test_{number:03d}_mask.png")
        image.save(result["test"][-1])
        mask.save(result["masks"][-1])
        result["labels"].append(int(number >= good))
    return result


def load_data(folder: Path, case: str) -> dict:
    import numpy as np
    from PIL import Image

    from tests.sample_data import write_texture_set

    train, good, bad = CASES[case]
    folder = folder / case
    folder.mkdir(parents=True, exist_ok=True)
    data = (write_texture_set if case == "easy" else write_hard_set)(folder, train=train, good=good, bad=bad)
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


def measure_ours(build, data: dict) -> dict:
    """Build the model, fit on the training images and score the test images, timed; AUROCs and memory."""
    from nnc_web.engine.reporting import ConsoleReporter

    reporter = ConsoleReporter(Path(tempfile.mkdtemp()), quiet=True)
    base = peak_mb()
    model = build()
    start = time.perf_counter()
    model.fit(data["train"], reporter, batch_size=BATCH)
    fit = time.perf_counter() - start
    fit_growth = peak_mb() - base
    start = time.perf_counter()
    prediction = model.predict(data["test"])
    infer = (time.perf_counter() - start) / len(data["test"])
    extra = {}
    if model.method == "padim":
        extra["statistics_mb"] = model.memory_plan(batch_size=BATCH)["statistics"] / 2**20
    return {"fit_s": fit, "infer_ms": infer * 1000, "dim": model.dim, **aurocs(data, prediction.scores, prediction.maps),
            "peak_mb": peak_mb(), "fit_growth_mb": fit_growth, "growth_mb": peak_mb() - base, **extra,
            "log": [line for line in reporter.lines if "channels" in line or "MB" in line]}


def measure_anomalib(build, data: dict, finish_fit, dim: int) -> dict:
    """anomalib's recipe: train-mode forwards collect embeddings, `finish_fit(model)` fits, eval-mode
    forwards score; image loading inside the timings, as in ours."""
    import torch

    base = peak_mb()
    model = build()
    start = time.perf_counter()
    model.train()
    embeddings = 0
    with torch.no_grad():
        for i in range(0, len(data["train"]), BATCH):
            out = model(tensors(data["train"][i:i + BATCH]))
            embeddings += out.numel() * out.element_size() if isinstance(out, torch.Tensor) else 0
        finish_fit(model)
    fit = time.perf_counter() - start
    fit_growth = peak_mb() - base
    model.eval()
    start = time.perf_counter()
    scores, maps = [], []
    with torch.no_grad():
        for i in range(0, len(data["test"]), BATCH):
            out = model(tensors(data["test"][i:i + BATCH]))
            scores += out.pred_score.flatten().tolist()
            maps += list(out.anomaly_map[:, 0].numpy())
    infer = (time.perf_counter() - start) / len(data["test"])
    return {"fit_s": fit, "infer_ms": infer * 1000, "dim": dim, **aurocs(data, scores, maps),
            "peak_mb": peak_mb(), "fit_growth_mb": fit_growth, "growth_mb": peak_mb() - base,
            "embedding_list_mb": embeddings / 2**20}


def our_patch_bank(data: dict):
    """The training images' locally aware patch features (all channels)."""
    import torch

    from nnc_web.engine.anomaly.patchcore import Patchcore

    model = Patchcore("efficientnet_lite0", feature_ratio=1.0)
    with torch.no_grad():
        embedding = torch.cat([model.embed(tensors(data["train"][i:i + BATCH]))
                               for i in range(0, len(data["train"]), BATCH)])
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


def ours_padim(gaussian: str, feature_ratio="auto"):
    from nnc_web.engine.anomaly.padim import Padim

    return lambda data: measure_ours(lambda: Padim("efficientnet_lite0", gaussian, feature_ratio=feature_ratio), data)


def ours_patchcore(ratio: float, feature_ratio="auto"):
    from nnc_web.engine.anomaly.patchcore import Patchcore

    return lambda data: measure_ours(lambda: Patchcore("efficientnet_lite0", ratio, feature_ratio=feature_ratio), data)


def anomalib_padim(data: dict) -> dict:
    return measure_anomalib(lambda: anomalib_model("padim", n_features=PADIM_DIMS), data, lambda m: m.fit(),
                            PADIM_DIMS)


def anomalib_patchcore(ratio: float):
    return lambda data: measure_anomalib(lambda: anomalib_model("patchcore", num_neighbors=9), data,
                                         lambda m: m.subsample_embedding(ratio), 152)


def seed_sweep(measure) -> callable:
    """AUROCs over SEEDS channel draws (one draw is a lottery on the hard case): per seed and the mean."""
    import torch

    def run(data: dict) -> dict:
        rows = []
        for seed in SEEDS:
            torch.manual_seed(seed)
            result = measure(data, seed)
            rows.append({k: result[k] for k in ("image_auroc", "pixel_auroc", "fit_s")})
        mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
        return {**mean, "dim": result["dim"], "peak_mb": result["peak_mb"], "fit_growth_mb": result["fit_growth_mb"],
                "seeds": rows}

    return run


def ours_padim_seeded(gaussian: str):
    from nnc_web.engine.anomaly.padim import Padim

    return seed_sweep(lambda data, seed: measure_ours(lambda: Padim("efficientnet_lite0", gaussian, seed=seed), data))


def parts() -> dict:
    """name -> (case, measurement); built lazily so that a child imports only what it runs."""
    table = {}
    for case in CASES:
        for mode in ("dense", "1/16", "single"):
            table[f"{case}_ours_padim_{mode}"] = (case, lambda d, m=mode: ours_padim(m)(d))
        table[f"{case}_ours_padim_dense_0.25"] = (case, lambda d: ours_padim("dense", 0.25)(d))
        table[f"{case}_anomalib_padim"] = (case, anomalib_padim)
        for ratio in CORESET_RATIOS:
            table[f"{case}_ours_patchcore_{ratio}"] = (case, lambda d, r=ratio: ours_patchcore(r)(d))
            table[f"{case}_anomalib_patchcore_{ratio}"] = (case, lambda d, r=ratio: anomalib_patchcore(r)(d))
        table[f"{case}_ours_patchcore_0.01_fr0.25"] = (case, lambda d: ours_patchcore(0.01, 0.25)(d))
        for mode in ("dense", "1/16", "single"):
            table[f"{case}_seeds_ours_padim_{mode}"] = (case, lambda d, m=mode: ours_padim_seeded(m)(d))
        table[f"{case}_seeds_anomalib_padim"] = (case, lambda d: seed_sweep(lambda data, seed: anomalib_padim(data))(d))
    for ratio in CORESET_RATIOS:
        for who in ("ours", "anomalib"):
            table[f"easy_{who}_coreset_{ratio}"] = ("easy", lambda d, w=who, r=ratio: part_coreset(d, w, r))
    return table


def run_part(name: str, folder: Path) -> dict:
    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    import timm  # noqa: F401 - imports are not part of any timing or memory growth
    import torchvision  # noqa: F401

    if "anomalib" in name:
        import anomalib.models  # noqa: F401 - nor is anomalib's (Lightning)
    case, measure = parts()[name]
    data = load_data(folder, case)
    torch.manual_seed(0)
    return measure(data)


def have_anomalib() -> bool:
    done = subprocess.run([sys.executable, "-c", "import anomalib"], capture_output=True)
    return done.returncode == 0


def spread(result: dict) -> str:
    """Mean (min-max) image and pixel AUROC of a seed sweep."""
    parts = []
    for key in ("image_auroc", "pixel_auroc"):
        values = [row[key] for row in result["seeds"]]
        parts.append(f"{key.split('_')[0]} {result[key]:.4f} ({min(values):.4f}-{max(values):.4f})")
    return ", ".join(parts)


def summary(results: dict) -> list[str]:
    """One line per row of RESULTS.md: ours vs anomalib, same case, same run."""
    lines = []
    for case in CASES:
        theirs = results.get(f"{case}_anomalib_padim")
        rows = [(f"PaDiM {mode}", results.get(f"{case}_ours_padim_{mode}"), theirs) for mode in ("dense", "1/16", "single")]
        rows.append(("PaDiM dense, feature_ratio 0.25", results.get(f"{case}_ours_padim_dense_0.25"), theirs))
        for ratio in CORESET_RATIOS:
            rows.append((f"PatchCore {ratio}", results.get(f"{case}_ours_patchcore_{ratio}"),
                         results.get(f"{case}_anomalib_patchcore_{ratio}")))
        rows.append(("PatchCore 0.01, feature_ratio 0.25", results.get(f"{case}_ours_patchcore_0.01_fr0.25"),
                     results.get(f"{case}_anomalib_patchcore_0.01")))
        for title, ours, other in rows:
            if ours is None:
                continue
            line = (f"{case:4s} {title:34s} dims {ours['dim']:3d}  image {ours['image_auroc']:.4f}  pixel "
                    f"{ours['pixel_auroc']:.4f}  fit {ours['fit_s']:6.1f} s  peak {ours['peak_mb']:5.0f} MB  "
                    f"(fit growth {ours['fit_growth_mb']:4.0f} MB)")
            if other is not None:
                line += (f"  | anomalib image {other['image_auroc']:.4f}  pixel {other['pixel_auroc']:.4f}  fit "
                         f"{other['fit_s']:6.1f} s  peak {other['peak_mb']:5.0f} MB (fit growth "
                         f"{other['fit_growth_mb']:4.0f} MB)  | fit {other['fit_s'] / ours['fit_s']:.1f}x faster, "
                         f"image {'>=' if ours['image_auroc'] >= other['image_auroc'] else '<'}, pixel "
                         f"{'>=' if ours['pixel_auroc'] >= other['pixel_auroc'] else '<'}")
            lines.append(line)
        theirs = results.get(f"{case}_seeds_anomalib_padim")
        for mode in ("dense", "1/16", "single"):
            ours = results.get(f"{case}_seeds_ours_padim_{mode}")
            if ours is None:
                continue
            line = f"{case:4s} PaDiM {mode:6s} over {len(ours['seeds'])} channel draws: " + spread(ours)
            if theirs is not None:
                line += "  | anomalib dense: " + spread(theirs)
            lines.append(line)
        dense, theirs = results.get(f"{case}_ours_padim_dense"), results.get(f"{case}_anomalib_padim")
        if dense is not None and theirs is not None:
            lines.append(f"{case:4s} PaDiM dense statistics {dense['statistics_mb']:.1f} MiB (float32, in place) vs "
                         f"anomalib's embedding list {theirs['embedding_list_mb']:.1f} MiB for the same "
                         f"{CASES[case][0]} images")
    for ratio in CORESET_RATIOS:
        a, b = results.get(f"easy_ours_coreset_{ratio}"), results.get(f"easy_anomalib_coreset_{ratio}")
        if a is not None and b is not None:
            lines.append(f"coreset {a['patches']} patches x {a['dim']} dims at {ratio}: ours {a['coreset_s']:.2f} s, "
                         f"anomalib {b['coreset_s']:.2f} s -> {b['coreset_s'] / a['coreset_s']:.1f}x faster")
    return lines


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] in parts():  # a child process: one measurement
        print(json.dumps(run_part(sys.argv[1], Path(sys.argv[2]))))
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--summary":  # the summary of saved runs' results.json files
        merged = {}
        for path in sys.argv[2:]:
            merged.update(json.loads(Path(path).read_text()))
        print("\n".join(summary(merged)))
        return
    folder = Path(tempfile.mkdtemp(prefix="anomaly-bench-"))
    filters = sys.argv[1].split(",") if len(sys.argv) > 1 else [""]  # e.g. `hard,easy_ours_padim`
    table = parts()
    # a filter naming a part runs just that part (`hard_ours_padim_dense` alone, not `..._dense_0.25`)
    wanted = [n for n in table if any(f == n or (f not in table and f in n) for f in filters)]
    wanted.sort(key=lambda n: "anomalib_patchcore_0.1" in n or "anomalib_coreset_0.1" in n)  # the slowest last
    if not have_anomalib():
        print("anomalib is not installed in this interpreter (bash benchmarks/anomalib_env.sh): our parts only")
        wanted = [n for n in wanted if "anomalib" not in n]
    results = {}
    for name in wanted:
        done = subprocess.run([sys.executable, __file__, name, str(folder)], capture_output=True, text=True)
        if done.returncode:
            print(f"{name} failed:\n{done.stderr[-3000:]}", flush=True)
            continue
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        results[name]["load"] = os.getloadavg()[0]
        shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in results[name].items()}
        print(f"{name:34s} {json.dumps(shown)}", flush=True)
        (folder / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nresults: {folder / 'results.json'}")
    print("\n".join(f"RESULT {line}" for line in summary(results)))


if __name__ == "__main__":
    main()
