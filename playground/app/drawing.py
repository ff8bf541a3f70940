"""Data a person draws: a sketch on the page becomes points in the plane, then a dataset.

The sketchpad's square canvas is the plane box BOX = [-4, 4]^2 the models
train on: pixel (row r, column c) of an H x W canvas has its centre at

    x = x0 + (c + 1/2) (x1 - x0) / W,     y = y1 - (r + 1/2) (y1 - y0) / H,

so the top row is the largest y (y points up, rows count down). Ink pixels
are gathered into square cells of side `cell`; each inked cell gives one
point (the mean of its ink), and cells that touch (8 neighbours) make one
stroke. A dab of the brush is a small cluster of points, a line a band of them.
Too much ink for MAX_POINTS coarsens the cells until it fits.

The points and a bandwidth h make core.data.drawn.DrawnPoints, the kernel
density estimate the run trains on. Pure functions of arrays here; the
handlers are in playground.app.handlers.
"""

from __future__ import annotations

import math
import re
from collections import deque
from pathlib import Path

import numpy as np

from core.data.drawn import MAX_POINTS, MIN_POINTS, DrawnPoints
from core.data.toy2d import plane_grid
from core.errors import DataError

from ..draw.layout import base_layout, empty_figure, figure, plane_axes
from ..draw.marks import scatter

BOX = ((-4.0, 4.0), (-4.0, 4.0))
CANVAS = 400  # pixels a side
CELL = 0.08  # plane units per cell: 100 cells across the box
DEFAULT_BANDWIDTH = 0.15
PREFIX = "drawing "  # drawn datasets are named "drawing 1 (120 points, h=0.15)"
QUERY_KEY = "drawn"  # the drawing's text in the page's link
_CSV_HEAD = "# drawn points, bandwidth h = "
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def ink_mask(value) -> np.ndarray:
    """(H, W) bool: where the sketch is dark once laid on white.

    `value` is the sketchpad's value (a dict with "composite", or "background"
    and "layers") or one image: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA,
    0..255. Under a transparent pixel the colour is arbitrary, so alpha decides.
    """
    if value is None:
        raise DataError("nothing is drawn yet: pick the brush (✎) and draw strokes or dab points in the box first")
    if isinstance(value, dict):
        images = [value.get("composite")] if value.get("composite") is not None else \
            [value.get("background"), *(value.get("layers") or [])]
        images = [im for im in images if im is not None]
        if not images:
            raise DataError("nothing is drawn yet: pick the brush (✎) and draw strokes or dab points in the box first")
        masks = [ink_mask(im) for im in images]
        if len({m.shape for m in masks}) != 1:
            raise DataError("the sketch's layers have different sizes; clear the canvas and draw again")
        return np.logical_or.reduce(masks)
    a = np.asarray(value)
    if a.ndim not in (2, 3) or a.size == 0 or a.ndim == 3 and a.shape[2] not in (1, 3, 4):
        raise DataError(f"the sketch is not an image (shape {a.shape}); clear the canvas and draw again")
    a = a.astype(np.float64)
    if a.ndim == 2 or a.shape[2] == 1:
        return a.reshape(a.shape[:2]) < 128
    grey = a[..., :3] @ np.array([0.299, 0.587, 0.114])  # (H, W) luminance
    if a.shape[2] == 4:
        alpha = a[..., 3] / 255.0
        grey = alpha * grey + (1 - alpha) * 255.0
    return grey < 128


def pixels_to_plane(rows: np.ndarray, cols: np.ndarray, shape: tuple, box=BOX) -> np.ndarray:
    """Pixel centres -> (n, 2) plane points, y up."""
    (x0, x1), (y0, y1) = box
    h, w = shape
    return np.stack([x0 + (cols + 0.5) * (x1 - x0) / w, y1 - (rows + 0.5) * (y1 - y0) / h], axis=1)


def sketch_to_points(value, box=BOX, cell: float = CELL) -> tuple[np.ndarray, np.ndarray]:
    """(points (m, 2), strokes (m,)): one point per inked cell, strokes = touching cells."""
    mask = ink_mask(value)
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise DataError("nothing is drawn yet: pick the brush (✎) and draw strokes or dab points in the box first")
    xy = pixels_to_plane(rows, cols, mask.shape, box)  # (n, 2)
    (x0, _), (y0, _) = box
    while True:
        ij = np.floor((xy - [x0, y0]) / cell).astype(np.int64)  # (n, 2) cell of each ink pixel
        key = ij[:, 0] * (1 << 32) + ij[:, 1]  # one integer per cell: a 1D unique is much faster
        keys, first, which = np.unique(key, return_index=True, return_inverse=True)
        if len(keys) <= MAX_POINTS:
            break
        cell *= 1.05 * math.sqrt(len(keys) / MAX_POINTS)
    cells, which = ij[first], which.reshape(-1)
    count = np.bincount(which)
    points = np.stack([np.bincount(which, xy[:, d]) / count for d in (0, 1)], axis=1)  # (m, 2) mean ink
    if len(points) < MIN_POINTS:
        raise DataError(f"the sketch has only {len(points)} point; draw at least {MIN_POINTS} dots or a stroke")
    return points, _touching(cells)


