"""Shared helpers of the baselines: masked curve averages (a missing sale figure is not a zero), columns."""

from __future__ import annotations

import numpy as np


def masked_mean_curve(y: np.ndarray, mask: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    """Per-step mean of the observed values of `y` (N, H); steps nobody observed take `fallback` (or 0)."""
    n = mask.sum(axis=0)
    total = np.where(mask, y, 0.0).sum(axis=0)
    out = np.divide(total, n, out=np.zeros(y.shape[1], dtype=np.float64), where=n > 0)
    if fallback is not None:
        out = np.where(n > 0, out, fallback)
    return out.astype(np.float32)


def weighted_curves(y: np.ndarray, mask: np.ndarray, w: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Per query row, the weighted mean of the training curves `y` (N, H) with weights `w` (Q, N), per step
    over the weighted products that observed that step; a step none of them observed takes `fallback`."""
    m = mask.astype(np.float64)
    num = w @ (np.where(mask, y, 0.0) * m)
    den = w @ m
    out = np.divide(num, den, out=np.broadcast_to(fallback, num.shape).astype(np.float64).copy(), where=den > 0)
    return out.astype(np.float32)


def resolve_columns(inp, columns) -> list[int]:
    """Indices into `inp.attributes` of the attribute columns a baseline matches on.

    Default: the attributes the dataset links to exogenous series (dataset.toml `exog_link`; VISUELLE:
    category, color, fabric) — the ones a retailer thinks describe demand — else every attribute column.
    """
    from sf.errors import SfError

    if columns is None:
        columns = [n for n in inp.exog_names if n in inp.attribute_names] or list(inp.attribute_names)
    missing = [c for c in columns if c not in inp.attribute_names]
    if missing:
        raise SfError(f"attribute column(s) {', '.join(missing)} not in the products table "
                      f"(attributes: {', '.join(inp.attribute_names) or 'none'})")
    return [inp.attribute_names.index(c) for c in columns]
