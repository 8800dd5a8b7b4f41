"""A training run on disk: what `sf train` writes, and what applying the model (sf/apply) reads back.

    runs/NAME/
      config.json              the resolved TrainConfig, plus the store's fingerprint fields under "store"
      split.parquet            product_id, split (train / val / test): the products each part held
      checkpoints/seed{S}.pt   one per seed (sf/forecast/checkpoints.py)
      metrics.json             per split: metrics per seed, mean and std over seeds, the seed ensemble, the
                               mean-curve baseline on the same products; split sizes, shares without image/text
      predictions.parquet      product_id, split, step, y, yhat, seed (+ yhat_q<q> columns for quantiles)
      learning_curves.png, forecasts_val.png, totals.png
      run_state.json           the seeds finished and whether the run is (sf/forecast/run_state.py)
      .sf-train.lock           held by the one `sf train` writing the folder
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from sf.data.atomic import atomic_write, atomic_write_text
from sf import jsonsafe
from sf.errors import SfError
from sf.forecast import plots as P
from sf.forecast.checkpoints import LoadedModel, check_fingerprint, load_checkpoint
from sf.forecast.config import TrainConfig
from sf.forecast.inputs import Inputs
from sf.forecast.metrics import point_forecast
from sf.forecast import run_state as RS
from sf.forecast.run_guard import check_run_folder
from sf.lockfile import held
from sf.forecast.splits import SPLITS
from sf.plain import json_default

if TYPE_CHECKING:
    from sf.forecast.engine import Prepared, SeedResult

SPLIT_FILE = "split.parquet"
OUTPUTS = ("config.json", SPLIT_FILE, "metrics.json", "predictions.parquet", "learning_curves.png",
           "forecasts_val.png", "totals.png", "run_state.json")
# Settings that may change between an interrupted run and its --resume without invalidating checkpoints.
RESUME_FREE = {"seeds", "seed", "device", "threads", "out", "name"}


def checkpoint_path(out: Path, seed: int) -> Path:
    return out / "checkpoints" / f"seed{seed}.pt"


def check_out_dir(out: Path, cfg: TrainConfig, store: dict, resume: bool, force: bool) -> None:
    """Refuse to replace a run made with other settings, data or store (unless `force`; sf.forecast.run_guard)."""
    check_run_folder(out, cfg.to_dict(), store, resume, force)


def start(out: Path, cfg: TrainConfig, prepared: "Prepared", resume: bool) -> None:
    """Clear a previous run's outputs (kept on resume), then write the config and the split first."""
    if not resume:
        for name in OUTPUTS:
            (out / name).unlink(missing_ok=True)
        for p in (out / "checkpoints").glob("seed*.pt"):
            p.unlink()
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps({**cfg.to_dict(), "store": prepared.store}, indent=2,
                                                      sort_keys=True))
    write_split(out / SPLIT_FILE, prepared.product_split)
    RS.begin(out)


def one_writer(out: Path):
    """Held for a whole `sf train`: a second one into the same folder is refused, not mixed in."""
    out.mkdir(parents=True, exist_ok=True)
    return held(out / RS.LOCK, f"{out}: another `sf train` is writing this run folder right now")


def write_split(path: Path, split: dict[str, list[str]]) -> Path:
    frame = pl.DataFrame({"product_id": [p for k in SPLITS for p in split[k]],
                          "split": [k for k in SPLITS for _ in split[k]]}, schema={"product_id": pl.Utf8, "split": pl.Utf8})
    return atomic_write(path, frame.write_parquet)


def has_split(run_dir: Path) -> bool:
    return (Path(run_dir) / SPLIT_FILE).is_file()


def read_split(run_dir: Path) -> dict[str, list[str]]:
    """The products of each part, as `sf train` split them (split.parquet in the run folder)."""
    path = Path(run_dir) / SPLIT_FILE
    if not path.is_file():
        raise SfError(f"{run_dir}: no {SPLIT_FILE} (the run predates it); retrain with `sf train` to record the split")
    frame = pl.read_parquet(path)
    return {k: frame.filter(pl.col("split") == k)["product_id"].to_list() for k in SPLITS}


