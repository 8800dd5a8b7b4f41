"""`sf predict`: sales forecasts for products the model has never seen.

    new folder (products + images, sales optional) ──▶ features from the model's own extractor
        (incrementally into <run>/features_new.h5 or --store) ──▶ every seed's model, averaged ──▶
    one row per product and step: product_id, step, date, yhat [, p10, p50, p90], observed

Short-observation forecasting: where a product's first k weeks of sales are given, they are fed to
the model as inputs, up to the k it was trained to use (`sf train --observe-max K`); a model trained
without observed weeks ignores them, and says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from rich.table import Table

from sf.apply.new_products import Extract, load_new_dataset, resolve_features, run_folder
from sf.data.atomic import atomic_write, atomic_write_text
from sf.errors import SfError
from sf.forecast.checkpoints import LoadedRun, load_run, precision_note
from sf.forecast.inputs import Inputs, build_inputs
from sf.apply.totals import OrderRule, Totals, order_rule, path_totals, total_distribution, validation_ratios
from sf.forecast.fit import predict_paths
from sf.forecast.metrics import point_forecast
from sf.forecast.run_guard import check_result_file
from sf.outputs import writable_file
from sf.plain import plain

PERIOD_OFFSET = {"day": "d", "week": "w", "month": "mo"}  # polars offset units


@dataclass(frozen=True)
class PredictConfig:
    model: Path  # run folder (every seed's checkpoint) or one checkpoint file
    data: Path  # dataset folder of the new products
    out: Path | None = None  # .parquet or .csv; default <run>/forecasts_<dataset name>.parquet
    store: Path | None = None  # feature store of the new products; default <run>/features_new.h5
    observed: int | None = None  # most leading weeks of given sales to use; None: as many as the model can
    device: str = "cpu"
    allow_stale_features: bool = False  # use features whose image/text changed since extraction
    force: bool = False  # replace forecasts of another model or data at `out`
    service_level: float | None = None  # order quantity: this quantile of the total (default 0.8) ...
    cost_over: float | None = None  # ... or the newsvendor's cost_under / (cost_under + cost_over)
    cost_under: float | None = None


@dataclass
class PredictResult:
    out: Path
    store: Path
    forecasts: pl.DataFrame
    inputs: Inputs
    yhat: np.ndarray  # (N, H) or (N, H, Q) units
    quantiles: tuple[float, ...]
    observed: np.ndarray  # (N,) weeks of sales given to the model per product
    totals: Totals | None = None  # per product: total over the horizon, its interval, the order quantity
    notes: list[str] = field(default_factory=list)


def quantile_column(q: float) -> str:
    """0.1 -> 'p10', 0.025 -> 'p2.5': the names planners use."""
    return f"p{round(q * 100, 6):g}"


def leading_observed(y_mask: np.ndarray) -> np.ndarray:
    """Per product, how many steps from step 0 on are observed without a gap."""
    gaps = ~y_mask
    return np.where(gaps.any(axis=1), gaps.argmax(axis=1), y_mask.shape[1]).astype(np.int64)


def observed_weeks(run: LoadedRun, inp: Inputs, limit: int | None, notes: list[str]) -> np.ndarray:
    """Weeks of given sales to feed per product: leading observed steps, capped by the model and `limit`."""
    given = leading_observed(inp.y_mask)
    trained = int(run.config.observe_max)
    cap = trained if limit is None else min(trained, limit)
    if given.any() and cap < given.max():
        why = (f"the model was trained with up to {trained} observed week(s) (sf train --observe-max)"
               if limit is None or limit > trained else f"--observed {limit}")
        notes.append(f"{int((given > cap).sum())} product(s) have more weeks of sales than used: {why}")
    return np.minimum(given, cap)


def forecast(run: LoadedRun, inp: Inputs, observed: np.ndarray) -> np.ndarray:
    """Seed-averaged forecasts in units; products are grouped by how many weeks they reveal."""
    shape = (len(inp), inp.horizon) + ((len(run.quantiles),) if run.loss == "quantile" else ())
    out = np.zeros(shape, np.float32)
    for k in np.unique(observed):
        rows = np.flatnonzero(observed == k)
        out[rows] = run.predict(inp.take(rows), observed_steps=int(k))
    return out


def forecast_paths(run: LoadedRun, inp: Inputs, observed: np.ndarray) -> np.ndarray:
    """Every seed's every MC-dropout pass, (N, P, H[, Q]) units, grouped by weeks revealed like `forecast`."""
    parts = {int(k): np.flatnonzero(observed == k) for k in np.unique(observed)}
    out = None
    for k, rows in parts.items():
        paths = predict_paths(run, inp.take(rows), observed_steps=k)
        if out is None:
            out = np.zeros((len(inp), *paths.shape[1:]), np.float32)
        out[rows] = paths
    return out if out is not None else np.zeros((0, 1, inp.horizon), np.float32)


