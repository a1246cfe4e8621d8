"""Explain from any evaluation image in a real Chromium, on the run page itself: a confusion-matrix cell
filters the grid -> right-click an image -> Explain with Grad-CAM -> the overlay opens beside it; "Why did it
fail?" runs its job and shows per class the most / least activating and misclassified images with their
Grad-CAM overlays, again after a reload; the most / least activating images have the same menu."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.live.test_browser import all_images_loaded, api_call, page, trained_run  # noqa: F401 - page is a fixture

pytestmark = [pytest.mark.live, pytest.mark.browser]

PER_CLASS = 3  # the plugin's default: images of each kind per class


def natural_sizes(browser_page, selector: str) -> list[list[int]]:
    return browser_page.evaluate(f"Array.from(document.querySelectorAll({selector!r})).map(i => [i.naturalWidth, i.naturalHeight])")


def test_explain_from_the_run_page_grid_and_why_did_it_fail(page, tmp_path, artifacts):  # noqa: F811
    run_id = trained_run(page, tmp_path, "explaineverywhere")
    metrics = api_call(page, "GET", f"/api/runs/{run_id}/")["metrics"]
    matrix = metrics["confusion_matrix"]
    # The off-diagonal cell with the most rows (the mislabelled 2s), else the fullest cell.
    cells = [(count, a, p) for a, row in enumerate(matrix) for p, count in enumerate(row) if count]
    _, actual, predicted = max(cells, key=lambda c: (c[1] != c[2], c[0]))
    count = matrix[actual][predicted]

    page.goto(f"/#/runs/{run_id}")
    evaluation = page.get_by_test_id("evaluation")
    expect(evaluation).to_be_visible(timeout=30_000)
    page.get_by_test_id(f"cm-{actual}-{predicted}").click()
    expect(page.get_by_test_id("result-count")).to_contain_text(f"{count} rows")
    grid = page.get_by_test_id("result-rows")
    expect(grid).to_have_attribute("aria-busy", "false")
    expect(grid.locator("figure")).to_have_count(min(count, 40))
    all_images_loaded(page, "[data-testid=result-rows] img")

    first = grid.locator("figure").first
    row = int(first.get_attribute("data-row"))
    first.locator("img").click(button="right")
    menu = page.get_by_test_id("context-menu")
    expect(menu.get_by_test_id("menu-open-image")).to_be_visible()
    for method in ("grad_cam", "lime_image", "shap_image"):
        expect(menu.get_by_test_id(f"menu-explain-{method}")).to_be_visible()
        expect(menu.get_by_test_id(f"menu-explain-{method}")).not_to_have_attribute("aria-disabled", "true")
    menu.get_by_test_id("menu-explain-grad_cam").click()
    dialog = page.get_by_test_id("explain-dialog")
    expect(dialog.get_by_test_id("explain-class")).to_contain_text(f"Class explained: {predicted}")
    expect(dialog.get_by_test_id("explain-overlay")).to_be_visible(timeout=60_000)
    all_images_loaded(page, "[data-testid=explain-overlay], [data-testid=explain-image]")
    assert natural_sizes(page, "[data-testid=explain-overlay]") == [[32, 32]]  # at the model's input size
    page.screenshot(path=str(artifacts / "explain_everywhere_grid.png"), full_page=True)
    # The job explained the clicked row's image (its cell in the evaluation) for its predicted class.
    image = api_call(page, "GET", f"/api/runs/{run_id}/results/?actual={actual}&predicted={predicted}&limit=40")
    clicked = next(r for r in image["rows"] if r["index"] == row)
    job = next(p for p in api_call(page, "GET", f"/api/runs/{run_id}/postprocess/")["results"] if p["plugin_id"] == "grad_cam")
    assert job["state"] == "succeeded"
    assert job["params"]["image"] == clicked["image"] and job["params"]["class_index"] == predicted
    dialog.get_by_role("button", name="Close").click()

    # Why did it fail: per class, PER_CLASS most and least activating, and up to PER_CLASS misclassified.
    why = page.get_by_test_id("why-did-it-fail")
    why.get_by_test_id("why-start").click()
    expect(why.get_by_test_id("job-panel")).to_be_visible()
    expect(why.get_by_test_id("why-result")).to_be_visible(timeout=60_000)
    support = [sum(row) for row in matrix]
    expected = {c: 2 * min(PER_CLASS, n) + min(PER_CLASS, n - matrix[c][c]) for c, n in enumerate(support) if n}
    for c, picks in expected.items():
        expect(why.get_by_test_id(f"why-class-{c}").get_by_test_id("why-overlay")).to_have_count(picks)
        wrong = support[c] - matrix[c][c]
        expect(why.get_by_test_id(f"why-{c}-misclassified").get_by_test_id("why-overlay")).to_have_count(min(PER_CLASS, wrong))
    overlays = why.get_by_test_id("why-overlay")
    expect(overlays).to_have_count(sum(expected.values()))
    all_images_loaded(page, "[data-testid=why-overlay]")
    # Each picture: the image, Grad-CAM of the true class, of the predicted one (32 px, 2 px gaps).
    assert set(map(tuple, natural_sizes(page, "[data-testid=why-overlay]"))) == {(3 * 32 + 2 * 2, 32)}
    why.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "explain_everywhere_why.png"), full_page=True)

    # Reopened, the page shows the latest result again.
    page.reload()
    expect(page.get_by_test_id("why-result")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("why-overlay")).to_have_count(sum(expected.values()))

    # The most / least activating images: the same menu (by keyboard here).
    extremes = page.get_by_test_id("extremes")
    most = extremes.locator("[data-testid^=extreme-most-]").first
    most.focus()
    page.keyboard.press("Shift+F10")
    menu = page.get_by_test_id("context-menu")
    expect(menu.get_by_test_id("menu-explain-shap_image")).to_be_visible()
    page.keyboard.press("Escape")
    expect(menu).to_have_count(0)
    expect(most).to_be_focused()
    assert page.errors == []
