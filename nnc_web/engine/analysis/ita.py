"""NNC's Face evaluation (§3.6): the Individual Typology Angle of the skin of the one face in each
image, with NNC's colour-space mistakes fixed (see `patch_ita`)."""
from __future__ import annotations

import functools
from collections import Counter

import cv2
import numpy as np
from bokeh.embed import json_item
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure
from PIL import ImageOps

from nnc_web.engine.analysis.table import CellResolver, Table, is_image_cell, load_image
from nnc_web.engine.imaging import DEFAULT_MAX_PIXELS, to_channels
from nnc_web.engine.reporting import Reporter, UserError, check_stop

NO_FACE = "No face detected"  # NNC's exact strings
MANY_FACES = "More than two faces detected"
CANNOT_READ = "Cannot read image"
OUTPUT_HEADER = ["x:image", "ITA", "skin_tone"]

# Del Bino & Bernerd (2013): (name, lower bound exclusive); the last band has no lower bound.
CATEGORIES = [("very light", 55.0), ("light", 41.0), ("intermediate", 28.0), ("tan", 10.0), ("brown", -30.0),
              ("dark", -np.inf)]
BAND_LABELS = ["very light (> 55°)", "light (41–55°)", "intermediate (28–41°)", "tan (10–28°)",
               "brown (-30–10°)", "dark (≤ -30°)"]
BAND_COLOURS = ["#f3dccb", "#e4bf9e", "#c99a6e", "#a8754a", "#6f4a2e", "#3d2a1c"]


@functools.cache
def _cascade() -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_alt2.xml")
    if cascade.empty():
        raise RuntimeError("OpenCV's haarcascade_frontalface_alt2.xml is missing")
    return cascade


def detect_faces(rgb: np.ndarray) -> np.ndarray:
    """Face boxes (x, y, w, h) with NNC's settings: scaleFactor 1.25, minNeighbors 2, on grayscale."""
    gray = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    faces = _cascade().detectMultiScale(gray, scaleFactor=1.25, minNeighbors=2)
    return np.asarray(faces, dtype=np.int64).reshape(-1, 4)


