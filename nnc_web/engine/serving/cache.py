"""Loaded models, bounded and least recently used first out; a bundle whose files changed (a saved
threshold rewrites the manifest, a resumed run writes new weights) is loaded again on its next use."""
from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from nnc_web.engine.serving.predictor import Predictor


def fingerprint(folder: Path) -> tuple:
    """(size, mtime) of the manifest and the weights: two stat calls, cheap enough for every batch."""
    parts = []
    for name in ("manifest.json", "weights.safetensors"):
        try:
            stat = (folder / name).stat()
            parts.append((stat.st_size, stat.st_mtime_ns))
        except OSError:
            parts.append(None)
    return tuple(parts)


class ModelCache:
    def __init__(self, load: Callable[[Path], Predictor], capacity: int = 4) -> None:
        self.load, self.capacity = load, max(1, capacity)
        self._models: OrderedDict[Path, tuple[tuple, Predictor]] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # how many times a model was (re)loaded: the tests' evidence of caching

    def get(self, folder: Path) -> Predictor:
        folder = Path(folder)
        with self._lock:
            current = fingerprint(folder)
            held = self._models.get(folder)
            if held is not None and held[0] == current:
                self._models.move_to_end(folder)
                return held[1]
            if held is not None:
                del self._models[folder]
            predictor = self.load(folder)
            self.loads += 1
            self._models[folder] = (current, predictor)
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
                gc.collect()
                _free_cuda_cache()
            return predictor

    def held(self) -> list[Path]:
        """The cached bundles, least recently used first."""
        with self._lock:
            return list(self._models)

    def peek(self, folder: Path) -> Predictor | None:
        with self._lock:
            held = self._models.get(Path(folder))
            return held[1] if held else None


def _free_cuda_cache() -> None:
    """Give an evicted model's GPU memory back (torch is loaded: a model was)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
