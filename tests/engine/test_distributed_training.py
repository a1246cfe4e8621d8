"""Distributed training on CPU: 2 gloo processes against 1 with the same global batch, a rank killed
mid-run then a resume, rank 0 alone reporting and writing, and the `devices` setting."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import torch

from nnc_web.engine.classification_dataset import OutputSpec, ShapingParams, build_classification_datasets
from nnc_web.engine.reporting import ConsoleReporter, UserError
from nnc_web.engine.training import distributed
from nnc_web.engine.training.data import load_classification_csv
from nnc_web.engine.training.trainer import TrainConfig, Trainer
from tests.sample_data import digit_images

# 48 training images, global batch 16: 3 steps an epoch, the same in both runs (no partial batch).
SETTINGS = {"batch_size": 16, "input_size": 32, "train_param": "all", "learning_rate": 1e-3}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """Real digits, 4 classes of 16, 16 px: 48 training and 16 validation images."""
    root = tmp_path_factory.mktemp("digits")
    for label, images in digit_images(16, 4, size=16).items():
        (root / "src" / label).mkdir(parents=True)
        for i, image in enumerate(images):
            image.save(root / "src" / label / f"{i}.png")
    train, valid = build_classification_datasets(
        root / "src", root / "work", ShapingParams(16, 16, "resize", 3),
        [OutputSpec("train", 75), OutputSpec("valid", 25)], True, 0, ConsoleReporter(root / "log", quiet=True))
    return load_classification_csv(train.folder / train.csv_name), load_classification_csv(valid.folder / valid.csv_name)


class Recorder(ConsoleReporter):
    """Keeps every progress call; `on_progress` may act on them (kill a rank)."""

    def __init__(self, workdir, on_progress=None) -> None:
        super().__init__(workdir, quiet=True)
        self.calls: list[tuple[int, int]] = []
        self.on_progress = on_progress

    def progress(self, done: int, total: int) -> None:
        super().progress(done, total)
        self.calls.append((done, total))
        if self.on_progress:
            self.on_progress(done, total)


def trainer_for(digits, workdir, reporter=None, **config):
    reporter = reporter or Recorder(workdir)
    trainer = Trainer("efficientnet_lite0", digits[0], digits[1], TrainConfig(**{**SETTINGS, **config}), workdir,
                      reporter, cache_dir=workdir.parent / "cache")
    return trainer, reporter


@pytest.fixture(scope="module")
def one_and_two(digits, tmp_path_factory):
    """The same fine-tuning (warm-up included) in 1 process and in 2 gloo processes. The single process
    runs with the threads each rank gets (the cores shared out): the warm-up's L-BFGS fits at weak weight
    decay are sensitive enough to float noise that 2 threads against 1 can pick another decay."""
    runs = {}
    threads = torch.get_num_threads()
    for devices in (1, 2):
        workdir = tmp_path_factory.mktemp(f"devices{devices}")
        trainer, reporter = trainer_for(digits, workdir, max_epoch=2, devices=devices)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
        try:
            runs[devices] = trainer.run(), reporter, workdir
        finally:
            torch.set_num_threads(threads)
    return runs


def test_two_gloo_processes_follow_the_single_process_loss_curve(one_and_two):
    """Each rank gets half of each of the single process's global batches (same permutation, dealt
    out) and DDP averages the gradients; BatchNorm keeps its pretrained statistics in `all`, so no
    per-rank batch statistics differ: what is left is float summation order (gradients summed across
    ranks rather than in one batch). Tolerance: relative 1e-3; seen: 1.6e-4 at epoch 2 after the warm-up
    (its weakly regularised head makes large logits), ~1e-7 without it."""
    one, two = one_and_two[1][0], one_and_two[2][0]
    losses = [[h["train_loss"] for h in result.history] for result in (one, two)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-3), losses
    assert losses[0][1] < losses[0][0]  # it learns
    assert [h["valid_error"] for h in one.history] == [h["valid_error"] for h in two.history]
    accuracy = [1 - min(h["valid_error"] for h in result.history) for result in (one, two)]
    print(f"final accuracy: 1 process {accuracy[0]:.4f}, 2 gloo processes {accuracy[1]:.4f}")
    assert accuracy[0] == accuracy[1] >= 0.5
    for a, b in zip(one.model.state_dict().values(), two.model.state_dict().values(), strict=True):
        assert (a.float() - b.float()).abs().max() <= 1e-3 * (1 + a.float().abs().max())


def test_only_rank_zero_reports_and_writes(one_and_two):
    _, reporter, workdir = one_and_two[2]
    assert any(line.startswith("distributed training: 2 processes (2 CPU processes, gloo), global batch 16 (8 per "
                               "process)") for line in reporter.lines)
    for epoch in (1, 2):
        assert sum(line.startswith(f"epoch {epoch}/2: train loss") for line in reporter.lines) == 1
    assert sum(line.startswith("warm-up:") for line in reporter.lines) == 1
    names = [m[0] for m in reporter.metrics]
    assert names.count("train_loss") == names.count("valid_error") == 2
    assert names.count("loss") == 6  # 3 global steps an epoch, once each
    assert [m[1] for m in reporter.metrics if m[0] == "loss"] == [1, 2, 3, 4, 5, 6]
    assert reporter.calls == [(done, 6) for done in range(1, 7)]
    assert sorted(p.name for p in workdir.iterdir()) == ["best.pt", "checkpoint.pt"]
    single = one_and_two[1][1]
    assert [m for m in reporter.metrics if m[0] == "valid_error"] == [m for m in single.metrics
                                                                      if m[0] == "valid_error"]


def test_a_killed_rank_fails_the_run_clearly_and_resume_finishes_it(digits, tmp_path):
    workdir = tmp_path / "run"
    killed = {}

    def kill_rank_one(done: int, total: int) -> None:
        if done > 3 and not killed:  # epoch 2 began: epoch 1's checkpoint is written
            killed["pid"], killed["at"] = trainer.processes.pids()[1], time.monotonic()
            os.kill(killed["pid"], signal.SIGKILL)

    trainer, reporter = trainer_for(digits, workdir, Recorder(workdir, kill_rank_one), max_epoch=3, warm_up=False,
                                    devices=2)
    with pytest.raises(UserError, match=r"training process 1 of 2 .*was killed \(SIGKILL\).*resume the run"):
        trainer.run()
    assert time.monotonic() - killed["at"] < 30  # noticed, not a hang in a collective
    assert all(p.exitcode is not None for p in trainer.processes.processes)  # no rank left running
    resumed, reporter = trainer_for(digits, workdir, max_epoch=3, warm_up=False, devices=2)
    result = resumed.run(resume=True)
    assert "resuming after epoch 1 from the checkpoint" in reporter.lines
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert sum(line.startswith("epoch 1/3") for line in reporter.lines) == 0  # not trained again


def test_cancel_stops_every_rank(digits, tmp_path):
    """The worker's cancel reaches rank 0, which broadcasts it: the run ends cancelled, every rank exits."""
    from nnc_web.engine.reporting import JobCancelled

    class CancelAt(Recorder):
        def should_stop(self) -> bool:
            return len(self.calls) >= 2

    trainer, reporter = trainer_for(digits, tmp_path / "run", CancelAt(tmp_path / "run"), max_epoch=3, devices=2,
                                    warm_up=False)
    with pytest.raises(JobCancelled):
        trainer.run()
    assert all(p.exitcode == 0 for p in trainer.processes.processes)  # each stopped by itself, at one batch
    assert len(reporter.calls) < 6


