"""EasyMaker layouts imported through the API."""
from __future__ import annotations

import pytest

from nnc_web.datasets.models import Dataset
from nnc_web.jobs.models import Job
from nnc_web.jobs.services import run_job
from tests.api.helpers import upload
from tests.sample_data import digit_images, write_class_zip

pytestmark = pytest.mark.django_db


def easymaker_zip(tmp_path, wrapper: str | None = "flowers"):
    """train has classes 0,1,2; validation 0,1; test only 2 -> labels must still agree."""
    digits = digit_images(9, 3)
    prefix = f"{wrapper}/" if wrapper else ""
    groups = {f"{prefix}train/{k}": v[:5] for k, v in digits.items()}
    groups |= {f"{prefix}validation/{k}": v[5:8] for k, v in digits.items() if k != "2"}
    groups[f"{prefix}test/2"] = digits["2"][8:]
    return write_class_zip(tmp_path / "easymaker.zip", groups)


def test_one_upload_creates_three_datasets_with_one_label_index(alice, client_for, tmp_path):
    client = client_for(alice)
    upload_id = upload(client, easymaker_zip(tmp_path)).json()["id"]
    response = client.post("/api/jobs/", {"plugin": "easymaker_classification", "params": {
        "source": upload_id, "width": 16, "height": 16, "prefix": "digits-"}}, format="json")
    run_job(response.json()["id"])
    job = Job.objects.get(pk=response.json()["id"])
    assert job.state == "succeeded", job.message
    datasets = {d.name: d for d in Dataset.objects.filter(job=job)}
    assert set(datasets) == {"digits-train", "digits-validation", "digits-test"}
    assert [datasets[n].rows for n in ("digits-train", "digits-validation", "digits-test")] == [15, 6, 1]
    for dataset in datasets.values():
        assert dataset.class_names == ["0", "1", "2"]
    test_rows = client.get(f"/api/datasets/{datasets['digits-test'].pk}/rows/").json()
    assert test_rows["header"] == ["x:image", "y:label;0;1;2"]
    assert test_rows["rows"][0]["cells"][1] == "2"  # class 2 keeps index 2 although test has one class
    assert datasets["digits-validation"].class_counts == [3, 3, 0]


def test_missing_train_folder_is_a_clear_error(alice, client_for, tmp_path):
    client = client_for(alice)
    archive = write_class_zip(tmp_path / "flat.zip", digit_images(2, 2))
    upload_id = upload(client, archive).json()["id"]
    response = client.post("/api/jobs/", {"plugin": "easymaker_classification", "params": {"source": upload_id}},
                           format="json")
    run_job(response.json()["id"])
    job = Job.objects.get(pk=response.json()["id"])
    assert job.state == "failed" and "no train/ folder found" in job.message


def coco_zip(tmp_path):
    """train/ and valid/ with rectangles drawn where their COCO boxes say, plus bad annotations."""
    import io
    import json
    import zipfile

    from PIL import Image, ImageDraw

    colours = {1: (230, 25, 75), 2: (60, 180, 75)}
    path = tmp_path / "coco.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for split, count in (("train", 4), ("valid", 2)):
            images, annotations = [], []
            for i in range(count):
                image = Image.new("RGB", (300, 200), (10, 10, 10))
                x, y, w, h = 40 + 30 * i, 30 + 10 * i, 80, 60
                category = 1 + i % 2
                ImageDraw.Draw(image).rectangle([x, y, x + w - 1, y + h - 1], fill=colours[category])
                buffer = io.BytesIO()
                image.save(buffer, "JPEG", quality=95)
                archive.writestr(f"{split}/img{i}.jpg", buffer.getvalue())
                images.append({"id": i, "file_name": f"img{i}.jpg", "width": 300, "height": 200})
                annotations.append({"id": 100 + i, "image_id": i, "category_id": category, "bbox": [x, y, w, h]})
            if split == "train":
                images += [{"id": 50, "file_name": "../../evil.jpg"}, {"id": 51, "file_name": "gone.jpg"}]
                annotations += [
                    {"id": 7, "image_id": 0, "category_id": 9, "bbox": [1, 1, 5, 5]},
                    {"id": 8, "image_id": 99, "category_id": 1, "bbox": [1, 1, 5, 5]},
                    {"id": 9, "image_id": 1, "category_id": 1, "bbox": [10, 10, 0, 5]},
                    {"id": 10, "image_id": 1, "category_id": 2, "bbox": [400, 10, 20, 20]},
                ]
            document = {"images": images, "annotations": annotations,
                        "categories": [{"id": 0, "name": "shapes"}, {"id": 1, "name": "red"},
                                       {"id": 2, "name": "green"}]}
            archive.writestr(f"{split}/_annotations.coco.json", json.dumps(document))
    return path


