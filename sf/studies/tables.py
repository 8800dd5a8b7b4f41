"""What the studies report: per-row summaries over seeds, the CSV frame, the rich table and the charts."""

from __future__ import annotations

import numpy as np
import polars as pl
from rich.table import Table

from sf.data.atomic import atomic_write_text
from sf.forecast.metrics import POINT_METRICS, compute_metrics, format_metric, metric_label, seed_summary
from sf.forecast.splits import EVAL_SPLITS


def summarise(results: list[dict], rows: list[str], data: str | None = None, shared: dict | None = None) -> list[dict]:
    """Per row (in the given order): per split, mean and std over seeds of every metric, plus the per-seed values,
    and with `shared` (data label -> engine.Prepared) the metrics of the seeds' mean forecast ("ensemble":
    what `sf train` + `sf predict` deliver) when the results carry their forecasts."""
    out = []
    for row in rows:
        mine = [r for r in results if r["row"] == row and (data is None or r["data"] == data)]
        if not mine:
            continue
        mine.sort(key=lambda r: r["seed"])
        entry = {"row": row, "data": mine[0]["data"], "model": mine[0]["model"], "seeds": [r["seed"] for r in mine],
                 "split_ids": sorted({r["split_id"] for r in mine}),
                 "seconds": float(np.mean([r["seconds"] for r in mine])),
                 "best_epoch": [r["best_epoch"] for r in mine], "epochs_run": [r["epochs_run"] for r in mine]}
        for name in EVAL_SPLITS:
            scores = [r[name] for r in mine if name in r]
            if scores:
                entry[name] = seed_summary(scores, **_ensemble(mine, name, shared))
        out.append(entry)
    return out


def _ensemble(mine: list[dict], split: str, shared: dict | None) -> dict:
    """{"ensemble": metrics of the mean forecast over `mine`'s seeds on `split`}, or {} without forecasts."""
    if shared is None or not all(split in r.get("forecasts", {}) for r in mine):
        return {}
    prepared = shared[mine[0]["data"]]
    part = prepared.parts[split]
    mean = np.mean([r["forecasts"][split] for r in mine], axis=0)
    q = tuple(mine[0].get("quantiles") or ())
    return {"ensemble": compute_metrics(part.y, mean, part.y_mask, prepared.hit_threshold, q or None)}


def report_split(summary: list[dict]) -> str:
    """The split the tables report: test when there is one, else validation."""
    return "test" if any("test" in s for s in summary) else "val"


def table_frame(summary: list[dict], extra: dict[str, list] | None = None) -> pl.DataFrame:
    """One line per (row, split): mean and std of every point metric (CSV form)."""
    lines = []
    for i, s in enumerate(summary):
        for name in EVAL_SPLITS:
            if name not in s:
                continue
            line = {"row": s["row"], "data": s["data"], "model": s["model"], "split": name, "seeds": len(s["seeds"])}
            line.update({k: v[i] for k, v in (extra or {}).items()})
            for m in POINT_METRICS:
                line[f"{m}_mean"] = s[name]["mean"].get(m)
                line[f"{m}_std"] = s[name]["std"].get(m)
            line["WAPE_ensemble"] = s[name].get("ensemble", {}).get("WAPE")
            line["seconds_per_run"] = s["seconds"]
            lines.append(line)
    return pl.DataFrame(lines, infer_schema_length=None)


def write_csv(df: pl.DataFrame, path) -> None:
    atomic_write_text(path, df.write_csv())


def shows_ensemble(summary: list[dict]) -> bool:
    """Whether a table shows the seed-ensemble column: only when some row has several seeds (with one, a row's
    ensemble is its own score)."""
    return any(len(s.get("seeds") or ()) > 1 for s in summary)


