"""A training run on disk: `sf train` end to end, and checkpoints that rebuild a model from the file alone.

    runs/NAME/
      config.json              the resolved TrainConfig, plus the store's fingerprint fields under "store"
      checkpoints/seed{S}.pt   model name, dims, hparams, state_dict, y_scale, loss + quantiles, config, store
                               fingerprint, attribute vocabulary, horizon, history (nanoGPT style)
      metrics.json             per split: metrics per seed, mean and std over seeds, the seed ensemble, the
                               mean-curve baseline on the same products; split sizes, shares without image/text
      predictions.parquet      product_id, split, step, y, yhat, seed (+ yhat_q<q> columns for quantiles)
      learning_curves.png, forecasts_val.png, totals.png
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import torch

from sf.cache import schema as S
from sf.cache.reader import load_features, read_attrs
from sf.data.atomic import atomic_write, atomic_write_text
from sf.data.contract import load_dataset
from sf.errors import SfError
from sf.forecast import plots
from sf.forecast.base import Dims, create_model
from sf.forecast.baselines.common import masked_mean_curve
from sf.forecast.config import TrainConfig, config_from_dict
from sf.forecast.inputs import Inputs, build_inputs, with_training_vocab
from sf.forecast.metrics import aggregate, compute_metrics, hit_threshold, point_index
from sf.forecast.splits import describe, make_split, resolve_kind
from sf.forecast.train import FitResult, fit, predict, resolve_device

CHECKPOINT_FORMAT = "sf-checkpoint/1"
OUTPUTS = ("config.json", "metrics.json", "predictions.parquet", "learning_curves.png", "forecasts_val.png",
           "totals.png")
# Settings that may change between an interrupted run and its --resume without invalidating checkpoints.
RESUME_FREE = {"seeds", "seed", "device", "threads", "out", "name"}


# ---------------------------------------------------------------- checkpoints


@dataclass
class LoadedModel(FitResult):
    config: TrainConfig | None = None
    store: dict = field(default_factory=dict)  # the fingerprint fields of the store it was trained on
    attribute_vocab: dict = field(default_factory=dict)
    attribute_names: list = field(default_factory=list)
    exog_names: list = field(default_factory=list)
    horizon: int = 0
    path: Path | None = None


@dataclass
class LoadedRun:
    run_dir: Path
    config: TrainConfig
    models: list[LoadedModel]  # one per seed; predict() averages them
    store: dict
    attribute_vocab: dict
    attribute_names: list
    exog_names: list
    horizon: int

    @property
    def loss(self) -> str:
        return self.models[0].loss

    @property
    def quantiles(self) -> tuple[float, ...]:
        return self.models[0].quantiles

    def predict(self, inp: Inputs, observed_steps: int = 0) -> np.ndarray:
        return predict(self, inp, observed_steps)


def store_fingerprint(attrs: dict) -> dict:
    """What a model must remember of its store: the fingerprint, its fields, and the feature shapes."""
    keep = (*S.FINGERPRINT_KEYS, "grid_h", "grid_w", "channels", "text_dim", "text_len", "pooled_only")
    out = {k: S._plain(attrs[k]) for k in keep if k in attrs}
    out["fingerprint"] = str(attrs.get("fingerprint") or S.fingerprint(attrs))
    return out


def save_checkpoint(path: str | Path, fitted: FitResult, cfg: TrainConfig, store_attrs: dict,
                    attribute_vocab: dict, attribute_names: list | None = None, exog_names: list | None = None,
                    horizon: int | None = None) -> Path:
    """Everything needed to rebuild and use the model without the code that trained it."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model_name": fitted.model_name,
        "dims": fitted.dims.to_dict(),
        "hparams": fitted.hparams,
        "state_dict": {k: v.detach().cpu() for k, v in fitted.model.state_dict().items()},
        "y_scale": fitted.y_scale,
        "target": fitted.target,
        "loss": fitted.loss,
        "quantiles": list(fitted.quantiles),
        "history": fitted.history,
        "best_epoch": fitted.best_epoch,
        "seed": fitted.seed,
        "seconds": fitted.seconds,
        "config": cfg.to_dict(),
        "store": store_fingerprint(store_attrs),
        "attribute_vocab": attribute_vocab,
        "attribute_names": list(attribute_names if attribute_names is not None else attribute_vocab),
        "exog_names": list(exog_names or []),
        "horizon": int(horizon if horizon is not None else fitted.dims.horizon),
    }
    return atomic_write(Path(path), lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    path = Path(path)
    if not path.is_file():
        raise SfError(f"{path}: checkpoint not found")
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch raises many types for foreign or truncated files
        raise SfError(f"{path}: not a readable sf checkpoint ({type(e).__name__})") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise SfError(f"{path}: not an sf checkpoint (format {ck.get('format') if isinstance(ck, dict) else '?'!r})")
    dims_d = dict(ck["dims"])
    dims_d["attribute_cardinalities"] = tuple(dims_d["attribute_cardinalities"])
    dims = Dims(**dims_d)
    model = create_model(ck["model_name"], dims, **ck["hparams"])
    model.load_state_dict(ck["state_dict"])
    model.to(device).eval()
    return LoadedModel(
        model=model, model_name=ck["model_name"], dims=dims, hparams=ck["hparams"], y_scale=ck["y_scale"],
        loss=ck["loss"], quantiles=tuple(ck["quantiles"]), history=ck["history"], best_epoch=ck["best_epoch"],
        seed=ck["seed"], seconds=ck["seconds"], target=ck.get("target", "scaled"), config=config_from_dict(ck["config"]), store=ck["store"],
        attribute_vocab=ck["attribute_vocab"], attribute_names=ck["attribute_names"], exog_names=ck["exog_names"],
        horizon=ck["horizon"], path=path,
    )


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """A run folder (every seed's checkpoint) or one checkpoint file, rebuilt from the files alone."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        paths = [run_dir]
    else:
        paths = sorted((run_dir / "checkpoints").glob("seed*.pt"), key=lambda p: int(p.stem[4:]))
        if not paths:
            raise SfError(f"{run_dir}: no checkpoints found (expected {run_dir}/checkpoints/seed*.pt; run `sf train`)")
    models = [load_checkpoint(p, device) for p in paths]
    first = models[0]
    for m in models[1:]:
        if m.store.get("fingerprint") != first.store.get("fingerprint") or m.model_name != first.model_name:
            raise SfError(f"{m.path}: checkpoint does not belong with {first.path} (another model or store)")
    return LoadedRun(run_dir=run_dir, config=first.config, models=models, store=first.store,
                     attribute_vocab=first.attribute_vocab, attribute_names=first.attribute_names,
                     exog_names=first.exog_names, horizon=first.horizon)


def check_fingerprint(run_or_ckpt, store_attrs: dict) -> None:
    """Refuse a store whose fingerprint differs from the one the model was trained on, saying what differs.

    `run_or_ckpt`: a LoadedRun / LoadedModel, or a path to a run folder or checkpoint."""
    if isinstance(run_or_ckpt, (str, Path)):
        run_or_ckpt = load_run(run_or_ckpt)
    trained = run_or_ckpt.store
    now = store_fingerprint(store_attrs)
    if trained.get("fingerprint") == now["fingerprint"]:
        return
    where = getattr(run_or_ckpt, "run_dir", None) or getattr(run_or_ckpt, "path", None) or "model"
    diffs = S.fingerprint_diff(trained, now) or [f"fingerprint: {trained.get('fingerprint')!r} != {now['fingerprint']!r}"]
    raise SfError(f"{where}: trained on another feature store ({'; '.join(diffs)}, trained != given); "
                  f"extract features with the model's settings or retrain")


# ---------------------------------------------------------------- sf train


@dataclass
class RunResult:
    out: Path
    config: TrainConfig
    metrics: dict
    fits: list[FitResult]
    split: dict[str, np.ndarray]
    predictions: dict[str, np.ndarray]  # split -> seed-ensemble forecasts, rows as in split


def mean_curve(train: Inputs) -> np.ndarray:
    """Per-step mean of the training products' observed sales: the reference forecast."""
    return masked_mean_curve(train.y, train.y_mask).astype(np.float64)


def prepare_inputs(cfg: TrainConfig) -> tuple[Inputs, dict]:
    """Read the store once and join it with the dataset; returns (inputs, store attributes)."""
    if cfg.features is None or cfg.data is None:
        raise SfError("sf train needs --features (a store from `sf extract`) and --data (the dataset folder)")
    feats = load_features(cfg.features)
    ds = load_dataset(cfg.data)
    return build_inputs(ds, feats, horizon=cfg.horizon), feats.attrs


def _clear_outputs(out: Path) -> None:
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)
    for p in (out / "checkpoints").glob("seed*.pt"):
        p.unlink()


