"""`sf backtest` and `sf compare --backtest K`: rolling-origin evaluation by release date.

Each fold (sf.forecast.folds) is prepared once, from only what is known at its cutoff, and every (contender,
seed) of every fold is one job of the studies' pool (`engine.train_seed` / `engine.fit_baseline`), so folds
and seeds share the cores. A fold is scored on the seed-ensemble forecast (the mean of the seeds' forecasts,
what `sf predict` ships) against the forecast products' sales, which only this module holds:

    WAPE     pooled over every observed (product, step) of the horizon
    WAPE@6   the same over the first 6 steps
    MAE      units, over the same cells as WAPE
    seed WAPE  the mean of the single seeds' WAPEs (what a per-seed table reports), for comparison

then mean ± std over folds, and with several contenders a paired view against sf: per fold the WAPE
difference to sf's, the folds each model beats sf on and the folds it is the best of all rows on.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from sf.cache.reader import load_features
from sf.data.atomic import atomic_write, atomic_write_text
from sf.data.contract import load_dataset
from sf.errors import SfError
from sf.forecast import engine
from sf.forecast.checkpoints import store_fingerprint
from sf.forecast.config import TrainConfig, inputs_label
from sf.forecast.folds import Fold, fold_inputs, make_folds
from sf.forecast.inputs import Inputs
from sf.forecast.metrics import compute_metrics, format_metric, point_forecast
from sf.forecast.run_guard import check_run_folder
from sf.outputs import writable_dir
from sf.plain import plain
from sf.studies import pool
from sf.studies.compare import SF, Contender, contenders, jobs_for, skipped_note

FIRST_STEPS = 6  # WAPE@6: the first weeks, where a launch's stock is decided
METRICS = ("WAPE", f"WAPE@{FIRST_STEPS}", "MAE", "seed_WAPE")
OUTPUTS = ("config.json", "backtest.json", "forecasts.parquet", "backtest.png")


@dataclass(frozen=True)
class BacktestConfig:
    features: Path
    data: Path
    folds: int = 4
    cutoffs: str = "auto"  # auto | seasons | windows (sf.forecast.folds)
    window: int | None = None  # weeks per window (cutoffs = windows); None: equal windows over the latest half
    models: tuple[str, ...] = ()  # contenders (`sf compare --backtest`); empty: the train config's model alone
    train: TrainConfig = field(default_factory=TrainConfig)
    workers: int = 0  # 0: one process per core
    engine: str = "local"
    out: Path | None = None  # default runs/backtest_<store>_<model> (compare: runs/compare_backtest_<data>)
    force: bool = False
    allow_stale_features: bool = False

    def to_dict(self) -> dict:
        return plain(self)


@dataclass
class BacktestResult:
    out: Path
    folds: list[Fold]
    how: str  # how the cutoffs were chosen
    rows: list[str]  # contender names, in table order
    scores: dict[str, list[dict]]  # row -> per fold {metric: value}
    summary: dict[str, dict]  # row -> {"mean": {...}, "std": {...}, "rank": int}, plus "paired" against sf
    forecasts: pl.DataFrame  # long: row, fold, cutoff, product_id, step, y, yhat
    seconds: float
    workers: int
    exog_future: bool = False
    seed_forecasts: dict[tuple[str, int], list[np.ndarray]] = field(default_factory=dict)  # (row, fold) -> per seed
    notes: list[str] = field(default_factory=list)


def default_out(cfg: BacktestConfig) -> Path:
    if cfg.models:
        return Path("runs") / f"compare_backtest_{Path(cfg.data).name}"
    return Path("runs") / f"backtest_{Path(cfg.features).stem}_{cfg.train.model}"


def run_backtest(cfg: BacktestConfig, console: Console | None = None, progress: bool = True,
                 rows: list[Contender] | None = None) -> BacktestResult:
    """Every contender on every fold; `rows` overrides the registry lookup of `cfg.models`."""
    t0 = time.perf_counter()
    train_cfg = replace(cfg.train, features=Path(cfg.features), data=Path(cfg.data))
    train_cfg.validate()
    if rows is None:
        rows = contenders(cfg.models) if cfg.models else [Contender(train_cfg.model, train_cfg.model, "neural")]
    notes = skipped_note(cfg.models) if cfg.models else []
    out = writable_dir(cfg.out or default_out(cfg))
    features, dataset = load_features(cfg.features), load_dataset(cfg.data)
    store = store_fingerprint(features.attrs)
    # how it is computed (workers, engine) and --force are not what the backtest is
    config = {**{k: v for k, v in cfg.to_dict().items() if k not in ("workers", "engine", "force")}, "store": store}
    check_run_folder(out, config, store, resume=False, force=cfg.force)
    inputs, attrs = engine.load_inputs(train_cfg, features, dataset, check_content=not cfg.allow_stale_features)
    del features
    seasons = None
    if "season" in dataset.products.columns:
        seasons = dict(dataset.products.select("product_id", "season").iter_rows())
    folds, how = make_folds(inputs, cfg.folds, cfg.cutoffs, seasons, cfg.window, train_cfg.fractions)
    shared = {_label(f): engine.prepare(train_cfg, split=f.split, inputs=fold_inputs(inputs, f, train_cfg.exog_future),
                                        store_attrs=attrs, label=_label(f)) for f in folds}
    workers = pool.study_workers(cfg.workers, cfg.engine)
    jobs = [replace(j, cost=float(len(shared[j.data].parts["train"])))
            for j in jobs_for(rows, list(shared), train_cfg, workers)]
    results = pool.run_jobs(jobs, shared, workers, console, "backtest", progress, engine=cfg.engine)

    scores, long, seed_fc = _score(rows, folds, shared, inputs, results)
    summary = _summarise(rows, scores)
    result = BacktestResult(out=out, folds=folds, how=how, rows=[c.name for c in rows], scores=scores,
                            summary=summary, forecasts=long, seconds=time.perf_counter() - t0, workers=workers,
                            exog_future=train_cfg.exog_future, seed_forecasts=seed_fc, notes=notes)
    result.notes += _notes(result)
    _write(result, config)
    return result


def _label(fold: Fold) -> str:
    return f"fold {fold.index}: {fold.label}"


def _truth(inputs: Inputs, ids: list[str]) -> Inputs:
    index = {p: i for i, p in enumerate(inputs.product_ids)}
    return inputs.take(np.asarray([index[p] for p in ids], dtype=np.int64))


def fold_scores(y: np.ndarray, mask: np.ndarray, yhat: np.ndarray, seeds: list[np.ndarray]) -> dict:
    """A fold's figures for one contender: the seed ensemble `yhat` (N, H), and the single seeds' mean WAPE."""
    full = compute_metrics(y, yhat, mask, 0.0)
    k = min(FIRST_STEPS, y.shape[1])
    first = compute_metrics(y[:, :k], yhat[:, :k], mask[:, :k], 0.0)
    per_seed = [compute_metrics(y, s, mask, 0.0)["WAPE"] for s in seeds]
    return {"WAPE": full["WAPE"], f"WAPE@{FIRST_STEPS}": first["WAPE"], "MAE": full["MAE"],
            "seed_WAPE": float(np.mean(per_seed)), "n_products": full["n_products"]}


def _score(rows, folds, shared, inputs, results):
    scores: dict[str, list[dict]] = {c.name: [] for c in rows}
    frames, seed_fc = [], {}
    for fold in folds:
        label = _label(fold)
        prepared = shared[label]
        truth = _truth(inputs, prepared.parts["test"].product_ids)
        for c in rows:
            mine = sorted((r for r in results if r["row"] == c.name and r["data"] == label), key=lambda r: r["seed"])
            if {r["split_id"] for r in mine} != {prepared.split_id}:
                raise RuntimeError(f"{label}: {c.name} was not run on the fold's products")
            seeds = [point_forecast(np.asarray(r["forecasts"]["test"], np.float64), r["quantiles"]) for r in mine]
            yhat = np.mean(seeds, axis=0)  # the seed ensemble, as sf predict forecasts
            seed_fc[(c.name, fold.index)] = seeds
            scores[c.name].append({"fold": fold.index, "label": fold.label,
                                   **fold_scores(truth.y, truth.y_mask, yhat, seeds)})
            n, h = yhat.shape
            frames.append(pl.DataFrame({
                "model": [c.name] * (n * h), "fold": np.full(n * h, fold.index, np.int32),
                "cutoff": np.full(n * h, fold.cutoff, "datetime64[D]"),
                "product_id": np.repeat(np.asarray(truth.product_ids, dtype=object), h).tolist(),
                "step": np.tile(np.arange(1, h + 1, dtype=np.int32), n),
                "y": np.where(truth.y_mask, truth.y, np.nan).reshape(-1),
                "yhat": yhat.reshape(-1)}).with_columns(pl.col("y").fill_nan(None)))
    return scores, pl.concat(frames), seed_fc


def _summarise(rows: list[Contender], scores: dict[str, list[dict]]) -> dict:
    out = {}
    for c in rows:
        per = scores[c.name]
        out[c.name] = {"mean": {m: float(np.mean([s[m] for s in per])) for m in METRICS},
                       "std": {m: float(np.std([s[m] for s in per], ddof=1)) if len(per) > 1 else 0.0 for m in METRICS}}
    for rank, name in enumerate(sorted(out, key=lambda n: out[n]["mean"]["WAPE"]), start=1):
        out[name]["rank"] = rank
    ref = SF if SF in scores else None
    if ref is not None and len(rows) > 1:
        best = [min(scores, key=lambda n: scores[n][k]["WAPE"]) for k in range(len(scores[ref]))]
        for name in out:
            diff = [a["WAPE"] - b["WAPE"] for a, b in zip(scores[name], scores[ref])]
            out[name]["paired"] = {"reference": ref, "WAPE_diff": diff, "mean_diff": float(np.mean(diff)),
                                   "beats_reference": int(sum(d < 0 for d in diff)),
                                   "best_folds": int(sum(b == name for b in best)), "folds": len(diff)}
    return out


def _notes(result: BacktestResult) -> list[str]:
    """Where a contender leads sf on the mean over folds, or beats it on most folds: said, never hidden."""
    if SF not in result.summary or len(result.rows) < 2:
        return []
    mine = result.summary[SF]["mean"]["WAPE"]
    notes = []
    for name in result.rows:
        p = result.summary[name].get("paired")
        if name == SF or p is None:
            continue
        if result.summary[name]["mean"]["WAPE"] <= mine or p["beats_reference"] * 2 > p["folds"]:
            notes.append(f"{name}: mean WAPE {result.summary[name]['mean']['WAPE']:.1f} against sf's {mine:.1f}, "
                         f"beats sf on {p['beats_reference']} of {p['folds']} folds")
    return notes


def _write(result: BacktestResult, config: dict) -> None:
    out = result.out
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps(config, indent=2, sort_keys=True, default=str))
    payload = {"config": config, "cutoffs": result.how, "folds": [f.to_dict() for f in result.folds],
               "exog_future": result.exog_future, "scored_on": "the seed ensemble (mean of the seeds' forecasts)",
               "wape": "pooled over every observed (product, step) cell of the fold's forecast products",
               "rows": result.rows, "scores": result.scores, "summary": result.summary, "notes": result.notes,
               "seconds": result.seconds, "workers": result.workers}
    atomic_write_text(out / "backtest.json", json.dumps(payload, indent=2, default=str))
    atomic_write(out / "forecasts.parquet", result.forecasts.write_parquet)
    fold_chart(result, out / "backtest.png")


def fold_chart(result: BacktestResult, path: Path) -> Path:
    """Pooled WAPE of the seed ensemble per fold, one line per contender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sf.forecast.plots import save

    fig, ax = plt.subplots(figsize=(2.2 * len(result.folds) + 4, 4.5), layout="constrained")
    x = np.arange(1, len(result.folds) + 1)
    for i, name in enumerate(result.rows):
        ax.plot(x, [s["WAPE"] for s in result.scores[name]], marker="o", color=f"C{i % 10}",
                lw=2.5 if name == SF else 1.2, label=f"{name} ({result.summary[name]['mean']['WAPE']:.1f})")
    ax.set_xticks(x, [f"{f.index}: {f.label}\n({f.split['test'].__len__()} products)" for f in result.folds], fontsize=8)
    ax.set_ylabel("pooled WAPE of the seed ensemble (%) — lower is better")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title="model (mean over folds)", title_fontsize=7)
    ax.set_title(f"rolling-origin backtest: {result.how}", fontsize=8, wrap=True)
    return save(fig, path)


