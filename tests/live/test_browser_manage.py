"""Managing work in a real Chromium: the config a run uses, the settings each plugin shows, renaming
and deleting runs and projects, the Jobs page, resume only with a checkpoint, action errors shown on
the page, and deleting a dataset that a project and its runs use."""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.live import test_browser as browser
from tests.live.test_browser import api_call, digits_datasets, sign_up, trained_run

pytestmark = [pytest.mark.live, pytest.mark.browser]
FINAL = ("succeeded", "failed", "cancelled")
page = browser.page  # the signed-out Chromium page fixture of the main browser tests


def wait_for(page, url: str, done, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while not done(answer := api_call(page, "GET", url)):
        assert time.monotonic() < deadline, answer
        time.sleep(0.3)
    return answer


def log_lines(page, job_id: int) -> list[str]:
    events = api_call(page, "GET", f"/api/jobs/{job_id}/events/")["events"]
    return [e["data"]["line"] for e in events if e["kind"] == "log"]


def test_runs_use_the_config_shown_each_plugin_shows_its_settings_rename_and_delete(page, tmp_path, artifacts):
    sign_up(page, "manageuser")
    train_id, valid_id = digits_datasets(page, tmp_path, per_class=12, ratio1=75)
    project = api_call(page, "POST", "/api/projects/", data={"name": "digits", "train_dataset": train_id,
                                                              "valid_dataset": valid_id})
    api_call(page, "POST", "/api/projects/", data={"name": "taken"})
    page.goto(f"/#/projects/{project['id']}")
    form = page.get_by_test_id("config-form")
    expect(form.locator("input[name=max_epoch]")).to_be_visible()
    # Labels are words with the parameter's name as a hint, and the help says what a setting does.
    expect(form.locator("label[for=param-max_epoch]")).to_have_text("Epochs")
    expect(form.locator("label[for=param-learning_rate]")).to_have_text("Learning rate")
    expect(form.locator(".param-name", has_text="learning_rate")).to_have_count(1)
    expect(form).to_contain_text("Not used by last_fc_only")

    # Each plugin's form: only the settings that apply to it.
    page.locator("select[name=training-plugin]").select_option("padim")
    expect(form.locator("input[name=batch_size]")).to_be_visible()
    for name in ("max_epoch", "optimizer", "learning_rate", "schedule"):
        expect(page.locator(f"[name={name}]")).to_have_count(0)
    expect(page.get_by_test_id("config-unused")).to_contain_text("Epochs, Optimizer, Learning rate")
    page.locator("select[name=training-plugin]").select_option("resnet50_classification")
    expect(page.locator("input[name=learning_rate]")).to_have_count(1)  # its own, not the project's too
    expect(page.locator("input[name=num_train_epochs]")).to_have_count(1)
    expect(page.locator("input[name=max_epoch]")).to_have_count(0)
    expect(form.locator("[name=seed]")).to_be_visible()
    page.screenshot(path=str(artifacts / "browser_manage_resnet50_settings.png"), full_page=True)

    # Edited, not saved, then Run: the run uses what the page shows.
    page.locator("select[name=training-plugin]").select_option("transfer_learning")
    form.locator("input[name=max_epoch]").fill("2")
    form.locator("input[name=batch_size]").fill("8")
    expect(page.get_by_test_id("config-dirty")).to_be_visible()
    page.locator("input[name=input_size]").fill("32")
    page.get_by_role("button", name="Save config and run").click()
    expect(page.get_by_test_id("run-title")).to_be_visible()
    run_id = int(page.evaluate("location.hash.split('/')[2]"))
    run = api_call(page, "GET", f"/api/runs/{run_id}/")
    assert (run["config"]["max_epoch"], run["config"]["batch_size"]) == (2, 8)
    assert api_call(page, "GET", f"/api/projects/{project['id']}/")["config"]["max_epoch"] == 2  # saved too
    expect(page.locator("[data-setting=max_epoch]")).to_have_text("Epochs 2")
    panel = page.get_by_test_id("job-panel")
    expect(panel.get_by_test_id("job-state")).to_have_text("succeeded", timeout=120_000)
    expect(panel.get_by_test_id("job-log")).to_contain_text("epoch 2/2")
    expect(page.get_by_role("button", name="Resume from checkpoint")).to_have_count(0)  # it finished

    # The runs list: this run's own settings and scores, each named; renamed there.
    page.get_by_role("link", name="← Project digits").click()
    row = page.get_by_test_id(f"run-row-{run_id}")
    expect(row.locator("[data-setting=max_epoch]")).to_have_text("Epochs 2")  # the form's words
    expect(row.locator("[data-setting=train_param]")).to_have_text("train_param last_fc_only")
    expect(row.locator("[data-score=accuracy]")).to_contain_text(
        f"{100 * api_call(page, 'GET', f'/api/runs/{run_id}/')['metrics']['accuracy']:.1f}%")
    row.get_by_role("button", name="Rename").click()
    page.get_by_test_id("name-input").fill("first try")
    page.get_by_test_id("name-submit").click()
    expect(row.get_by_role("link", name="first try")).to_be_visible()

    page.get_by_role("button", name="Rename project").click()
    dialog = page.get_by_test_id("rename-dialog")
    dialog.get_by_test_id("name-input").fill("taken")
    dialog.get_by_test_id("name-submit").click()
    expect(dialog.locator(".field-error")).to_have_text("you already have a project with this name")
    dialog.get_by_test_id("name-input").fill("digits2")
    dialog.get_by_test_id("name-submit").click()
    expect(page.get_by_test_id("project-name")).to_have_text("digits2")
    page.screenshot(path=str(artifacts / "browser_manage_project.png"), full_page=True)

    # Delete the run from its page: back on the project, nothing left of it.
    row.get_by_role("link", name="first try").click()
    expect(page.get_by_test_id("run-title")).to_have_text("first try")
    before_delete = len(page.errors)
    page.get_by_role("button", name="Delete run").click()
    page.get_by_test_id("confirm-dialog").get_by_test_id("confirm-button").click()
    expect(page.get_by_test_id("project-name")).to_have_text("digits2")
    expect(page.get_by_text("No runs yet.")).to_be_visible()
    assert [e for e in page.errors[:before_delete] if "400" not in e] == [], page.errors  # 400: the name taken
    # A request of the run's page still in flight when the run went answers 404 (in the console only)
    assert [e for e in page.errors[before_delete:] if "404" not in e] == [], page.errors
    page.goto(f"/#/runs/{run_id}")
    expect(page.get_by_role("alert")).to_have_text("This run does not exist (it may have been deleted).")
    expect(page.get_by_role("link", name="← Projects")).to_be_visible()


def test_jobs_page_resume_action_errors_and_deleting_a_used_dataset(page, tmp_path, artifacts):
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    run_id = trained_run(page, tmp_path, "jobsuser")
    trained = api_call(page, "GET", f"/api/runs/{run_id}/")
    project_id = trained["project"]
    # Run A fine-tunes for long enough to be cancelled after its first checkpoint; run B waits behind
    # it (the training worker takes one job at a time) and is cancelled before it starts.
    long = {"plugin": "transfer_learning", "params": {"input_size": 32, "train_param": "all"},
            "config": {"max_epoch": 200, "batch_size": 8, "learning_rate": 0.001}}
    run_a = api_call(page, "POST", f"/api/projects/{project_id}/runs/", data=long)
    run_b = api_call(page, "POST", f"/api/projects/{project_id}/runs/", data=long)
    api_call(page, "POST", f"/api/jobs/{run_b['job']}/cancel/")
    deadline = time.monotonic() + 120
    while not any(line.startswith("epoch 2/") for line in log_lines(page, run_a["job"])):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    api_call(page, "POST", f"/api/jobs/{run_a['job']}/cancel/")
    wait_for(page, f"/api/jobs/{run_a['job']}/", lambda job: job["state"] in FINAL)
    # A conversion that fails: a plain CSV without the target column chosen.
    (tmp_path / "plain.csv").write_text("a,b\n1,2\n3,4\n")
    source = api_call(page, "POST", "/api/uploads/?filename=plain.csv", data=(tmp_path / "plain.csv").read_bytes(),
                      headers={"Content-Type": "application/octet-stream"})
    failed = api_call(page, "POST", "/api/jobs/", data={"plugin": "tabular_csv", "params": {"source": source["id"]}})
    wait_for(page, f"/api/jobs/{failed['id']}/", lambda job: job["state"] in FINAL)

    # Resume from checkpoint only where there is one.
    page.goto(f"/#/runs/{run_b['id']}")
    expect(page.get_by_test_id("job-state")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Resume from checkpoint")).to_have_count(0)
    page.goto(f"/#/runs/{run_a['id']}")
    expect(page.get_by_test_id("job-state")).to_have_text("cancelled")
    page.get_by_role("button", name="Resume from checkpoint").click()
    expect(page.get_by_test_id("job-state")).to_have_text("running", timeout=30_000)
    expect(page.get_by_test_id("job-log")).to_contain_text("resuming after epoch")
    expect(page.get_by_role("button", name="Resume from checkpoint")).to_have_count(0)
    page.get_by_test_id("job-panel").get_by_role("button", name="Cancel").click()
    expect(page.get_by_test_id("job-state")).to_have_text("cancelled", timeout=30_000)

    # An action that fails says so on the page; the page stays.
    page.goto(f"/#/runs/{run_id}")
    expect(page.get_by_test_id("evaluation")).to_be_visible(timeout=30_000)
    page.route("**/api/runs/*/evaluate/", lambda route: route.fulfill(status=400, content_type="application/json",
               body='{"detail": "this run is being trained or evaluated: wait for that job to end", "errors": {}}'))
    page.get_by_role("button", name="Evaluate again").click()
    expect(page.get_by_test_id("action-error")).to_contain_text("this run is being trained or evaluated")
    expect(page.get_by_test_id("run-title")).to_be_visible()
    expect(page.get_by_test_id("evaluation")).to_be_visible()
    page.unroute("**/api/runs/*/evaluate/")

    # The Jobs page: every job, its state, how far it got, what it made, its log.
    page.get_by_role("link", name="Jobs", exact=True).click()
    jobs = page.get_by_test_id("jobs-list")
    expect(jobs.locator("tbody > tr[data-state]")).to_have_count(6)  # conversion, 3 trainings, a resume, the CSV
    failed_row = page.get_by_test_id(f"job-row-{failed['id']}")
    expect(failed_row).to_have_attribute("data-state", "failed")
    expect(failed_row).to_contain_text("choose the target column")
    for job_id, state in ((failed["id"], "failed"), (run_b["job"], "cancelled")):
        bar = page.get_by_test_id(f"job-row-{job_id}").get_by_test_id("job-progress")
        expect(bar).to_have_attribute("data-state", state)
        expect(bar).to_have_attribute("aria-valuenow", "0")  # not a full bar
    cancelled_bar = page.get_by_test_id(f"job-row-{run_a['job']}").get_by_test_id("job-progress")
    expect(cancelled_bar).not_to_have_attribute("aria-valuenow", "100")
    done_bar = page.get_by_test_id(f"job-row-{trained['job']}").get_by_test_id("job-progress")
    expect(done_bar).to_have_attribute("aria-valuenow", "100")
    expect(page.get_by_test_id(f"job-row-{trained['job']}")).to_contain_text("transfer_learning")
    expect(page.get_by_test_id(f"job-worker-{trained['job']}")).to_contain_text(re.compile(r" pid \d+ · (CPU|GPU)"))
    page.get_by_test_id(f"job-log-toggle-{failed['id']}").click()
    expect(jobs.get_by_test_id("job-log")).to_contain_text("error: choose the target column")
    page.screenshot(path=str(artifacts / "browser_manage_jobs.png"), full_page=True)
    page.get_by_test_id(f"job-row-{trained['job']}").get_by_role("link", name=trained["name"]).click()
    expect(page.get_by_test_id("run-title")).to_have_text(trained["name"])

    # The dataset viewer's own Delete asks with the same dialog (no window.confirm); kept this time.
    page.goto(f"/#/datasets/{trained['valid_dataset']}")
    page.get_by_role("button", name="Delete", exact=True).click()
    asked = page.get_by_test_id("delete-dataset-dialog")
    expect(asked.get_by_test_id("dataset-usage")).to_contain_text("Projects: digits (validation)")
    asked.get_by_role("button", name="Keep it").click()
    expect(asked).to_have_count(0)
    expect(page.get_by_test_id("dataset-name")).to_have_text("valid")
    # Deleting the validation dataset: it says who uses it, and asks; then those pages say it is gone.
    page.get_by_role("link", name="Datasets", exact=True).click()
    page.get_by_role("button", name="Delete dataset valid").click()
    dialog = page.get_by_test_id("delete-dataset-dialog")
    usage = dialog.get_by_test_id("dataset-usage")
    expect(usage).to_contain_text("Projects: digits (validation)")
    for name in (trained["name"], run_a["name"], run_b["name"]):
        expect(usage.get_by_role("link", name=name)).to_be_visible()
    page.screenshot(path=str(artifacts / "browser_manage_delete_dataset.png"))
    dialog.get_by_test_id("confirm-button").click()
    expect(dialog).to_have_count(0)
    expect(page.get_by_test_id("dataset-list")).not_to_contain_text("valid")
    page.goto(f"/#/projects/{project_id}")
    expect(page.get_by_test_id("deleted-valid_dataset")).to_have_text(
        "The validation dataset “valid” was deleted: choose another one.")
    page.goto(f"/#/runs/{run_id}")
    expect(page.get_by_test_id("run-dataset-deleted")).to_contain_text("validation dataset “valid” was deleted")
    expect(page.get_by_test_id("evaluation")).to_be_visible()  # its scores stay
    expect(page.get_by_test_id("result-rows")).to_have_count(0)  # no grid of images that are gone
    expect(page.get_by_role("button", name="Evaluate again")).to_have_count(0)
    page.screenshot(path=str(artifacts / "browser_manage_run_dataset_deleted.png"), full_page=True)
    assert [e for e in page.errors if "400" not in e] == [], (page.errors, missing)  # 400: the refusal we caused
