"""A run's PNGs: learning curves, forecasts vs actuals for validation products, predicted vs actual totals."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sf.data.atomic import atomic_write  # noqa: E402


def save(fig, path: Path) -> Path:
    """Write the figure atomically: a PNG is whole or absent."""
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)


def learning_curves(histories: dict[int, list[dict]], best_epochs: dict[int, int], path: Path) -> Path:
    """Train and validation loss per epoch, one colour per seed; a dot marks the chosen epoch."""
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for i, (seed, hist) in enumerate(histories.items()):
        c = f"C{i % 10}"
        ep = [h["epoch"] for h in hist]
        ax.plot(ep, [h["train_loss"] for h in hist], color=c, alpha=0.45, ls="--")
        ax.plot(ep, [h["val_loss"] for h in hist], color=c, label=f"seed {seed}")
        best = best_epochs[seed]
        ax.plot([best], [hist[best - 1]["val_loss"]], "o", color=c)
    ax.set(xlabel="epoch", ylabel="loss (on the training target)", title="learning curves: validation (solid), train (dashed)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    return save(fig, path)


def forecast_grid(ids: list[str], y: np.ndarray, mask: np.ndarray, yhat: np.ndarray, baseline: np.ndarray,
                  path: Path, title: str, n: int = 12, band: np.ndarray | None = None) -> Path:
    """Actual vs forecast curves for up to `n` products (evenly spread over sales volume)."""
    totals = np.where(mask, y, 0).sum(1)
    order = np.argsort(totals)
    pick = order[np.linspace(0, len(order) - 1, min(n, len(order))).round().astype(int)] if len(order) else []
    cols = 4
    rows = max(1, int(np.ceil(len(pick) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False, layout="constrained")
    steps = np.arange(y.shape[1])
    for ax in axes.flat:
        ax.set_visible(False)
    for ax, i in zip(axes.flat, pick):
        ax.set_visible(True)
        if band is not None:
            ax.fill_between(steps, band[i, :, 0], band[i, :, -1], color="C1", alpha=0.2, lw=0)
        ax.plot(steps[mask[i]], y[i][mask[i]], "k.-", label="actual")
        ax.plot(steps, yhat[i], "C1-", label="forecast")
        ax.plot(steps, baseline, color="0.6", ls=":", label="mean curve")
        ax.set_title(str(ids[i]), fontsize=8)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
    return save(fig, path)


def totals_scatter(totals: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """Predicted vs actual total horizon sales per product, one panel per split, with the diagonal."""
    fig, axes = plt.subplots(1, len(totals), figsize=(4.2 * len(totals), 4), squeeze=False, layout="constrained")
    for ax, (name, (actual, pred)) in zip(axes.flat, totals.items()):
        ax.scatter(actual, pred, s=8, alpha=0.5)
        hi = float(max(actual.max(initial=1), pred.max(initial=1)))
        ax.plot([0, hi], [0, hi], color="0.5", lw=1)
        ax.set(xlabel="actual total units", ylabel="predicted total units", title=f"{name} ({len(actual)} products)")
    return save(fig, path)
