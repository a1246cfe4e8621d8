"""Issue 11's rough edges, in a real Chromium on the real stack: form labels in words with their
required fields, a corrupt zip named as such, backbones without weights marked (the import command
for staff only), histograms whose bars are proportional to their counts, learning curves (integer
epochs, per-step loss, validation accuracy, a colour per run and a dash per series when compared,
the legend outside), filters that show they are active and evaluation images opened larger with
their scores."""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.live.test_browser import _page, all_images_loaded, api_call, sign_up
from tests.sample_data import digit_images, write_class_zip, write_mvtec_zip, write_yolo_zip

pytestmark = [pytest.mark.live, pytest.mark.browser]


@pytest.fixture
def page(chromium, live_stack):
    context, page = _page(chromium, live_stack, enforce_csp=False)
    yield page
    context.close()


def wait_for_job(page, job_id: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while (job := api_call(page, "GET", f"/api/jobs/{job_id}/"))["state"] != "succeeded":
        assert time.monotonic() < deadline and job["state"] in ("queued", "running"), job
        time.sleep(0.3)
    return job


def make_datasets(page, archive, plugin: str, **params) -> list[int]:
    """Upload an archive and run a pre-processing plugin on it through the API; the dataset ids."""
    name = archive.name
    upload = api_call(page, "POST", f"/api/uploads/?filename={name}", data=archive.read_bytes(),
                      headers={"Content-Type": "application/octet-stream"})
    job = api_call(page, "POST", "/api/jobs/", data={"plugin": plugin, "params": {"source": upload["id"], **params}})
    return [d["id"] for d in wait_for_job(page, job["id"])["datasets"]]


def train(page, project_id: int, plugin: str = "transfer_learning", **params) -> int:
    run = api_call(page, "POST", f"/api/projects/{project_id}/runs/", data={"plugin": plugin, "params": params})
    deadline = time.monotonic() + 180
    while (state := api_call(page, "GET", f"/api/runs/{run['id']}/")["state"]) != "succeeded":
        assert time.monotonic() < deadline and state in ("queued", "running"), state
        time.sleep(0.5)
    return run["id"]


def test_dataset_form_in_words_required_fields_and_a_corrupt_zip(page, tmp_path, artifacts):
    sign_up(page, "formuser")
    page.get_by_test_id("create-dataset").click()
    dialog = page.get_by_role("dialog", name="Create dataset")
    expect(dialog.locator("label[for=param-file1]")).to_have_text("Training data name")
    file1 = dialog.locator(".field", has=page.locator("#param-file1"))
    expect(file1.locator(".param-name")).to_have_text("file1")  # the parameter's name, as a hint
    expect(file1.locator(".required-mark")).to_have_text("required")
    expect(dialog.locator("label[for=param-source]")).to_have_text("Image archive")
    expect(dialog.locator("input[name=width]")).to_have_attribute("placeholder", "default 256")
    page.screenshot(path=str(artifacts / "polish_form_labels.png"))

    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and "/api/jobs/" in r.url else None)
    dialog.locator("input[name=file1]").fill("")
    dialog.get_by_role("button", name="Run").click()
    expect(file1.locator(".field-error")).to_have_text("this field is required")
    source = dialog.locator(".field", has=page.locator("#param-source"))
    expect(source.locator(".field-error")).to_have_text("this field is required")
    assert posts == []  # said before anything was sent

    good = write_class_zip(tmp_path / "digits.zip", digit_images(6, 2))
    data = good.read_bytes()
    (tmp_path / "cut").mkdir()
    cut = tmp_path / "cut" / "digits.zip"
    cut.write_bytes(data[:len(data) // 2])  # an archive whose download stopped half-way
    dialog.locator("input[name=source]").set_input_files(str(cut))
    expect(source.locator(".file-input [role=alert]")).to_have_text(
        "digits.zip: the zip file is corrupt: it was cut short or damaged (its table of contents is missing); "
        "upload it again")
    page.screenshot(path=str(artifacts / "polish_corrupt_zip.png"))
    assert [e for e in page.errors if "status of 400" not in e] == []  # only the refused upload


def open_training_form(page, tmp_path, username: str) -> int:
    """A project on two tiny datasets, its page open on the Transfer Learning form; its id."""
    archive = write_class_zip(tmp_path / f"{username}.zip", digit_images(4, 2, size=16))
    train_id, valid_id = make_datasets(page, archive, "image_classification", width=16, height=16, ratio1=50,
                                       ratio2=50, file2="valid")
    project = api_call(page, "POST", "/api/projects/", data={"name": f"{username}-p", "train_dataset": train_id,
                                                              "valid_dataset": valid_id})
    page.goto(f"/#/projects/{project['id']}")
    expect(page.locator("select[name=training-plugin]")).to_have_value("transfer_learning")
    return project["id"]


def test_backbones_without_weights_are_marked_and_staff_see_the_import_command(page, live_stack, tmp_path,
                                                                              artifacts):
    sign_up(page, "modeluser")
    open_training_form(page, tmp_path, "modeluser")
    models = page.locator("select[name=model]")
    expect(models.locator("option[value=resnet18]")).to_contain_text("no weights on this server")
    expect(models.locator("option[value=efficientnet_lite0]")).not_to_contain_text("no weights")
    expect(page.get_by_test_id("missing-weights")).to_have_count(0)  # the default has its weights
    models.select_option("resnet18")
    warning = page.get_by_test_id("missing-weights")
    expect(warning).to_contain_text("Ask the administrator to import them")
    expect(warning).not_to_contain_text("import_weights")  # the command is for staff
    page.screenshot(path=str(artifacts / "polish_model_missing_user.png"))
    # DETR's and SegFormer's `pretrained` needs hub weights this server lacks: marked before any run
    page.locator("select[name=training-plugin]").select_option("segformer_b3")
    expect(page.get_by_test_id("missing-weights")).to_contain_text(
        "SegFormer-B3 encoder (MiT-b3, ImageNet-1k) are not on this server, so a run with pretrained on cannot start. "
        "Ask the administrator to import them, or turn pretrained off (random weights).")
    page.locator("input[name=pretrained]").uncheck()
    expect(page.get_by_test_id("missing-weights")).to_have_count(0)

    # The staff account the launcher made at first start signs in here.
    page.get_by_role("button", name="Sign out").click()
    page.goto("/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", (live_stack["data_dir"] / "admin-password.txt").read_text().strip())
    page.locator("button[type=submit]", has_text="Sign in").click()
    expect(page.get_by_role("heading", name="Datasets")).to_be_visible()
    open_training_form(page, tmp_path, "adminuser")
    page.locator("select[name=model]").select_option("wide_resnet50_2")
    expect(page.get_by_test_id("missing-weights")).to_contain_text(
        "python manage.py import_weights wide_resnet50_2 <file>")
    page.screenshot(path=str(artifacts / "polish_model_missing_staff.png"))
    page.locator("select[name=training-plugin]").select_option("detr_resnet50")
    expect(page.get_by_test_id("missing-weights")).to_contain_text(
        "python manage.py import_weights detr_resnet50 <folder or model.safetensors>, or turn pretrained off.")
    assert page.errors == []


def bar_widths(page) -> list[float]:
    return [page.locator(".hist-bar").nth(i).bounding_box()["width"] for i in range(page.locator(".hist-bar").count())]


def test_histogram_bars_are_proportional_to_their_counts(page, tmp_path, artifacts):
    sign_up(page, "histuser")
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    digits = digit_images(40, 3, size=16)
    uneven = {"0": digits["0"][:40], "1": digits["1"][:20], "2": digits["2"][:5]}
    (dataset,) = make_datasets(page, write_class_zip(tmp_path / "uneven.zip", uneven), "image_classification",
                               width=16, height=16)
    page.goto(f"/#/datasets/{dataset}")
    histogram = page.get_by_test_id("class-histogram")
    expect(histogram).to_contain_text("Images per class (65 in all)")
    widths = bar_widths(page)
    assert widths[0] > 150  # the largest bar takes the track, whatever the names and counts beside it
    assert widths[1] == pytest.approx(widths[0] * 20 / 40, abs=1.0)
    assert widths[2] == pytest.approx(widths[0] * 5 / 40, abs=1.0)
    histogram.screenshot(path=str(artifacts / "polish_histogram_images.png"))

    (boxes,) = make_datasets(page, write_yolo_zip(tmp_path / "shapes.zip", count=6,
                                                  extra={"classes.txt": b"red\ngreen\n"}),
                             "object_detection_yolo_v2", num_class=2, width=64, height=64, grid_size=16)
    counts = api_call(page, "GET", f"/api/datasets/{boxes}/")["class_counts"]
    page.goto(f"/#/datasets/{boxes}")
    expect(page.get_by_test_id("class-histogram")).to_contain_text(f"Boxes per class ({sum(counts)} in all)")
    widths = bar_widths(page)
    assert widths[1] == pytest.approx(widths[0] * counts[1] / counts[0], abs=1.0), (counts, widths)
    page.get_by_test_id("class-histogram").screenshot(path=str(artifacts / "polish_histogram_boxes.png"))
    assert page.errors == [], missing


def bokeh_json(page, script: str):
    """Evaluate `script` with `doc`, the learning-curves document, and `plot`, its figure."""
    return page.evaluate("""(script) => {
        const doc = Bokeh.documents.find(d => d.get_model_by_name('learning-curves'));
        const plot = doc.get_model_by_name('learning-curves');
        return Function('doc', 'plot', script)(doc, plot);
    }""", script)


def test_learning_curves_and_comparing_runs(page, tmp_path, artifacts):
    sign_up(page, "curvesuser")
    archive = write_class_zip(tmp_path / "digits.zip", digit_images(16, 3, size=32))
    train_id, valid_id = make_datasets(page, archive, "image_classification", width=32, height=32, ratio1=50,
                                       ratio2=50, file2="valid")
    project = api_call(page, "POST", "/api/projects/", data={"name": "curves", "train_dataset": train_id,
                                                              "valid_dataset": valid_id})
    api_call(page, "PATCH", f"/api/projects/{project['id']}/", data={"config": {"max_epoch": 3, "batch_size": 8}})
    first = train(page, project["id"], input_size=32)
    api_call(page, "PATCH", f"/api/projects/{project['id']}/", data={"config": {"max_epoch": 5, "batch_size": 8}})
    second = train(page, project["id"], input_size=32)

    page.goto(f"/#/runs/{first}")
    curves = page.get_by_test_id("learning-curves")
    expect(curves).to_have_attribute("data-ready", "true", timeout=30_000)
    run = api_call(page, "GET", f"/api/runs/{first}/")
    events = api_call(page, "GET", f"/api/jobs/{run['job']}/events/")["events"]
    metrics = [e["data"] for e in events if e["kind"] == "metric"]
    losses = [m["value"] for m in metrics if m["name"] == "loss"]
    expected_x, epoch_steps = [], []  # the k-th of an epoch's n steps at (epoch - 1) + k / n
    for m in metrics:
        if m["name"] == "loss":
            epoch_steps.append(m["value"])
        elif m["name"] == "train_loss":
            expected_x += [m["step"] - 1 + (k + 1) / len(epoch_steps) for k in range(len(epoch_steps))]
            epoch_steps = []
    assert len(losses) >= 3 and len(expected_x) == len(losses)  # steps in every epoch
    page.wait_for_function(f"""() => {{
        const doc = Bokeh.documents.find(d => d.get_model_by_name('steps-{first}'));
        return doc && doc.get_model_by_name('steps-{first}').data.x.length === {len(losses)};
    }}""")
    drawn = bokeh_json(page, f"""
        const steps = doc.get_model_by_name('steps-{first}').data;
        const epochs = doc.get_model_by_name('run-{first}').data;
        const legend = plot.right.find(m => m.constructor.__name__ === 'Legend');
        return {{x: Array.from(steps.x), loss: Array.from(steps.loss), min_interval: plot.below[0].ticker.min_interval,
                 labels: legend.items.map(i => i.label.value), inside: plot.center.some(m => m.constructor.__name__ === 'Legend'),
                 error: Array.from(epochs.valid_error), accuracy: Array.from(epochs.valid_accuracy)}};""")
    assert drawn["min_interval"] == 1  # whole epochs only
    assert drawn["loss"] == pytest.approx(losses)  # every streamed step, in order
    assert drawn["x"] == pytest.approx(expected_x) and drawn["x"][-1] == pytest.approx(3.0)
    assert drawn["accuracy"] == pytest.approx([1 - e for e in drawn["error"]])
    assert drawn["labels"] == ["train loss", "train error", "valid error", "valid accuracy", "train loss per step"]
    assert not drawn["inside"]
    page.wait_for_timeout(300)  # BokehJS paints on the next frame
    curves.screenshot(path=str(artifacts / "polish_learning_curves.png"))

    page.goto(f"/#/projects/{project['id']}")
    page.get_by_label(f"compare run {first}").check()
    page.get_by_label(f"compare run {second}").check()
    page.get_by_role("button", name="Compare selected runs").click()
    expect(page.get_by_test_id("learning-curves")).to_have_attribute("data-ready", "true", timeout=30_000)
    styles = bokeh_json(page, """
        const legend = plot.right.find(m => m.constructor.__name__ === 'Legend');
        const lines = plot.renderers.filter(r => r.glyph.constructor.__name__ === 'Line' && r.data_source.name
                                            && r.data_source.name.startsWith('run-'));
        return {labels: legend.items.map(i => i.label.value),
                lines: lines.map(r => [r.data_source.name, r.glyph.y.field, JSON.stringify(r.glyph.line_color),
                                    JSON.stringify(r.glyph.line_dash)])};""")
    assert styles["labels"] == [f"run {first}", f"run {second}", "train loss", "train error", "valid error",
                                "valid accuracy", "train loss per step"]
    colours = {name: {c for n, _, c, _ in styles["lines"] if n == name} for name, *_ in styles["lines"]}
    assert all(len(c) == 1 for c in colours.values()) and len({next(iter(c)) for c in colours.values()}) == 2
    dashes = {field: {d for _, f, _, d in styles["lines"] if f == field} for _, field, *_ in styles["lines"]}
    assert all(len(d) == 1 for d in dashes.values()) and len({next(iter(d)) for d in dashes.values()}) == 4
    page.wait_for_timeout(300)
    page.get_by_test_id("learning-curves").screenshot(path=str(artifacts / "polish_compare_curves.png"))

    page.goto(f"/#/runs/{first}")
    page.get_by_test_id("tab-table").click()
    misclassified = page.get_by_test_id("filter-misclassified")
    expect(misclassified).to_be_visible()
    label = page.locator("label", has=misclassified)
    expect(label).not_to_have_class(re.compile("filter-on"))
    misclassified.check()
    expect(label).to_have_class(re.compile("filter-on"))  # the filter in use is drawn as such
    misclassified.uncheck()
    page.get_by_test_id("output-table").locator("img.cell-thumb").first.click()
    dialog = page.get_by_test_id("image-dialog")
    scores = dialog.get_by_test_id("result-scores").locator("tbody tr")
    expect(scores).to_have_count(3)  # the image with its row's score for every class, highest first
    values = [float(scores.nth(i).locator("td.number").inner_text().rstrip("%")) for i in range(3)]
    assert values == sorted(values, reverse=True) and sum(values) == pytest.approx(100, abs=0.3)
    expect(scores.first).to_have_class(re.compile("predicted"))
    assert page.errors == []


def test_anomaly_masks_filters_and_evaluation_images_opened_larger(page, tmp_path, artifacts):
    sign_up(page, "anomalypolish")
    archive = write_mvtec_zip(tmp_path / "brick.zip", train=10, good=4, bad=4)
    make_datasets(page, archive, "anomaly_detection_dataset", prefix="brick_")
    named = {d["name"]: d["id"] for d in api_call(page, "GET", "/api/datasets/")["results"]}
    train_id, test_id = named["brick_train"], named["brick_test"]
    page.goto(f"/#/datasets/{test_id}")
    expect(page.get_by_test_id("class-histogram")).to_contain_text("Images per class (8 in all)")
    all_images_loaded(page, "[data-testid=masked-image] img")
    page.screenshot(path=str(artifacts / "polish_anomaly_masks.png"), full_page=True)
    # A normal image's overlay is fully transparent; an anomalous one's only where its defect is.
    alpha = page.evaluate("""() => Array.from(document.querySelectorAll('[data-testid=masked-image] img.overlay'))
        .map(img => { const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
                      const g = c.getContext('2d'); g.drawImage(img, 0, 0);
                      const d = g.getImageData(0, 0, c.width, c.height).data; let painted = 0;
                      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) painted++;
                      return painted / (c.width * c.height); })""")
    rows = api_call(page, "GET", f"/api/datasets/{test_id}/rows/?limit=8")["rows"]
    labels = [r["cells"][1] for r in rows]
    assert all(a == 0 for a, y in zip(alpha, labels, strict=True) if y == "0")
    assert all(0 < a < 0.25 for a, y in zip(alpha, labels, strict=True) if y == "1"), alpha

    project = api_call(page, "POST", "/api/projects/", data={"name": "brick", "train_dataset": train_id,
                                                              "valid_dataset": test_id})
    api_call(page, "PATCH", f"/api/projects/{project['id']}/", data={"config": {"batch_size": 8}})
    run_id = train(page, project["id"], plugin="padim")
    page.goto(f"/#/runs/{run_id}")
    evaluation = page.get_by_test_id("anomaly-evaluation")
    expect(evaluation).to_be_visible(timeout=30_000)
    expect(evaluation.locator("h4").first).to_have_text(re.compile("^Images per anomaly score"))
    show_all, flagged = page.get_by_test_id("show-all"), page.get_by_test_id("show-flagged")
    expect(show_all).to_have_attribute("aria-pressed", "true")
    expect(flagged).to_have_attribute("aria-pressed", "false")
    flagged.click()
    expect(flagged).to_have_attribute("aria-pressed", "true")
    expect(show_all).to_have_attribute("aria-pressed", "false")
    expect(flagged).to_have_class(re.compile(r"\bactive\b"))
    show_all.click()

    figures = page.get_by_test_id("result-rows").locator("figure")
    expect(figures).to_have_count(8)
    caption = figures.first.locator("figcaption").inner_text()
    figures.first.locator("button.figure-open").click()
    dialog = page.get_by_test_id("result-dialog")
    expect(dialog).to_be_visible()
    heat = dialog.get_by_test_id("result-heatmap")
    page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=heat.element_handle())
    assert heat.bounding_box()["width"] >= 300  # larger than the 124-px thumbnail
    score = dialog.get_by_test_id("result-score").inner_text()
    assert caption.startswith(f"{float(score):.3f}")
    expect(dialog.get_by_test_id("result-image-overlay")).to_be_visible()  # the most anomalous has a defect
    all_images_loaded(page, "[data-testid=result-dialog] img")
    page.screenshot(path=str(artifacts / "polish_anomaly_dialog.png"))
    dialog.get_by_test_id("result-next").click()
    expect(dialog.get_by_test_id("result-score")).not_to_have_text(score)
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)

    # Right-click the most anomalous image: Grad-CAM / LIME / SHAP of its anomaly score, enabled; Grad-CAM
    # starts a job on the run's bundle for class 0 and its overlay opens beside the image.
    figures.first.locator("img").click(button="right")
    menu = page.get_by_test_id("context-menu")
    for method in ("grad_cam", "lime_image", "shap_image"):
        expect(menu.get_by_test_id(f"menu-explain-{method}")).to_be_visible()
        expect(menu.get_by_test_id(f"menu-explain-{method}")).not_to_have_attribute("aria-disabled", "true")
    expect(menu.get_by_test_id("menu-explain-unavailable")).to_have_count(0)
    menu.get_by_test_id("menu-explain-grad_cam").click()
    explain = page.get_by_test_id("explain-dialog")
    expect(explain.get_by_test_id("explain-class")).to_contain_text("the image anomaly score")
    expect(explain.get_by_test_id("explain-overlay")).to_be_visible(timeout=60_000)
    all_images_loaded(page, "[data-testid=explain-overlay], [data-testid=explain-image]")
    assert page.evaluate("document.querySelector('[data-testid=explain-overlay]').naturalWidth") == 224
    page.screenshot(path=str(artifacts / "polish_anomaly_explain.png"))
    first_row = api_call(page, "GET", f"/api/runs/{run_id}/results/?limit=1")["rows"][0]
    job = next(p for p in api_call(page, "GET", f"/api/runs/{run_id}/postprocess/")["results"] if p["plugin_id"] == "grad_cam")
    assert job["state"] == "succeeded"
    assert job["params"]["image"] == first_row["image"] and job["params"]["class_index"] == 0
    explain.get_by_role("button", name="Close").click()
    expect(explain).to_have_count(0)
    assert page.errors == []




