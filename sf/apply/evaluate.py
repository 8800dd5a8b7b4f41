"""`sf evaluate`: score a trained model on another dataset folder with sales (e.g. next season's products).

Every metric of `sf train` (MAE, RMSE, R², AUC, Accuracy, pooled WAPE overall and per step, and pinball
loss + interval coverage for quantile models), per seed with mean ± std, for the seed ensemble, and for
the reference every model must beat: the mean sales curve of the model's own TRAINING products. The
"hit" threshold is also the training products' (median total), so the scores mean what they meant in
`sf train`. Both come from the run folder (metrics.json) or, for runs written before it kept them, are
recomputed from the training data and the run's split.parquet.

With `--baselines knn_image,knn_both,...` registered baselines (sf/forecast/baselines) are fitted on the
products the model's saved seeds were fitted on (its training data and store, its split.parquet: train, plus
validation for a model refit on both) and scored on the same products, cells and metrics beside it: the comparison `sf compare` makes on its test split, made on the
products of another folder.

With `--observed K` the first K weeks are given to the model as inputs and only the later steps are
scored (short-observation forecasting); baselines get no weeks and are scored on the same later steps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl
from rich.table import Table

from sf.apply.new_products import (Extract, load_new_dataset, resolve_features, run_folder, training_data,
                                   training_inputs)
from sf.apply.predict import forecast, new_product_totals, write_table
from sf.apply.totals import coverage, order_costs, order_rule
from sf.data.atomic import atomic_write_text
from sf.data.contract import load_dataset
from sf import jsonsafe
from sf.errors import SfError
from sf.outputs import writable_dir
from sf.forecast import plots
from sf.forecast.baselines.common import masked_mean_curve
from sf.forecast.checkpoints import LoadedRun, load_run
from sf.forecast.inputs import Inputs, build_inputs
from sf.forecast.metrics import (METRIC_FORMATS, compute_metrics, format_metric, hit_threshold, metric_label,
                                 point_forecast, seed_summary)
from sf.forecast.run_folder import SPLIT_FILE, prediction_frame, read_split
from sf.forecast.run_guard import check_result_file
from sf.plain import plain


@dataclass(frozen=True)
class EvaluateConfig:
    model: Path  # run folder or checkpoint
    data: Path  # dataset folder with the products' sales
    out: Path | None = None  # default <run>/eval_<dataset name>/
    store: Path | None = None  # feature store for the products; default <run>/features_new.h5
    split: str | None = None  # score only products whose `split` column has this value
    observed: int = 0  # weeks of sales given as inputs; only later steps are scored
    device: str = "cpu"
    allow_stale_features: bool = False  # use features whose image/text changed since extraction
    force: bool = False  # replace an evaluation of another model or data in `out`
    baselines: tuple[str, ...] = ()  # registered baselines fitted on the model's training products, scored beside
    service_level: float | None = None  # the order rule scored (sf.apply.totals.order_rule): default 0.8
    cost_over: float | None = None
    cost_under: float | None = None


@dataclass
class TrainingReference:
    mean_curve: np.ndarray  # (H,) units per step over the training products
    hit_threshold: float  # median total horizon sales of the training products
    source: str  # where they came from


@dataclass
class EvaluateResult:
    out: Path
    metrics: dict
    inputs: Inputs
    yhat: np.ndarray  # seed ensemble


def training_reference(run: LoadedRun) -> TrainingReference:
    """The training products' mean curve and hit threshold, as `sf train` computed them: from metrics.json,
    else from the run's split.parquet and its training data (never from a split re-derived here)."""
    folder = run_folder(run)
    saved = {}
    if (folder / "metrics.json").is_file():
        saved = json.loads((folder / "metrics.json").read_text())
    curve = saved.get("train_mean_curve")
    if curve is not None and "hit_threshold" in saved:
        return TrainingReference(np.asarray(curve, np.float64), float(saved["hit_threshold"]), f"{folder / 'metrics.json'}")
    data = training_data(run)
    if data is None:
        raise SfError(f"{folder}: the run keeps no training mean curve and its training data "
                      f"({run.config.data}) is not at hand; the baseline needs one of them")
    train_ids = read_split(folder)["train"]
    _, y, mask = load_dataset(data).sales_matrix(train_ids, run.horizon)
    return TrainingReference(masked_mean_curve(y, mask).astype(np.float64), hit_threshold(y, mask),
                             f"recomputed from {data} and {folder / SPLIT_FILE} ({len(train_ids)} training products)")


