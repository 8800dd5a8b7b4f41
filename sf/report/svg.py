"""The report's charts as inline SVG strings: no plotting library in the page, nothing fetched, text stays text.

Why hand-written SVG and not a bundled Plotly/Vega: the report must open offline from one file, and the charts
it needs (bars with ± std, a forecast with its band, an attention grid) are a few dozen lines each; a Plotly
bundle would add ~3.5 MB of JavaScript to every report and a dependency to the package.
"""

from __future__ import annotations

import math
from html import escape

import numpy as np

PALETTE = {"model": "#d9480f", "band": "#ffa94d", "actual": "#212529", "reference": "#868e96", "bar": "#4c6ef5",
           "own": "#d9480f", "grid": "#dee2e6"}


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".") if abs(v) < 1e4 else f"{v:.0f}"


def _ticks(top: float, n: int = 4) -> list[float]:
    """Round tick values from 0 to at least `top`."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(math.ceil(top / step)) + 1)]


def bars(labels: list[str], values: list[float], errors: list[float] | None = None, *, title: str,
         highlight: set[str] = frozenset(), width: int = 640, unit: str = "") -> str:
    """Horizontal bars (one per label) with optional ± error whiskers; `highlight` labels drawn in the model colour."""
    errors = errors or [0.0] * len(values)
    finite = [v + (e or 0) for v, e in zip(values, errors) if v is not None and math.isfinite(v)]
    ticks = _ticks(max(finite, default=1.0))
    left, right, row, top = min(380, 12 + 6.2 * max((len(l) for l in labels), default=10)), 40, 22, 28
    h = top + row * len(labels) + (40 if unit else 24)
    scale = (width - left - right) / ticks[-1]
    out = [f'<svg class="chart" role="img" viewBox="0 0 {width} {h}" width="{width}" height="{h}" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
           f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>']
    for t in ticks:
        x = left + t * scale
        out.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{h - (36 if unit else 20)}" stroke="{PALETTE["grid"]}"/>'
                   f'<text x="{x:.1f}" y="{h - (22 if unit else 6)}" text-anchor="middle" class="tick">{_num(t)}</text>')
    if unit:
        out.append(f'<text x="{(left + width - right) / 2:.0f}" y="{h - 4}" text-anchor="middle" class="axis-label">'
                   f'{escape(unit)}</text>')
    for i, (label, v, e) in enumerate(zip(labels, values, errors)):
        y = top + i * row
        out.append(f'<text x="{left - 6:.0f}" y="{y + 14}" text-anchor="end" class="label">{escape(label)}</text>')
        if v is None or not math.isfinite(v):
            continue
        colour = PALETTE["own"] if label in highlight else PALETTE["bar"]
        out.append(f'<rect x="{left:.1f}" y="{y + 3}" width="{max(v * scale, 0.5):.1f}" height="{row - 8}" '
                   f'fill="{colour}" opacity="0.85"><title>{escape(label)}: {v:.2f}'
                   + (f" ± {e:.2f}" if e else "") + "</title></rect>")
        if e:
            x0, x1 = left + max(v - e, 0) * scale, left + (v + e) * scale
            out.append(f'<line x1="{x0:.1f}" y1="{y + row / 2:.1f}" x2="{x1:.1f}" y2="{y + row / 2:.1f}" '
                       f'stroke="#212529" stroke-width="1.2"/>')
        out.append(f'<text x="{left + (v + (e or 0)) * scale + 4:.1f}" y="{y + 14}" class="value">{_num(v)}</text>')
    out.append("</svg>")
    return "".join(out)


def interval_bars(labels: list[str], values: list[float], intervals: list[tuple[float, float]], marks: list[float],
                  *, title: str, unit: str, width: int = 640) -> str:
    """Horizontal bars with an interval whisker and a tick at `marks` (the order) per label, x axis in `unit`."""
    top_v = max([hi for _, hi in intervals] + list(values) + list(marks) + [1.0])
    ticks = _ticks(top_v)
    left, right, row, top = min(200, 14 + 7 * max((len(l) for l in labels), default=10)), 30, 20, 40
    h = top + row * len(labels) + 40
    scale = (width - left - right) / ticks[-1]
    out = [f'<svg class="chart" role="img" viewBox="0 0 {width} {h}" width="{width}" height="{h}" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
           f'<text x="4" y="14" class="chart-title">{escape(title)}</text>',
           f'<rect x="{left}" y="22" width="14" height="8" fill="{PALETTE["bar"]}" opacity="0.6"/>'
           f'<text x="{left + 18}" y="30" class="tick">forecast total</text>'
           f'<line x1="{left + 120}" y1="26" x2="{left + 140}" y2="26" stroke="#212529"/>'
           f'<text x="{left + 144}" y="30" class="tick">p10–p90</text>'
           f'<rect x="{left + 200}" y="21" width="3" height="10" fill="{PALETTE["own"]}"/>'
           f'<text x="{left + 207}" y="30" class="tick">order</text>']
    for t in ticks:
        x = left + t * scale
        out.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{h - 34}" stroke="{PALETTE["grid"]}"/>'
                   f'<text x="{x:.1f}" y="{h - 20}" text-anchor="middle" class="tick">{_num(t)}</text>')
    out.append(f'<text x="{(left + width - right) / 2:.0f}" y="{h - 4}" text-anchor="middle" class="axis-label">'
               f'{escape(unit)}</text>')
    for i, (label, v, (lo, hi), m) in enumerate(zip(labels, values, intervals, marks)):
        y = top + i * row
        out.append(f'<text x="{left - 6:.0f}" y="{y + 13}" text-anchor="end" class="label">{escape(label)}</text>'
                   f'<rect x="{left}" y="{y + 3}" width="{max(v * scale, 0.5):.1f}" height="{row - 7}" '
                   f'fill="{PALETTE["bar"]}" opacity="0.6"><title>{escape(label)}: {v:.0f} (p10 {lo:.0f}, p90 {hi:.0f}, '
                   f'order {m:.0f})</title></rect>'
                   f'<line x1="{left + lo * scale:.1f}" y1="{y + row / 2:.1f}" x2="{left + hi * scale:.1f}" '
                   f'y2="{y + row / 2:.1f}" stroke="#212529" stroke-width="1.2"/>'
                   f'<rect x="{left + m * scale - 1.5:.1f}" y="{y + 1}" width="3" height="{row - 3}" fill="{PALETTE["own"]}"/>')
    out.append("</svg>")
    return "".join(out)


def forecast(point: np.ndarray, band: np.ndarray | None, actual: np.ndarray | None, reference: np.ndarray | None,
             *, width: int = 420, height: int = 210, title: str = "", period: str = "week") -> str:
    """Forecast curve with its quantile band, the actual sales (observed steps) and the training mean curve;
    x: whole periods since release, y: units per period."""
    h_steps = len(point)
    series = [np.asarray(point, float)]
    if band is not None:
        series.append(np.asarray(band, float)[:, 1])
    if actual is not None:
        series.append(np.asarray(actual, float))
    if reference is not None:
        series.append(np.asarray(reference, float))
    top = float(np.nanmax(np.concatenate(series))) if series else 1.0
    ticks = _ticks(top if math.isfinite(top) and top > 0 else 1.0)
    left, right, upper, lower = 48, 10, 10, 34
    sx = (width - left - right) / max(h_steps - 1, 1)
    sy = (height - upper - lower) / ticks[-1]

    def xy(i, v):
        return f"{left + i * sx:.1f},{height - lower - v * sy:.1f}"

    def line(values, cls):
        pts = []
        for i, v in enumerate(values):
            if v is None or not math.isfinite(v):
                continue
            pts.append(xy(i, v))
        return f'<polyline class="{cls}" points="{" ".join(pts)}"/>' if pts else ""

    out = [f'<svg class="chart forecast" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title or "forecast")}</title>']
    for t in ticks:
        y = height - lower - t * sy
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{PALETTE["grid"]}"/>'
                   f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_num(t)}</text>')
    for i in range(0, h_steps, max(1, math.ceil(h_steps / 6))):  # whole periods: ticks at integers only
        out.append(f'<text x="{left + i * sx:.1f}" y="{height - lower + 14}" text-anchor="middle" class="tick">{i + 1}</text>')
    out.append(f'<text x="{(left + width - right) / 2:.0f}" y="{height - 3}" text-anchor="middle" class="axis-label">'
               f'{period} since release</text>'
               f'<text x="11" y="{(upper + height - lower) / 2:.0f}" text-anchor="middle" class="axis-label" '
               f'transform="rotate(-90 11 {(upper + height - lower) / 2:.0f})">units per {period}</text>')
    if band is not None:
        b = np.asarray(band, float)
        pts = [xy(i, b[i, 1]) for i in range(h_steps)] + [xy(i, b[i, 0]) for i in reversed(range(h_steps))]
        out.append(f'<polygon class="band" points="{" ".join(pts)}" fill="{PALETTE["band"]}" opacity="0.35"/>')
    if reference is not None:
        out.append(line(reference, "reference"))
    if actual is not None:
        out.append(line(actual, "actual"))
        out += [f'<circle cx="{xy(i, v).split(",")[0]}" cy="{xy(i, v).split(",")[1]}" r="2.2" fill="{PALETTE["actual"]}"/>'
                for i, v in enumerate(actual) if v is not None and math.isfinite(v)]
    out.append(line(point, "model"))
    out.append("</svg>")
    return "".join(out)


def attention_grid(regions: np.ndarray, size: int) -> str:
    """The share of attention each region of the backbone's grid receives, as translucent cells over an image
    of `size` px (the image underneath is framed exactly as the backbone saw it)."""
    r = np.asarray(regions, float)
    gh, gw = r.shape
    peak = float(r.max()) or 1.0
    cw, ch = size / gw, size / gh
    cells = []
    for i in range(gh):
        for j in range(gw):
            a = 0.75 * r[i, j] / peak
            cells.append(f'<rect x="{j * cw:.1f}" y="{i * ch:.1f}" width="{cw:.1f}" height="{ch:.1f}" '
                         f'fill="#e8590c" fill-opacity="{a:.3f}"><title>region ({i}, {j}): {100 * r[i, j]:.1f}%</title></rect>')
    return (f'<svg class="overlay" viewBox="0 0 {size} {size}" width="{size}" height="{size}" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(cells)}</svg>')