def new_product_totals(run: LoadedRun, inp: Inputs, observed: np.ndarray, yhat: np.ndarray, rule: OrderRule,
                       scored: np.ndarray | None = None) -> Totals:
    """Each product's total over the (scored) weeks, its interval and order quantity (sf.apply.totals)."""
    point = point_forecast(yhat, run.quantiles)
    point = (np.where(scored, point, 0) if scored is not None else point).sum(1)
    paths = path_totals(forecast_paths(run, inp, observed), run.quantiles, scored)
    return total_distribution(paths, point, validation_ratios(run_folder(run)), rule)


def totals_path(out: Path) -> Path:
    """The per-product totals and orders beside the weekly table: forecasts.parquet -> forecasts_totals.parquet."""
    return out.with_name(f"{out.stem}_totals{out.suffix}")


def forecast_frame(inp: Inputs, yhat: np.ndarray, quantiles: tuple[float, ...], observed: np.ndarray,
                   period: str) -> pl.DataFrame:
    """Long table: product_id, step, date, yhat, [p..], observed (units given as input, else null)."""
    n, h = len(inp), inp.horizon
    point = point_forecast(yhat, quantiles)
    given = np.arange(h)[None, :] < observed[:, None]
    cols = {
        "product_id": np.repeat(np.asarray(inp.product_ids, dtype=object), h),
        "step": np.tile(np.arange(h, dtype=np.int64), n),
        "release_date": np.repeat(inp.release, h),
        "yhat": point.reshape(-1).astype(np.float32),
    }
    qcols = [quantile_column(q) for q in quantiles] if yhat.ndim == 3 else []
    for j, name in enumerate(qcols):
        cols[name] = yhat[..., j].reshape(-1).astype(np.float32)
    cols["observed"] = pl.Series(np.where(given, inp.y, np.nan).reshape(-1), dtype=pl.Float32).fill_nan(None)
    df = pl.DataFrame(cols).with_columns(pl.col("release_date").cast(pl.Date))
    date = pl.col("release_date").dt.offset_by(pl.format("{}" + PERIOD_OFFSET[period], pl.col("step")))
    return df.with_columns(date.alias("date")).select("product_id", "step", "date", "yhat", *qcols, "observed")


def write_table(df: pl.DataFrame, path: Path) -> Path:
    if path.suffix.lower() not in (".parquet", ".csv"):
        raise SfError(f"--out {path}: use a .parquet or .csv file name")
    write = df.write_csv if path.suffix.lower() == ".csv" else df.write_parquet
    return atomic_write(path, write)


def predict_new(cfg: PredictConfig, extract: Extract | None = None, console=None,
                run: LoadedRun | None = None) -> PredictResult:
    """The whole `sf predict`; `extract` (wired by the CLI from sf.extract) makes missing features."""
    rule = order_rule(cfg.service_level, cfg.cost_over, cfg.cost_under)
    run = run or load_run(cfg.model, cfg.device)
    ds, notes = load_new_dataset(cfg.data, run)
    if ds.products.height == 0:
        raise SfError(f"{cfg.data}: the products table has no rows")
    out = writable_file(Path(cfg.out) if cfg.out is not None else run_folder(run) / f"forecasts_{ds.meta.name}.parquet")
    feats = resolve_features(run, ds, cfg.store, extract, console)
    # After the inputs are known good (their errors come first), before any forecast is computed or written.
    replaced = check_result_file(out, out.with_suffix(".json"), {"run": str(run_folder(run)), "data": str(cfg.data)},
                                 cfg.force, "forecasts", beside=(out.with_suffix(".png"), totals_path(out)),
                                 replace_other=True)
    notes += [replaced] if replaced else []
    if note := precision_note(run, feats.attrs, feats.path):
        notes.append(note)
    inp = build_inputs(ds, feats, horizon=run.horizon, attribute_vocab=run.attribute_vocab,
                       check_content=not cfg.allow_stale_features)
    observed = observed_weeks(run, inp, cfg.observed, notes)
    yhat = forecast(run, inp, observed)
    frame = forecast_frame(inp, yhat, run.quantiles, observed, ds.meta.period)
    notes += little_known_notes(inp, point_forecast(yhat, run.quantiles))
    totals = new_product_totals(run, inp, observed, yhat, rule)
    write_table(frame, out)
    write_table(totals.frame(inp.product_ids, inp.release), totals_path(out))
    _write_sidecar(out, cfg, run, feats.path, inp, observed, notes, totals)
    plot_forecasts(inp, yhat, run.quantiles, observed, out.with_suffix(".png"), title=f"{ds.meta.name}: forecasts")
    return PredictResult(out=out, store=feats.path, forecasts=frame, inputs=inp, yhat=yhat, quantiles=run.quantiles,
                         observed=observed, totals=totals, notes=notes)


