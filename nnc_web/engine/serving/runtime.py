"""Where a model's forward pass runs: PyTorch (eager; CUDA when the predictor's device is a GPU) or,
on CPU, ONNX Runtime when the module exports to ONNX and is faster there. Faster is measured, not
assumed: both run the same batches (1 and 8; 1 alone when one runtime is twice as fast there) after a
warm-up and the lower total time wins; an export whose outputs disagree with PyTorch's is not used."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nnc_web.engine.atomic import replace_atomically

RUNTIMES = ("auto", "torch", "onnxruntime")
AGREEMENT = 1e-4  # largest |onnx - torch| output difference accepted, relative to the outputs' scale
TIMED_BATCHES = (1, 8)  # the first alone when one runtime is clearly faster there


class TorchRunner:
    name = "torch"

    def __init__(self, module: nn.Module, device: torch.device) -> None:
        self.module, self.device = module.to(device).eval(), device

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return self.module(batch.to(self.device)).float().cpu().numpy()


class OnnxRunner:
    name = "onnxruntime"

    def __init__(self, path: Path) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # no warnings about unused initialisers in the serving log
        # Idle threads sleep instead of spinning: on cores shared with training and the web processes,
        # EfficientNet-Lite0 at 224 px, batch 8, took 467 ms and 128 ms of CPU this way against 655 ms and
        # 204 ms spinning (a 2-core machine under load).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        return self.session.run(None, {self.input: batch.cpu().numpy()})[0]


@dataclass
class Choice:
    runner: TorchRunner | OnnxRunner
    report: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.runner.name


def export_onnx(module: nn.Module, example: torch.Tensor, path: Path, input_name: str = "input",
                output_name: str = "output") -> Path:
    """The module as ONNX (opset 17) with a dynamic batch dimension, written whole or not at all."""
    def write(target: Path) -> None:
        torch.onnx.export(module.eval(), (example,), str(target), input_names=[input_name],
                          output_names=[output_name], dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
                          opset_version=17, dynamo=False)

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        replace_atomically(path, write)
    return path


def _timed(run, batch: torch.Tensor, repeats: int = 3) -> float:
    run(batch)  # warm-up (allocations, kernel choice)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def choose_runtime(module: nn.Module, example: torch.Tensor, device: torch.device, preference: str = "auto",
                   onnx_dir: Path | None = None, key: str = "") -> Choice:
    """The runner for `module` (inputs shaped like `example`, batch first). `preference` `torch` or
    `onnxruntime` forces one (ONNX Runtime only on CPU); `auto` measures. The ONNX file is kept in
    `onnx_dir` under `key` (a fingerprint of the bundle), so a restarted server does not export again."""
    if preference not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}")
    torch_runner = TorchRunner(module, device)
    if device.type != "cpu" or preference == "torch":
        return Choice(torch_runner, {"runtime": "torch", "why": "CUDA" if device.type != "cpu" else "asked for"})
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return Choice(torch_runner, {"runtime": "torch", "why": "onnxruntime is not installed"})
    import tempfile

    folder = onnx_dir or Path(tempfile.mkdtemp(prefix="nnc-onnx-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24] if key else 'model'}.onnx"
    try:
        if not path.exists():
            export_onnx(module.cpu(), example[:1].cpu(), path)
        onnx_runner = OnnxRunner(path)
    except Exception as exc:  # noqa: BLE001 - a model that does not export is served by PyTorch
        return Choice(torch_runner, {"runtime": "torch", "why": f"ONNX export failed: {type(exc).__name__}"})
    if preference == "onnxruntime":
        return Choice(onnx_runner, {"runtime": "onnxruntime", "why": "asked for"})
    probe = torch.cat([example[:1]] * max(TIMED_BATCHES)).cpu()
    expected, got = torch_runner(probe), onnx_runner(probe)
    difference = float(np.abs(expected - got).max())
    scale = max(1.0, float(np.abs(expected).max()))
    runners = (("torch", torch_runner), ("onnxruntime", onnx_runner))
    timings = {name: _timed(runner, probe[:TIMED_BATCHES[0]]) * 1000 for name, runner in runners}
    if max(timings.values()) < 2 * min(timings.values()):  # close at batch 1: larger batches decide
        for name, runner in runners:
            timings[name] += sum(_timed(runner, probe[:size]) for size in TIMED_BATCHES[1:]) * 1000
    report = {"torch_ms": round(timings["torch"], 2), "onnxruntime_ms": round(timings["onnxruntime"], 2),
              "max_difference": difference}
    if difference > AGREEMENT * scale:
        return Choice(torch_runner, {**report, "runtime": "torch", "why": "ONNX outputs differ from PyTorch's"})
    faster = onnx_runner if timings["onnxruntime"] < timings["torch"] else torch_runner
    return Choice(faster, {**report, "runtime": faster.name, "why": "faster"})
