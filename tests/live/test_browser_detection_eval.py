"""The run page's evaluation of a detector and a segmenter in a real Chromium: the metrics, the images
worst first with predicted boxes over truth (a live score threshold that only redraws) and predicted
masks over truth (prediction / truth / per-pixel error views, an opacity slider)."""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.live.test_browser import all_images_loaded, api_call, page, sign_up  # noqa: F401 - page is a fixture
from tests.sample_data import write_yolo_zip

pytestmark = [pytest.mark.live, pytest.mark.browser]

def watch_failures(browser_page) -> list[str]:
    """The requests of the evaluation (results, run and dataset files, plots) that failed."""
    failed: list[str] = []
    browser_page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 and any(
        part in r.url for part in ("/results/", "/files/", "/plot/", "/curves/")) else None)
    return failed


def script_errors(browser_page) -> list[str]:
    # a resource that failed is in watch_failures' list (the learning curves included)
    return [e for e in browser_page.errors if not e.startswith("Failed to load resource")]


def wait_for(browser_page, url: str, done: str, seconds: float = 90) -> dict:
    deadline = time.monotonic() + seconds
    while (item := api_call(browser_page, "GET", url))["state"] != done:
        assert time.monotonic() < deadline and item["state"] in ("queued", "running"), item
        time.sleep(0.3)
    return item


def trained(browser_page, archive, dataset_plugin: str, dataset_params: dict, config: dict, plugin: str,
            params: dict) -> dict:
    """Datasets made from `archive` by `dataset_plugin`, a project on its first two, a run of `plugin`
    trained to the end: the run."""
    upload = api_call(browser_page, "POST", f"/api/uploads/?filename={archive.name}", data=archive.read_bytes(),
                      headers={"Content-Type": "application/octet-stream"})
    job = api_call(browser_page, "POST", "/api/jobs/",
                   data={"plugin": dataset_plugin, "params": {"source": upload["id"], **dataset_params}})
    job = wait_for(browser_page, f"/api/jobs/{job['id']}/", "succeeded")
    datasets = {d["name"]: d["id"] for d in job["datasets"]}
    train, valid = (datasets["train"], datasets.get("valid", datasets.get("validation")))
    project = api_call(browser_page, "POST", "/api/projects/",
                       data={"name": plugin, "train_dataset": train, "valid_dataset": valid})
    api_call(browser_page, "PATCH", f"/api/projects/{project['id']}/", data={"config": config})
    run = api_call(browser_page, "POST", f"/api/projects/{project['id']}/runs/",
                   data={"plugin": plugin, "params": params})
    return wait_for(browser_page, f"/api/runs/{run['id']}/", "succeeded")


