"""Small pictures of the built-in datasets, to pick one by eye as TensorFlow Playground does.

A plane's dataset is a 2D histogram of 4,000 of its samples over its plotting bounds (the
log of the counts, so thin arms show beside dense blobs); digits are a 2 x 2 mosaic of four.
Drawn once per process, with a fixed seed, and written once as PNG files that every tab is
sent: a picture drawn again for each visit is written again over the file another tab is
reading, and that tab shows a broken image.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile

import numpy as np
import torch

from core import registry
from core.errors import DataError

SIZE = 64  # pixels a side
SAMPLES = 4000
INK = np.array([234, 88, 12], dtype=np.float64)  # the page's accent colour, for the densest cell
PAPER = np.array([255, 255, 255], dtype=np.float64)


def _plane(name: str) -> np.ndarray:
    data = registry.load_dataset(name)
    x = data.sample(SAMPLES, torch.Generator().manual_seed(0)).double().numpy()
    (x0, x1), (y0, y1) = data.bounds
    counts, _, _ = np.histogram2d(x[:, 1], x[:, 0], bins=SIZE, range=[[y0, y1], [x0, x1]])
    shade = np.log1p(counts) / max(np.log1p(counts).max(), 1e-9)  # 0 empty .. 1 densest
    picture = PAPER + shade[..., None] * (INK - PAPER)
    return picture[::-1].round().astype(np.uint8)  # y up, as the panels draw it


def _digits(name: str) -> np.ndarray:
    try:
        data = registry.load_dataset(name)
        x = data.sample(4, torch.Generator().manual_seed(0)).float().reshape(4, 28, 28).clamp(0, 1).numpy()
    except DataError:  # no digits on this machine: a blank tile; the dataset says why when chosen
        return np.full((SIZE, SIZE, 3), 230, dtype=np.uint8)
    mosaic = np.block([[x[0], x[1]], [x[2], x[3]]])  # 56 x 56, ink 1
    index = np.arange(SIZE) * mosaic.shape[0] // SIZE
    ink = mosaic[np.ix_(index, index)]
    return (255 * (1 - ink[..., None]) * np.ones(3)).round().astype(np.uint8)


def thumbnail(name: str) -> np.ndarray:
    """(SIZE, SIZE, 3) uint8: what the dataset looks like."""
    shape = registry.DATASETS[name].factory.shape if hasattr(registry.DATASETS[name].factory, "shape") else (2,)
    return _digits(name) if registry.data_kind(shape) == "images" else _plane(name)


@functools.cache
def thumbnails() -> tuple[tuple[np.ndarray, str], ...]:
    """(picture, name) for every built-in dataset, in the dataset menu's order."""
    return tuple((thumbnail(name), name) for name in registry.dataset_names())


@functools.cache
def thumbnail_files() -> tuple[tuple[str, str], ...]:
    """(PNG path, name) for every built-in dataset: the pictures, written once for the process."""
    from PIL import Image

    folder = tempfile.mkdtemp(prefix="playground-thumbnails-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    out = []
    for picture, name in thumbnails():
        path = os.path.join(folder, f"{name}.png")
        Image.fromarray(picture).save(path)
        out.append((path, name))
    return tuple(out)