def test_coco_layout_becomes_box_datasets_and_reports_bad_annotations(alice, client_for, tmp_path):
    import numpy as np
    from PIL import Image

    from nnc_web.engine.detection import Box, iou
    from nnc_web.jobs.models import JobEvent

    client = client_for(alice)
    upload_id = upload(client, coco_zip(tmp_path)).json()["id"]
    response = client.post("/api/jobs/", {"plugin": "coco_detection", "params": {
        "source": upload_id, "width": 128, "height": 128}}, format="json")
    run_job(response.json()["id"])
    job = Job.objects.get(pk=response.json()["id"])
    log = [e.data["line"] for e in JobEvent.objects.filter(job=job, kind="log").order_by("seq")]
    assert job.state == "succeeded", log
    assert "splits: train, validation; classes: red, green" in log
    for expected in ("train/_annotations.coco.json image 50: path escapes its folder",
                     "train/_annotations.coco.json image 51: gone.jpg is missing",
                     "train/_annotations.coco.json annotation 7: unknown category id 9",
                     "train/_annotations.coco.json annotation 8: unknown image id 99",
                     "train/_annotations.coco.json annotation 9: bbox [10, 10, 0, 5] has no area"):
        assert any(line.startswith(expected) for line in log), expected
    assert "4 images, 4 boxes kept, 4 annotations dropped" in log
    datasets = {d.name: d for d in Dataset.objects.filter(job=job)}
    assert {n: d.rows for n, d in datasets.items()} == {"train": 4, "validation": 2}
    assert datasets["train"].class_names == ["red", "green"] and datasets["train"].class_counts == [2, 2]
    page = client.get(f"/api/datasets/{datasets['train'].pk}/rows/").json()
    assert page["header"] == ["x:image", "y:boxes"]
    for row in page["rows"]:
        (box,) = row["boxes"]
        image = datasets["train"].folder() / row["cells"][0][2:]
        array = np.asarray(Image.open(image).convert("RGB")).max(axis=2) > 127
        ys, xs = np.nonzero(array)
        found = Box(0, (xs.min() + xs.max() + 1) / 256, (ys.min() + ys.max() + 1) / 256,
                    (xs.max() - xs.min() + 1) / 128, (ys.max() - ys.min() + 1) / 128)
        assert iou(Box(0, box["cx"], box["cy"], box["w"], box["h"]), found) >= 0.9