def _touching(cells: np.ndarray) -> np.ndarray:
    """Label each cell by its group of 8-connected cells, groups numbered left to right."""
    ij = [tuple(c) for c in cells.tolist()]
    index = {c: k for k, c in enumerate(ij)}
    label = np.full(len(cells), -1, dtype=np.int64)
    groups = 0
    for start in np.lexsort((cells[:, 1], cells[:, 0])):  # leftmost first
        if label[start] >= 0:
            continue
        label[start] = groups
        todo = deque([start])
        while todo:
            i, j = ij[todo.popleft()]
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    k = index.get((i + di, j + dj))
                    if k is not None and label[k] < 0:
                        label[k] = groups
                        todo.append(k)
        groups += 1
    return label


def points_to_image(points: np.ndarray, box=BOX, size: int = CANVAS, cell: float = CELL) -> np.ndarray:
    """(size, size, 4) RGBA: white with a small black dot at each point, the sketch a link restores.

    Each dot stays inside its point's cell, so sketch_to_points reads it back as
    that one point (to within a pixel).
    """
    img = np.full((size, size, 4), 255, dtype=np.uint8)
    (x0, x1), (y0, y1) = box
    points = np.asarray(points, dtype=np.float64)
    col = np.floor((points[:, 0] - x0) / (x1 - x0) * size).astype(int)
    row = np.floor((y1 - points[:, 1]) / (y1 - y0) * size).astype(int)
    home = np.floor((points - [x0, y0]) / cell)  # (m, 2) each point's cell
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            r, c = row + dr, col + dc
            ok = (r >= 0) & (r < size) & (c >= 0) & (c < size)
            at = np.floor((pixels_to_plane(r, c, (size, size), box) - [x0, y0]) / cell)
            ok &= (at == home).all(axis=1)
            img[r[ok], c[ok], :3] = 0
    return img


def dataset_name(data: DrawnPoints, number: int) -> str:
    return f"{PREFIX}{number} ({len(data)} points, h={data.h:g})"


def preview_figure(data: DrawnPoints | None, resolution: int = 60):
    """The density the run will train on (its contours) over the drawn points, on the box."""
    if data is None:
        return empty_figure("draw in the box, then press Use this drawing", title="your drawing")
    grid, xs, ys = plane_grid(BOX, resolution)
    z = data.log_prob(grid).exp().reshape(resolution, resolution).numpy()
    traces = [dict(type="contour", x=xs.numpy(), y=ys.numpy(), z=z, showscale=False, ncontours=12,  # noqa: C408
                   colorscale="Blues", reversescale=True,  # plotly's Blues runs dark to light: low density light
                   contours={"coloring": "fill", "showlines": False}, hoverinfo="skip",
                   name="density")]
    pts, strokes = data.points.numpy(), data.strokes.numpy()
    for s in np.unique(strokes)[:len(_COLOURS)]:
        traces.append(scatter(pts[strokes == s], _COLOURS[s % len(_COLOURS)], f"stroke {s + 1}", size=3, legend=False))
    rest = strokes >= len(_COLOURS)
    if rest.any():
        traces.append(scatter(pts[rest], "#444", "more strokes", size=3, legend=False))
    layout = base_layout(f"your drawing: {len(data)} points, kernel width h = {data.h:g}", "drawing", height=360,
                         legend=False)
    plane_axes(layout, BOX)
    return figure(traces, layout)


# ---- the drawing as a file ------------------------------------------------------
def write_csv(data: DrawnPoints, path) -> Path:
    """x,y per line, strokes separated by comment lines: a points file the upload accepts back."""
    lines = [f"{_CSV_HEAD}{data.h:g}", "x,y"]
    pts, strokes = data.points.numpy(), data.strokes.numpy()
    for s in np.unique(strokes):
        lines.append(f"# stroke {s + 1}")
        lines += [f"{x:.4f},{y:.4f}" for x, y in pts[strokes == s]]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_csv(path) -> DrawnPoints | None:
    """The drawing a file written by write_csv holds, or None for any other points file."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".txt"):
        return None
    try:
        with open(path, encoding="utf-8-sig") as f:
            first = f.readline().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not first.startswith(_CSV_HEAD):
        return None
    try:
        h = float(first[len(_CSV_HEAD):])
    except ValueError:
        raise DataError(f"{path.name}: the bandwidth on line 1 ({first[len(_CSV_HEAD):]!r}) is not a number") from None
    points, strokes, stroke = [], [], 0
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines()[1:], start=2):
        line = line.strip()
        if not line or line == "x,y":
            continue
        if line.startswith("#"):
            found = re.fullmatch(r"#\s*stroke\s+(\d+)", line)
            stroke = int(found.group(1)) - 1 if found else stroke
            continue
        try:
            x, y = (float(v) for v in line.split(","))
        except ValueError:
            raise DataError(f"{path.name}, line {number}: {line!r} is not two numbers x,y") from None
        points.append((x, y))
        strokes.append(max(stroke, 0))
    if not points:
        raise DataError(f"{path.name} holds no points; draw again and download it once more")
    return DrawnPoints(np.asarray(points), h, np.asarray(strokes, dtype=np.int64))