# ---------------------------------------------------------------- tables


def fold_table(result: BacktestResult) -> Table:
    """One line per fold (and contender, when several), then the mean ± std over folds."""
    table = Table(title=f"Backtest, seed-ensemble forecasts, pooled WAPE; {inputs_label(result.exog_future)}; "
                        f"cutoffs: {result.how}")
    several = len(result.rows) > 1
    for name, kw in [("fold", {"justify": "right"}), ("cutoff", {}), ("train / val / test", {"justify": "right"}),
                     *([("model", {})] if several else []), *[(m, {"justify": "right"}) for m in METRICS]]:
        table.add_column(name, **kw)
    for f in result.folds:
        for name in result.rows:
            s = result.scores[name][f.index - 1]
            sizes = "/".join(str(len(f.split[k])) for k in ("train", "val", "test"))
            table.add_row(f"{f.index}: {f.label}", str(f.cutoff), sizes, *([name] if several else []),
                          *[_fmt(m, s[m]) for m in METRICS], style="bold" if name == SF and several else None)
    if not several:
        s = result.summary[result.rows[0]]
        table.add_row("mean ± std", "", "", *[_fmt(m, s["mean"][m], s["std"][m]) for m in METRICS], style="bold")
    return table


def ranking_table(result: BacktestResult) -> Table:
    """Every contender ranked by mean WAPE over folds, with the paired view against sf."""
    k = len(result.folds)
    table = Table(title=f"Backtest over {k} folds, ranked by mean pooled WAPE of the seed ensemble (± std over folds)")
    for name, kw in [("rank", {"justify": "right"}), ("model", {}), *[(m, {"justify": "right"}) for m in METRICS],
                     ("Δ WAPE vs sf per fold", {"justify": "right"}), ("beats sf", {"justify": "right"}),
                     ("best fold", {"justify": "right"})]:
        table.add_column(name, **kw)
    for name in sorted(result.rows, key=lambda n: result.summary[n]["rank"]):
        s = result.summary[name]
        p = s.get("paired")
        paired = ["–", "–", "–"] if p is None else [
            " ".join(f"{d:+.1f}" for d in p["WAPE_diff"]), f"{p['beats_reference']}/{k}", f"{p['best_folds']}/{k}"]
        if name == SF:
            paired[:2] = ["(reference)", "–"]
        table.add_row(str(s["rank"]), name, *[_fmt(m, s["mean"][m], s["std"][m]) for m in METRICS], *paired,
                      style="bold" if name == SF else None)
    return table


def _fmt(metric: str, value, std=None) -> str:
    return format_metric("WAPE" if "WAPE" in metric else metric, value, std)


def check_single(data: list, features: list) -> None:
    """`sf compare --backtest` runs on one data set and its store."""
    if len(data) != 1 or len(features) != 1:
        raise SfError(f"--backtest: give exactly one --data and one --features ({len(data)} and {len(features)} given)")


def print_backtest(result: BacktestResult, console: Console) -> None:
    """What `sf backtest` and `sf compare --backtest` print: the fold table, the ranking with several models, notes."""
    console.print(fold_table(result))
    if len(result.rows) > 1:
        console.print(ranking_table(result))
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    console.print(f"written: [bold]{result.out}[/] (backtest.json, forecasts.parquet, backtest.png, config.json); "
                  f"{result.seconds:.0f} s on {result.workers} worker(s)", highlight=False)
