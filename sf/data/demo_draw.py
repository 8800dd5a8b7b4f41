"""Product pictures for the demo catalogue: a garment/object silhouette in one colour and a pattern, on white.

Shapes are polygons in unit coordinates (x right, y down). Drawing happens at twice the requested
size and is downsampled, so edges are anti-aliased the way real product photos are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

Point = tuple[float, float]

SHAPES: dict[str, list[Point]] = {
    "t-shirt": [(0.30, 0.15), (0.42, 0.12), (0.50, 0.18), (0.58, 0.12), (0.70, 0.15), (0.90, 0.33), (0.80, 0.43),
                (0.72, 0.37), (0.72, 0.88), (0.28, 0.88), (0.28, 0.37), (0.20, 0.43), (0.10, 0.33)],
    "dress": [(0.40, 0.08), (0.46, 0.13), (0.54, 0.13), (0.60, 0.08), (0.64, 0.18), (0.59, 0.40), (0.82, 0.92),
              (0.18, 0.92), (0.41, 0.40), (0.36, 0.18)],
    "trousers": [(0.30, 0.08), (0.70, 0.08), (0.76, 0.92), (0.56, 0.92), (0.50, 0.36), (0.44, 0.92), (0.24, 0.92)],
    "bag": [(0.20, 0.40), (0.80, 0.40), (0.84, 0.86), (0.16, 0.86)],
    "shoe": [(0.10, 0.46), (0.30, 0.42), (0.46, 0.55), (0.70, 0.60), (0.88, 0.67), (0.91, 0.78), (0.10, 0.78)],
}
PATTERNS = ("solid", "stripes", "dots", "checks")
BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class Look:
    category: str
    rgb: tuple[int, int, int]  # the main colour as drawn
    pattern: str
    secondary: tuple[int, int, int]  # pattern colour
    period: float  # pattern repeat, as a fraction of the image side
    scale: float  # silhouette size jitter
    shift: tuple[float, float]  # silhouette position jitter
    vertical: bool  # stripe direction


def _place(points: list[Point], look: Look, side: int) -> list[tuple[float, float]]:
    dx, dy = look.shift
    return [((0.5 + look.scale * (x - 0.5) + dx) * side, (0.5 + look.scale * (y - 0.5) + dy) * side) for x, y in points]


def _mask(look: Look, side: int) -> tuple[Image.Image, list[tuple[float, float]]]:
    mask = Image.new("L", (side, side), 0)
    d = ImageDraw.Draw(mask)
    poly = _place(SHAPES[look.category], look, side)
    d.polygon(poly, fill=255)
    if look.category == "bag":  # a handle over the body
        (x0, y0), (x1, y1) = _place([(0.34, 0.18), (0.66, 0.62)], look, side)
        d.arc([x0, y0, x1, y1], 180, 360, fill=255, width=max(2, side // 28))
    return mask, poly


def _pattern_layer(look: Look, side: int) -> Image.Image:
    layer = Image.new("RGB", (side, side), look.rgb)
    if look.pattern == "solid":
        return layer
    d = ImageDraw.Draw(layer)
    p = max(4.0, look.period * side)
    n = int(side / p) + 2
    if look.pattern == "stripes":
        for k in range(n):
            a, b = k * p, k * p + p / 2
            d.rectangle([a, 0, b, side] if look.vertical else [0, a, side, b], fill=look.secondary)
    elif look.pattern == "dots":
        r = p * 0.22
        for i in range(n):
            for j in range(n):
                cx, cy = (j + 0.5 * (i % 2)) * p, i * p
                d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=look.secondary)
    elif look.pattern == "checks":
        for i in range(n):
            for j in range(i % 2, n, 2):
                d.rectangle([j * p, i * p, (j + 1) * p, (i + 1) * p], fill=look.secondary)
    else:
        raise ValueError(f"unknown pattern {look.pattern!r}")
    return layer


def draw(look: Look, size: int) -> Image.Image:
    """An RGB picture `size` x `size` of the product described by `look`."""
    side = 2 * size
    mask, poly = _mask(look, side)
    img = Image.new("RGB", (side, side), BACKGROUND)
    img.paste(_pattern_layer(look, side), (0, 0), mask)
    d = ImageDraw.Draw(img)
    edge = tuple(int(c * 0.6) for c in look.rgb)
    d.line([*poly, poly[0]], fill=edge, width=max(1, side // 96))
    if look.category == "shoe":  # a dark sole
        (x0, y0), (x1, y1) = _place([(0.10, 0.76), (0.91, 0.81)], look, side)
        d.rectangle([x0, y0, x1, y1], fill=(40, 40, 40))
    return img.resize((size, size), Image.Resampling.LANCZOS)


def hsv(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """(hue, saturation, value) in [0, 1] of one colour, as PIL's HSV mode computes it."""
    h, s, v = Image.new("RGB", (1, 1), rgb).convert("HSV").getpixel((0, 0))
    return h / 255.0, s / 255.0, v / 255.0


def shade(base: tuple[int, int, int], vividness: float, lightness: float) -> tuple[int, int, int]:
    """`base` pulled towards its own grey by (1 - vividness), then lightened (+) or darkened (-)."""
    rgb = np.asarray(base, dtype=np.float64)
    grey = rgb @ np.array([0.299, 0.587, 0.114])
    mixed = grey + vividness * (rgb - grey)
    mixed = mixed + lightness * (255.0 - mixed) if lightness >= 0 else mixed * (1.0 + lightness)
    return tuple(int(v) for v in np.clip(np.round(mixed), 0, 255))
