"""Pictures to keep: a PNG of every panel of a run and an animated GIF of it, drawn with Pillow.

The PNG (run_png) is the page's panels as they stand, in the page's order
(wide ones across, the others two a row), then the loss and metric charts:
each Plotly figure drawn again by figure_image, with its title and note, axes,
ticks, axis titles and legend. The GIF's frames are the family's main panel,
as its view declares it (playground.views.ExportPicture): a background (a
flow's density, a GAN's discriminator; else the true density, faintly), the
data in green and the model's samples in purple, the step number in the
corner; for digits, a tile of samples. No browser or kaleido is needed, so
export works on any server.
"""

from __future__ import annotations

import base64
import io
import math
import re

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


# ---- a Plotly figure of the page, drawn again with Pillow ------------------------------------
# What the views and charts use: scatter (markers and lines), heatmap and bar traces on one or more
# axis pairs with domains, fixed or automatic ranges, linear or log type and equal aspect; annotations
# on the paper (the title and its note, a placeholder's message); a horizontal legend at the foot.
HEADER = 30  # px of the line naming the run above its panels
CHART_HEIGHT = 300
_FONTS = {False: ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
          True: ("DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")}
_TAGS = re.compile(r"<[^>]+>")


def _font_of(size: float, bold: bool = False):
    """DejaVu where the system has it (it draws Greek, arrows and maths); else Pillow's own font."""
    for name in _FONTS[bold]:
        try:
            return ImageFont.truetype(name, max(6, int(round(size))))
        except OSError:
            continue
    return _font(max(6, int(round(size))))


def _colour(c, default: str = V.NEUTRAL) -> tuple[int, int, int, int]:
    """A Plotly colour (#rrggbb, rgb(...), rgba(...)) as RGBA."""
    if not isinstance(c, str):
        c = default
    c = c.strip()
    if c.startswith("#") and len(c) == 7:
        return (*(int(v) for v in _rgb(c)), 255)
    m = re.match(r"rgba?\(([^)]*)\)", c)
    if m:
        parts = [float(v) for v in m.group(1).split(",")]
        alpha = parts[3] if len(parts) > 3 else 1.0
        return (int(parts[0]), int(parts[1]), int(parts[2]), int(round(255 * alpha)))
    return _colour(default) if c != default else (140, 140, 140, 255)


def _nice_ticks(lo: float, hi: float, most: int = 5) -> list[float]:
    span = hi - lo
    if not (math.isfinite(span) and span > 0):
        return []
    mag = 10.0 ** math.floor(math.log10(span / most))
    for step in (mag * m for m in (1, 2, 2.5, 5, 10)):
        vals = [k * step for k in range(math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) + 1)]
        if len(vals) <= most:
            return [round(v, 10) + 0.0 for v in vals]
    return [lo, hi]


def _tick_text(v: float) -> str:
    return f"{v:.4g}".replace("-", "−")


def _suffixes(layout: dict, data: list) -> list[str]:
    names = {k[5:] for k in layout if re.fullmatch(r"xaxis\d*", k)}
    names |= {(t.get("xaxis") or "x")[1:] for t in data}
    return sorted(names, key=lambda s: int(s or 1))


def _decoded(obj):
    """Plotly's JSON with its typed arrays ({"dtype", "bdata", "shape"}) back as numpy arrays."""
    if isinstance(obj, dict):
        if "bdata" in obj and "dtype" in obj:
            a = np.frombuffer(base64.b64decode(obj["bdata"]), dtype=np.dtype(obj["dtype"]))
            shape = obj.get("shape")
            return a.reshape([int(v) for v in str(shape).split(",")]) if shape else a
        return {k: _decoded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_decoded(v) for v in obj]
    return obj


def _values(a) -> np.ndarray:
    if a is None:
        return np.zeros(0)
    try:
        return np.asarray(a, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):  # categories
        return np.arange(len(a), dtype=np.float64)


def _auto_range(traces: list, letter: str, log: bool) -> list[float]:
    vals = []
    for t in traces:
        v = _values(t.get(letter))
        if t.get("type") == "bar" and letter == "y":
            v = np.concatenate([v, [0.0]])
        if t.get("type") == "heatmap" and t.get(letter) is None:
            z = np.asarray(t.get("z"))
            v = np.array([-0.5, (z.shape[1] if letter == "x" else z.shape[0]) - 0.5])
        vals.append(v)
    v = np.concatenate(vals) if vals else np.zeros(0)
    v = v[np.isfinite(v) & (v > 0)] if log else v[np.isfinite(v)]
    if not v.size:
        return [0.0, 1.0]
    lo, hi = (np.log10(v.min()), np.log10(v.max())) if log else (float(v.min()), float(v.max()))
    pad = 0.05 * (hi - lo) if hi > lo else 0.5
    return [float(lo - pad), float(hi + pad)]


