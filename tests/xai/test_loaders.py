"""A worker imports the engine only when a job needs it: the explanation methods still find the loaders
of every explainable bundle (anomaly and CLIP bundles register theirs from their own modules)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FRESH_WORKER = """
import json, sys, tempfile
from pathlib import Path
import torch
from nnc_web.engine.reporting import UserError
from nnc_web.engine.xai import classifier
before = sorted(classifier.LOADERS)
folder = Path(tempfile.mkdtemp())
(folder / "manifest.json").write_text(json.dumps({"architecture": "tabular_mlp"}))
try:
    classifier.load_image_classifier(folder, torch.device("cpu"), "Grad-CAM")
except UserError as exc:
    message = str(exc)
print(json.dumps({"before": before, "after": sorted(classifier.LOADERS), "message": message}))
"""


def test_every_explainable_bundle_has_its_loader_in_a_fresh_worker():
    done = subprocess.run([sys.executable, "-c", FRESH_WORKER], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"] == ["transfer_classifier"]  # nothing else imported yet, as in a fresh worker
    assert seen["after"] == ["clip_zero_shot", "padim", "patchcore", "transfer_classifier"]
    assert seen["message"] == "Grad-CAM needs an image classifier; this run's model is tabular_mlp"
