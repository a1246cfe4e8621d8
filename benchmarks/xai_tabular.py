"""LIME tabular at 1,000 samples on the tabular MLP: latency of one explanation, p50/p95. Ours
(`engine.xai.lime_tabular.TabularLime`, what lime_tabular and lime_tabular_batch run per row) vs the
`lime` package used the default way (`LimeTabularExplainer(train)` over the model's input columns,
`explain_instance(row, predict_proba, num_samples=1000)`), same model, same rows, same run, the two
taking turns row by row. Target: our p95 <= 150 ms.

Two tables go through the product's path (Tabular plugin encoding, then `train_tabular`):
- `cancer`: scikit-learn's breast cancer data, 569 rows of 30 numeric columns (real data);
- `census`: 3,000 synthetic census-like rows, 4 numeric and 4 categorical columns (7, 14, 6 and 10
  values), i.e. 41 model inputs after one-hot encoding, which we explain as 8 features.

    .venv/bin/python benchmarks/xai_tabular.py [explanations per table, default 200]
"""
from __future__ import annotations

import csv
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from lime.lime_tabular import LimeTabularExplainer  # noqa: E402

from benchmarks.stats import percentile  # noqa: E402
from nnc_web.engine.dataset_outputs import OutputSpec  # noqa: E402
from nnc_web.engine.reporting import ConsoleReporter  # noqa: E402
from nnc_web.engine.tabular import TabularOptions, build_tabular_datasets  # noqa: E402
from nnc_web.engine.training.tabular_mlp import load_tabular_csv, save_tabular_bundle, train_tabular  # noqa: E402
from nnc_web.engine.xai.lime_tabular import TabularLime  # noqa: E402
from nnc_web.engine.xai.tabular import features_of, load_tabular_model  # noqa: E402

SAMPLES = 1000
WARM_UP = 5


def cancer_csv(path: Path) -> Path:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*data.feature_names, "diagnosis"])
        for row, target in zip(data.data, data.target, strict=True):
            writer.writerow([*(f"{v:g}" for v in row), data.target_names[target]])
    return path


def census_csv(path: Path, rows: int = 3000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    values = {"workclass": 7, "occupation": 14, "marital": 6, "region": 10}
    effect = {name: rng.normal(0, 0.8, count) for name, count in values.items()}
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["age", "hours", "capital", "education", *values, "income"])
        for _ in range(rows):
            age, hours = rng.integers(18, 90), rng.integers(1, 99)
            capital, education = rng.lognormal(6, 2), rng.integers(6, 20)
            kinds = {name: rng.integers(count) for name, count in values.items()}
            score = 0.04 * (age - 40) + 0.03 * (hours - 40) + 0.3 * (education - 12) + 0.0002 * capital
            score += sum(effect[name][k] for name, k in kinds.items()) + rng.normal(0, 0.5)
            writer.writerow([age, hours, f"{capital:.0f}", education,
                             *(f"{name[:3]}{k}" for name, k in kinds.items()), ">50K" if score > 0 else "<=50K"])
    return path


def trained(source: Path, target: str, work: Path):
    """The table through the Tabular plugin's encoding and a tabular MLP, as a run makes them."""
    reporter = ConsoleReporter(work / "log", quiet=True)
    train_set, valid_set = build_tabular_datasets(source, work / "data", TabularOptions(target=target),
                                                  [OutputSpec("train", 80), OutputSpec("valid", 20)], True, 0,
                                                  reporter)
    train = load_tabular_csv(train_set.folder / train_set.csv_name)
    valid = load_tabular_csv(valid_set.folder / valid_set.csv_name)
    result = train_tabular(train, valid, reporter, max_epoch=20, batch_size=32, learning_rate=1e-3)
    save_tabular_bundle(work / "model", result.model, train, {"hidden": 64, "layers": 2, "dropout": 0.1})
    model = load_tabular_model(work / "model", torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return model, train, valid, result.metrics


def measure(name: str, source: Path, target: str, work: Path, count: int) -> tuple[float, float]:
    model, train, valid, metrics = trained(source, target, work)
    features = features_of(model, train.x, valid.x)
    ours = TabularLime(model, features, train.x, num_samples=SAMPLES)
    labels = [h.split(":", 1)[-1] for h in model.input_header]
    theirs = LimeTabularExplainer(train.x, feature_names=labels, class_names=model.class_names)
    rows = [valid.x[i % len(valid.x)] for i in range(count + WARM_UP)]
    times = {"ours": [], "lime": []}
    for number, row in enumerate(rows):
        for method in ("ours", "lime") if number % 2 == 0 else ("lime", "ours"):  # take turns
            start = time.perf_counter()
            if method == "ours":
                ours.explain(row, 1)
            else:
                theirs.explain_instance(row, model.predict_numpy, num_samples=SAMPLES)
            if number >= WARM_UP:
                times[method].append((time.perf_counter() - start) * 1000)
    print(f"{name}: {len(train.x)} training rows, {train.x.shape[1]} model inputs, {len(features)} features "
          f"explained, validation accuracy {metrics['accuracy']:.3f}, {count} explanations each")
    for method, values in times.items():
        print(f"RESULT {name}_{method}_p50_ms={percentile(values, 0.5):.1f}")
        print(f"RESULT {name}_{method}_p95_ms={percentile(values, 0.95):.1f}")
    return percentile(times["ours"], 0.95), percentile(times["lime"], 0.95)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        ratios = []
        for name, make, target in (("cancer", cancer_csv, "diagnosis"), ("census", census_csv, "income")):
            (root / name).mkdir()
            ours, theirs = measure(name, make(root / name / f"{name}.csv"), target, root / name, count)
            ratios.append(theirs / ours)
    print(f"RESULT torch_threads={torch.get_num_threads()}")
    print(f"RESULT load_average={os.getloadavg()[0]:.1f}")
    print(f"RESULT p95_ratio_cancer={ratios[0]:.2f}")
    print(f"RESULT p95_ratio_census={ratios[1]:.2f}")


if __name__ == "__main__":
    main()
