"""Explanations from the evaluation in a real Chromium: Output result -> misclassified filter -> right-click
an image -> Explain with Grad-CAM -> the overlay opens beside the image; the true class is one click away."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.live.test_browser import all_images_loaded, api_call, page, trained_run  # noqa: F401 - page is a fixture

pytestmark = [pytest.mark.live, pytest.mark.browser]


def test_misclassified_image_explained_with_grad_cam_from_its_context_menu(page, tmp_path, artifacts):  # noqa: F811
    run_id = trained_run(page, tmp_path, "explainuser")
    page.goto(f"/#/runs/{run_id}")
    page.get_by_test_id("tab-table").click()
    table = page.get_by_test_id("output-table")
    expect(table).to_be_visible()
    page.get_by_test_id("filter-misclassified").check()
    results = api_call(page, "GET", f"/api/runs/{run_id}/table/?misclassified=1&limit=500")
    wrong = results["rows"][0]
    expect(table.locator("[data-testid^=output-row-]")).to_have_count(min(results["total"], 50))
    all_images_loaded(page, ".cell-thumb")

    page.get_by_test_id(f"cell-{wrong['index']}-0").click(button="right")
    menu = page.get_by_test_id("context-menu")
    for method in ("grad_cam", "lime_image", "shap_image"):
        expect(menu.get_by_test_id(f"menu-explain-{method}")).to_be_visible()
    menu.get_by_test_id("menu-explain-grad_cam").click()
    dialog = page.get_by_test_id("explain-dialog")
    expect(dialog).to_be_visible()
    predicted = int(table.get_by_test_id(f"output-row-{wrong['index']}").get_attribute("data-predicted"))
    expect(dialog.get_by_test_id("explain-class")).to_contain_text(f"Class explained: {predicted}")
    overlay = dialog.get_by_test_id("explain-overlay")
    expect(overlay).to_be_visible(timeout=90_000)
    all_images_loaded(page, "[data-testid=explain-overlay]")
    size = page.evaluate("[document.querySelector('[data-testid=explain-overlay]').naturalWidth,"
                         " document.querySelector('[data-testid=explain-overlay]').naturalHeight]")
    assert size == [32, 32]  # the overlay at the model's input size
    page.screenshot(path=str(artifacts / "browser_explain_grad_cam.png"), full_page=True)

    # The job ran with the run's model, the clicked image and the row's predicted class.
    jobs = api_call(page, "GET", f"/api/runs/{run_id}/postprocess/")["results"]
    first = next(p for p in jobs if p["plugin_id"] == "grad_cam")
    assert first["state"] == "succeeded"
    assert first["params"]["image"] == wrong["cells"][0] and first["params"]["class_index"] == predicted

    # The true class, one click away: another job, another overlay.
    dialog.get_by_test_id("explain-other-class").click()
    expect(dialog.get_by_test_id("explain-class")).to_contain_text("(true)")
    expect(dialog.get_by_test_id("explain-overlay")).to_be_visible(timeout=90_000)
    jobs = api_call(page, "GET", f"/api/runs/{run_id}/postprocess/")["results"]
    classes = sorted(p["params"]["class_index"] for p in jobs if p["plugin_id"] == "grad_cam")
    assert len(set(classes)) == 2 and predicted in classes  # the predicted class, then the true one

    # The larger image (a click on the thumbnail) offers the same three.
    dialog.get_by_role("button", name="Close").click()
    table.get_by_test_id(f"cell-{wrong['index']}-0").locator("img").click()
    image_dialog = page.get_by_test_id("image-dialog")
    for method in ("grad_cam", "lime_image", "shap_image"):
        expect(image_dialog.get_by_test_id(f"image-explain-{method}")).to_be_visible()
    assert page.errors == []
