"""The paper's metrics, in units, over the observed (product, step) cells.

    MAE, RMSE, R²        over every observed cell (R² = 1 − SSE / Σ(y − ȳ)², ȳ the mean over cells)
    WAPE                 pooled: 100 · Σ|y − ŷ| / Σ y over all cells (VISUELLE's figure; not a per-series mean)
    WAPE_per_step        the same pooled WAPE, one value per horizon step
    AUC, Accuracy        binary "hit": a product's total horizon sales > `hit_threshold` (the median total of
                         the TRAINING products); score = the predicted total. AUC is the rank statistic
                         (Mann–Whitney, ties averaged); Accuracy compares predicted total > threshold with the hit.
    pinball, coverage    with quantile forecasts: mean pinball loss over cells and quantiles (units), and the share
                         of cells inside [lowest, highest] quantile (nominal = their difference)

With quantile forecasts, the point metrics use the median (0.5, else the middle quantile).
"""

from __future__ import annotations

import warnings

import numpy as np

POINT_METRICS = ("MAE", "RMSE", "R2", "AUC", "Accuracy", "WAPE")
# How every table and report prints each metric (units to 2 decimals, ratios to 3, WAPE in % to 1), in table order.
METRIC_FORMATS = {"MAE": "{:.2f}", "RMSE": "{:.2f}", "R2": "{:.3f}", "AUC": "{:.3f}", "Accuracy": "{:.3f}",
                  "WAPE": "{:.1f}", "pinball": "{:.2f}", "coverage": "{:.3f}"}


def hit_threshold(y: np.ndarray, mask: np.ndarray) -> float:
    """The median total horizon sales of the products given (call it with the TRAINING products)."""
    return float(np.median(np.where(mask, y, 0).sum(axis=1))) if len(y) else 0.0


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the rank statistic; NaN when only one class is present."""
    labels = np.asarray(labels, bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = np.asarray(scores)[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # Average rank within each run of tied scores.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def point_index(quantiles) -> int:
    """Which quantile stands for the point forecast: the median (0.5), else the middle one."""
    q = list(quantiles)
    return q.index(0.5) if 0.5 in q else len(q) // 2


def point_forecast(yhat: np.ndarray, quantiles) -> np.ndarray:
    """(N, H) point forecasts: `yhat` itself, or its median quantile when it is (N, H, Q)."""
    return yhat[..., point_index(quantiles)] if yhat.ndim == 3 else yhat


def compute_metrics(y: np.ndarray, yhat: np.ndarray, mask: np.ndarray, hit_threshold: float,
                    quantiles: tuple[float, ...] | None = None) -> dict:
    """Every metric for forecasts `yhat` (N, H), or (N, H, Q) with `quantiles`, against `y` (N, H) units."""
    y = np.asarray(y, np.float64)
    mask = np.asarray(mask, bool)
    yq = np.asarray(yhat, np.float64)
    point = point_forecast(yq, quantiles)
    err = np.where(mask, point - y, 0.0)
    n_cells = max(int(mask.sum()), 1)
    y_mean = np.where(mask, y, 0).sum() / n_cells
    sst = (np.where(mask, y - y_mean, 0.0) ** 2).sum()
    y_sum_step = np.where(mask, y, 0).sum(axis=0)
    total, total_hat = np.where(mask, y, 0).sum(axis=1), np.where(mask, point, 0).sum(axis=1)
    hit = total > hit_threshold
    out = {
        "n_products": int(len(y)),
        "MAE": float(np.abs(err).sum() / n_cells),
        "RMSE": float(np.sqrt((err ** 2).sum() / n_cells)),
        "R2": float(1 - (err ** 2).sum() / sst) if sst > 0 else float("nan"),
        "AUC": auc(hit, total_hat),
        "Accuracy": float(((total_hat > hit_threshold) == hit).mean()) if len(y) else float("nan"),
        "WAPE": _wape(np.abs(err).sum(), y_sum_step.sum()),
        "WAPE_per_step": [_wape(a, b) for a, b in zip(np.abs(err).sum(axis=0), y_sum_step)],
    }
    if yq.ndim == 3 and quantiles:
        q = np.asarray(quantiles, np.float64)
        diff = y[..., None] - yq  # (N, H, Q)
        pinball = np.maximum(q * diff, (q - 1) * diff)
        inside = (y >= yq[..., 0]) & (y <= yq[..., -1])
        out["pinball"] = float(np.where(mask[..., None], pinball, 0).sum() / (n_cells * len(q)))
        out["coverage"] = float(inside[mask].mean()) if mask.any() else float("nan")
        out["coverage_nominal"] = float(q[-1] - q[0])
    return out


def format_metric(metric: str, value, std=None, fmt: str | None = None) -> str:
    """'12.34', or '12.34 ± 0.56' with a std; '–' for a missing or NaN value (e.g. AUC with one class)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    fmt = fmt or METRIC_FORMATS.get(metric, "{:.3g}")
    return fmt.format(value) + ("" if std is None else f" ± {fmt.format(std)}")


def metric_label(metric: str) -> str:
    """Row / column name of a metric; WAPE says it is pooled over cells (not a mean of per-product WAPEs)."""
    return metric + (" (pooled)" if metric == "WAPE" else "")


def _wape(abs_err: float, actual: float) -> float:
    return float(100.0 * abs_err / actual) if actual > 0 else float("nan")


def aggregate(runs: list[dict]) -> dict:
    """Mean and std (sample std over seeds; 0 for one seed) of each numeric metric, lists element-wise:
    {metric: {"mean": ..., "std": ...}}. NaN values (e.g. AUC with one class) are skipped."""
    out: dict = {}
    for key in runs[0] if runs else ():
        vals = [r[key] for r in runs if key in r]
        if not vals or isinstance(vals[0], (str, dict)):
            continue
        a = np.asarray(vals, dtype=np.float64)
        with warnings.catch_warnings():  # all-NaN columns: NaN is the honest answer
            warnings.simplefilter("ignore", RuntimeWarning)
            n = (~np.isnan(a)).sum(axis=0)
            mean = np.nanmean(a, axis=0)
            std = np.where(n > 1, np.nanstd(a, axis=0, ddof=1), 0.0)
        out[key] = {"mean": _plain(mean), "std": _plain(std)}
    return out


def _plain(a):
    a = np.asarray(a, dtype=np.float64)
    return a.tolist() if a.ndim else float(a)


def seed_summary(scores: list[dict], **extra: dict) -> dict:
    """The one block every result reports per split: mean and std over seeds of each metric, the per-seed
    scores, then any `extra` entries (e.g. ensemble=..., mean_curve=...)."""
    agg = aggregate(scores)
    return {"mean": {k: v["mean"] for k, v in agg.items()}, "std": {k: v["std"] for k, v in agg.items()},
            "per_seed": scores, **extra}
