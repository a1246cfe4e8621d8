"""The classes of a zero-shot classifier and the prompts that describe them.

NNC takes the classes as one text split on `,` or a file with one class per line, and encodes each as
written. Templates go beyond it: `photo` encodes "a photo of a {}.", `ensemble` the mean of the 80
ImageNet prompts of the CLIP paper (Radford et al., 2021, §3.1.4: on ImageNet the photo template adds 1.3
points of accuracy, the ensemble 3.5 more)."""
from __future__ import annotations

from pathlib import Path

from nnc_web.engine.errors import UserError

TEMPLATE_IDS = ("none", "photo", "ensemble")
MAX_CLASSES = 1000
MAX_CLASS_CHARS = 300
MAX_FILE_BYTES = 1 << 20


def templates(template_id: str) -> list[str]:
    """The prompt templates of a choice, `{}` standing for the class."""
    if template_id == "none":
        return ["{}"]
    if template_id == "photo":
        return ["a photo of a {}."]
    if template_id == "ensemble":
        from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

        return [template("{}") for template in OPENAI_IMAGENET_TEMPLATES]
    raise UserError(f"template must be one of {', '.join(TEMPLATE_IDS)}")


def prompts_for(class_name: str, template_list: list[str]) -> list[str]:
    return [t.replace("{}", class_name) for t in template_list]  # not str.format: names may hold braces


def class_key(name: str) -> str:
    """What two class names must share to be the same class: case, spaces, `_` and `-` aside."""
    return " ".join(name.replace("_", " ").replace("-", " ").split()).casefold()


def check_classes(classes: list[str], source: str) -> list[str]:
    """Every class named, once; the class index follows this order."""
    if not classes:
        raise UserError(f"{source} names no class")
    for number, name in enumerate(classes, start=1):
        if not name:
            raise UserError(f"{source}: class {number} is empty")
        if len(name) > MAX_CLASS_CHARS:
            raise UserError(f"{source}: class {number} is longer than {MAX_CLASS_CHARS} characters")
    if len(classes) > MAX_CLASSES:
        raise UserError(f"{source} names {len(classes)} classes; at most {MAX_CLASSES}")
    seen: dict[str, int] = {}
    for number, name in enumerate(classes, start=1):
        if class_key(name) in seen:
            raise UserError(f"{source}: class {number} ({name!r}) repeats class {seen[class_key(name)]}")
        seen[class_key(name)] = number
    return classes


def parse_query_text(text: str) -> list[str]:
    """`cat, dog, a photo of a bird` -> the classes (NNC splits on `,`; spaces around them are dropped)."""
    pieces = str(text).split(",")
    if len(pieces) > 1 and not pieces[-1].strip():
        pieces = pieces[:-1]  # a trailing comma
    return check_classes([p.strip() for p in pieces], "query_text")


def read_query_file(path: Path) -> list[str]:
    """One class per line (UTF-8, BOM allowed); blank lines are skipped."""
    path = Path(path)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise UserError(f"query_text_csv_file is larger than {MAX_FILE_BYTES >> 20} MiB")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError("query_text_csv_file is not UTF-8 text") from None
    return check_classes([line.strip() for line in text.splitlines() if line.strip()], "query_text_csv_file")