def _check_out_dir(out: Path, store: dict, force: bool) -> None:
    cfg_file = out / "config.json"
    if force or not cfg_file.is_file():
        return
    try:
        old = json.loads(cfg_file.read_text()).get("store", {})
    except (json.JSONDecodeError, AttributeError):
        return
    if old.get("fingerprint") not in (None, store["fingerprint"]):
        diffs = S.fingerprint_diff(old, store) or ["fingerprint"]
        raise SfError(f"{out}: holds a run trained on another feature store ({'; '.join(diffs)}); "
                      f"choose another --out or --name, or --force to replace it")


def _resumable(path: Path, cfg: TrainConfig, store: dict) -> LoadedModel | None:
    if not path.is_file():
        return None
    ck = load_checkpoint(path)
    check_fingerprint(ck, store)
    old, new = ck.config.to_dict(), cfg.to_dict()
    changed = sorted(k for k in new if k not in RESUME_FREE and old.get(k) != new[k])
    if changed:
        raise SfError(f"{path}: --resume with changed settings ({', '.join(changed)}); drop --resume to retrain")
    return ck


def train_run(cfg: TrainConfig, resume: bool = False, force: bool = False, console=None, progress: bool = True,
              inputs: Inputs | None = None, store_attrs: dict | None = None, make_plots: bool = True) -> RunResult:
    """The whole `sf train`: inputs, split, one fit per seed, forecasts, metrics, run folder.

    Pass `inputs` + `store_attrs` to reuse features already in memory (sf ablate); `make_plots=False`
    skips the PNGs (a few seconds) for runs nobody will look at one by one."""
    cfg = cfg.resolved()
    resolve_device(cfg.device)  # a missing GPU is refused before anything is read or cleared
    out = Path(cfg.out)
    if inputs is None:
        if cfg.features is not None:  # refuse a mismatched run folder before the long read
            _check_out_dir(out, store_fingerprint(read_attrs(cfg.features)), force)
        inputs, store_attrs = prepare_inputs(cfg)
    store = store_fingerprint(store_attrs or {})
    _check_out_dir(out, store, force)
    kind = resolve_kind(inputs, cfg.split)
    split = make_split(inputs, kind, seed=cfg.split_seed, fractions=cfg.fractions)
    inputs = with_training_vocab(inputs, split["train"])
    parts = {k: inputs.take(v) for k, v in split.items()}
    train, val = parts["train"], parts["val"]
    if len(val) == 0:
        raise SfError(f"{kind} split left no validation products ({len(inputs)} products); early stopping needs some")

    if not resume:
        _clear_outputs(out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps({**cfg.to_dict(), "store": store}, indent=2, sort_keys=True))

    fits: list[FitResult] = []
    with _Progress(console, progress, cfg.epochs) as bar:
        for seed in cfg.seed_list:
            ckpt = out / "checkpoints" / f"seed{seed}.pt"
            fitted = _resumable(ckpt, cfg, store) if resume else None
            if fitted is None:
                fitted = fit(cfg.model, train, val, cfg, seed, progress=bar.tracker(f"seed {seed}"))
                save_checkpoint(ckpt, fitted, cfg, store_attrs or {}, inputs.attribute_vocab,
                                inputs.attribute_names, inputs.exog_names, inputs.horizon)
            else:
                bar.note(f"seed {seed}: reused {ckpt}")
            fits.append(fitted)
    for stale in (out / "checkpoints").glob("seed*.pt"):
        if int(stale.stem[4:]) not in cfg.seed_list:
            stale.unlink()

    metrics, forecasts, frames = _evaluate(cfg, inputs, split, parts, fits, kind, store)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=_json_default))
    pred = pl.concat(frames) if frames else pl.DataFrame()
    atomic_write(out / "predictions.parquet", lambda tmp: pred.write_parquet(tmp))
    if make_plots:
        _plots(out, fits, parts, forecasts, mean_curve(train), cfg)
    return RunResult(out=out, config=cfg, metrics=metrics, fits=fits, split=split, predictions=forecasts)