def resumable(path: Path, cfg: TrainConfig, store: dict) -> LoadedModel | None:
    """The seed's checkpoint when --resume may reuse it; refused when settings that matter changed."""
    if not path.is_file():
        return None
    ck = load_checkpoint(path)
    check_fingerprint(ck, store)
    old, new = ck.config.to_dict(), cfg.to_dict()
    changed = sorted(k for k in new if k not in RESUME_FREE and old.get(k) != new[k])
    if changed:
        raise SfError(f"{path}: --resume with changed settings ({', '.join(changed)}); drop --resume to retrain")
    return ck


def drop_stale_checkpoints(out: Path, seeds: list[int]) -> None:
    for stale in (out / "checkpoints").glob("seed*.pt"):
        if int(stale.stem[4:]) not in seeds:
            stale.unlink()


def finish(out: Path, metrics: dict, prepared: "Prepared", seeds: list["SeedResult"]) -> None:
    """metrics.json and predictions.parquet (every seed's forecasts of validation and test)."""
    text, undefined = jsonsafe.dumps(metrics, default=json_default)
    if undefined:
        metrics.setdefault("notes", []).append(jsonsafe.undefined_note(undefined))
        text, _ = jsonsafe.dumps(metrics, default=json_default)
    atomic_write_text(out / "metrics.json", text)
    frames = [prediction_frame(prepared.parts[name], name, s.seed, s.forecasts[name], s.quantiles)
              for name in seeds[0].forecasts for s in seeds]
    pred = pl.concat(frames) if frames else pl.DataFrame()
    atomic_write(out / "predictions.parquet", lambda tmp: pred.write_parquet(tmp))


def prediction_frame(part: Inputs, split: str, seed: int, yhat: np.ndarray, quantiles) -> pl.DataFrame:
    """Long rows: product_id, split, step, y (null where not observed), yhat, seed, yhat_q<q> per quantile."""
    n, h = part.y.shape
    cols = {
        "product_id": np.repeat(np.asarray(part.product_ids, dtype=object), h),
        "split": [split] * (n * h),
        "step": np.tile(np.arange(h, dtype=np.int32), n),
        "y": pl.Series(np.where(part.y_mask, part.y, np.nan).reshape(-1), dtype=pl.Float32).fill_nan(None),
        "yhat": point_forecast(yhat, quantiles).reshape(-1).astype(np.float32),
        "seed": np.full(n * h, seed, dtype=np.int32),
    }
    if yhat.ndim == 3:
        for j, qq in enumerate(quantiles):
            cols[f"yhat_q{qq:g}"] = yhat[..., j].reshape(-1).astype(np.float32)
    return pl.DataFrame(cols)


def plots(out: Path, fits, prepared: "Prepared", forecasts: dict[str, np.ndarray], cfg: TrainConfig) -> None:
    """learning_curves.png, forecasts_val.png (ensemble vs actual) and totals.png."""
    P.learning_curves({f.seed: f.selection_history for f in fits}, {f.seed: f.best_epoch for f in fits},
                      out / "learning_curves.png")
    q = tuple(fits[0].quantiles)
    point = {k: point_forecast(v, q) for k, v in forecasts.items()}
    parts = prepared.parts
    val = parts["val"]
    P.forecast_grid(val.product_ids, val.y, val.y_mask, point["val"], prepared.mean_curve, out / "forecasts_val.png",
                    title=f"{cfg.name}: validation products, forecast (mean of {len(fits)} seeds) vs actual",
                    band=forecasts["val"] if q else None)
    totals = {k: (np.where(parts[k].y_mask, parts[k].y, 0).sum(1), np.where(parts[k].y_mask, p, 0).sum(1))
              for k, p in point.items()}
    P.totals_scatter(totals, out / "totals.png")
