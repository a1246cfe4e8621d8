"""What a tabular endpoint reads, without torch (the web process checks requests with it): an instance
names either the original CSV columns the Tabular plugin encoded (`{"age": 42, "colour": "red"}`: encoded
here exactly as the plugin did, one-hot groups included) or the encoded inputs by their labels as the
dataset's header has them (`{"age": 42, "colour=red": 1, ...}`; `x__0`, `x__1` work too)."""
from __future__ import annotations

from nnc_web.engine.nnc_csv import parse_header_cell
from nnc_web.engine.serving.instances import Limits, RequestError, number

MISSING = "(missing)"


def input_names(manifest: dict) -> list[str]:
    """The encoded inputs' labels (`age`, `colour=red`), in order; `x__k` where a header has none."""
    names = []
    for number_, cell in enumerate(manifest.get("input_header") or []):
        label = parse_header_cell(cell).label
        names.append(label if label else f"x__{number_}")
    return names


def columns(manifest: dict) -> list[dict]:
    """What a client sends: the original columns when the encoding is known, else the encoded inputs."""
    features = manifest.get("features")
    if features:
        return [{"name": f["column"], "kind": f["kind"], **({"categories": f["categories"]}
                                                             if f["kind"] == "categorical" else {})}
                for f in features]
    return [{"name": name, "kind": "numeric"} for name in input_names(manifest)]


def _from_features(instance: dict, features: list[dict], name: str) -> list[float]:
    row: list[float] = []
    for feature in features:
        column = feature["column"]
        value = instance.get(column)
        field = f"{name}.{column}"
        if feature["kind"] == "numeric":
            if value is None or (isinstance(value, str) and not value.strip()):
                raise RequestError.at(field, "required: a number")
            row.append(number(value, field))
            continue
        categories = list(feature["categories"])
        chosen = MISSING if value is None or (isinstance(value, str) and not value.strip()) else str(value).strip()
        if isinstance(value, float) and value.is_integer() and chosen not in categories:
            chosen = str(int(value))  # 3.0 for a category "3"
        if chosen not in categories:
            shown = ", ".join(c for c in categories[:20] if c != MISSING)
            raise RequestError.at(field, f"unknown category {chosen!r} (known: {shown})")
        row.extend(1.0 if chosen == c else 0.0 for c in categories)
    return row


def encode_instance(instance: dict, manifest: dict, name: str) -> list[float]:
    """One instance as the model's input row; RequestError naming the column that is wrong."""
    features = manifest.get("features")
    names = input_names(manifest)
    aliases = {alias: i for i, label in enumerate(names) for alias in (label, f"x__{i}")}
    if features and (set(instance) <= {f["column"] for f in features} or not set(instance) <= set(aliases)):
        unknown = sorted(set(instance) - {f["column"] for f in features})
        if unknown:
            expected = ", ".join(f["column"] for f in features[:20])
            raise RequestError.at(f"{name}.{unknown[0]}", f"not an input column of this model (columns: {expected})")
        return _from_features(instance, features, name)
    row: list[float | None] = [None] * len(names)
    for key, value in instance.items():
        if key not in aliases:
            expected = ", ".join(c["name"] for c in columns(manifest)[:20])
            raise RequestError.at(f"{name}.{key}", f"not an input column of this model (inputs: {expected})")
        row[aliases[key]] = number(value, f"{name}.{key}")
    missing = [names[i] for i, value in enumerate(row) if value is None]
    if missing:
        raise RequestError.at(f"{name}.{missing[0]}", "required: a number" + (
            f" ({len(missing)} inputs missing)" if len(missing) > 1 else ""))
    return [float(v) for v in row]  # type: ignore[arg-type]


def check_row(instance: dict, manifest: dict, name: str, limits: Limits) -> None:
    encode_instance(instance, manifest, name)
