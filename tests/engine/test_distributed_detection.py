"""The detector and the segmenter under torch.distributed on CPU: 2 gloo processes against 1 with the same
global batch (the same step: BatchNorm over the global batch, loss averaged over its objects or labelled
pixels), rank 0 alone reporting and writing, a killed rank then a resume, and the batch_size checks.

The step is compared in float64, where the two must agree to rounding: in float32 this tiny detector
(random weights, four images, 1x1 cells at the stride-32 stage) is chaotic, and rounding alone moves
its loss by 6 % after one step and 40 % after three (the same single process in float32 against
float64), so the float32 runs' curves are compared loosely."""
from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from nnc_web.engine.detection_training.model import CenterNetDetector
from nnc_web.engine.detection_training.trainer import DetectionTrainer
from nnc_web.engine.detection_training.trainer import loader as detection_loader
from nnc_web.engine.reporting import ConsoleReporter, UserError
from nnc_web.engine.segmentation_training.model import LiteSegmenter
from nnc_web.engine.segmentation_training.trainer import SegmentationTrainer
from nnc_web.engine.segmentation_training.trainer import loader as segmentation_loader
from nnc_web.engine.training import distributed, ranks
from nnc_web.engine.training.trainer import TrainConfig
from nnc_web.launcher import free_port
from tests.engine.test_detection_training import NAMES, shapes_datasets
from tests.engine.test_distributed_training import Recorder, join_as_node_one, two_nodes_here
from tests.engine.test_segmentation_training import NAMES as SEGMENT_NAMES
from tests.engine.test_segmentation_training import build

SIZE = 32  # the smallest the stride allows: the test is about the steps, not the detections
# 12 training images, global batch 4: 3 steps an epoch in both runs (no partial batch). No augmentation:
# each rank would draw its own random stream.
SETTINGS = {"batch_size": 4, "input_size": SIZE, "learning_rate": 2e-2, "optimizer": "sgd", "pretrained": False, "device": "cpu"}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return shapes_datasets(tmp_path_factory.mktemp("shapes"), 16, SIZE)


def detector(shapes, workdir, reporter=None, **changes):
    reporter = reporter or Recorder(workdir)
    config = TrainConfig(**{**SETTINGS, "max_epoch": 2, **changes})
    return DetectionTrainer(shapes[0], shapes[1], NAMES, config, workdir, reporter), reporter


def single_and_double(make):
    """The same run in 1 process (with the threads each rank gets) and in 2 gloo processes."""
    runs = {}
    threads = torch.get_num_threads()
    for devices in (1, 2):
        trainer, reporter = make(devices)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
        try:
            runs[devices] = trainer.run(), reporter, trainer.workdir
        finally:
            torch.set_num_threads(threads)
    return runs


@pytest.fixture(scope="module")
def detections(shapes, tmp_path_factory):
    return single_and_double(lambda devices: detector(shapes, tmp_path_factory.mktemp(f"det{devices}"),
                                                      devices=devices))


def test_two_gloo_processes_take_the_single_process_detector_steps(detections):
    """float32 runs: the first step (the forward over the global batch) to rounding; later steps are not
    compared (float32 rounding alone moves them by percents: see the module's docstring), both learn."""
    one, two = detections[1][0], detections[2][0]
    steps = [[m[2] for m in detections[d][1].metrics if m[0] == "loss"] for d in (1, 2)]
    assert len(steps[0]) == len(steps[1]) == 6
    assert steps[0][0] == pytest.approx(steps[1][0], rel=1e-5)
    for run in (one, two):
        assert run.history[1]["train_loss"] < run.history[0]["train_loss"]  # it learns


def _gradients(task: dict, rank: distributed.Rank | None, per_rank_norm: bool = False) -> dict:
    """One step's gradients of `task`'s model (float64) on its batch: this rank's half through the
    trainer's distributed loss and ranks.wrap, or the whole batch in one process. `per_rank_norm`: plain
    DDP (each rank's BatchNorm over its own images), the control."""
    torch.manual_seed(0)
    model = task["model"]().double()
    make = DetectionTrainer if task["kind"] == "detector" else SegmentationTrainer
    workdir = task["workdir"] / (f"rank{rank.rank}" if rank else "single")
    config = TrainConfig(**{**SETTINGS, "max_epoch": 1})
    trainer = make(task["train"], task["train"], task["names"], config, workdir, ConsoleReporter(workdir, quiet=True),
                   rank=rank)
    images, targets = task["batch"]
    if rank is not None:
        share = len(images) // rank.world
        images, targets = images[rank.rank * share:(rank.rank + 1) * share], targets[rank.rank * share:(rank.rank + 1) * share]
        model = nn.parallel.DistributedDataParallel(model) if per_rank_norm else ranks.wrap(model, rank)
    model.train()
    loss, _, _ = trainer.losses(model, images.double(), targets)
    loss.backward()
    parameters = model.module.named_parameters() if rank is not None else model.named_parameters()
    return {name: p.grad.clone() for name, p in parameters}


