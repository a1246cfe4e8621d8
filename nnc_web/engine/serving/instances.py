"""Request bodies as EasyMaker takes them: `{"instances": [{"data": <base64 image>}, ...]}` (or, for
tabular models, `{"instances": [{"<column>": value, ...}]}`) and optional `"parameters"`. Every check
names the instance it is about (`instances[3].data`), so a client sees which item of a batch was wrong.

The web process runs the cheap checks (`check_request`: JSON shape, base64, the image header's format
and size, tabular values); the serving process decodes fully (`decode_image`)."""
from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
import warnings
from dataclasses import dataclass, field

from PIL import Image

from nnc_web.engine.errors import UserError
from nnc_web.engine.imaging import ALLOWED_FORMATS


@dataclass(frozen=True)
class Limits:
    """What one request may hold (per endpoint): instances, bytes of one decoded image, its pixels."""

    max_instances: int = 64
    max_image_bytes: int = 16 * 1024**2
    max_image_pixels: int = 25_000_000

    def as_dict(self) -> dict:
        return {"max_instances": self.max_instances, "max_image_bytes": self.max_image_bytes,
                "max_image_pixels": self.max_image_pixels}


class RequestError(UserError):
    """A bad request: `detail` for people, `errors` by field (`instances[0].data`) for programs."""

    def __init__(self, detail: str, errors: dict[str, list[str]] | None = None, status: int = 400) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or {}
        self.status = status

    @classmethod
    def at(cls, name: str, message: str, status: int = 400) -> RequestError:
        return cls(f"{name}: {message}", {name: [message]}, status)

    def as_body(self) -> dict:
        return {"detail": self.detail, "errors": self.errors}


@dataclass
class Parameters:
    """`"parameters"` of a request: how many ranked labels (`top_k`), anomaly heat maps (`heatmap`)."""

    top_k: int | None = None
    heatmap: bool = False
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"top_k": self.top_k, "heatmap": self.heatmap}


def parse_json(raw: bytes) -> dict:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError.at("body", f"not valid JSON ({exc})") from exc
    if not isinstance(body, dict):
        raise RequestError.at("body", 'must be a JSON object: {"instances": [...]}')
    return body


def parse_parameters(value) -> Parameters:
    if value is None:
        return Parameters()
    if not isinstance(value, dict):
        raise RequestError.at("parameters", "must be an object")
    top_k = value.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise RequestError.at("parameters.top_k", "must be a whole number of at least 1")
    heatmap = value.get("heatmap", False)
    if not isinstance(heatmap, bool):
        raise RequestError.at("parameters.heatmap", "must be true or false")
    unknown = sorted(set(value) - {"top_k", "heatmap"})
    if unknown:
        raise RequestError.at("parameters", f"unknown parameter {unknown[0]!r} (known: top_k, heatmap)")
    return Parameters(top_k, heatmap)


def instances_of(body: dict, limits: Limits) -> list[dict]:
    instances = body.get("instances")
    if not isinstance(instances, list):
        raise RequestError.at("instances", 'required: a list of instances, e.g. {"instances": [{"data": "<base64>"}]}')
    if not instances:
        raise RequestError.at("instances", "is empty: send at least one instance")
    if len(instances) > limits.max_instances:
        raise RequestError.at("instances", f"{len(instances)} instances; this endpoint takes at most "
                                           f"{limits.max_instances} per request (split them)")
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise RequestError.at(f"instances[{index}]", "must be an object")
    return instances


def image_bytes(instance: dict, name: str, limits: Limits) -> bytes:
    """The decoded bytes of `instance["data"]` (base64, optionally a `data:` URL)."""
    data = instance.get("data")
    if not isinstance(data, str) or not data:
        raise RequestError.at(f"{name}.data", "required: the image file as a base64 string")
    if data.startswith("data:"):
        data = data.partition(",")[2]
    if len(data) > limits.max_image_bytes * 4 // 3 + 4:
        raise RequestError.at(f"{name}.data", f"the image is over {limits.max_image_bytes} bytes", 413)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        try:  # line-wrapped base64 (the `base64` command's output)
            raw = base64.b64decode("".join(data.split()), validate=True)
        except (binascii.Error, ValueError):
            raise RequestError.at(f"{name}.data", "not valid base64") from None
    if not raw:
        raise RequestError.at(f"{name}.data", "is empty")
    return raw


def _open(raw: bytes, name: str, limits: Limits) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
    except Image.DecompressionBombError as exc:  # Pillow's own guard (twice its limit) came first
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f" ({int(found.group(1)) / 1e6:.0f} megapixels)" if found else ""
        raise RequestError.at(f"{name}.data", f"the image has too many pixels{size}, over this endpoint's "
                                              f"{limits.max_image_pixels / 1e6:g} megapixel limit") from None
    except (OSError, ValueError, SyntaxError):
        raise RequestError.at(f"{name}.data", "not an image (JPEG, PNG, BMP, GIF or TIFF)") from None
    if image.format not in ALLOWED_FORMATS:
        image.close()
        raise RequestError.at(f"{name}.data", f"image format {image.format} is not allowed")
    pixels = image.width * image.height
    if pixels > limits.max_image_pixels:
        image.close()
        raise RequestError.at(f"{name}.data", f"the image is {image.width}x{image.height} ({pixels / 1e6:.0f} "
                                              f"megapixels), over this endpoint's {limits.max_image_pixels / 1e6:g} "
                                              f"megapixel limit")
    return image


def peek_image(instance: dict, name: str, limits: Limits) -> tuple[int, int]:
    """Check an image instance without decoding its pixels (the header says format and size)."""
    with _open(image_bytes(instance, name, limits), name, limits) as image:
        return image.size


def decode_image(instance: dict, name: str, limits: Limits) -> Image.Image:
    """The instance's image, fully decoded (damaged data is a RequestError, not a crash)."""
    image = _open(image_bytes(instance, name, limits), name, limits)
    try:
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise RequestError.at(f"{name}.data", f"the image data is damaged ({exc})") from None
    return image


def number(value, name: str) -> float:
    """A finite number from JSON (a number, or its text as CSV files hold it)."""
    if isinstance(value, bool) or value is None:
        raise RequestError.at(name, "must be a number")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise RequestError.at(name, f"must be a number, not {str(value)[:40]!r}") from None
    if not math.isfinite(result):
        raise RequestError.at(name, "must be a finite number")
    return result
