"""Which series a run's learning curves draw: its history's numbers, or, before the first epoch, those its
training plugin declares (so the live stream has a line to grow for every trainer)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from nnc_web.plugins.registry import PLUGINS
from nnc_web.projects.plots import CLASSIFIER, series_of


@pytest.mark.parametrize(("plugin_id", "expected"), [
    ("detr_resnet50", ("train_loss", "loss_ce", "loss_bbox", "loss_giou", "valid_map50", "valid_map")),
    ("segformer_b3", ("train_loss", "valid_mean_iou", "valid_overall_accuracy")),
    ("object_detection", ("train_loss", "heat_loss", "size_loss", "offset_loss", "valid_map50", "valid_map")),
    ("semantic_segmentation", ("train_loss", "valid_mean_iou", "valid_overall_accuracy")),
    ("transfer_learning", CLASSIFIER),
])
def test_a_new_run_draws_what_its_trainer_will_record(plugin_id, expected):
    assert series_of(SimpleNamespace(plugin_id=plugin_id, history=[])) == expected


def test_the_declared_series_are_those_the_trainers_record():
    from nnc_web.engine.detection_training import detr

    assert PLUGINS["detr_resnet50"].curves == ("train_loss", *detr.LOSS_PARTS, "valid_map50", "valid_map")
    for plugin in PLUGINS.values():
        if plugin.kind == "training" and plugin.curves is not None:
            assert "train_loss" in plugin.curves and len(set(plugin.curves)) == len(plugin.curves), plugin.id


def test_a_key_first_recorded_in_a_later_epoch_still_gets_its_line():
    run = SimpleNamespace(plugin_id="detr_resnet50", history=[
        {"epoch": 1, "train_loss": 2.0, "seconds": 3.1},
        {"epoch": 2, "train_loss": 1.5, "valid_map50": 0.4, "flag": True, "seconds": 3.0}])
    assert series_of(run) == ("train_loss", "valid_map50")