def _evaluate(cfg, inputs, split, parts, fits, kind, store):
    train = parts["train"]
    thr = hit_threshold(train.y, train.y_mask)
    q = tuple(fits[0].quantiles)
    curve = mean_curve(train)
    metrics: dict = {
        "name": cfg.name, "model": cfg.model, "fusion": cfg.fusion, "head": cfg.head, "loss": cfg.loss,
        "quantiles": list(q), "exog_future": cfg.exog_future, "data": str(cfg.data), "features": str(cfg.features), "store": store,
        "horizon": inputs.horizon, "seeds": cfg.seed_list, "split": {"kind": kind, **describe(inputs, split)},
        "train_mean_curve": [float(v) for v in curve], "hit_threshold": thr, "hit_definition": "total horizon sales > median total of the training products; "
                                                 "score = predicted total",
        "training": {"best_epoch": [f.best_epoch for f in fits], "epochs_run": [len(f.history) for f in fits],
                     "seconds": [f.seconds for f in fits], "y_scale": fits[0].y_scale, "hparams": fits[0].hparams},
        "history": {str(f.seed): f.history for f in fits},
    }
    forecasts, frames = {}, []
    for name in ("val", "test"):
        part = parts[name]
        if len(part) == 0:
            continue
        per_seed = [predict(f, part) for f in fits]
        scores = [compute_metrics(part.y, p, part.y_mask, thr, q or None) for p in per_seed]
        agg = aggregate(scores)
        forecasts[name] = np.mean(per_seed, axis=0)
        baseline = np.tile(curve, (len(part), 1))
        metrics[name] = {
            "mean": {k: v["mean"] for k, v in agg.items()},
            "std": {k: v["std"] for k, v in agg.items()},
            "per_seed": scores,
            "ensemble": compute_metrics(part.y, forecasts[name], part.y_mask, thr, q or None),
            "mean_curve": compute_metrics(part.y, baseline, part.y_mask, thr),
        }
        frames += [prediction_frame(part, name, f.seed, p, q) for f, p in zip(fits, per_seed)]
    return metrics, forecasts, frames


