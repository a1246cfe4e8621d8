"""The web side (Daphne, the launcher, manage.py commands) reads the plugins' schemas without loading the
learning libraries: each of those processes would otherwise spend 10+ s and a few hundred MB importing
torch, captum, scikit-learn and OpenCV it never uses. The plugins import the engine inside their runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nnc_web.plugins.registry import PLUGINS

ROOT = Path(__file__).resolve().parents[1]
# What only a worker running a job needs (pandas, Pillow and Bokeh are the web side's own: tables, plots).
LEARNING_LIBRARIES = ("torch", "torchvision", "timm", "safetensors", "captum", "lime", "sklearn", "scipy",
                      "skimage", "cv2", "openTSNE", "open_clip", "transformers", "onnxruntime", "matplotlib")

WEB_PROCESS = """
import json, sys
import django
django.setup()
import nnc_web.asgi  # noqa: F401 - what Daphne loads: the HTTP and websocket routes
from django.urls import get_resolver
from nnc_web.plugins.registry import PLUGINS, ordered
get_resolver().url_patterns  # every view module
schemas = [plugin.as_dict() for plugin in ordered()]  # what /api/plugins/ serves
print(json.dumps({"plugins": sorted(PLUGINS), "listed": len(schemas), "modules": sorted(sys.modules)}))
"""


def test_the_web_side_lists_every_plugin_without_loading_the_learning_libraries():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "nnc_web.settings_test"}
    done = subprocess.run([sys.executable, "-c", WEB_PROCESS], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["plugins"] == sorted(PLUGINS) and seen["listed"] >= 30  # nothing lost by importing lazily
    loaded = {name.split(".")[0] for name in seen["modules"]}
    assert loaded.isdisjoint(LEARNING_LIBRARIES), sorted(loaded & set(LEARNING_LIBRARIES))