def _legend_items(layout: dict, data: list) -> list[tuple[str, dict]]:
    if layout.get("showlegend") is False:
        return []
    seen, items = set(), []
    for t in data:
        name = t.get("name")
        if not name or t.get("showlegend") is False or t.get("type") == "heatmap":
            continue
        key = t.get("legendgroup") or name
        if key not in seen:
            seen.add(key)
            items.append((_TAGS.sub("", str(name)), t))
    return items if layout.get("showlegend") or len(items) > 1 else []


def _legend_rows(items: list, width: int, font) -> list[list[tuple[str, dict, float]]]:
    rows, x = [[]], 0.0
    for name, t in items:
        w = 30 + font.getlength(name) + 12
        if rows[-1] and x + w > width - 8:
            rows.append([])
            x = 0.0
        rows[-1].append((name, t, w))
        x += w
    return [r for r in rows if r]


def plot_area(layout: dict, width: int, data: list | None = None) -> dict:
    """{axis suffix ("x", "x2", ...): ((left, top, right, bottom) px, (x range, y range))} of a figure
    drawn `width` px wide: the margins and the legend's rows taken off, domains and equal aspect applied."""
    data = data or []
    height = int(layout.get("height") or V.HEIGHT)
    m = layout.get("margin") or {}
    legend = _legend_rows(_legend_items(layout, data), width, _font_of(11))
    ticks_below = any((layout.get(f"xaxis{s}") or {}).get("showticklabels", True) and
                      (layout.get(f"xaxis{s}") or {}).get("visible", True) for s in _suffixes(layout, data))
    titled = any(((layout.get(f"xaxis{s}") or {}).get("title") or {}).get("text") for s in _suffixes(layout, data))
    left, top = float(m.get("l", 40)), float(m.get("t", 34))
    right = width - float(m.get("r", 12))
    bottom = height - float(m.get("b", 30)) - 18 * len(legend) - (4 if legend else 0)
    bottom -= max(0, (16 if ticks_below else 0) + (14 if titled else 0) - float(m.get("b", 30)) + 6)
    out = {}
    for s in _suffixes(layout, data):
        ax, ay = layout.get(f"xaxis{s}") or {}, layout.get(f"yaxis{s}") or {}
        on = [t for t in data if (t.get("xaxis") or "x") == f"x{s}"]
        dx, dy = ax.get("domain") or [0, 1], ay.get("domain") or [0, 1]
        x0, x1 = left + dx[0] * (right - left), left + dx[1] * (right - left)
        y0, y1 = bottom - dy[1] * (bottom - top), bottom - dy[0] * (bottom - top)
        match = layout.get(f"xaxis{(ax.get('matches') or 'x')[1:]}") if ax.get("matches") else None
        xr = list((match or ax).get("range") or _auto_range(on, "x", ax.get("type") == "log"))
        yr = list(ay.get("range") or _auto_range(on, "y", ay.get("type") == "log"))
        if ay.get("scaleanchor") == f"x{s}" and xr[1] != xr[0] and yr[1] != yr[0]:
            scale = min((x1 - x0) / abs(xr[1] - xr[0]), (y1 - y0) / abs(yr[1] - yr[0]))
            w, h = scale * abs(xr[1] - xr[0]), scale * abs(yr[1] - yr[0])
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            x0, x1, y0, y1 = cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2
        out["x" + s] = ((x0, y0, x1, y1), (xr, yr))
    return out