def prediction_frame(part: Inputs, split: str, seed: int, yhat: np.ndarray, quantiles) -> pl.DataFrame:
    n, h = part.y.shape
    point = yhat[..., point_index(quantiles)] if yhat.ndim == 3 else yhat
    cols = {
        "product_id": np.repeat(np.asarray(part.product_ids, dtype=object), h),
        "split": [split] * (n * h),
        "step": np.tile(np.arange(h, dtype=np.int32), n),
        "y": pl.Series(np.where(part.y_mask, part.y, np.nan).reshape(-1), dtype=pl.Float32).fill_nan(None),
        "yhat": point.reshape(-1).astype(np.float32),
        "seed": np.full(n * h, seed, dtype=np.int32),
    }
    if yhat.ndim == 3:
        for j, qq in enumerate(quantiles):
            cols[f"yhat_q{qq:g}"] = yhat[..., j].reshape(-1).astype(np.float32)
    return pl.DataFrame(cols)


def _plots(out: Path, fits, parts, forecasts, curve, cfg) -> None:
    plots.learning_curves({f.seed: f.history for f in fits}, {f.seed: f.best_epoch for f in fits},
                          out / "learning_curves.png")
    q = tuple(fits[0].quantiles)
    point = {k: (v[..., point_index(q)] if v.ndim == 3 else v) for k, v in forecasts.items()}
    val = parts["val"]
    plots.forecast_grid(val.product_ids, val.y, val.y_mask, point["val"], curve, out / "forecasts_val.png",
                        title=f"{cfg.name}: validation products, forecast (mean of {len(fits)} seeds) vs actual",
                        band=forecasts["val"] if q else None)
    totals = {k: (np.where(parts[k].y_mask, parts[k].y, 0).sum(1), np.where(parts[k].y_mask, p, 0).sum(1))
              for k, p in point.items()}
    plots.totals_scatter(totals, out / "totals.png")


def _json_default(o):
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


class _Progress:
    """One rich progress line per seed: epochs done, rate, current train / validation loss."""

    def __init__(self, console, enabled: bool, epochs: int) -> None:
        self.enabled, self.epochs, self.console = enabled, epochs, console
        self.bar = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("epochs  {task.fields[rate]}  {task.fields[loss]}"), TimeElapsedColumn(),
                                console=self.console)
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.console.print(text)

    def tracker(self, label: str):
        if self.bar is None:
            return None
        task = self.bar.add_task(label, total=self.epochs, rate="", loss="")
        start = time.perf_counter()

        def update(h: dict) -> None:
            rate = h["epoch"] / max(time.perf_counter() - start, 1e-9)
            self.bar.update(task, completed=h["epoch"], rate=f"{rate:.1f}/s",
                            loss=f"train {h['train_loss']:.4f}  val {h['val_loss']:.4f}")

        return update
