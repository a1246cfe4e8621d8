"""Dataset viewer page at 100k rows: p50/p95 of `GET /api/datasets/<id>/rows/` at random offsets.

    .venv/bin/python benchmarks/dataset_page.py [--rows 100000]

Ours reads a page with one seek through the row-offset index built when the dataset was registered.
The baseline, in the same run, is what a first version does: parse the CSV with pandas and slice.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stats import percentile  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    os.environ.update(NNC_DATA_DIR=tempfile.mkdtemp(prefix="nnc-page-"), DJANGO_SETTINGS_MODULE="nnc_web.settings",
                      NNC_ALLOWED_HOSTS="testserver")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from PIL import Image

    from nnc_web.datasets.services import register_built_datasets
    from nnc_web.engine.classification_dataset import BuiltDataset
    from nnc_web.engine.nnc_csv import Column, write_csv
    from nnc_web.jobs.models import Job

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("pager", password="Pager-Pass-123")
    job = Job.objects.create(owner=user, kind="preprocess", plugin_id="image_classification")
    folder = Path(os.environ["NNC_DATA_DIR"]) / "build"
    (folder / "img").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folder / "img" / "a.png")
    rows = [["./img/a.png", str(i % 10)] for i in range(args.rows)]
    write_csv(folder / "big.csv", ["x:image", "y:label;" + ";".join(map(str, range(10)))], rows)
    built = BuiltDataset("big", folder, "big.csv", args.rows,
                         [Column("x", "image", "image", "3,8,8"), Column("y", "label", "label", "1")],
                         [str(i) for i in range(10)])
    dataset = register_built_datasets(job, [built])[0]
    client = Client()
    client.force_login(user)
    rng = random.Random(0)
    starts = [rng.randrange(0, args.rows - 50) for _ in range(args.requests)]
    ours = []
    for start in starts:
        began = time.perf_counter()
        response = client.get(f"/api/datasets/{dataset.pk}/rows/?start={start}&limit=50")
        ours.append(1000 * (time.perf_counter() - began))
        assert response.status_code == 200, response.content[:300]
        assert response.json()["rows"][0]["index"] == start
    import pandas as pd

    baseline = []
    for start in starts:  # as many samples as ours: percentiles of unequal samples are not comparable
        began = time.perf_counter()
        frame = pd.read_csv(dataset.csv_path())
        frame.iloc[start:start + 50].to_dict("records")
        baseline.append(1000 * (time.perf_counter() - began))
    print(f"RESULT rows={args.rows}")
    print(f"RESULT ours_p50_ms={statistics.median(ours):.1f}")
    print(f"RESULT ours_p95_ms={percentile(ours, 0.95):.1f}")
    print(f"RESULT baseline_pandas_p50_ms={statistics.median(baseline):.1f}")
    print(f"RESULT baseline_pandas_p95_ms={percentile(baseline, 0.95):.1f}")
    print(f"RESULT p95_ratio_baseline_over_ours={percentile(baseline, 0.95) / percentile(ours, 0.95):.1f}")


if __name__ == "__main__":
    main()