def _rank_step(index: int, world: int, port: int, tasks: list[dict], results) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=index,
                                         world_size=world, timeout=timedelta(seconds=120))
    try:
        torch.set_num_threads(1)
        rank = distributed.Rank(index, index, world, "gloo", torch.device("cpu"))
        grads = [_gradients(task, rank, per_rank_norm) for task in tasks for per_rank_norm in (False, True)]
        if index == 0:
            results.put([{name: g.numpy() for name, g in found.items()} for found in grads])
    finally:
        torch.distributed.destroy_process_group()


def _distance(a: dict, b: dict) -> float:
    """|a - b| / |b| over every parameter's gradient together."""
    assert a.keys() == b.keys()
    return float(sum(((a[n] - b[n]) ** 2).sum() for n in a) ** 0.5 / sum((g ** 2).sum() for g in b.values()) ** 0.5)


def test_a_step_of_two_ranks_is_the_single_process_step_in_float64(shapes, tmp_path):
    """Detector and segmenter: the gradient DDP hands every rank equals one process's on the whole batch
    (1e-9 of float64 rounding); plain DDP, each rank normalising its own images, is percents away."""
    seg_train = build(tmp_path / "seg", "train", 4, 0)
    config = TrainConfig(**{**SETTINGS, "max_epoch": 1})
    tasks = [
        {"kind": "detector", "model": _DetectorOf3(), "train": shapes[0], "names": NAMES, "workdir": tmp_path,
         "batch": next(iter(detection_loader(shapes[0], SIZE, config, augment=False, batch_size=4)))},
        {"kind": "segmenter", "model": _SegmenterOf3(), "train": seg_train, "names": SEGMENT_NAMES,
         "workdir": tmp_path, "batch": next(iter(segmentation_loader(seg_train, SIZE, config, augment=False)))},
    ]
    assert len(tasks[0]["batch"][0]) == len(tasks[1]["batch"][0]) == 4
    context = mp.get_context("spawn")
    results = context.Queue()
    port = free_port()
    processes = [context.Process(target=_rank_step, args=(i, 2, port, tasks, results)) for i in range(2)]
    for process in processes:
        process.start()
    try:
        found = results.get(timeout=180)
        for process in processes:
            process.join(timeout=30)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
    assert [p.exitcode for p in processes] == [0, 0]
    for position, task in enumerate(tasks):
        single = _gradients(task, None)
        synced, per_rank = ({n: torch.from_numpy(g) for n, g in found[2 * position + k].items()} for k in (0, 1))
        assert _distance(synced, single) < 1e-9, task["kind"]
        assert _distance(per_rank, single) > 1e-2, task["kind"]


class _DetectorOf3:
    def __call__(self) -> nn.Module:
        return CenterNetDetector(3, pretrained=False)


class _SegmenterOf3:
    def __call__(self) -> nn.Module:
        return LiteSegmenter(3, pretrained=False)


def test_only_rank_zero_validates_reports_and_writes(detections):
    _, reporter, workdir = detections[2]
    assert ("distributed training: 2 processes (2 CPU processes, gloo), global batch 4 (2 per process)"
            in reporter.lines)
    for epoch in (1, 2):
        assert sum(line.startswith(f"epoch {epoch}/2: train loss") for line in reporter.lines) == 1
    names = [m[0] for m in reporter.metrics]
    assert names.count("valid_map50") == names.count("train_loss") == 2
    assert [m[1] for m in reporter.metrics if m[0] == "loss"] == [1, 2, 3, 4, 5, 6]
    assert reporter.calls == [(done, 6) for done in range(1, 7)]
    assert sorted(p.name for p in workdir.iterdir()) == ["best.pt", "checkpoint.pt"]
    single = detections[1][1]
    for name in ("valid_map50", "valid_map"):  # the same model, validated once, by rank 0
        assert [m[2] for m in reporter.metrics if m[0] == name] == pytest.approx(
            [m[2] for m in single.metrics if m[0] == name], abs=1e-6)


def test_a_distributed_detector_run_resumes_from_rank_zeros_checkpoint(shapes, detections):
    """The finished 2-process run, given a third epoch: it resumes after epoch 2 and trains only epoch 3
    (a killed rank's message and the launcher's clean-up are the classifier's, tested there)."""
    workdir = detections[2][2]
    resumed, reporter = detector(shapes, workdir, devices=2, max_epoch=3)
    result = resumed.run(resume=True)
    assert "resuming after epoch 2 from the checkpoint" in reporter.lines
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert [line.split(":")[0] for line in reporter.lines if line.startswith("epoch ")] == ["epoch 3/3"]
    assert [m[1] for m in reporter.metrics if m[0] == "loss"] == [7, 8, 9]


def test_cancel_ends_a_distributed_detector_run_at_once(shapes, tmp_path):
    """The worker's cancel reaches rank 0, which broadcasts it before each batch (or stops in its own
    validation, rank 1 then being stopped by the launcher): the run ends cancelled within seconds, long
    before its 6 steps, and no rank is left running."""
    from nnc_web.engine.reporting import JobCancelled

    class CancelAt(Recorder):
        def should_stop(self) -> bool:
            return len(self.calls) >= 2

    trainer, reporter = detector(shapes, tmp_path, CancelAt(tmp_path), devices=2)
    started = time.monotonic()
    with pytest.raises(JobCancelled):
        trainer.run()
    assert time.monotonic() - started < 60
    assert len(reporter.calls) < 6
    assert [p.exitcode is not None for p in trainer.processes.processes] == [True, True]
    assert trainer.processes.processes[0].exitcode == 0  # rank 0 stopped by itself