class _Axes:
    """Data coordinates to pixels on one axis pair."""

    def __init__(self, rect, ranges, xlog: bool, ylog: bool):
        (self.x0, self.y0, self.x1, self.y1), (self.xr, self.yr) = rect, ranges
        self.xlog, self.ylog = xlog, ylog

    def px(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(all="ignore"):
            x = np.log10(x) if self.xlog else np.asarray(x, np.float64)
            y = np.log10(y) if self.ylog else np.asarray(y, np.float64)
        u = self.x0 + (x - self.xr[0]) / (self.xr[1] - self.xr[0]) * (self.x1 - self.x0)
        v = self.y1 - (y - self.yr[0]) / (self.yr[1] - self.yr[0]) * (self.y1 - self.y0)
        return u, v


def _heatmap(canvas: Image.Image, t: dict, ax: _Axes) -> None:
    z = np.asarray(t.get("z"), dtype=np.float64)
    if z.ndim != 2 or not z.size:
        return
    scale = t.get("colorscale") or V.DENSITY_SCALE
    if isinstance(scale, str) or not all(isinstance(c, str) and c.startswith("#") for _, c in scale):
        scale = V.DENSITY_SCALE
    zmin = t.get("zmin", np.nanmin(z) if np.isfinite(z).any() else 0.0)
    zmax = t.get("zmax", np.nanmax(z) if np.isfinite(z).any() else 1.0)
    rgb = colormap((z - zmin) / ((zmax - zmin) or 1.0), scale)
    alpha = np.where(np.isfinite(z), int(255 * float(t.get("opacity", 1.0))), 0).astype(np.uint8)
    tile = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    xs = _values(t.get("x")) if t.get("x") is not None else np.arange(z.shape[1], dtype=np.float64)
    ys = _values(t.get("y")) if t.get("y") is not None else np.arange(z.shape[0], dtype=np.float64)
    hx = (xs[-1] - xs[0]) / max(len(xs) - 1, 1) / 2
    hy = (ys[-1] - ys[0]) / max(len(ys) - 1, 1) / 2
    (u0, u1), (v0, v1) = ax.px(np.array([xs[0] - hx, xs[-1] + hx]), np.array([ys[0] - hy, ys[-1] + hy]))
    if v0 > v1:  # row 0 is the lowest y: it goes at the bottom
        tile = tile.transpose(Image.FLIP_TOP_BOTTOM)
    left, top, w, h = min(u0, u1), min(v0, v1), abs(u1 - u0), abs(v1 - v0)
    if not (w >= 1 and h >= 1 and w < 8000 and h < 8000):
        return
    smooth = Image.BILINEAR if t.get("zsmooth") else Image.NEAREST
    tile = tile.resize((int(round(w)), int(round(h))), smooth)
    layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    layer.paste(tile, (int(round(left)), int(round(top))))
    canvas.alpha_composite(_clip(layer, ax))


def _clip(layer: Image.Image, ax: _Axes) -> Image.Image:
    """The layer within its plot area only."""
    mask = Image.new("L", layer.size, 0)
    ImageDraw.Draw(mask).rectangle((ax.x0, ax.y0, ax.x1, ax.y1), fill=255)
    out = Image.new("RGBA", layer.size, (0, 0, 0, 0))
    out.paste(layer, (0, 0), Image.composite(layer.getchannel("A"), mask, mask))
    return out


def _scatter(canvas: Image.Image, t: dict, ax: _Axes) -> None:
    x, y = _values(t.get("x")), _values(t.get("y"))
    n = min(len(x), len(y))
    if not n:
        return
    u, v = ax.px(x[:n], y[:n])
    layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    opacity = float(t.get("opacity", 1.0))
    mode = t.get("mode") or "markers"
    if "lines" in mode:
        line = t.get("line") or {}
        r, g, b, a = _colour(line.get("color"))
        fill, width = (r, g, b, int(a * opacity)), max(1, int(round(float(line.get("width", 1.5)))))
        ok = np.isfinite(u) & np.isfinite(v)
        start = None
        for i in range(n + 1):
            if i < n and ok[i]:
                start = i if start is None else start
                continue
            if start is not None and i - start >= 2:
                draw.line(list(zip(u[start:i].tolist(), v[start:i].tolist())), fill=fill, width=width)
            start = None
    if "markers" in mode:
        mk = t.get("marker") or {}
        colours = mk.get("color")
        per_point = isinstance(colours, (list, tuple, np.ndarray)) and len(colours) == n and isinstance(colours[0], str)
        base = _colour(colours if isinstance(colours, str) else None, V.GEN)
        r = max(1.0, float(mk.get("size", 6) if np.isscalar(mk.get("size", 6)) else 6) / 2)
        alpha = float(mk.get("opacity", 1.0) if np.isscalar(mk.get("opacity", 1.0)) else 1.0) * opacity
        for i in np.flatnonzero(np.isfinite(u) & np.isfinite(v))[:20000]:
            c = _colour(colours[i]) if per_point else base
            draw.ellipse((u[i] - r, v[i] - r, u[i] + r, v[i] + r), fill=(*c[:3], int(c[3] * alpha)))
    if "text" in mode and t.get("text") is not None:
        font = _font_of(float((t.get("textfont") or {}).get("size", 12)), True)
        colours = (t.get("textfont") or {}).get("color")
        for i, text in enumerate(list(t.get("text"))[:n]):
            c = colours[i] if isinstance(colours, (list, tuple)) and i < len(colours) else colours
            if np.isfinite(u[i]) and np.isfinite(v[i]):
                draw.text((u[i], v[i]), str(text), font=font, fill=_colour(c, "#333333"), anchor="mm")
    canvas.alpha_composite(_clip(layer, ax))


def _bars(canvas: Image.Image, t: dict, ax: _Axes, base: dict) -> None:
    x, y = _values(t.get("x")), _values(t.get("y"))
    n = min(len(x), len(y))
    layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    fill = _colour((t.get("marker") or {}).get("color"), V.GEN)
    step = np.min(np.diff(np.unique(x))) if len(np.unique(x)) > 1 else 1.0
    for i in range(n):
        if not (np.isfinite(x[i]) and np.isfinite(y[i])):
            continue
        b0 = base.get(x[i], 0.0)
        (u0, u1), (v0, v1) = ax.px(np.array([x[i] - 0.4 * step, x[i] + 0.4 * step]), np.array([b0, b0 + y[i]]))
        draw.rectangle((min(u0, u1), min(v0, v1), max(u0, u1), max(v0, v1)), fill=fill)
        if base is not None:
            base[x[i]] = b0 + y[i]
    canvas.alpha_composite(_clip(layer, ax))


def _text_lines(text: str, size: float) -> list[tuple[str, float, bool, tuple]]:
    """An annotation's lines: (plain text, size, bold, colour) from Plotly's <b>, <span style> and <br>."""
    out = []
    for line in str(text).split("<br>"):
        m = re.search(r"font-size:\s*(\d+)px", line)
        c = re.search(r"color:\s*(#[0-9a-fA-F]{6})", line)
        out.append((_TAGS.sub("", line), float(m.group(1)) if m else size, "<b>" in line,
                    _colour(c.group(1)) if c else (51, 51, 51, 255)))
    return out


def _annotation(draw: ImageDraw.ImageDraw, a: dict, area: tuple) -> None:
    left, top, right, bottom = area
    lines = _text_lines(a.get("text", ""), float((a.get("font") or {}).get("size", 12)))
    fonts = [_font_of(size * 0.92, bold) for _, size, bold, _ in lines]
    heights = [size * 1.3 for _, size, _, _ in lines]
    x = left + float(a.get("x", 0.5)) * (right - left)
    y = bottom - float(a.get("y", 0.5)) * (bottom - top) - float(a.get("yshift", 0))
    total = sum(heights)
    y0 = {"bottom": y - total, "top": y}.get(a.get("yanchor"), y - total / 2)
    colour = (a.get("font") or {}).get("color")
    for (text, _, _, c), font, h in zip(lines, fonts, heights):
        w = font.getlength(text)
        x0 = {"left": x, "right": x - w}.get(a.get("xanchor"), x - w / 2)
        draw.text((x0, y0), text, font=font, fill=_colour(colour)[:3] if colour else c[:3])
        y0 += h


def _categories(data: list, s: str) -> list[str] | None:
    """The category names along axis x{s}, when its traces' x are words ("all", "0", ... "9")."""
    for t in data:
        x = t.get("x")
        if (t.get("xaxis") or "x") == f"x{s}" and isinstance(x, (list, tuple)) and x and isinstance(x[0], str):
            return [str(v) for v in x]
    return None


def _axis_marks(canvas: Image.Image, layout: dict, s: str, ax: _Axes, categories: list | None = None) -> None:
    """Grid lines, tick labels and axis titles of one axis pair."""
    draw = ImageDraw.Draw(canvas)
    font, title_font = _font_of(11), _font_of(10.5)
    for letter in "xy":
        spec = layout.get(f"{letter}axis{s}") or {}
        if spec.get("visible") is False:
            continue
        log = spec.get("type") == "log"
        lo, hi = sorted(ax.xr if letter == "x" else ax.yr)
        vals = spec.get("tickvals")
        texts = spec.get("ticktext")
        if vals is None and letter == "x" and categories:
            vals, texts = list(range(len(categories))), categories
        elif vals is None:
            vals = _nice_ticks(lo, hi)
            vals = [10 ** v for v in vals] if log else vals
            texts = None
        vals = [float(v) for v in _values(vals)]
        texts = [str(t) for t in texts] if texts is not None and len(texts) == len(vals) else \
            [_tick_text(v) for v in vals]
        show = spec.get("showticklabels", True)
        for v, text in zip(vals, texts):
            u, w = ax.px(np.array([v]), np.array([v]))
            u, w = float(u[0]), float(w[0])
            if letter == "x" and ax.x0 - 0.5 <= u <= ax.x1 + 0.5:
                if spec.get("showgrid", True):
                    draw.line((u, ax.y0, u, ax.y1), fill=(238, 238, 238))
                if show:
                    draw.text((u, ax.y1 + 3), text, font=font, fill=(68, 68, 68), anchor="mt")
            elif letter == "y" and ax.y0 - 0.5 <= w <= ax.y1 + 0.5:
                if spec.get("showgrid", True):
                    draw.line((ax.x0, w, ax.x1, w), fill=(238, 238, 238))
                if show:
                    draw.text((ax.x0 - 4, w), text, font=font, fill=(68, 68, 68), anchor="rm")
        title = _TAGS.sub("", ((spec.get("title") or {}).get("text") or ""))
        if not title:
            continue
        if letter == "x":
            draw.text(((ax.x0 + ax.x1) / 2, ax.y1 + (17 if show and vals else 3)), title, font=title_font,
                      fill=(51, 51, 51), anchor="mt")
        else:
            w = int(title_font.getlength(title)) + 4
            label = Image.new("RGBA", (w, 16), (255, 255, 255, 0))
            ImageDraw.Draw(label).text((2, 1), title, font=title_font, fill=(51, 51, 51, 255))
            label = label.rotate(90, expand=True)
            spare = 32 if show else 6
            canvas.alpha_composite(label, (max(0, int(ax.x0 - spare - 14)), int((ax.y0 + ax.y1) / 2 - w / 2)))


def _spec(fig) -> tuple[dict, list]:
    spec = _decoded(fig.to_plotly_json() if hasattr(fig, "to_plotly_json") else dict(fig or {}))
    return dict(spec.get("layout") or {}), list(spec.get("data") or [])


def figure_areas(fig, width: int) -> dict:
    """plot_area of a figure drawn `width` px wide by figure_image."""
    layout, data = _spec(fig)
    return plot_area(layout, width, data)


def figure_image(fig, width: int, height: int | None = None) -> Image.Image:
    """A Plotly figure of a view or chart as an RGB image `width` px wide (its own height unless given);
    never raises: a figure it cannot draw says so in the image."""
    layout, data = _spec(fig)
    if height:
        layout["height"] = height
    size = (int(width), int(layout.get("height") or V.HEIGHT))
    canvas = Image.new("RGBA", size, (255, 255, 255, 255))
    try:
        _draw_figure(canvas, layout, data)
    except Exception as e:  # noqa: BLE001 - an export must not fail on odd figures
        _message(canvas, f"this panel could not be drawn ({type(e).__name__})")
    return canvas.convert("RGB")


def _draw_figure(canvas: Image.Image, layout: dict, data: list) -> None:
    width, height = canvas.size
    areas = plot_area(layout, width, data)
    axes = {}
    for name, (rect, ranges) in areas.items():
        s = name[1:]
        axes[name] = _Axes(rect, ranges, (layout.get(f"xaxis{s}") or {}).get("type") == "log",
                           (layout.get(f"yaxis{s}") or {}).get("type") == "log")
        _axis_marks(canvas, layout, s, axes[name], _categories(data, s))
    stacked = {} if layout.get("barmode") in ("stack", "relative") else None
    for t in data:
        ax = axes.get(t.get("xaxis") or "x")
        if ax is None or t.get("visible") is False:
            continue
        kind = t.get("type", "scatter")
        if kind == "heatmap":
            _heatmap(canvas, t, ax)
        elif kind == "bar":
            _bars(canvas, t, ax, stacked.setdefault(t.get("xaxis") or "x", {}) if stacked is not None else {})
        elif kind in ("scatter", "scattergl"):
            _scatter(canvas, t, ax)
    draw = ImageDraw.Draw(canvas)
    m = layout.get("margin") or {}
    paper = (float(m.get("l", 40)), float(m.get("t", 34)), width - float(m.get("r", 12)),
             height - float(m.get("b", 30)))
    if "x" in areas:
        paper = (paper[0], paper[1], paper[2], max(a[0][3] for a in areas.values()))
    for a in layout.get("annotations") or []:
        if a.get("name") != "about" and a.get("xref", "paper") == "paper" and a.get("yref", "paper") == "paper":
            _annotation(draw, a, paper)
    _legend(draw, layout, data, width, height)


def _legend(draw: ImageDraw.ImageDraw, layout: dict, data: list, width: int, height: int) -> None:
    font = _font_of(11)
    rows = _legend_rows(_legend_items(layout, data), width, font)
    y = height - 18 * len(rows) - 4
    for row in rows:
        x = float((layout.get("margin") or {}).get("l", 40)) - 30
        x = max(4.0, x)
        for name, t, w in row:
            mode = t.get("mode") or ("markers" if t.get("type") == "scatter" else "")
            if t.get("type") == "bar" or "markers" in mode:
                c = _colour((t.get("marker") or {}).get("color") if isinstance((t.get("marker") or {}).get("color"), str)
                            else None, V.GEN)
                draw.ellipse((x + 9, y + 4, x + 17, y + 12), fill=c[:3])
            else:
                c = _colour((t.get("line") or {}).get("color"))
                draw.line((x + 2, y + 8, x + 26, y + 8), fill=c[:3], width=2)
            draw.text((x + 30, y + 1), name, font=font, fill=(51, 51, 51))
            x += w
        y += 18


def panel_tiles(keys: list, figures: dict, width: int) -> list[tuple[str, tuple[int, int, int], object]]:
    """(key, (x, y, w), figure) of each shown panel as the page places them: keys in the page's slot
    order (playground.app.status.SLOTS: a wide panel, the 2 x 2 grid, a wide panel), None for an empty
    slot; wide panels take the whole width, the others two a row."""
    out, y, row = [], 0, []
    keys = list(keys)
    grid = [k for k in keys[1:5] if k] if len(keys) >= 6 else [k for k in keys if k and k not in (keys[0], keys[-1])]
    wide = [keys[0] if keys and keys[0] else None, keys[-1] if len(keys) > 1 and keys[-1] else None]
    half = width // 2

    def place(key, x, w):
        fig = figures.get(key)
        if fig is not None:
            out.append((key, (x, y, w), fig))
        return fig

    if wide[0]:
        fig = place(wide[0], 0, width)
        y += int(fig.layout.height or V.HEIGHT) if fig is not None else 0
    for i in range(0, len(grid), 2):
        row = [place(k, j * half, half) for j, k in enumerate(grid[i:i + 2])]
        y += max((int(f.layout.height or V.HEIGHT) for f in row if f is not None), default=0)
    if wide[1]:
        place(wide[1], 0, width)
    return out


def run_png(family: str, snapshot: dict, ctx: dict | None, keys: list, charts: list = (), width: int = 1000,
            title: str = "") -> bytes:
    """PNG bytes of every shown panel of a run (keys in the page's slot order) and then `charts`
    (the loss and metric figures) two a row, each with its axes, title and legend; never raises."""
    from .views import render

    ctx = ctx if isinstance(ctx, dict) else {}
    snapshot = snapshot if isinstance(snapshot, dict) else {}
    figures = render(family, snapshot, ctx)
    tiles = panel_tiles(keys, figures, width)
    top = max((y + int(f.layout.height or V.HEIGHT) for _, (x, y, w), f in tiles), default=0)
    half = width // 2
    chart_tiles = [(f"chart{i}", (i % 2 * half, top + i // 2 * CHART_HEIGHT, half), f) for i, f in enumerate(charts)]
    total = top + (len(charts) + 1) // 2 * CHART_HEIGHT
    img = Image.new("RGB", (width, HEADER + total), (255, 255, 255))
    for _, (x, y, w), fig in tiles:
        img.paste(figure_image(fig, w), (x, HEADER + y))
    for _, (x, y, w), fig in chart_tiles:
        img.paste(figure_image(fig, w, CHART_HEIGHT), (x, HEADER + y))
    head = title or (f"{family} · {ctx['dataset']}" if ctx.get("dataset") else family)
    ImageDraw.Draw(img).text((10, 7), f"{head} · step {snapshot.get('step', 0)}", font=_font_of(14, True),
                             fill=(40, 40, 40))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()