def patch_boxes(x: int, y: int, w: int, h: int, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """NNC's 3 x 3 skin patches (left, top, right, bottom): columns over 0.2w..0.8w in thirds, rows from
    0.2h in steps of h/3 (so down to 1.2h, past the box), clipped to the image."""
    boxes = []
    for row in range(3):
        top = y + 0.2 * h + row * h / 3
        for column in range(3):
            left = x + 0.2 * w + column * 0.2 * w
            boxes.append((max(0, int(left)), max(0, int(top)), min(width, int(left + 0.2 * w)),
                          min(height, int(top + h / 3))))
    return boxes


def pixel_ita(lightness: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ITA in degrees, atan((L* - 50) / b*) as NNC (not arctan2); b* = 0 gives +-90 (0 when L* = 50)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        degrees = np.degrees(np.arctan((lightness - 50.0) / b))
    return np.where(b != 0, degrees, 90.0 * np.sign(lightness - 50.0))


def histogram_mode(degrees: np.ndarray) -> float:
    """The left edge of the fullest of 1000 bins over the values' range (NNC's patch value)."""
    counts, edges = np.histogram(degrees, bins=1000)
    return float(edges[np.argmax(counts)])


def patch_ita(rgb_pixels: np.ndarray) -> float:
    """ITA of one patch of 8-bit RGB pixels (NaN when every pixel is black). Fixed against NNC: the
    pixels are RGB (NNC feeds BGR to an RGB conversion), black is found without uint8 overflow, and
    the conversion is OpenCV's float one (L* 0..100, signed b*), not the wrapped 8-bit `b - 128`."""
    pixels = np.asarray(rgb_pixels).reshape(-1, 3)
    pixels = pixels[pixels.astype(np.int64).sum(axis=1) > 0]
    if not len(pixels):
        return float("nan")
    unit = (pixels.astype(np.float32) / 255.0).reshape(1, -1, 3)
    lab = cv2.cvtColor(unit, cv2.COLOR_RGB2Lab).reshape(-1, 3)
    return histogram_mode(pixel_ita(lab[:, 0].astype(np.float64), lab[:, 2].astype(np.float64)))


def face_ita(rgb: np.ndarray) -> float | str:
    """The image's ITA (mean of the 9 patches, 2 decimals), or NNC's message when there is not exactly
    one face."""
    rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    faces = detect_faces(rgb)
    if len(faces) == 0:
        return NO_FACE
    if len(faces) > 1:
        return MANY_FACES
    x, y, w, h = (int(v) for v in faces[0])
    values = [patch_ita(rgb[top:bottom, left:right])
              for left, top, right, bottom in patch_boxes(x, y, w, h, rgb.shape[1], rgb.shape[0])
              if right > left and bottom > top]
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return NO_FACE
    return round(float(np.mean(values)), 2)


def ita_category(ita: float) -> str:
    """The skin-tone band of an ITA; bounds belong to the band below (55 is light, -30 dark)."""
    if np.isnan(ita):
        return ""
    for name, lower in CATEGORIES:
        if ita > lower:
            return name
    return CATEGORIES[-1][0]


def evaluate_faces(table: Table, resolver: CellResolver, reporter: Reporter,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> list[list[str]]:
    """Rows for OUTPUT_HEADER, one per input row (NNC keys by path, so duplicates collapsed there).
    The image is the CSV's first column, as NNC; we write the cell as it was written (an absolute
    path of ours relative to the user's folder), not NNC's absolute path: no server path in outputs."""
    if not any(is_image_cell(row[0]) for row in table.rows):
        raise UserError(f"the first column of {table.name} ({table.header[0]}) holds no images; "
                        "face evaluation reads the image from the first column")
    results, unreadable = [], 0
    for number, row in enumerate(table.rows):
        if number % 16 == 0:
            check_stop(reporter)
            reporter.progress(number, len(table.rows))
        cell = row[0]
        shown = resolver.display(cell)  # an absolute cell of output_result.csv never reaches the output
        try:
            # cv2.imread (NNC) applies the EXIF orientation; a sideways face would not be found.
            image = ImageOps.exif_transpose(load_image(resolver, cell, max_pixels))
            ita = face_ita(np.asarray(to_channels(image, 3)))
        except UserError as exc:
            ita = CANNOT_READ
            unreadable += 1
            if unreadable <= 200:
                reporter.log(f"skipped line {number + 2}: {exc}")
        if isinstance(ita, str):
            results.append([shown, ita, ""])
        else:
            results.append([shown, str(ita), ita_category(ita)])
    reporter.progress(len(table.rows), len(table.rows))
    return results


def ita_histogram_item(itas: list[float | str]) -> dict:
    """A Bokeh bar chart (json_item) of the number of faces per skin-tone band."""
    counts = Counter(ita_category(v) for v in itas if not isinstance(v, str))
    band_counts = [counts.get(name, 0) for name, _ in CATEGORIES]
    source = ColumnDataSource(name="bands", data={"band": BAND_LABELS, "count": band_counts,
                                                  "colour": BAND_COLOURS})
    messages = sum(isinstance(v, str) for v in itas)
    plot = figure(x_range=BAND_LABELS, width=960, height=480, sizing_mode="scale_width", tools="save",
                  toolbar_location="right", background_fill_color="white",
                  title=f"Skin tone (ITA) of {len(itas) - messages} faces; "
                        f"{messages} images without exactly one face")
    plot.vbar(x="band", top="count", width=0.8, source=source, fill_color="colour", line_color="#444444")
    plot.xgrid.grid_line_color = None
    plot.ygrid.grid_line_color = "#c0c0c0"
    plot.y_range.start = 0
    plot.xaxis.axis_label = "skin tone (Del Bino & Bernerd 2013)"
    plot.yaxis.axis_label = "faces"
    return json_item(plot)