def test_the_segmenter_follows_the_single_process_curve_too(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    train, valid = build(root, "train", 8, 0), build(root, "valid", 4, 1)

    def make(devices):
        workdir = root / f"run{devices}"
        config = TrainConfig(**{**SETTINGS, "max_epoch": 1, "devices": devices})
        reporter = Recorder(workdir)
        return SegmentationTrainer(train, valid, SEGMENT_NAMES, config, workdir, reporter), reporter

    runs = single_and_double(make)
    steps = [[m[2] for m in runs[d][1].metrics if m[0] == "loss"] for d in (1, 2)]
    assert len(steps[0]) == len(steps[1]) == 2
    assert steps[0][0] == pytest.approx(steps[1][0], rel=1e-5)  # the forward over the global batch
    assert sorted(p.name for p in runs[2][2].iterdir()) == ["best.pt", "checkpoint.pt"]


def test_batch_size_is_split_or_refused():
    placement = distributed.Placement(4, "gloo")
    assert ranks.describe_batches(placement, 8).endswith("global batch 8 (2 per process)")
    assert ranks.describe_batches(placement, 10).endswith(
        "global batch 8 (2 per process); batch_size 10 is not a multiple of 4, so it was rounded down to 8")
    with pytest.raises(UserError, match="batch_size is 3, but the run has 4 training processes"):
        ranks.describe_batches(placement, 3)


def test_the_plugins_take_devices_and_nodes_and_a_join_starts_the_specs_trainer(monkeypatch):
    from nnc_web.engine.detection_training import trainer as detection_trainer
    from nnc_web.engine.segmentation_training import trainer as segmentation_trainer
    from nnc_web.engine.training import trainer as classifier_trainer
    from nnc_web.plugins.detection_training import PLUGIN as DETECTOR
    from nnc_web.plugins.segmentation_training import PLUGIN as SEGMENTER

    for plugin in (DETECTOR, SEGMENTER):
        assert {"devices", "nodes"} <= set(plugin.config_fields), plugin.id
    assert distributed.joiner({"backbone_id": "efficientnet_lite0"}) is classifier_trainer.join_run  # an old spec
    assert distributed.joiner({"kind": "classifier"}) is classifier_trainer.join_run
    assert distributed.joiner({"kind": "detector"}) is detection_trainer.join_run
    assert distributed.joiner({"kind": "segmenter"}) is segmentation_trainer.join_run
    with pytest.raises(UserError, match="names a trainer this studio does not have \\('os'; it has classifier, "
                                        "detector, segmenter\\)"):
        distributed.joiner({"kind": "os"})


def test_two_nodes_played_by_one_machine_train_a_detector(shapes, detections, tmp_path, monkeypatch):
    """The detector on two machines x 1 process over TCP, both played by this one as the classifier's
    test does: node 1 rebuilds the run from the spec (the datasets' CSVs, the class names, the config);
    its steps are the one-machine 2-process run's (the same ranks, one thread each, the same shares of the
    global batch), it learns, rank 0 writes the checkpoints, and the spec is gone at the end."""
    nodes = two_nodes_here(monkeypatch)
    workdir = tmp_path / "run"
    trainer, reporter = detector(shapes, workdir, devices=1, nodes=nodes)
    joined: dict = {}
    thread = join_as_node_one(workdir, joined)
    result = trainer.run()
    thread.join(timeout=300)
    assert joined["done"].returncode == 0, joined["done"].stderr[-3000:]
    spec = joined["spec"]
    assert (spec["kind"], spec["class_names"], spec["train_csv"]) == ("detector", NAMES, str(shapes[0].csv_path))
    assert spec["master_port"] not in (0, distributed.DEFAULT_PORT)
    assert ("distributed training: 2 processes (2 nodes x 1 CPU process, gloo), global batch 4 (2 per process)"
            in reporter.lines)
    steps = [m[2] for m in reporter.metrics if m[0] == "loss"]
    assert [m[1] for m in reporter.metrics if m[0] == "loss"] == [1, 2, 3, 4, 5, 6]
    one_machine = [m[2] for m in detections[2][1].metrics if m[0] == "loss"]
    print(f"losses: 2 nodes x 1 {steps}, 1 node x 2 {one_machine}")
    assert steps == pytest.approx(one_machine, rel=1e-5)  # the same ranks, threads and shares: the same steps
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]  # it learns
    assert sorted(p.name for p in workdir.iterdir() if p.suffix == ".pt") == ["best.pt", "checkpoint.pt"]
    saved = torch.load(workdir / "checkpoint.pt", weights_only=True)
    assert saved["epoch"] == 2 and saved["step"] == 6
    assert not (workdir / distributed.SPEC_NAME).exists()
