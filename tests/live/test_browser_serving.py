"""Serving in a real Chromium: run page -> Create endpoint -> the endpoint page's test form with an
image -> ranked labels shown, equal to the API's answer; the curl line and the statistics are there."""
from __future__ import annotations

import base64

import pytest
from playwright.sync_api import expect

from tests.live.test_browser import api_call, page, trained_run  # noqa: F401 - page is a fixture
from tests.sample_data import digit_images

pytestmark = [pytest.mark.live, pytest.mark.browser]


def test_create_an_endpoint_and_try_it_with_an_image(page, tmp_path, artifacts):  # noqa: F811
    run_id = trained_run(page, tmp_path, "serveuser")
    page.goto(f"/#/runs/{run_id}")
    page.get_by_test_id("create-endpoint").click()
    expect(page.get_by_test_id("endpoint-name")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("endpoint-state")).to_have_text("running")
    endpoint_id = int(page.evaluate("location.hash.split('/')[2]"))
    url = page.get_by_test_id("endpoint-url").inner_text()
    assert url.endswith(f"/api/endpoints/{endpoint_id}/predict/")
    expect(page.get_by_test_id("curl-line")).to_contain_text(f"-d @input.json {url}")

    image = tmp_path / "two.png"
    digit_images(1, 3, size=32)["2"][0].convert("RGB").save(image)
    page.get_by_test_id("test-image").set_input_files(str(image))
    ranked = page.get_by_test_id("prediction").locator("li")
    expect(ranked).to_have_count(3, timeout=60_000)
    shown = [line.split()[0] for line in ranked.all_inner_texts()]
    assert sorted(shown) == ["0", "1", "2"]
    expected = api_call(page, "POST", f"/api/endpoints/{endpoint_id}/predict/", data={
        "instances": [{"data": base64.b64encode(image.read_bytes()).decode()}]})["predictions"][0]
    assert shown == [p["label"] for p in expected]  # ranked as the API ranks them
    assert ranked.first.locator(".ranked-score").inner_text() == f"{100 * expected[0]['score']:.1f}%"
    expect(page.get_by_test_id("stat-requests")).not_to_have_text("0", timeout=15_000)  # written by the server
    page.screenshot(path=str(artifacts / "browser_endpoint.png"), full_page=True)
    assert page.errors == []
