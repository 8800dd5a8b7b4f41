"""Terminal summaries of a run's metrics (rich tables)."""

from __future__ import annotations

from rich.table import Table

from sf.forecast.config import inputs_label

ROWS = (("MAE", "{:.2f}"), ("RMSE", "{:.2f}"), ("R2", "{:.3f}"), ("AUC", "{:.3f}"), ("Accuracy", "{:.3f}"),
        ("WAPE", "{:.1f}"), ("pinball", "{:.2f}"), ("coverage", "{:.3f}"))


def _cell(fmt: str, mean, std=None) -> str:
    if mean is None:
        return "–"
    text = fmt.format(mean)
    return text if std is None else f"{text} ± {fmt.format(std)}"


def metrics_table(metrics: dict) -> Table:
    """One row per metric; per split, the model (mean ± std over seeds) beside the mean-curve baseline."""
    splits = [s for s in ("val", "test") if s in metrics]
    n = len(metrics.get("seeds", []))
    table = Table(title=f"{metrics.get('name', 'run')} — {metrics['split']['kind']} split, {n} seed(s), units, "
                        f"{inputs_label(metrics.get('exog_future', False))}")
    table.add_column("metric")
    for s in splits:
        table.add_column(f"{s}: {metrics.get('model', 'model')}", justify="right")
        table.add_column(f"{s}: mean curve", justify="right", style="dim")
    for key, fmt in ROWS:
        if not any(key in metrics[s]["mean"] for s in splits):
            continue
        cells = []
        for s in splits:
            m = metrics[s]
            std = m["std"].get(key) if n > 1 else None  # one seed has no spread to show
            cells += [_cell(fmt, m["mean"].get(key), std), _cell(fmt, m["mean_curve"].get(key))]
        table.add_row(key + (" (pooled)" if key == "WAPE" else ""), *cells)
    sp = metrics["split"]
    table.caption = "  ".join(
        f"{s} {sp[s]['products']} products ({100 * sp[s]['no_image_share']:.0f}% without image, "
        f"{100 * sp[s]['no_text_share']:.0f}% without text)" for s in ("train", "val", "test"))
    return table
