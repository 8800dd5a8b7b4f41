"""`sf train`'s terminal table: a run's metrics per split beside the mean-curve baseline."""

from __future__ import annotations

from rich.table import Table

from sf.forecast.config import inputs_label
from sf.forecast.metrics import METRIC_FORMATS, format_metric, metric_label

def run_table(metrics: dict) -> Table:
    """One row per metric; per split, the model (mean ± std over seeds) beside the mean-curve baseline."""
    splits = [s for s in ("val", "test") if s in metrics]
    n = len(metrics.get("seeds", []))
    table = Table(title=f"{metrics.get('name', 'run')} — {metrics['split']['kind']} split, {n} seed(s), units, "
                        f"{inputs_label(metrics.get('exog_future', False))}")
    table.add_column("metric")
    for s in splits:
        table.add_column(f"{s}: {metrics.get('model', 'model')}", justify="right")
        table.add_column(f"{s}: mean curve", justify="right", style="dim")
    for key in METRIC_FORMATS:
        if not any(key in metrics[s]["mean"] for s in splits):
            continue
        cells = []
        for s in splits:
            m = metrics[s]
            std = m["std"].get(key) if n > 1 else None  # one seed has no spread to show
            cells += [format_metric(key, m["mean"].get(key), std), format_metric(key, m["mean_curve"].get(key))]
        table.add_row(metric_label(key), *cells)
    sp = metrics["split"]
    table.caption = "  ".join(
        f"{s} {sp[s]['products']} products ({100 * sp[s]['no_image_share']:.0f}% without image, "
        f"{100 * sp[s]['no_text_share']:.0f}% without text)" for s in ("train", "val", "test"))
    chosen = choice_line(metrics.get("training", {}).get("choice") or [])
    if chosen:
        table.caption += "\n" + chosen
    return table


def choice_line(choices: list[dict | None]) -> str:
    """'chosen on validation per seed: fused_dropout 0.2, 0.2, 0.0' for the seeds' validated choices, '' without."""
    made = [c["chosen"] for c in choices if c]
    if not made:
        return ""
    return "chosen on validation per seed: " + "; ".join(
        f"{k} {', '.join(str(m[k]) for m in made)}" for k in made[0])