def study_table(title: str, split: str, lead: list[tuple[str, dict]], ensemble: bool = True) -> Table:
    """The ablation's and the comparison's table: `lead` columns, every metric on `split`, the seed ensemble's
    WAPE (with `ensemble`), then validation WAPE (where the table reports test) and seconds per run. Rows follow
    `cell()`'s formatting."""
    table = Table(title=title)
    for name, options in lead:
        table.add_column(name, **options)
    for m in POINT_METRICS:
        table.add_column(metric_label(m), justify="right")
    if ensemble:
        table.add_column("WAPE of the seed ensemble", justify="right")
    if split != "val":
        table.add_column("val WAPE", justify="right", style="dim")
    table.add_column("s/run", justify="right", style="dim")
    return table


def study_cells(summary_row: dict, split: str, ensemble: bool) -> list[str]:
    """A row's cells under `study_table`'s metric columns: every metric on `split`, the seed ensemble's WAPE
    (with `ensemble`), then validation WAPE where the table reports test."""
    cells = [cell(summary_row, split, m) for m in POINT_METRICS]
    if ensemble:
        cells.append(ensemble_cell(summary_row, split))
    if split != "val":
        cells.append(cell(summary_row, "val", "WAPE"))
    return cells


def ensemble_cell(summary_row: dict, split: str) -> str:
    """The WAPE of the row's mean forecast over its seeds on `split`; '–' where it has none."""
    v = summary_row.get(split, {}).get("ensemble", {}).get("WAPE")
    return "–" if v is None else format_metric("WAPE", v, None)


def cell(summary_row: dict, split: str, metric: str) -> str:
    """A row's mean on `split`, ± the std over seeds when there are several; '–' where it has none."""
    part = summary_row.get(split)
    if not part:
        return "–"
    std = part["std"].get(metric) if len(summary_row["seeds"]) > 1 else None
    return format_metric(metric, part["mean"].get(metric), std)


# ---------------------------------------------------------------- plots


def bar_chart(summary: list[dict], split: str, path, title: str, metrics: tuple[str, ...] = ("WAPE", "MAE")):
    """Horizontal bars of each row's mean with ± std error bars, one panel per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sf.forecast.plots import save

    rows = [s for s in summary if split in s]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 + 4 * len(metrics), 0.4 * len(rows) + 1.6), squeeze=False,
                             sharey=True, layout="constrained")
    y = np.arange(len(rows))
    for ax, m in zip(axes[0], metrics):
        mean = np.array([s[split]["mean"].get(m, np.nan) for s in rows], dtype=float)
        std = np.array([s[split]["std"].get(m, 0.0) for s in rows], dtype=float)
        ax.barh(y, mean, xerr=std, color=[f"C{i % 10}" for i in range(len(rows))], alpha=0.8, capsize=3)
        ax.set_yticks(y, [s["row"] for s in rows], fontsize=8)
        ax.set_xlabel(f"{m} ({split}; mean ± std over seeds)" + (" — lower is better" if m in ("WAPE", "MAE") else ""))
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].invert_yaxis()  # shared: first row on top in both panels
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def step_chart(panels: dict[str, list[dict]], split: str, path, title: str):
    """Pooled WAPE per horizon step, one line per row, one panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sf.forecast.plots import save

    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False, layout="constrained")
    for ax, (label, summary) in zip(axes[0], panels.items()):
        for i, s in enumerate(x for x in summary if split in x):
            steps = np.asarray(s[split]["mean"].get("WAPE_per_step", []), dtype=float)
            std = np.asarray(s[split]["std"].get("WAPE_per_step", np.zeros_like(steps)), dtype=float)
            if steps.size == 0:
                continue
            t = np.arange(1, steps.size + 1)
            ax.plot(t, steps, marker="o", ms=3, color=f"C{i % 10}", label=s["row"])
            if len(s["seeds"]) > 1:
                ax.fill_between(t, steps - std, steps + std, color=f"C{i % 10}", alpha=0.12)
        ax.set_xlabel("horizon step")
        ax.set_ylabel(f"pooled WAPE, {split} (%)")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)