def test_run_page_exports_filters_images_and_log_times(page, tmp_path, artifacts):
    sign_up(page, "runpolish")
    archive = write_class_zip(tmp_path / "digits.zip", digit_images(12, 3, size=32))
    train_id, valid_id = make_datasets(page, archive, "image_classification", width=32, height=32, ratio1=50,
                                       ratio2=50, file2="valid")
    project = api_call(page, "POST", "/api/projects/", data={"name": "runpolish", "train_dataset": train_id,
                                                              "valid_dataset": valid_id})
    api_call(page, "PATCH", f"/api/projects/{project['id']}/", data={"config": {"max_epoch": 1, "batch_size": 8}})
    run_id = train(page, project["id"], input_size=32)
    page.goto(f"/#/runs/{run_id}")

    log = page.get_by_test_id("job-log")
    expect(log.locator(".log-line").last).to_have_text("worker done")  # the time is not part of the text
    times = [log.locator(".log-line").nth(i).get_attribute("data-time") for i in range(log.locator(".log-line").count())]
    assert times and all(re.fullmatch(r"\d\d:\d\d:\d\d", t) for t in times), times  # stored today: the time of day

    onnx = page.get_by_test_id("export-onnx")
    with page.expect_download(timeout=120_000) as download:
        onnx.click()
        expect(onnx).to_have_attribute("data-state", "preparing")  # the export takes seconds
        expect(onnx).to_have_text("Preparing ONNX…")
        expect(onnx).to_be_disabled()
        page.screenshot(path=str(artifacts / "polish_export_preparing.png"))
    assert download.value.suggested_filename == f"run{run_id}-model.onnx"
    expect(onnx).to_have_attribute("data-state", "idle")
    expect(onnx).to_have_text("ONNX")

    evaluation = page.get_by_test_id("evaluation")
    expect(evaluation).to_be_visible(timeout=30_000)
    every, wrong = page.get_by_test_id("all-rows"), page.get_by_test_id("misclassified")
    expect(every).to_have_attribute("aria-pressed", "true")
    wrong.click()
    expect(wrong).to_have_attribute("aria-pressed", "true")
    expect(every).to_have_attribute("aria-pressed", "false")
    every.click()
    expect(every).to_have_attribute("aria-pressed", "true")
    grid = page.get_by_test_id("result-rows")
    expect(grid).to_have_attribute("aria-busy", "false")  # the grid shows every row again, not the last filter's
    figure = grid.locator("figure").first
    caption = figure.locator("figcaption").inner_text()
    figure.locator("button.figure-open").click()
    dialog = page.get_by_test_id("result-dialog")
    image = dialog.get_by_test_id("result-image")
    page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=image.element_handle())
    assert image.bounding_box()["width"] >= 300  # the 40-px thumbnail, larger
    scores = dialog.get_by_test_id("result-scores").locator("tbody tr")
    expect(scores).to_have_count(3)
    values = [float(scores.nth(i).locator("td.number").inner_text().rstrip("%")) for i in range(3)]
    assert values == sorted(values, reverse=True) and sum(values) == pytest.approx(100, abs=0.3)
    shown = float(re.search(r"\((\d+)%\)$", caption).group(1))
    assert shown == pytest.approx(values[0], abs=1)  # the grid's score is the predicted class's
    page.screenshot(path=str(artifacts / "polish_result_dialog.png"))
    assert page.errors == []