def little_known_notes(inp: Inputs, point: np.ndarray) -> list[str]:
    """Say which forecasts rest on almost nothing, instead of printing them like any other."""
    notes = []
    blind = (inp.attributes == 0).all(axis=1) & np.isnat(inp.release)
    if blind.any():
        ids = [inp.product_ids[i] for i in np.flatnonzero(blind)[:3]]
        notes.append(f"{int(blind.sum())} product(s) have no known attribute value and no release date "
                     f"(e.g. {', '.join(ids)}): their forecast rests on image, text and the exog series alone")
    zero = (point.reshape(len(point), -1) == 0).all(axis=1)
    if zero.any():
        ids = [inp.product_ids[i] for i in np.flatnonzero(zero)[:3]]
        notes.append(f"{int(zero.sum())} product(s) are forecast exactly 0 in every step (e.g. {', '.join(ids)}); "
                     "check that their inputs are what you expect")
    return notes


def _write_sidecar(out: Path, cfg: PredictConfig, run: LoadedRun, store: Path, inp: Inputs, observed: np.ndarray,
                   notes: list[str], totals: Totals) -> None:
    """The resolved settings beside the forecasts: what made them, from which features."""
    meta = {
        "config": plain(cfg), "run": str(run_folder(run)), "model": run.models[0].model_name,
        "seeds": [m.seed for m in run.models], "loss": run.loss, "quantiles": list(run.quantiles),
        "horizon": run.horizon, "store": str(store), "store_fingerprint": run.store.get("fingerprint"),
        "products": len(inp), "without_image": int((~inp.has_image).sum()),
        "without_text": int((~inp.has_text).sum()), "observed_weeks": np.bincount(observed).tolist(),
        "totals": {"file": totals_path(out).name, "interval": "total_p10 .. total_p90 (80%)", "method": totals.method,
                   "order_rule": totals.rule.text, "critical_ratio": totals.rule.critical_ratio},
        "notes": notes,
    }
    atomic_write_text(out.with_suffix(".json"), json.dumps(meta, indent=2))


def plot_forecasts(inp: Inputs, yhat: np.ndarray, quantiles, observed: np.ndarray, path: Path, title: str,
                   n: int = 12) -> Path:
    """Forecast curves (with the quantile band) for up to `n` products, spread over forecast volume."""
    from sf.forecast import plots

    plt = plots.plt
    point = point_forecast(yhat, quantiles)
    order = np.argsort(point.sum(1))
    pick = order[np.linspace(0, len(order) - 1, min(n, len(order))).round().astype(int)]
    cols = 4
    rows = max(1, int(np.ceil(len(pick) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    steps = np.arange(inp.horizon)
    for ax in axes.flat:
        ax.set_visible(False)
    for ax, i in zip(axes.flat, pick):
        ax.set_visible(True)
        if yhat.ndim == 3:
            ax.fill_between(steps, yhat[i, :, 0], yhat[i, :, -1], color="C1", alpha=0.2, lw=0,
                            label=f"{quantile_column(quantiles[0])}–{quantile_column(quantiles[-1])}")
        ax.plot(steps, point[i], "C1-", label="forecast")
        k = int(observed[i])
        if k:
            ax.plot(steps[:k], inp.y[i, :k], "k.-", label="given sales")
        tags = [t for t, has in (("no image", inp.has_image[i]), ("no text", inp.has_text[i])) if not has]
        ax.set_title(f"{inp.product_ids[i]}" + (f" ({', '.join(tags)})" if tags else ""), fontsize=8)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return plots.save(fig, path)


def summary_table(result: PredictResult, rows: int = 10) -> Table:
    """The first products' total forecast over the horizon, its 80% interval and the order quantity."""
    inp, t = result.inputs, result.totals
    table = Table(title=f"forecasts for {len(inp)} new product(s), {inp.horizon} weeks, units")
    for c in ("product", "image", "text", "weeks given", "total forecast", "total p10 .. p90", "order"):
        table.add_column(c, justify="right" if c != "product" else "left")
    for i in range(min(rows, len(inp))):
        table.add_row(inp.product_ids[i], "yes" if inp.has_image[i] else "–", "yes" if inp.has_text[i] else "–",
                      str(int(result.observed[i])), f"{t.point[i]:,.0f}", f"{t.lo[i]:,.0f} .. {t.hi[i]:,.0f}",
                      f"{np.ceil(t.order[i]):,.0f}")
    caption = [t.rule.text, f"interval: {t.method}"]
    if len(inp) > rows:
        caption.append(f"... and {len(inp) - rows} more in {totals_path(result.out).name}")
    table.caption = "\n".join(caption)
    return table