def evaluate_run(cfg: EvaluateConfig, extract: Extract | None = None, console=None,
                 run: LoadedRun | None = None) -> EvaluateResult:
    """The whole `sf evaluate`: features, forecasts per seed, every metric beside the training mean curve."""
    rule = order_rule(cfg.service_level, cfg.cost_over, cfg.cost_under)
    run = run or load_run(cfg.model, cfg.device)
    if cfg.observed < 0 or cfg.observed >= run.horizon:
        raise SfError(f"--observed must be between 0 and {run.horizon - 1}, got {cfg.observed}")
    if cfg.observed > run.config.observe_max:
        raise SfError(f"--observed {cfg.observed}: the model was trained with at most {run.config.observe_max} "
                      f"observed week(s) (sf train --observe-max)")
    ds, notes = load_new_dataset(cfg.data, run, require_sales=True)
    if cfg.split is not None:
        if "split" not in ds.products.columns:
            raise SfError(f"--split {cfg.split}: {cfg.data} has no split column")
        ds.products = ds.products.filter(pl.col("split") == cfg.split)
    with_sales = set(ds.sales["product_id"].unique().to_list())
    ds.products = ds.products.filter(pl.col("product_id").is_in(list(with_sales)))
    if ds.products.height == 0:
        raise SfError(f"{cfg.data}: no products with sales" + (f" in split {cfg.split!r}" if cfg.split else ""))
    ref = training_reference(run)
    feats = resolve_features(run, ds, cfg.store, extract, console)
    inp = build_inputs(ds, feats, horizon=run.horizon, attribute_vocab=run.attribute_vocab,
                       check_content=not cfg.allow_stale_features)
    k = cfg.observed
    scored = inp.y_mask.copy()
    scored[:, :k] = False
    given = np.full(len(inp), k)
    q = tuple(run.quantiles)
    per_seed = [forecast(_one(run, m), inp, given) for m in run.models]
    ensemble = np.mean(per_seed, axis=0)
    scores = [compute_metrics(inp.y, p, scored, ref.hit_threshold, q or None) for p in per_seed]
    baselines = _baselines(cfg, run, inp, notes)
    baseline = np.tile(ref.mean_curve, (len(inp), 1))
    metrics = {
        "model": str(run_folder(run)), "data": str(cfg.data), "store": str(feats.path), "config": plain(cfg),
        "seeds": [m.seed for m in run.models], "quantiles": list(q), "horizon": run.horizon,
        "observed_weeks_given": k, "products": len(inp),
        "no_image_share": float(1 - inp.has_image.mean()), "no_text_share": float(1 - inp.has_text.mean()),
        "hit_threshold": ref.hit_threshold, "reference": ref.source,
        **seed_summary(scores, ensemble=compute_metrics(inp.y, ensemble, scored, ref.hit_threshold, q or None),
                       mean_curve=compute_metrics(inp.y, baseline, scored, ref.hit_threshold)),
        "baselines": {name: compute_metrics(inp.y, p, scored, ref.hit_threshold) for name, p in baselines.items()},
        "totals": total_scores(run, inp, given, ensemble, scored, ref, rule),
        "notes": notes,
    }
    out = Path(cfg.out) if cfg.out is not None else run_folder(run) / f"eval_{ds.meta.name}"
    writable_dir(out)
    check_result_file(out, out / "metrics.json", {"model": metrics["model"], "data": metrics["data"]}, cfg.force,
                      "evaluation")
    _write(out, metrics, inp, ensemble, per_seed, run, ref, q)
    return EvaluateResult(out=out, metrics=metrics, inputs=inp, yhat=ensemble)


def total_scores(run: LoadedRun, inp: Inputs, given: np.ndarray, ensemble: np.ndarray, scored: np.ndarray,
                 ref: TrainingReference, rule) -> dict:
    """The total's interval coverage and what each order policy would have cost on these products' real sales:
    sf's order (the rule's quantile of the total), its point forecast's total, the training mean curve's total."""
    t = new_product_totals(run, inp, given, ensemble, rule, scored)
    actual = np.where(scored, inp.y, 0).sum(1)
    mean_total = np.where(scored, ref.mean_curve[None, :], 0).sum(1)
    orders = {"sf order": np.ceil(t.order), "point forecast": t.point, "mean curve": mean_total}
    return {"coverage": coverage(actual, t), "method": t.method, "order_rule": rule.text,
            "cost_per_unit": dict(zip(("over", "short"), rule.costs())), "orders": order_costs(actual, orders, rule)}