def segmentation_zip(tmp_path):
    """EasyMaker's layout: splits with images/, annotations/, a listing JSON; resources/id2lable.json
    (the spelling of EasyMaker's guide); test/ lists its pairs in train.json as the guide shows."""
    import io
    import json
    import zipfile

    import numpy as np
    from PIL import Image

    path = tmp_path / "seg.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("city/resources/id2lable.json", json.dumps({"0": "unlabeled", "1": "road", "2": "car"}))
        for split, listing, count in (("train", "train.json", 3), ("validation", "validation.json", 1),
                                      ("test", "train.json", 1)):
            entries = []
            for i in range(count):
                mask = np.zeros((40, 80), np.uint8)
                mask[20:, :] = 1  # road at the bottom
                mask[5:15, 10:30] = 2  # a car
                if split == "train" and i == 0:
                    mask[0:2, 0:2] = 7  # an id the label map does not know
                image = Image.fromarray(np.stack([mask * 80] * 3, axis=2))
                for name, picture in ((f"images/{i:04d}.png", image), (f"annotations/{i:04d}.png",
                                                                         Image.fromarray(mask, "L"))):
                    buffer = io.BytesIO()
                    picture.save(buffer, "PNG")
                    archive.writestr(f"city/{split}/{name}", buffer.getvalue())
                entries.append({"image": f"images/{i:04d}.png", "seg_map": f"annotations/{i:04d}.png"})
            if split == "train":
                entries += [{"image": "images/9999.png", "seg_map": "annotations/9999.png"},
                            {"image": "../../../etc/passwd", "seg_map": "annotations/0000.png"}]
            archive.writestr(f"city/{split}/{listing}", json.dumps(entries))
    return path


def test_segmentation_layout_keeps_masks_aligned_and_reports_unknown_ids(alice, client_for, tmp_path):
    import io

    import numpy as np
    from PIL import Image

    from nnc_web.jobs.models import JobEvent

    client = client_for(alice)
    upload_id = upload(client, segmentation_zip(tmp_path)).json()["id"]
    response = client.post("/api/jobs/", {"plugin": "easymaker_segmentation", "params": {
        "source": upload_id, "width": 40, "height": 40, "mode": "padding"}}, format="json")
    run_job(response.json()["id"])
    job = Job.objects.get(pk=response.json()["id"])
    log = [e.data["line"] for e in JobEvent.objects.filter(job=job, kind="log").order_by("seq")]
    assert job.state == "succeeded", log
    assert "train/train.json entry 4: images/9999.png, annotations/9999.png missing" in log
    assert any(line.startswith("train/train.json entry 5: path escapes") for line in log)
    assert "0000.png: unknown class ids 7 set to 255 (ignore)" in log
    datasets = {d.name: d for d in Dataset.objects.filter(job=job)}
    assert {n: d.rows for n, d in datasets.items()} == {"train": 3, "validation": 1, "test": 1}
    train = datasets["train"]
    assert train.class_names == ["unlabeled", "road", "car"]
    page = client.get(f"/api/datasets/{train.pk}/rows/").json()
    assert page["header"] == ["x:image", "y:label;unlabeled;road;car"]
    for row in page["rows"]:
        mask = np.asarray(Image.open(train.folder() / row["cells"][1][2:]))
        image = np.asarray(Image.open(train.folder() / row["cells"][0][2:]).convert("L"))
        assert mask.shape == (40, 40) and set(np.unique(mask)) <= {0, 1, 2, 255}
        assert (mask[:10] == 255).all() and (mask[30:] == 255).all()  # 80x40 padded into 40x40
        # the car (source rows 5-15, columns 10-30) lands on rows 12.5-17.5, columns 5-15 in both
        assert (mask[13:17, 6:14] == 2).all() and (np.abs(image[13:17, 6:14].astype(int) - 160) <= 10).all()
        assert (mask[25:29] == 1).all() and (np.abs(image[25:29].astype(int) - 80) <= 10).all()  # the road
    assert sum(train.class_counts) == 3 * 40 * 20 - 1  # 20 visible rows; the unknown-id pixel is ignored
    overlay = client.get(f"/api/datasets/{train.pk}/files/{page['rows'][0]['cells'][1][2:]}?overlay=1")
    picture = Image.open(io.BytesIO(b"".join(overlay.streaming_content)))
    assert picture.mode == "RGBA" and picture.getpixel((0, 0))[3] == 0  # padding is transparent
    assert client.get(f"/api/datasets/{train.pk}/").json()["palette"][:3] == ["#e6194b", "#3cb44b", "#ffe119"]
