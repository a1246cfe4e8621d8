"""NNC's t-SNE (§3.3): a variable's values (images, number columns, .npy/.csv files, or a classifier's
features) flattened to vectors and embedded in 2 or 3 dimensions with openTSNE."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from openTSNE import TSNE
from PIL import Image

from nnc_web.engine.analysis.table import CellResolver, Table, find_columns, is_image_cell, load_image
from nnc_web.engine.imaging import DEFAULT_MAX_PIXELS, open_checked, to_channels
from nnc_web.engine.reporting import JobCancelled, Reporter, UserError, check_stop
from nnc_web.engine.training.bundle import load_bundle
from nnc_web.engine.training.trainer import resolve_device, transforms_for

BATCH = 64  # rows between progress reports and cancel checks, as NNC's loader batches

FFT_ROWS = 2_000  # above this many rows a 2-D map uses FFT gradients (see embed)


def tsne_columns(variable: str, dim: int) -> list[str]:
    return [f"{variable}_tsne__{i}" for i in range(dim)]


class _ImageShape:
    """The first image decides channels and size; later images are converted to match (NNC's
    loader needs one shape per variable; we resize instead of failing)."""

    def __init__(self) -> None:
        self.mode: str | None = None
        self.size: tuple[int, int] | None = None

    def vector(self, image: Image.Image) -> np.ndarray:
        if self.mode is None:
            channels = 1 if image.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F") else 3
            image = to_channels(image, channels)
            self.mode, self.size = image.mode, image.size
        image = to_channels(image, 1 if self.mode == "L" else 3)
        if image.size != self.size:
            image = image.resize(self.size, Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.float32) / 255.0  # normalize=True, as NNC's t-SNE loads
        return (pixels.transpose(2, 0, 1) if pixels.ndim == 3 else pixels).ravel()  # C,H,W as NNC


def _file_vector(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False).astype(np.float32).ravel()
    return np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float32).ravel()


def _cell_vector(cell: str, resolver: CellResolver, shape: _ImageShape, max_pixels: int) -> np.ndarray:
    try:
        return np.asarray([float(cell)], dtype=np.float32)
    except ValueError:
        pass
    if is_image_cell(cell):
        return shape.vector(load_image(resolver, cell, max_pixels))
    if cell.lower().endswith((".npy", ".csv")):
        try:
            return _file_vector(resolver.resolve(cell))
        except (OSError, ValueError) as exc:
            raise UserError(f"{resolver.display(cell)}: not a numeric array file") from exc
    raise UserError(f"{resolver.display(cell)!r} is neither a number nor an image, .npy or .csv file")


def load_vectors(table: Table, variable: str, resolver: CellResolver, reporter: Reporter,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, list[int], list[str]]:
    """The flattened values of `variable` for every row that could be read, those rows' indices, and
    one message per skipped row (an unreadable file is listed and skipped, not fatal)."""
    columns = find_columns(table.header, variable, table.name)
    shape = _ImageShape()
    vectors: list[np.ndarray] = []
    indices: list[int] = []
    skipped: list[str] = []
    total = len(table.rows)
    for index, row in enumerate(table.rows):
        if index % BATCH == 0:
            check_stop(reporter)
            reporter.progress(index, total)
        try:
            if len(columns) > 1:
                vector = np.asarray([float(row[i]) for i in columns], dtype=np.float32)
            else:
                vector = _cell_vector(row[columns[0]], resolver, shape, max_pixels)
            if not np.isfinite(vector).all():
                raise UserError("not a finite number")
            if vectors and vector.size != vectors[0].size:
                raise UserError(f"{vector.size} values where the first row has {vectors[0].size}")
        except ValueError as exc:
            skipped.append(f"line {index + 2}: not a number ({exc})")
            continue
        except UserError as exc:
            skipped.append(f"line {index + 2}: {exc}")
            continue
        vectors.append(vector)
        indices.append(index)
    reporter.progress(total, total)
    if not vectors:
        return np.zeros((0, 0), dtype=np.float32), [], skipped
    return np.stack(vectors), indices, skipped


def _stop_callback(reporter: Reporter, total_iterations: int):
    done = 0

    def callback(iteration: int, error: float, embedding: np.ndarray) -> bool:
        nonlocal done
        done += 50
        if reporter.should_stop():
            raise JobCancelled("cancelled by the user")
        reporter.progress(min(done, total_iterations), total_iterations)
        return False

    return callback


def embed(vectors: np.ndarray, dim: int = 2, perplexity: float = 30.0, seed: int = 0,
          reporter: Reporter | None = None, *, source: str = "the input",
          n_jobs: int | None = None) -> np.ndarray:
    """openTSNE embedding (float32, rows x dim); the perplexity is lowered for small tables. `source`
    names the CSV in messages; `n_jobs` defaults to every core this process may use."""
    if dim not in (2, 3):
        raise UserError(f"dim must be 2 or 3, not {dim}")
    if not perplexity > 0:
        raise UserError(f"perplexity must be positive, not {perplexity}")
    data = np.asarray(vectors, dtype=np.float64)
    n = len(data)
    if n < 4:
        raise UserError(f"t-SNE needs at least 4 rows; {source} has {n}")
    if not np.isfinite(data).all():
        raise UserError(f"{source}: the values contain NaN or infinity")
    if not (data != data[0]).any():
        raise UserError(f"t-SNE needs rows that differ; all {n} rows of {source} have the same values")
    if perplexity > (n - 1) / 3:
        # openTSNE needs 3 x perplexity neighbours; sklearn (NNC) simply crashes here.
        perplexity = (n - 1) / 3
        if reporter is not None:
            reporter.log(f"perplexity lowered to {perplexity:.4g}: only {n} rows")
    threads = n_jobs or len(os.sched_getaffinity(0))
    # In 2-D above a few thousand rows: FFT-interpolated gradients with one interpolation point per
    # box. The PyPI wheel has no FFTW and numpy's FFT makes the default 3 points slow (5,000 rows: 36 s
    # vs 3.8 s for 1 point, trustworthiness 0.9987 vs 0.9977; 15,000 rows: Barnes-Hut 45 s, FFT with
    # 1 point 9.8 s at 0.9986). Barnes-Hut below that and in 3-D (openTSNE's FFT is 2-D only).
    fft = dim == 2 and n > FFT_ROWS
    tsne = TSNE(n_components=dim, perplexity=perplexity, random_state=seed, n_jobs=threads,
                negative_gradient_method="fft" if fft else "bh",
                **({"n_interpolation_points": 1} if fft else {}),
                callbacks=_stop_callback(reporter, 750) if reporter is not None else None,
                callbacks_every_iters=50, verbose=False)
    embedding = np.asarray(tsne.fit(data), dtype=np.float32)
    if not np.isfinite(embedding).all():
        raise UserError(f"t-SNE of {source} diverged (NaN); try another perplexity or seed")
    return embedding


def embedding_columns(embedding: np.ndarray, indices: list[int], row_count: int) -> list[list[str]]:
    """The embedding as CSV columns over every input row (float32 text, as NNC); skipped rows stay empty."""
    columns = [[""] * row_count for _ in range(embedding.shape[1])]
    for values, index in zip(embedding, indices, strict=True):
        for column, value in zip(columns, values, strict=True):
            column[index] = str(np.float32(value))
    return columns


def features_of_images(bundle_folder: Path, image_paths: list[Path], device: str | torch.device,
                       reporter: Reporter, batch_size: int = 64,
                       max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, list[int], list[str]]:
    """A classifier bundle's penultimate features of each readable image, with the bundle's own
    preprocessing: (features, positions in `image_paths` they belong to, one message per skipped image)."""
    try:
        manifest = json.loads((Path(bundle_folder) / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError("this run has no readable model manifest") from exc
    if manifest.get("architecture") != "transfer_classifier":
        raise UserError("the features variable needs an image-classifier model; this run's model is "
                        f"{manifest.get('architecture', 'unknown')}")
    target = resolve_device(device) if isinstance(device, str) else device
    model, manifest = load_bundle(Path(bundle_folder))
    model.to(target).eval()
    transform = transforms_for(manifest["backbone"], manifest["input_size"], [])
    features, kept, skipped = [], [], []
    with torch.inference_mode():
        for start in range(0, len(image_paths), batch_size):
            check_stop(reporter)
            batch = []
            for position, path in enumerate(image_paths[start:start + batch_size], start=start):
                try:
                    with open_checked(path, max_pixels) as image:
                        batch.append(transform(to_channels(image, 3)))
                    kept.append(position)
                except (OSError, ValueError, UserError) as exc:  # a damaged image is listed, not fatal
                    skipped.append(f"{Path(path).name}: {exc if isinstance(exc, UserError) else 'image data is damaged'}")
            if batch:
                features.append(model.features(torch.stack(batch).to(target)).float().cpu().numpy())
            reporter.progress(min(start + batch_size, len(image_paths)), len(image_paths))
    if not features:
        return np.zeros((0, model.features.dim), dtype=np.float32), kept, skipped
    return np.concatenate(features), kept, skipped