def test_detection_evaluation_draws_boxes_and_the_threshold_slider_redraws_them(page, tmp_path, artifacts):  # noqa: F811
    sign_up(page, "detectoruser")
    archive = write_yolo_zip(tmp_path / "shapes.zip", count=20, size=(160, 96))
    run = trained(page, archive, "object_detection_centernet", {
        "num_class": 2, "width": 64, "height": 64, "channel": 3, "grid_size": 4, "file1": "train", "ratio1": 80,
        "file2": "valid", "ratio2": 20}, {"max_epoch": 2, "batch_size": 8, "learning_rate": 2e-3},
        "object_detection", {"input_size": 64, "class_names": "red,green"})
    rows = api_call(page, "GET", f"/api/runs/{run['id']}/results/?limit=100")["rows"]
    scores = [b["score"] for r in rows for b in r["boxes"]]
    truths = sum(len(r["truth_boxes"]) for r in rows)
    assert len(rows) == 4 and 4 <= truths <= 8 and scores  # write_yolo_zip: 1 or 2 boxes an image

    failed = watch_failures(page)
    page.goto(f"/#/runs/{run['id']}")
    evaluation = page.get_by_test_id("prediction-evaluation")
    expect(evaluation).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("pred-map50")).to_have_text(f"{100 * run['metrics']['map_50']:.1f}%")
    expect(page.get_by_test_id("pred-per-class").locator("tbody tr")).to_have_count(2)
    expect(page.get_by_test_id("pred-pr-curve").locator("canvas").first).to_be_visible()  # the Bokeh plot
    figures = page.get_by_test_id("pred-rows").locator("figure")
    expect(figures).to_have_count(4)
    assert [int(f.get_attribute("data-row")) for f in figures.all()] == [r["index"] for r in rows]  # worst first
    all_images_loaded(page, ".pred-boxed img")
    boxes = page.get_by_test_id("pred-rows").locator("[data-testid=pred-box]")
    expect(page.get_by_test_id("pred-rows").locator("[data-testid=truth-box]")).to_have_count(truths)
    slider = page.get_by_test_id("pred-threshold")
    expect(slider).to_have_value("0.5")  # the run's threshold
    expect(boxes).to_have_count(sum(s >= 0.5 for s in scores))
    # the live error count at the run's threshold is the evaluation's own #errors
    shown_errors = [int(t) for t in page.get_by_test_id("pred-rows").get_by_test_id("pred-errors").all_inner_texts()]
    assert shown_errors == [int(r["error"]) for r in rows]
    page.screenshot(path=str(artifacts / "browser_detection_eval_threshold_default.png"), full_page=True)

    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/results/" in r.url else None)
    assert slider.get_attribute("min") == "0.05"  # the evaluation keeps boxes from 0.05
    slider.fill("0.05")
    expect(page.get_by_test_id("pred-threshold-value")).to_have_text("0.05")
    expect(boxes).to_have_count(len(scores))
    assert len(scores) > sum(s >= 0.5 for s in scores)
    middle = sorted(scores, reverse=True)[min(7, len(scores) - 1)]  # about as many boxes as there are truths
    slider.fill(f"{middle:.2f}")
    expect(boxes).to_have_count(sum(s >= float(f"{middle:.2f}") for s in scores))
    expect(page.get_by_test_id("pred-shown-count")).to_contain_text(
        f"{sum(s >= float(f'{middle:.2f}') for s in scores)} of {len(scores)} predicted boxes")
    assert requests == []  # the slider redraws what the page holds
    labels = page.get_by_test_id("pred-rows").locator(".pred-box-label")
    expect(labels).to_have_count(boxes.count())
    assert all(re.fullmatch(r"(red|green) [01]\.\d\d", t) for t in labels.all_inner_texts())
    page.screenshot(path=str(artifacts / "browser_detection_eval_threshold_moved.png"), full_page=True)

    figures.first.get_by_role("button").click()
    dialog = page.get_by_test_id("pred-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("[data-testid=truth-box]")).to_have_count(len(rows[0]["truth_boxes"]))
    expect(dialog.locator("[data-testid=pred-box]")).to_have_count(
        sum(b["score"] >= float(f"{middle:.2f}") for b in rows[0]["boxes"]))
    expect(dialog.get_by_test_id("pred-box-table").locator("tbody tr")).to_have_count(
        len(rows[0]["truth_boxes"]) + len(rows[0]["boxes"]))
    all_images_loaded(page, ".pred-large img")
    page.screenshot(path=str(artifacts / "browser_detection_eval_dialog.png"))
    dialog.get_by_test_id("result-next").click()
    expect(dialog.locator("[data-testid=truth-box]")).to_have_count(len(rows[1]["truth_boxes"]))
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    assert failed == [] and script_errors(page) == []


def test_segmentation_evaluation_shows_masks_and_the_per_pixel_error_view(page, tmp_path, artifacts):  # noqa: F811
    from tests.api.test_easymaker_api import segmentation_zip

    sign_up(page, "segmenteruser")
    run = trained(page, segmentation_zip(tmp_path), "easymaker_segmentation",
                  {"width": 64, "height": 64, "mode": "padding"}, {"max_epoch": 2, "batch_size": 4},
                  "semantic_segmentation", {"input_size": 64})
    rows = api_call(page, "GET", f"/api/runs/{run['id']}/results/")["rows"]
    assert len(rows) == 1

    failed = watch_failures(page)
    page.goto(f"/#/runs/{run['id']}")
    expect(page.get_by_test_id("prediction-evaluation")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("pred-mean-iou")).to_have_text(f"{100 * run['metrics']['mean_iou']:.1f}%")
    expect(page.get_by_test_id("pred-per-class").locator("tbody tr")).to_have_count(3)
    matrix = run["metrics"]["confusion_matrix"]
    expect(page.get_by_test_id("pred-confusion").locator("tbody td")).to_have_count(9)
    expect(page.get_by_test_id("pred-cm-1-1")).to_contain_text(f"{matrix[1][1]:,}")
    image = page.get_by_test_id("pred-rows").get_by_test_id("segmentation-image")
    expect(image).to_have_attribute("data-ready", "yes")
    expect(image).to_have_attribute("data-view", "prediction")
    page.screenshot(path=str(artifacts / "browser_segmentation_eval_prediction.png"), full_page=True)

    page.get_by_test_id("pred-view-error").click()
    expect(image).to_have_attribute("data-view", "error")
    expect(image).to_have_attribute("data-counted", "2048")  # the 80x40 image padded to 64x64: 255 is ignored
    wrong = int(image.get_attribute("data-wrong"))
    assert wrong / 2048 == pytest.approx(rows[0]["error"], abs=1e-4)  # the evaluation's own pixel error
    page.get_by_test_id("pred-opacity").fill("1")
    expect(image.get_by_test_id("seg-overlay")).to_have_css("opacity", "1")
    page.screenshot(path=str(artifacts / "browser_segmentation_eval_errors.png"), full_page=True)
    page.get_by_test_id("pred-view-truth").click()
    expect(image).to_have_attribute("data-view", "truth")
    image.click()
    dialog = page.get_by_test_id("pred-dialog")
    expect(dialog.get_by_test_id("segmentation-image")).to_have_attribute("data-ready", "yes")
    page.screenshot(path=str(artifacts / "browser_segmentation_eval_dialog.png"))
    assert failed == [] and script_errors(page) == []