def _baselines(cfg: EvaluateConfig, run: LoadedRun, inp: Inputs, notes: list[str]) -> dict[str, np.ndarray]:
    """name -> (N, H) forecasts of each of `cfg.baselines`, fitted on the model's training products only."""
    if not cfg.baselines:
        return {}
    from sf.forecast.baselines import BASELINES, create_baseline

    unknown = [b for b in cfg.baselines if b not in BASELINES]
    if unknown:
        raise SfError(f"--baselines: {', '.join(unknown)} not a registered baseline (choose from {', '.join(BASELINES)})")
    missing: list[str] = []
    _, _, every = training_inputs(run, missing, check_content=not cfg.allow_stale_features)
    if every is None:
        raise SfError(f"--baselines are fitted on the model's training products, but its {missing[0]}")
    index = {p: i for i, p in enumerate(every.product_ids)}
    # The products the saved models were fitted on: train + validation when they were refit on both.
    split = read_split(run_folder(run))
    refit = any(getattr(m, "selection", None) is not None for m in run.models)
    train_ids = split["train"] + (split["val"] if refit else [])
    absent = [p for p in train_ids if p not in index]
    if absent:
        raise SfError(f"--baselines: {len(absent)} training product(s) of the run are not in {run.config.data} or "
                      f"{run.config.features} (e.g. {absent[0]!r})")
    train = every.take(np.asarray([index[p] for p in train_ids], dtype=np.int64))
    notes.append(f"baselines {', '.join(cfg.baselines)} fitted on the model's {len(train)} training products"
                 + (" (train + validation, as the refit model)" if refit else ""))
    return {name: create_baseline(name).fit(train).predict(inp) for name in cfg.baselines}


def _one(run: LoadedRun, model) -> LoadedRun:
    """A view of `run` with a single seed's model, so per-seed forecasts share the grouping logic."""
    return replace(run, models=[model])


def _write(out: Path, metrics: dict, inp: Inputs, ensemble: np.ndarray, per_seed: list, run: LoadedRun,
           ref: TrainingReference, q: tuple) -> None:
    text, undefined = jsonsafe.dumps(metrics, default=float)
    if undefined:
        metrics["notes"].append(jsonsafe.undefined_note(undefined))
        text, _ = jsonsafe.dumps(metrics, default=float)
    atomic_write_text(out / "metrics.json", text)
    # Same columns as `sf train`'s predictions.parquet; split "evaluate", seed -1 = the seed ensemble.
    frames = [prediction_frame(inp, "evaluate", seed, p, q) for seed, p in [(-1, ensemble), *zip(metrics["seeds"], per_seed)]]
    write_table(pl.concat(frames), out / "predictions.parquet")
    point = point_forecast(ensemble, q)
    plots.forecast_grid(inp.product_ids, inp.y, inp.y_mask, point, ref.mean_curve, out / "forecasts.png",
                        title=f"{Path(metrics['data']).name}: forecast (mean of {len(per_seed)} seeds) vs actual",
                        band=ensemble if ensemble.ndim == 3 else None)
    totals = (np.where(inp.y_mask, inp.y, 0).sum(1), np.where(inp.y_mask, point, 0).sum(1))
    plots.totals_scatter({Path(metrics["data"]).name: totals}, out / "totals.png")


def evaluate_table(metrics: dict) -> Table:
    """Metric rows; the model (mean ± std over seeds), its seed ensemble, the training mean curve and any baselines."""
    n = len(metrics["seeds"])
    baselines = metrics.get("baselines", {})
    table = Table(title=f"{Path(metrics['model']).name} on {Path(metrics['data']).name}: {metrics['products']} "
                        f"products, {n} seed(s), units")
    for c, style in (("metric", None), ("model", None), ("ensemble", None), ("mean curve (train)", "dim"),
                     *((b, "dim") for b in baselines)):
        table.add_column(c, justify="left" if c == "metric" else "right", style=style)
    for key in METRIC_FORMATS:
        if key not in metrics["mean"]:
            continue
        table.add_row(metric_label(key), format_metric(key, metrics["mean"][key], metrics["std"][key]),
                      format_metric(key, metrics["ensemble"].get(key)), format_metric(key, metrics["mean_curve"].get(key)),
                      *(format_metric(key, b.get(key)) for b in baselines.values()))
    steps = metrics["ensemble"]["WAPE_per_step"]
    table.caption = ("WAPE per step (ensemble): " + " ".join(format_metric("WAPE", w, fmt="{:.0f}") for w in steps)
                     + f"\nhit = total > {metrics['hit_threshold']:.1f} units (training median); "
                     f"{100 * metrics['no_image_share']:.0f}% without image")
    return table


def orders_table(metrics: dict) -> Table:
    """What the orders would have cost on these products' real sales, and the total interval's coverage."""
    t = metrics["totals"]
    c = t["coverage"]
    table = Table(title=f"orders on {c['products']} products with known sales, units (cost per unit over "
                        f"{t['cost_per_unit']['over']:.3g}, short {t['cost_per_unit']['short']:.3g})")
    for col in ("order policy", "ordered", "overstocked", "short", "cost"):
        table.add_column(col, justify="left" if col == "order policy" else "right")
    for name, o in t["orders"].items():
        table.add_row(name, f"{o['ordered']:,.0f}", f"{o['overstock']:,.0f}", f"{o['short']:,.0f}", f"{o['cost']:,.1f}")
    table.caption = (f"{t['order_rule']}\ntotal's 80% interval covers {100 * c['covered']:.0f}% of actual totals "
                     f"(± {100 * c['se']:.0f} sampling s.e.; {100 * c['below']:.0f}% below, {100 * c['above']:.0f}% above)")
    return table