def test_a_cancel_in_rank_zeros_warm_up_stops_the_waiting_rank_at_once(digits, tmp_path, monkeypatch):
    """Rank 0 alone fits the warm-up head while rank 1 waits for it in DDP's first broadcast: a cancel
    seen by rank 0 there must not leave rank 1 waiting for the group's timeout."""
    from nnc_web.engine.reporting import JobCancelled

    monkeypatch.setenv("NNC_DDP_TIMEOUT", "600")

    class CancelNow(Recorder):
        def should_stop(self) -> bool:
            return True

    trainer, reporter = trainer_for(digits, tmp_path / "run", CancelNow(tmp_path / "run"), max_epoch=2, devices=2,
                                    warm_up=True)
    started = time.monotonic()
    with pytest.raises(JobCancelled):
        trainer.run()
    assert time.monotonic() - started < 60  # spawn + import + the grace, not NNC_DDP_TIMEOUT
    assert all(p.exitcode is not None for p in trainer.processes.processes)
    assert reporter.calls == []  # no epoch began


def test_devices_are_capped_by_the_machine(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert distributed.plan("2", "", use_cuda=False).world == 2
    with pytest.raises(UserError, match="the worker's machine has 2 CPU cores: use at most 2 CPU processes"):
        distributed.plan("3", "", use_cuda=False)
    with pytest.raises(UserError, match="from 1 to 64"):
        distributed.parse_devices("1024")  # a form cannot ask a worker for a thousand processes


def test_nodes_come_only_from_the_administrators_list(monkeypatch):
    """A rendezvous has no authentication: a user-chosen first node would receive the ranks' traffic."""
    monkeypatch.delenv("NNC_TRAINING_NODES", raising=False)
    assert distributed.parse_nodes("") == []
    with pytest.raises(UserError, match="multi-machine training is off on this studio.*NNC_TRAINING_NODES"):
        distributed.parse_nodes("gpu-a,gpu-b")
    monkeypatch.setenv("NNC_TRAINING_NODES", "gpu-a, gpu-b gpu-c")
    assert distributed.parse_nodes("gpu-c gpu-a") == ["gpu-c", "gpu-a"]
    with pytest.raises(UserError, match=r"attacker\.example is not among the machines an administrator allowed"):
        distributed.parse_nodes("attacker.example,gpu-a")
    monkeypatch.delenv("NNC_NODE_RANK", raising=False)
    with pytest.raises(UserError, match="runs on none of the nodes") as refused:
        distributed.plan("1", "gpu-a,gpu-b", use_cuda=False)
    assert socket.gethostname() not in str(refused.value)  # the server's own name stays out of messages
    monkeypatch.setenv("NNC_NODE_RANK", "1")
    placement = distributed.plan("1", "gpu-a,gpu-b", use_cuda=False)
    assert (placement.node_rank, placement.master_addr, placement.world) == (1, "gpu-a", 2)


def test_devices_setting(monkeypatch):
    monkeypatch.setenv("NNC_TRAINING_NODES", "gpu-a gpu-b gpu-c a")
    assert distributed.parse_devices("auto", cuda_count=0) == 1
    assert distributed.parse_devices("auto", cuda_count=4) == 4
    assert distributed.parse_devices("2") == 2 and distributed.parse_devices(1) == 1
    assert distributed.parse_devices(" 4 ") == 4 and distributed.parse_devices("") == 1
    for bad in ("two", "0", "-1", "1.5", "9999"):
        with pytest.raises(UserError, match="devices must be auto or a whole number"):
            distributed.parse_devices(bad)
    with pytest.raises(UserError, match="devices must be auto"):
        TrainConfig(devices="many").check()
    assert distributed.plan("auto", "", use_cuda=False).world == 1
    assert distributed.parse_nodes("gpu-a, gpu-b gpu-c") == ["gpu-a", "gpu-b", "gpu-c"]
    with pytest.raises(UserError, match="not a host name"):
        distributed.parse_nodes("gpu-a;rm -rf")
    with pytest.raises(UserError, match="named twice"):
        distributed.parse_nodes("a,a")


def test_the_cached_head_of_last_fc_only_stays_in_one_process(digits, tmp_path):
    trainer, reporter = trainer_for(digits, tmp_path / "run", max_epoch=1, devices=2, train_param="last_fc_only")
    result = trainer.run()
    assert ("devices is 2: last_fc_only trains a linear head on cached features: one process is enough"
            in reporter.lines)
    assert trainer.processes is None and [h["epoch"] for h in result.history] == [1]


def test_the_project_config_form_checks_devices_and_nodes(monkeypatch):
    from nnc_web.projects.config import clean_config

    monkeypatch.setenv("NNC_TRAINING_NODES", "gpu-a,gpu-b")
    config, errors = clean_config({"devices": "auto", "nodes": "gpu-a,gpu-b"})
    assert errors == {} and config["devices"] == "auto" and config["nodes"] == "gpu-a,gpu-b"
    assert clean_config({})[0]["devices"] == "1"  # one process, as before
    errors = clean_config({"devices": "two", "nodes": "a b a"})[1]
    assert errors["devices"].startswith("devices must be auto or a whole number")
    assert "named twice" in errors["nodes"]
    assert "not among the machines" in clean_config({"nodes": "gpu-a,elsewhere"})[1]["nodes"]


def join_as_node_one(workdir, joined: dict) -> threading.Thread:
    """Node 1 of a two-node run, played by this machine: wait for the spec node 0 leaves in the job folder,
    then join by hand as the README says (`python -m nnc_web.engine.training.distributed JOB_FOLDER
    --node-rank 1`). `joined` gets the spec and the finished command."""

    def join() -> None:
        spec = workdir / distributed.SPEC_NAME
        deadline = time.monotonic() + 120
        while not spec.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        joined["spec"] = json.loads(spec.read_text())
        joined["done"] = subprocess.run(
            [sys.executable, "-m", "nnc_web.engine.training.distributed", str(workdir), "--node-rank", "1"],
            capture_output=True, text=True, timeout=300, env={**os.environ, "NNC_NODE_RANK": ""})

    thread = threading.Thread(target=join, daemon=True)
    thread.start()
    return thread


def two_nodes_here(monkeypatch) -> str:
    """The node list of a two-node run whose nodes are both this machine (node 0: this process)."""
    nodes = "127.0.0.1,localhost"
    monkeypatch.setenv("NNC_TRAINING_NODES", nodes)
    monkeypatch.setenv("NNC_NODE_RANK", "0")
    monkeypatch.delenv("MASTER_PORT", raising=False)
    monkeypatch.setenv("NNC_DDP_TIMEOUT", "120")  # a join that fails fails the run in minutes, not 30
    # One thread a rank, as a one-machine run of 2 processes on 2 cores: each node would take every core
    # (its own machine's), and the two ranks, oversubscribed, ran ten times slower.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return nodes


def test_two_nodes_played_by_one_machine_train_together(digits, tmp_path, monkeypatch):
    """A two-machine run over TCP, both machines played by this one: node 0 is this worker
    (NNC_NODE_RANK 0), node 1 joins from the spec node 0 left in the job folder, whose rendezvous port
    is held by node 0's launcher from the moment it is chosen (two runs no longer share 29500)."""
    nodes = two_nodes_here(monkeypatch)
    workdir = tmp_path / "run"
    trainer, reporter = trainer_for(digits, workdir, max_epoch=1, devices=1, nodes=nodes)
    joined: dict = {}
    thread = join_as_node_one(workdir, joined)
    result = trainer.run()
    thread.join(timeout=300)
    assert joined["done"].returncode == 0, joined["done"].stderr[-3000:]
    assert joined["spec"]["master_port"] not in (0, distributed.DEFAULT_PORT)
    assert "kind" not in joined["spec"]  # the classifier's spec, as before: a spec without a kind is its
    assert any(line.startswith("distributed training: 2 processes (2 nodes x 1 CPU process, gloo)")
               for line in reporter.lines), reporter.lines
    assert [h["epoch"] for h in result.history] == [1]
    assert sorted(p.name for p in workdir.iterdir() if p.suffix == ".pt") == ["best.pt", "checkpoint.pt"]
    assert not (workdir / distributed.SPEC_NAME).exists()  # a later join cannot take this run's old port
    with pytest.raises(SystemExit) as refused:
        distributed._join([str(workdir), "--node-rank", "1"])
    assert refused.value.code == 2


def test_a_joining_node_refuses_datasets_other_than_node_zeros(tmp_path, capsys, monkeypatch):
    """Node 0's spec carries its CSVs' digests: another mount, or a dataset replaced during the run, stops the
    join with a message before any rank starts (it would otherwise train on other data in silence)."""
    from dataclasses import asdict

    train, valid = tmp_path / "train.csv", tmp_path / "valid.csv"
    train.write_text("x:image,y:label\n./a.png,0\n")
    valid.write_text("x:image,y:label\n./b.png,1\n")
    config = asdict(TrainConfig(devices=1, nodes=two_nodes_here(monkeypatch)))
    distributed.write_spec(tmp_path, {"backbone_id": "efficientnet_lite0", "train_csv": str(train),
                                      "valid_csv": str(valid), "config": config, "workdir": str(tmp_path),
                                      "cache_dir": str(tmp_path), "resume": False, "master_port": 1})
    spec = json.loads((tmp_path / distributed.SPEC_NAME).read_text())
    assert set(spec["digests"]) == {"train_csv", "valid_csv"}
    distributed.check_datasets(spec)  # the same files: nothing to say
    valid.write_text("x:image,y:label\n./b.png,0\n")  # one label changed
    handler = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as refused:
            distributed._join([str(tmp_path), "--node-rank", "1"])
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert refused.value.code == 1
    message = capsys.readouterr().err
    assert "the validation dataset (valid.csv) differs from the one node 0 read" in message
    assert str(tmp_path) not in message
    train.unlink()
    with pytest.raises(UserError, match=r"the training dataset \(train.csv\) is not in this machine's data folder"):
        distributed.check_datasets(spec)
