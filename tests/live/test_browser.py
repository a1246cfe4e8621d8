"""The web flow in a real Chromium: sign up, upload, create a dataset, watch it, browse it."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.sample_data import digit_images, write_class_zip

pytestmark = [pytest.mark.live, pytest.mark.browser]


def _page(chromium, live_stack, enforce_csp: bool):
    # Playwright's wait_for_function evaluates its predicate with eval, which our Content-Security-Policy
    # forbids; the tests bypass the policy, except the one that checks the SPA works under it.
    context = chromium.new_context(base_url=live_stack["url"], viewport={"width": 1280, "height": 900},
                                   bypass_csp=not enforce_csp)
    page = context.new_page()
    page.errors = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    return context, page


@pytest.fixture
def page(chromium, live_stack):
    context, page = _page(chromium, live_stack, enforce_csp=False)
    yield page
    context.close()


@pytest.fixture
def csp_page(chromium, live_stack):
    context, page = _page(chromium, live_stack, enforce_csp=True)
    yield page
    context.close()


def sign_up(page, username: str) -> None:
    page.goto("/")
    page.get_by_role("button", name="Sign up").click()
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "Correct-Horse-42")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Datasets")).to_be_visible()


def test_sign_up_upload_create_watch_and_browse(page, tmp_path, artifacts):
    archive = write_class_zip(tmp_path / "digits.zip", digit_images(40, 3, size=48), top="digits",
                              extra={"2/corrupt.png": b"broken"})
    assert archive.stat().st_size > 65536  # at least two chunks
    chunk_requests: list[str] = []

    def drop_the_second_chunk(route):
        chunk_requests.append(route.request.url)
        if len(chunk_requests) == 2:
            route.abort("connectionreset")  # the network breaks mid-upload
        else:
            route.continue_()

    sign_up(page, "browseruser")
    page.route("**/chunk/**", drop_the_second_chunk)
    page.get_by_test_id("create-dataset").click()
    dialog = page.get_by_role("dialog", name="Create dataset")
    dialog.locator("input[name=source]").set_input_files(str(archive))
    expect(dialog.get_by_test_id("upload-status")).to_contain_text("Uploaded digits.zip", timeout=30_000)
    expect(dialog.get_by_test_id("upload-progress")).to_have_attribute("aria-valuenow", "100")
    assert chunk_requests[1] == chunk_requests[2] and chunk_requests[1].endswith("offset=65536")
    dialog.locator("input[name=width]").fill("32")
    dialog.locator("input[name=height]").fill("32")
    dialog.locator("input[name=ratio1]").fill("75")
    dialog.locator("input[name=ratio2]").fill("25")
    dialog.locator("input[name=file2]").fill("valid")
    dialog.get_by_role("button", name="Run").click()

    panel = page.get_by_test_id("job-panel")
    expect(panel.get_by_test_id("job-state")).to_have_text("succeeded", timeout=60_000)
    log = panel.get_by_test_id("job-log")
    expect(log).to_contain_text("found 121 images in 3 classes: 0, 1, 2")
    expect(log).to_contain_text("skipped 2/corrupt.png: not a readable image")
    expect(log.locator(".log-line").last).to_have_text("worker done")
    progress = panel.get_by_test_id("job-progress")
    expect(progress).to_have_attribute("aria-valuenow", "100")
    expect(progress).to_have_attribute("data-total", "121")
    page.screenshot(path=str(artifacts / "browser_job_panel.png"))

    expect(page.get_by_test_id("dataset-list")).to_contain_text("train")
    expect(page.get_by_test_id("dataset-list")).to_contain_text("x:image (3,32,32)")
    panel.get_by_role("link", name="train").click()
    expect(page.get_by_test_id("dataset-name")).to_have_text("train")
    expect(page.get_by_test_id("page-range")).to_have_text("rows 1–50 of 90")
    thumbs = page.locator("img.thumb")
    expect(thumbs).to_have_count(50)
    all_loaded = "Array.from(document.querySelectorAll('img.thumb')).every(i => i.complete && i.naturalWidth > 0)"
    thumbs.last.scroll_into_view_if_needed()  # thumbnails load lazily, as a person scrolls
    page.wait_for_function(all_loaded)
    labels = page.locator("span.label").all_inner_texts()
    assert len(labels) == 50 and all(re.fullmatch(r"([012]): \1", t) for t in labels)
    page.screenshot(path=str(artifacts / "browser_dataset_viewer.png"), full_page=True)
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_test_id("page-range")).to_have_text("rows 51–90 of 90")
    expect(thumbs).to_have_count(40)
    thumbs.last.scroll_into_view_if_needed()
    page.wait_for_function(all_loaded)
    assert [e for e in page.errors if "ERR_CONNECTION_RESET" not in e] == []  # only the break we caused


def test_errors_are_shown_clearly(page, tmp_path):
    sign_up(page, "errorsuser")
    page.get_by_test_id("create-dataset").click()
    dialog = page.get_by_role("dialog", name="Create dataset")
    dialog.get_by_role("button", name="Run").click()  # no file chosen yet
    expect(dialog.locator(".field-error")).to_have_text("this field is required")
    (tmp_path / "fake.zip").write_bytes(b"this is not an archive")
    dialog.locator("input[name=source]").set_input_files(str(tmp_path / "fake.zip"))
    expect(dialog.get_by_role("alert").first).to_contain_text("not a valid archive")
    good = write_class_zip(tmp_path / "good.zip", digit_images(2, 2))
    dialog.locator("input[name=source]").set_input_files(str(good))
    expect(dialog.get_by_test_id("upload-status")).to_contain_text("Uploaded good.zip")
    dialog.locator("input[name=ratio1]").fill("80")
    dialog.locator("input[name=ratio2]").fill("30")
    dialog.get_by_role("button", name="Run").click()
    expect(dialog.locator(".field-error")).to_have_text("ratio1 + ratio2 must be at most 100")
    page.goto("/#/datasets/999999")
    expect(page.get_by_role("alert")).to_contain_text("not found")


def test_job_panel_resumes_after_dropped_connections(page, live_stack, tmp_path):
    import requests

    sign_up(page, "reconnectuser")
    images = digit_images(500, 4, size=64)  # every digit scikit-learn has of 0-3 (~180 each)
    archive = write_class_zip(tmp_path / "many.zip", images)
    page.get_by_test_id("create-dataset").click()
    dialog = page.get_by_role("dialog", name="Create dataset")
    dialog.locator("input[name=source]").set_input_files(str(archive))
    expect(dialog.get_by_test_id("upload-status")).to_contain_text("Uploaded many.zip", timeout=60_000)
    # Enough work (720 images to 640 px) that the drops happen mid-run on a quiet machine too: at 256 px
    # the job once ended before the first drop.
    dialog.locator("input[name=width]").fill("640")
    dialog.locator("input[name=height]").fill("640")
    dialog.get_by_role("button", name="Run").click()
    panel = page.get_by_test_id("job-panel")
    # The stream's own state (data-state), not the row's that stands in until the events are replayed.
    expect(panel).to_have_attribute("data-state", "running", timeout=30_000)
    drops = 0
    while panel.get_attribute("data-state") == "running" and drops < 5:
        page.evaluate("window.__nncDropSockets()")  # the network drops; the panel reconnects with ?after=
        drops += 1
        page.wait_for_timeout(300)
    assert drops >= 2, "the job should still be running while the connection drops"
    expect(panel.get_by_test_id("job-state")).to_have_text("succeeded", timeout=120_000)
    shown = panel.locator(".log-line").all_inner_texts()
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    job_id = panel.get_attribute("data-job")
    stored = requests.get(f"{live_stack['url']}api/jobs/{job_id}/events/", cookies=cookies).json()["events"]
    assert shown == [e["data"]["line"] for e in stored if e["kind"] == "log"]  # all lines, once, in order
    total = str(sum(len(group) for group in images.values()))
    expect(panel.get_by_test_id("job-progress")).to_have_attribute("data-done", total)


def test_yolo_dataset_shows_its_boxes(page, tmp_path, artifacts):
    from tests.sample_data import write_yolo_zip

    archive = write_yolo_zip(tmp_path / "shapes.zip", count=6, extra={"classes.txt": b"red\ngreen\n"})
    sign_up(page, "yolouser")
    page.get_by_test_id("create-dataset").click()
    dialog = page.get_by_role("dialog", name="Create dataset")
    dialog.locator("select[name=plugin]").select_option("object_detection_yolo_v2")
    dialog.locator("input[name=source]").set_input_files(str(archive))
    expect(dialog.get_by_test_id("upload-status")).to_contain_text("Uploaded shapes.zip")
    dialog.locator("input[name=num_class]").fill("2")
    dialog.locator("input[name=width]").fill("160")
    dialog.locator("input[name=height]").fill("96")
    dialog.get_by_role("button", name="Run").click()
    panel = page.get_by_test_id("job-panel")
    expect(panel.get_by_test_id("job-state")).to_have_text("succeeded", timeout=60_000)
    expect(panel.get_by_test_id("job-log")).to_contain_text("kept 6 of 6 images (0 dropped)")
    panel.get_by_role("link", name="train").click()
    expect(page.get_by_test_id("class-histogram")).to_contain_text("Boxes per class")
    images = page.get_by_test_id("boxed-image")
    expect(images).to_have_count(6)
    expect(page.locator("svg rect.box")).to_have_count(9)  # 1 box on even images, 2 on odd ones
    expect(page.locator(".box-label", has_text="green").first).to_be_visible()
    page.wait_for_function("Array.from(document.querySelectorAll('.boxed img')).every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(artifacts / "browser_yolo_boxes.png"), full_page=True)
    assert page.errors == []


def test_dataset_from_a_server_folder(page, live_stack):
    for label, images in digit_images(5, 2).items():
        folder = live_stack["server_data"] / "lab" / "digits" / label
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            image.save(folder / f"{i}.png")
    sign_up(page, "serveruser")
    page.get_by_test_id("create-dataset").click()
    dialog = page.get_by_role("dialog", name="Create dataset")
    dialog.get_by_role("button", name="Or choose from the server").click()
    picker = dialog.get_by_test_id("server-picker")
    picker.get_by_role("link", name="server-data/").click()
    picker.get_by_role("link", name="lab/").click()
    picker.get_by_role("link", name="digits/").click()
    picker.get_by_role("button", name="Use this folder").click()
    expect(dialog.get_by_test_id("upload-status")).to_have_text("Server: server-data/lab/digits")
    dialog.locator("input[name=width]").fill("16")
    dialog.locator("input[name=height]").fill("16")
    dialog.get_by_role("button", name="Run").click()
    panel = page.get_by_test_id("job-panel")
    expect(panel.get_by_test_id("job-state")).to_have_text("succeeded", timeout=60_000)
    expect(panel.get_by_test_id("job-log")).to_contain_text("found 10 images in 2 classes: 0, 1")


def api_call(page, method: str, url: str, **kwargs):
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.fetch(url, method=method, headers={"X-CSRFToken": token, **kwargs.pop("headers", {})},
                                  **kwargs)
    assert response.ok, response.text()
    return response.json()


def digits_datasets(page, tmp_path, per_class: int, ratio1: int, grouped: dict | None = None) -> tuple[int, int]:
    """Digits of 3 classes at 32 px (or `grouped`), split into `train` and `valid` through the API; their ids."""
    import time

    archive = write_class_zip(tmp_path / "digits.zip", grouped or digit_images(per_class, 3, size=32))
    upload = api_call(page, "POST", "/api/uploads/?filename=digits.zip", data=archive.read_bytes(),
                      headers={"Content-Type": "application/octet-stream"})
    job = api_call(page, "POST", "/api/jobs/", data={"plugin": "image_classification", "params": {
        "source": upload["id"], "width": 32, "height": 32, "ratio1": ratio1, "ratio2": 100 - ratio1,
        "file2": "valid"}})
    deadline = time.monotonic() + 60
    while (job := api_call(page, "GET", f"/api/jobs/{job['id']}/"))["state"] != "succeeded":
        assert time.monotonic() < deadline and job["state"] in ("queued", "running"), job
        time.sleep(0.3)
    train_id, valid_id = (d["id"] for d in job["datasets"])
    return train_id, valid_id


def test_train_watch_curves_and_explore_the_confusion_matrix(page, tmp_path, artifacts):
    sign_up(page, "traineruser")
    train_id, valid_id = digits_datasets(page, tmp_path, per_class=20, ratio1=70)

    page.goto("/#/projects")
    page.fill("input[name=project-name]", "digits")
    page.get_by_label("Training dataset").select_option(str(train_id))
    page.get_by_label("Validation dataset").select_option(str(valid_id))
    page.get_by_role("button", name="Create project").click()
    page.get_by_role("link", name="digits").click()
    form = page.get_by_test_id("config-form")
    form.locator("input[name=max_epoch]").fill("4")
    form.locator("input[name=batch_size]").fill("8")
    form.get_by_role("button", name="Save config").click()
    expect(page.locator(".notice", has_text="Saved.")).to_be_visible()
    page.locator("input[name=input_size]").fill("32")
    page.get_by_role("button", name="Run", exact=True).click()

    expect(page.get_by_test_id("run-title")).to_be_visible()
    panel = page.get_by_test_id("job-panel")
    expect(panel.get_by_test_id("job-log")).to_contain_text("epoch 1/4", timeout=120_000)
    expect(panel.get_by_test_id("job-state")).to_have_text("succeeded", timeout=120_000)
    expect(panel.get_by_test_id("job-log")).to_contain_text("epoch 4/4")
    expect(page.get_by_test_id("learning-curves").locator("canvas").first).to_be_visible()
    epochs = page.evaluate("Bokeh.documents[Bokeh.documents.length - 1].get_model_by_name("
                           "'run-' + location.hash.split('/')[2]).data.epoch.length")
    data = page.evaluate("Bokeh.documents[Bokeh.documents.length - 1].get_model_by_name("
                         "'run-' + location.hash.split('/')[2]).data.epoch")
    assert epochs == 4, data  # the live stream (or the final history) filled every epoch

    evaluation = page.get_by_test_id("evaluation")
    expect(evaluation).to_be_visible(timeout=30_000)
    cell = page.get_by_test_id("cm-1-1")
    count = int(cell.inner_text().split()[0])
    cell.click()
    expect(page.get_by_test_id("result-count")).to_have_text(f"{count} rows (actual 1, predicted 1)")
    figures = page.get_by_test_id("result-rows").locator("figure")
    expect(figures).to_have_count(count)
    assert all(text.startswith("1 → 1") for text in figures.all_inner_texts())
    page.wait_for_function("Array.from(document.querySelectorAll('.result-grid img')).every(i => i.complete && i.naturalWidth > 0)")
    expect(page.get_by_test_id("extremes")).to_contain_text("most")
    page.screenshot(path=str(artifacts / "browser_training_evaluation.png"), full_page=True)
    assert page.errors == []


def test_anomaly_detection_padim_heat_maps_and_threshold(page, tmp_path, artifacts):
    from tests.sample_data import write_mvtec_zip

    sign_up(page, "anomalyuser")
    archive = write_mvtec_zip(tmp_path / "brick.zip", train=16, good=8, bad=8)
    page.get_by_test_id("create-dataset").click()
    dialog = page.get_by_role("dialog", name="Create dataset")
    dialog.locator("select[name=plugin]").select_option("anomaly_detection_dataset")
    dialog.locator("input[name=source]").set_input_files(str(archive))
    expect(dialog.get_by_test_id("upload-status")).to_contain_text("Uploaded brick.zip", timeout=30_000)
    dialog.locator("input[name=prefix]").fill("brick_")
    dialog.get_by_role("button", name="Run").click()
    panel = page.get_by_test_id("job-panel")
    expect(panel.get_by_test_id("job-state")).to_have_text("succeeded", timeout=60_000)
    expect(panel.get_by_test_id("job-log")).to_contain_text("8 normal, 8 anomalous images")
    expect(page.get_by_test_id("dataset-list")).to_contain_text("brick_test")
    datasets = {d["name"]: d["id"] for d in api_call(page, "GET", "/api/datasets/")["results"]}

    page.goto("/#/projects")
    page.fill("input[name=project-name]", "brick")
    page.get_by_label("Training dataset").select_option(str(datasets["brick_train"]))
    page.get_by_label("Validation dataset").select_option(str(datasets["brick_test"]))
    page.get_by_role("button", name="Create project").click()
    page.get_by_role("link", name="brick").click()
    page.locator("select[name=training-plugin]").select_option("padim")
    expect(page.locator("select[name=gaussian]")).to_have_value("dense")
    page.get_by_role("button", name="Run", exact=True).click()

    panel = page.get_by_test_id("job-panel")
    expect(panel.get_by_test_id("job-state")).to_have_text("succeeded", timeout=120_000)
    expect(panel.get_by_test_id("job-log")).to_contain_text("MB (float32")
    evaluation = page.get_by_test_id("anomaly-evaluation")
    expect(evaluation).to_be_visible(timeout=30_000)
    assert float(page.get_by_test_id("image-auroc").inner_text().rstrip("%")) >= 95
    assert float(page.get_by_test_id("pixel-auroc").inner_text().rstrip("%")) >= 95
    expect(page.get_by_test_id("score-histogram").locator("rect").first).to_be_visible()
    heat_maps = page.get_by_test_id("result-rows").locator("figure img")
    expect(heat_maps).to_have_count(16)
    page.wait_for_function("Array.from(document.querySelectorAll('.anomaly-grid img, img.tile'))"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    counts = page.get_by_test_id("threshold-counts")
    expect(counts).to_contain_text("8 of 16 images flagged anomalous")  # the suggested (best F1) threshold
    expect(page.locator(".anomaly-grid figure.flagged")).to_have_count(8)
    page.screenshot(path=str(artifacts / "browser_anomaly_evaluation.png"), full_page=True)

    slider = page.get_by_test_id("threshold-slider")
    slider.focus()
    page.keyboard.press("Home")  # the lowest score: every image is flagged, live
    expect(counts).to_contain_text("16 of 16 images flagged anomalous")
    expect(page.locator(".anomaly-grid figure.flagged")).to_have_count(16)
    expect(counts).to_contain_text("FP 8")
    page.keyboard.press("End")
    expect(counts).to_contain_text("1 of 16 images flagged anomalous")
    page.get_by_test_id("show-flagged").click()
    expect(page.get_by_test_id("result-count")).to_have_text("1 rows")
    page.get_by_test_id("save-threshold").click()
    expect(evaluation).to_contain_text("Threshold saved")
    run_id = page.evaluate("location.hash.split('/')[2]")
    saved = api_call(page, "GET", f"/api/runs/{run_id}/")["metrics"]["chosen_threshold"]
    assert saved == pytest.approx(float(page.get_by_test_id("threshold-value").inner_text()), abs=1e-4)
    assert page.errors == []


def trained_run(page, tmp_path, username: str) -> int:
    """A transfer-learning run trained through the API on digits where half the 2s are labelled 1: the
    linear head fits the rest, so the mislabelled rows are the misclassified ones to look at."""
    import time

    sign_up(page, username)
    grouped = digit_images(16, 3, size=32)
    grouped["1"] += grouped["2"][8:]
    grouped["2"] = grouped["2"][:8]
    train_id, valid_id = digits_datasets(page, tmp_path, per_class=16, ratio1=50, grouped=grouped)
    project = api_call(page, "POST", "/api/projects/", data={"name": "digits", "train_dataset": train_id,
                                                              "valid_dataset": valid_id})
    api_call(page, "PATCH", f"/api/projects/{project['id']}/", data={"config": {
        "max_epoch": 1, "batch_size": 8, "learning_rate": 1e-6}})
    run = api_call(page, "POST", f"/api/projects/{project['id']}/runs/", data={
        "plugin": "transfer_learning", "params": {"input_size": 32}})
    deadline = time.monotonic() + 120
    while (state := api_call(page, "GET", f"/api/runs/{run['id']}/")["state"]) != "succeeded":
        assert time.monotonic() < deadline and state in ("queued", "running"), state
        time.sleep(0.5)
    return run["id"]


def all_images_loaded(page, selector: str) -> None:
    page.wait_for_function(f"Array.from(document.querySelectorAll({selector!r})).length > 0 && "
                           f"Array.from(document.querySelectorAll({selector!r})).every(i => i.complete && i.naturalWidth > 0)")


def test_right_click_a_misclassified_row_save_it_and_tile_it(page, tmp_path, artifacts):
    run_id = trained_run(page, tmp_path, "evaluser")
    page.goto(f"/#/runs/{run_id}")
    page.get_by_test_id("tab-table").click()
    table = page.get_by_test_id("output-table")
    expect(table).to_be_visible()
    page.get_by_test_id("filter-misclassified").check()
    results = api_call(page, "GET", f"/api/runs/{run_id}/table/?misclassified=1&limit=500")
    wrong = [r["index"] for r in results["rows"]]
    assert len(wrong) >= 2, results["total"]  # the mislabelled 2s
    expect(table.locator("[data-testid^=output-row-]")).to_have_count(min(len(wrong), 50))
    all_images_loaded(page, ".cell-thumb")
    page.screenshot(path=str(artifacts / "browser_output_result.png"), full_page=True)

    page.get_by_test_id(f"cell-{wrong[0]}-1").click(button="right")
    menu = page.get_by_test_id("context-menu")
    expect(menu).to_be_visible()
    menu.get_by_test_id("menu-save-rows").click()
    expect(page.get_by_test_id("name-input")).to_have_value("misclassified")
    page.get_by_test_id("name-submit").click()
    expect(page.get_by_text(f"Saved misclassified.csv ({len(wrong)} rows).")).to_be_visible()

    page.get_by_test_id(f"cell-{wrong[0]}-0").focus()
    page.keyboard.press("Shift+F10")  # the keyboard way to the same menu
    expect(menu).to_be_visible()
    menu.get_by_test_id("menu-plugins").click()
    page.screenshot(path=str(artifacts / "browser_plugins_menu.png"))
    menu.get_by_test_id("menu-plugin-tile_images").click()
    dialog = page.get_by_test_id("plugin-dialog")
    expect(dialog.locator("select[name=input]")).to_have_value("output_result.csv")
    dialog.locator("select[name=input]").select_option("misclassified.csv")
    dialog.locator("input[name=num_column]").fill("4")
    dialog.get_by_test_id("plugin-submit").click()
    image = page.get_by_test_id("output-image")
    expect(image).to_be_visible(timeout=60_000)
    all_images_loaded(page, "[data-testid=output-image]")
    width = page.evaluate("document.querySelector('[data-testid=output-image]').naturalWidth")
    height = page.evaluate("document.querySelector('[data-testid=output-image]').naturalHeight")
    assert (width, height) == (4 * 32, -(-len(wrong) // 4) * 32)  # one 32-px tile per misclassified row
    page.screenshot(path=str(artifacts / "browser_tile_images.png"), full_page=True)
    assert page.errors == []


def test_tsne_then_scatter_plot_hover_shows_the_thumbnail(page, tmp_path, artifacts):
    run_id = trained_run(page, tmp_path, "tsneuser")
    page.goto(f"/#/runs/{run_id}")
    page.get_by_test_id("tab-table").click()
    expect(page.get_by_test_id("output-table")).to_be_visible()
    page.get_by_test_id("cell-0-0").click(button="right")
    page.get_by_test_id("menu-plugins").click()
    page.get_by_test_id("menu-plugin-tsne").click()
    dialog = page.get_by_test_id("plugin-dialog")
    expect(dialog.locator("select[name=variable]")).to_have_value("x")  # the clicked column
    dialog.locator("select[name=variable]").select_option("features")
    dialog.locator("input[name=perplexity]").fill("5")
    dialog.get_by_test_id("plugin-submit").click()
    scatter = page.get_by_test_id("scatter-this")
    expect(scatter).to_be_visible(timeout=90_000)
    scatter.click()
    dialog = page.get_by_test_id("plugin-dialog")
    expect(dialog.locator("select[name=x]")).to_have_value("features_tsne__0")
    expect(dialog.locator("select[name=y]")).to_have_value("features_tsne__1")
    dialog.get_by_test_id("plugin-submit").click()
    plot = page.get_by_test_id("output-plot")
    expect(plot.locator("canvas").first).to_be_visible(timeout=60_000)
    # Where the first point is drawn, from BokehJS's own scales; hover there.
    point = page.evaluate("""() => {
        const doc = Bokeh.documents.find(d => d.get_model_by_name('points'));
        const source = doc.get_model_by_name('points');
        const view = [...Bokeh.index].find(v => v.model && v.model.renderers &&
            v.model.renderers.some(r => r.data_source === source));
        const box = view.el.getBoundingClientRect();
        return {x: box.left + view.frame.x_scale.compute(source.data.x[0]),
                y: box.top + view.frame.y_scale.compute(source.data.y[0]), row: source.data.row[0]};
    }""")
    page.mouse.move(point["x"], point["y"])
    tooltip_image = page.locator(".bk-tooltip-content img").first  # inside Bokeh's shadow DOM
    expect(tooltip_image).to_be_visible(timeout=10_000)
    assert "thumb=1" in tooltip_image.get_attribute("src")
    page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=tooltip_image.element_handle())
    page.screenshot(path=str(artifacts / "browser_scatter_hover.png"), full_page=True)
    page.mouse.click(point["x"], point["y"])
    expect(page.get_by_test_id("row-details")).to_have_attribute("data-row", str(point["row"]))
    assert page.errors == []


def test_the_spa_and_its_plots_work_under_the_content_security_policy(csp_page, tmp_path):
    page = csp_page
    run_id = trained_run(page, tmp_path, "cspuser")
    page.goto(f"/#/runs/{run_id}")
    expect(page.get_by_test_id("learning-curves").locator("canvas").first).to_be_visible(timeout=30_000)
    page.get_by_test_id("tab-table").click()
    expect(page.get_by_test_id("output-table").locator("img.cell-thumb").first).to_be_visible()
    page.get_by_test_id("cell-0-2").click(button="right")  # the y'__0 column: the plot's x
    page.get_by_test_id("menu-plugins").click()
    page.get_by_test_id("menu-plugin-scatter_plot").click()
    page.get_by_test_id("plugin-dialog").get_by_test_id("plugin-submit").click()
    expect(page.get_by_test_id("output-plot").locator("canvas").first).to_be_visible(timeout=60_000)
    assert page.errors == [], page.errors  # a blocked script or style would be reported here
