"""Pictures to keep: a PNG of the main view and an animated GIF of a run, drawn with Pillow.

The raster is the family's main panel, as its view declares it
(playground.views.ExportPicture): a background (a flow's density, a GAN's
discriminator; else the true density, faintly), the data in green and the
model's samples in purple, the step number in the corner; for digits, a tile
of samples. No browser or kaleido
is needed, so export works on any server.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import draw as V
from .draw import digits as D
from .views import view_for

SIZE = 480
MAX_GIF_FRAMES = 60


# ---- colours --------------------------------------------------------------------
def _rgb(color: str) -> np.ndarray:
    c = color.lstrip("#")
    return np.array([int(c[i:i + 2], 16) for i in (0, 2, 4)], dtype=np.float64)


def colormap(values: np.ndarray, scale) -> np.ndarray:
    """values in [0, 1] (nan -> white) through a Plotly colour scale -> uint8 RGB (..., 3)."""
    stops = np.array([s for s, _ in scale])
    colors = np.stack([_rgb(c) for _, c in scale])
    v = np.clip(np.nan_to_num(values, nan=-1.0), 0, 1)
    out = np.stack([np.interp(v, stops, colors[:, k]) for k in range(3)], axis=-1)
    out[np.isnan(values)] = 255
    return out.round().astype(np.uint8)


def _font_size(width: int) -> int:
    return max(12, width // 30)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: a fixed bitmap font
        return ImageFont.load_default()


# ---- what the main panel holds ------------------------------------------------------
def _background(family: str, traces: dict, ctx: dict) -> tuple[np.ndarray, list] | None:
    """(G*G,) values in [0, 1] and the colour scale: the view's own, else the true density, faintly."""
    own = view_for(family).export.background
    if own is not None:
        bg = own(traces, ctx)
        if bg is not None:
            return bg
    true = ctx.get("true_log_density")
    if true is not None:
        p = np.exp(np.clip(np.asarray(true, np.float64), -80, 80))
        if np.isfinite(p).any() and np.nanmax(p) > 0:
            return 0.5 * p / np.nanmax(p), V.DENSITY_SCALE  # faint: the target, not the model
    return None


def _draw_points(draw: ImageDraw.ImageDraw, pts: np.ndarray, box, size: int, color: str, r: float) -> None:
    (x0, x1), (y0, y1) = box
    keep = np.isfinite(pts).all(1)
    px = (pts[keep, 0] - x0) / (x1 - x0) * (size - 1)
    py = (y1 - pts[keep, 1]) / (y1 - y0) * (size - 1)
    inside = (px > -r) & (px < size + r) & (py > -r) & (py < size + r)
    fill = tuple(int(v) for v in _rgb(color))
    for x, y in zip(px[inside].tolist(), py[inside].tolist()):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)


def _label(img: Image.Image, text: str) -> None:
    draw = ImageDraw.Draw(img)
    font = _font(_font_size(img.width))
    l, t, r, b = draw.textbbox((8, 6), text, font=font)
    draw.rectangle((l - 4, t - 3, r + 4, b + 3), fill=(255, 255, 255))
    draw.text((8, 6), text, fill=(40, 40, 40), font=font)


def _message(img: Image.Image, text: str) -> None:
    draw = ImageDraw.Draw(img)
    font = _font(max(12, img.width // 32))
    draw.text((img.width // 2, img.height // 2), text, fill=(100, 100, 100), font=font, anchor="mm")


def render_frame(family: str, snapshot: dict, ctx: dict | None = None, size: int = SIZE) -> Image.Image:
    """The main panel as a size x size RGB image; never raises on missing or NaN values."""
    ctx = ctx if isinstance(ctx, dict) else {}
    snapshot = snapshot if isinstance(snapshot, dict) else {}
    traces = snapshot.get("traces") or {}
    img = Image.new("RGB", (size, size), (255, 255, 255))
    step = snapshot.get("step", 0)
    head = f"{family} · {ctx['dataset']} · step {step}" if ctx.get("dataset") else f"{family} · step {step}"
    with np.errstate(all="ignore"):
        try:
            samples = view_for(family).export.samples(traces)
            if V.is_image(ctx, snapshot):
                _digits(img, samples, snapshot, ctx)
            else:
                _plane(img, family, traces, samples, snapshot, ctx)
        except Exception as e:  # noqa: BLE001 - an export must not fail on odd numbers
            _message(img, f"nothing to draw ({type(e).__name__})")
    _label(img, head)
    return img


def _plane(img: Image.Image, family: str, traces: dict, samples, snapshot: dict, ctx: dict) -> None:
    size = img.width
    data = V.data_points(snapshot)
    box = V.bounds_of(ctx, data)
    bg = _background(family, traces, ctx)
    if bg is not None:
        values, scale = bg
        g = int(round(math.sqrt(values.size)))
        if g * g == values.size:
            rgb = colormap(values.reshape(g, g)[::-1], scale)  # row 0 of the grid is the lowest y
            img.paste(Image.fromarray(rgb, "RGB").resize((size, size), Image.BILINEAR))
    draw = ImageDraw.Draw(img)
    r = max(1.5, size / 220)
    if data is not None:
        _draw_points(draw, data, box, size, V.REAL, r)
    if samples is not None and samples.ndim == 2 and samples.shape[1] >= 2:
        _draw_points(draw, samples[:, :2], box, size, V.GEN, r)
    elif data is None:
        _message(img, "no samples yet")


def _digits(img: Image.Image, samples, snapshot: dict, ctx: dict) -> None:
    if samples is None:
        _message(img, "no samples yet")
        return
    lo, hi = D.pixel_range(snapshot)
    tiles = D.tile(D.images(samples[:64], ctx, "samples"), 8)
    rgb = colormap((tiles - lo) / (hi - lo), V.DIGIT_SCALE)  # gaps between digits (nan) stay white
    top = _font_size(img.width) + 14  # below the label
    side = min(img.width, img.height - top)
    img.paste(Image.fromarray(rgb, "RGB").resize((side, side), Image.NEAREST), ((img.width - side) // 2, top))


# ---- files ------------------------------------------------------------------------
def snapshot_png(family: str, snapshot: dict, ctx: dict | None = None, size: int = SIZE) -> bytes:
    """PNG bytes of the main panel at this snapshot."""
    buf = io.BytesIO()
    render_frame(family, snapshot, ctx, size).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def history_gif(frames: list[dict], family: str, ctx: dict | None = None, fps: float = 8.0, size: int = 360,
                max_frames: int = MAX_GIF_FRAMES) -> bytes:
    """An animated GIF, one frame per snapshot (evenly thinned to max_frames, first and last kept).

    Frames share one palette so colours do not flicker; Pillow merges frames
    that are pixel-for-pixel identical into one longer frame.
    """
    frames = [f for f in (frames or []) if isinstance(f, dict)]
    if not frames:
        frames = [{}]
    keep = V.pick(len(frames), max(1, int(max_frames)))
    images = [render_frame(family, frames[i], ctx, size) for i in keep]
    probe = Image.new("RGB", (size, size * min(3, len(images))))
    for k, i in enumerate(V.pick(len(images), 3)):
        probe.paste(images[i], (0, k * size))
    palette = probe.quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    paletted = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    buf = io.BytesIO()
    duration = max(20, int(round(1000 / max(float(fps), 0.1))))
    paletted[0].save(buf, format="GIF", save_all=True, append_images=paletted[1:], duration=duration, loop=0,
                     disposal=1)
    return buf.getvalue()
