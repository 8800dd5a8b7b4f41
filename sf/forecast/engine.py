"""The stage-2 engine: config + in-memory store + dataset → split → one fit per seed → scores → run folder.

Every command that trains goes through these functions, so a number means the same wherever it comes from:

    prepare(cfg, features, dataset, split=None) -> Prepared     once per store: training vocabulary, the split
                                                                 (made, or given by product), references
    train_seed(cfg, prepared, seed) -> SeedResult                one (config, seed): fit, forecast, score; what a
                                                                 pool worker, a Ray task or an Optuna trial calls
    score_fitted(fitted, prepared, ...) -> SeedResult            the scoring half (a reused checkpoint)
    fit_baseline(name, prepared, params) -> SeedResult           a deterministic baseline, scored the same way
    train_run(cfg, prepared=None, ...) -> RunResult              `sf train`: every seed, written as a run folder

`sf train` is `train_run`; `sf ablate` and `sf compare` (sf/studies) choose configs and call `prepare` once
per store and `train_seed` per (config, seed); applying a trained model (sf/apply) reads the run folder.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from sf.cache.reader import Features, load_features, read_attrs
from sf.data.contract import Dataset, load_dataset
from sf.device import resolve_device
from sf.errors import SfError
from sf.outputs import writable_dir
from sf.forecast import run_folder as RF
from sf.forecast.baselines.common import masked_mean_curve
from sf.forecast import run_state as RS
from sf.forecast.checkpoints import save_checkpoint, store_fingerprint
from sf.forecast.config import TrainConfig
from sf.forecast.fit import FitResult, fit, model_hparams, predict
from sf.forecast.inputs import Inputs, build_inputs, with_training_vocab
from sf.forecast.metrics import compute_metrics, hit_threshold, seed_summary
from sf.forecast.models import model_entry
from sf.forecast.splits import EVAL_SPLITS, SPLITS, describe, make_split, resolve_kind
from sf.progress import EpochProgress


# ---------------------------------------------------------------- the data every seed reads


@dataclass
class Prepared:
    """One store's products joined with the dataset and split once: what every seed of every config reads."""

    label: str  # e.g. the store's backbone, or the dataset's name
    parts: dict[str, Inputs]  # train / val / test, attribute codes over the training products' values
    kind: str  # the split kind actually used (auto resolved)
    info: dict  # sizes, release ranges, shares without image / text (splits.describe)
    hit_threshold: float  # the training products' median total (metrics.hit_threshold)
    mean_curve: np.ndarray  # (H,) the training products' mean curve: the reference forecast
    store: dict = field(default_factory=dict)  # the store's fingerprint fields (checkpoints.store_fingerprint)
    # With cfg.refit: train + validation and test, coded over the values train + validation have, for the
    # refit that `train_seed` runs after the epoch count is chosen on validation.
    refit_parts: dict[str, Inputs] | None = None

    @property
    def final_train(self) -> Inputs:
        """The products the saved model was fitted on: train + validation after a refit, else train."""
        return self.refit_parts["train"] if self.refit_parts is not None else self.parts["train"]

    @property
    def split_id(self) -> str:
        return split_id(self.parts)

    @property
    def product_split(self) -> dict[str, list[str]]:
        """Which products are in which part: what split.parquet stores and `prepare(split=...)` takes back."""
        return {k: list(self.parts[k].product_ids) for k in SPLITS}


def split_id(parts: dict[str, Inputs]) -> str:
    """A short hash of which products are in which part: equal ids, equal splits."""
    h = hashlib.sha256()
    for k in SPLITS:
        h.update(k.encode() + b"\0" + "\0".join(parts[k].product_ids).encode() + b"\1")
    return h.hexdigest()[:16]


def load_inputs(cfg: TrainConfig, features: Features | None = None, dataset: Dataset | None = None,
                check_content: bool = True) -> tuple[Inputs, dict]:
    """Join the store (read once into memory unless given) with the dataset; returns (inputs, store attributes).

    `check_content=False` uses features whose image/text changed since extraction (sf.forecast.freshness)."""
    if features is None or dataset is None:
        if cfg.features is None or cfg.data is None:
            raise SfError("sf train needs --features (a store from `sf extract`) and --data (the dataset folder)")
    features = features if features is not None else load_features(cfg.features)
    dataset = dataset if dataset is not None else load_dataset(cfg.data)
    check_horizon(cfg, dataset)
    return build_inputs(dataset, features, horizon=cfg.horizon, check_content=check_content), features.attrs


def check_horizon(cfg: TrainConfig, dataset: Dataset) -> None:
    """--horizon beyond the data's longest sales history trains on steps no product has; --observe-max at or
    beyond the horizon leaves nothing to forecast: both are refused rather than silently accepted."""
    longest = dataset.max_horizon()
    unit = f"{dataset.meta.period}s"
    if cfg.horizon is not None and cfg.horizon > longest:
        raise SfError(f"--horizon {cfg.horizon}: {dataset.root} has at most {longest} {unit} of sales per product")
    h = cfg.horizon or longest
    if cfg.observe_max >= h:
        raise SfError(f"--observe-max {cfg.observe_max}: must be below the horizon ({h} {unit}), so some weeks are left "
                      "to forecast")


def prepare(cfg: TrainConfig, features: Features | None = None, dataset: Dataset | None = None,
            split: dict[str, list[str]] | None = None, inputs: Inputs | None = None, store_attrs: dict | None = None,
            label: str = "", check_content: bool = True) -> Prepared:
    """Split the products by `cfg.split` (or put them where `split`, product ids per part, says) and keep the parts.

    Pass `inputs` + `store_attrs` when the store is already joined with the dataset (one read for many runs)."""
    if inputs is None:
        inputs, store_attrs = load_inputs(cfg, features, dataset, check_content)
    kind = resolve_kind(inputs, cfg.split)
    rows = make_split(inputs, kind, seed=cfg.split_seed, fractions=cfg.fractions) if split is None \
        else _rows_of(inputs, split)
    refit_parts = None
    if cfg.refit:
        seen = np.concatenate([rows["train"], rows["val"]])
        recoded = with_training_vocab(inputs, seen)
        refit_parts = {"train": recoded.take(seen), "test": recoded.take(rows["test"])}
    inputs = with_training_vocab(inputs, rows["train"])
    parts = {k: inputs.take(rows[k]) for k in SPLITS}
    if len(parts["val"]) == 0:
        raise SfError(f"{label + ': ' if label else ''}the {kind} split left no validation products "
                      f"({len(inputs)} in all); early stopping and every choice need some")
    train = parts["train"]
    return Prepared(label=label, parts=parts, kind=kind, info=describe(inputs, rows),
                    hit_threshold=hit_threshold(train.y, train.y_mask), mean_curve=mean_curve(train),
                    store=store_fingerprint(store_attrs or {}), refit_parts=refit_parts)


def _rows_of(inputs: Inputs, split: dict[str, list[str]]) -> dict[str, np.ndarray]:
    index = {p: i for i, p in enumerate(inputs.product_ids)}
    missing = [p for k in SPLITS for p in split.get(k, ()) if p not in index]
    if missing:
        raise SfError(f"the saved split names {len(missing)} product(s) the data does not have (e.g. {missing[0]!r})")
    return {k: np.sort(np.asarray([index[p] for p in split.get(k, ())], dtype=np.int64)) for k in SPLITS}


def mean_curve(train: Inputs) -> np.ndarray:
    """Per-step mean of the training products' observed sales: the reference forecast."""
    return masked_mean_curve(train.y, train.y_mask).astype(np.float64)


# ---------------------------------------------------------------- one (config, seed)


@dataclass
class SeedResult:
    """One fitted (config, seed), scored on validation and test of the prepared split."""

    seed: int
    metrics: dict[str, dict]  # split -> compute_metrics (units)
    forecasts: dict[str, np.ndarray]  # split -> (N, H) or (N, H, Q) units, rows as in the part
    quantiles: tuple[float, ...] = ()
    fitted: FitResult | None = None  # None for a baseline (and after a pool worker strips it)
    best_epoch: int | None = None
    epochs_run: int | None = None
    seconds: float = 0.0


def train_seed(cfg: TrainConfig, prepared: Prepared, seed: int, model: str | None = None,
               hparams: dict | None = None, progress: Callable[[dict], None] | None = None,
               perturb: Callable[[Inputs, int], Inputs] | None = None) -> SeedResult:
    """Fit `model` (default `cfg.model`) with `seed` on the prepared training products, early-stopped on
    validation, then forecast and score validation and test. `perturb` changes the scored inputs only.

    A model's validated choices left open (`choice_candidates`: sf's fused dropout) are fitted each with `seed`,
    and the one with the lowest validation WAPE is kept, its `choice` recording what was tried.

    With `cfg.refit` (and a prepared refit) the same model is then trained again, same seed, on train +
    validation for the epoch count validation chose, and that refit is what test is scored with and what
    is kept: validation is scored by the first fit only, so its figures stay those of unseen products."""
    t0 = time.perf_counter()
    parts, name = prepared.parts, model or cfg.model
    candidates = choice_candidates(name, cfg, hparams)
    if len(candidates) == 1:
        fitted = fit(name, parts["train"], parts["val"], cfg, seed, hparams=hparams, progress=progress)
        result = score_fitted(fitted, prepared, threads=cfg.threads, perturb=perturb)
    else:
        result, hparams = _choose(name, candidates, cfg, prepared, seed, hparams, progress)
        fitted = result.fitted
        if perturb is not None:  # chosen on the real validation products; the perturbation is for scoring only
            result = score_fitted(fitted, prepared, threads=cfg.threads, perturb=perturb)
    if cfg.refit and prepared.refit_parts is not None:
        seen = prepared.refit_parts["train"]
        again = fit(name, seen, seen.take([]), replace(cfg, epochs=fitted.best_epoch), seed, hparams=hparams,
                    progress=progress)
        again.best_epoch = fitted.best_epoch
        again.selection = {"history": fitted.history, "val": result.forecasts.get("val")}
        _merge_test(result, again, prepared, cfg.threads, perturb)
    result.seconds = time.perf_counter() - t0
    return result


def choice_candidates(model: str, cfg: TrainConfig, hparams: dict | None = None) -> list[dict]:
    """The settings of the model's validated choices (models.base) to fit, one dict per fit: every combination of
    the candidate values the config and `hparams` leave unset; [{}] (one fit as configured) when none is open."""
    if not cfg.choose_on_validation:
        return [{}]
    open_ = model_entry(model).cls.open_choices(model_hparams(model, cfg, hparams))
    return [dict(zip(open_, values)) for values in itertools.product(*open_.values())]


def _choose(name: str, candidates: list[dict], cfg: TrainConfig, prepared: Prepared, seed: int, hparams: dict | None,
            progress) -> tuple[SeedResult, dict]:
    """Fit and score every candidate with `seed`; keep the lowest validation WAPE (the first on a tie: the
    model's defaults). Returns the kept result, its fit's `choice` record set, and the hparams it was fitted with."""
    parts, tried = prepared.parts, []
    for extra in candidates:
        label = ", ".join(f"{k} {v}" for k, v in extra.items())
        tell = None if progress is None else (lambda h, label=label: progress({**h, "choice": label}))
        h = {**(hparams or {}), **extra}
        fitted = fit(name, parts["train"], parts["val"], cfg, seed, hparams=h, progress=tell)
        tried.append((extra, h, score_fitted(fitted, prepared, threads=cfg.threads)))
    extra, h, result = min(tried, key=lambda t: t[2].metrics["val"]["WAPE"])
    result.fitted.choice = {"chosen": extra,
                            "tried": [{**e, "val_wape": r.metrics["val"]["WAPE"], "best_epoch": r.best_epoch}
                                      for e, _, r in tried]}
    return result, h


def score_fitted(fitted: FitResult, prepared: Prepared, threads: int = 1,
                 perturb: Callable[[Inputs, int], Inputs] | None = None) -> SeedResult:
    """Forecast and score validation and test with a fitted (or reloaded) model.

    A refit model (one with `selection`) was trained on validation: its validation forecasts are the ones
    its selection fit made, kept with it, and only test is forecast again."""
    q = tuple(fitted.quantiles)
    selection = getattr(fitted, "selection", None)
    if selection is None:
        result = _score(lambda inp: predict(fitted, inp, threads=threads), prepared.parts, prepared.hit_threshold,
                        fitted.seed, q, perturb)
    else:
        val = prepared.parts["val"]
        forecasts = np.asarray(selection["val"], dtype=np.float64)
        result = SeedResult(seed=fitted.seed, quantiles=q, forecasts={"val": forecasts}, metrics={
            "val": compute_metrics(val.y, forecasts, val.y_mask, prepared.hit_threshold, q or None)})
        _merge_test(result, fitted, prepared, threads, perturb)
    result.fitted, result.best_epoch, result.epochs_run = fitted, fitted.best_epoch, len(fitted.selection_history)
    return result


def _merge_test(result: SeedResult, refit: FitResult, prepared: Prepared, threads: int, perturb) -> None:
    """Test forecasts and scores of a model refit on train + validation, in place of the selection fit's."""
    _score_refit_test(result, lambda inp: predict(refit, inp, threads=threads), prepared, refit.seed,
                      tuple(refit.quantiles), perturb)
    result.fitted, result.epochs_run = refit, len(refit.selection_history)


def _score_refit_test(result: SeedResult, forecast, prepared: Prepared, seed: int, quantiles: tuple, perturb) -> None:
    """Score the refit's test products (coded over train + validation) with `forecast`, replacing `result`'s test."""
    if prepared.refit_parts is None:
        raise SfError("this model was refit on train + validation; score it on a split prepared with refit = true")
    test = _score(forecast, {"test": prepared.refit_parts["test"]}, prepared.hit_threshold, seed, quantiles, perturb)
    for d in (result.metrics, result.forecasts):
        d.pop("test", None)
    result.metrics.update(test.metrics)
    result.forecasts.update(test.forecasts)


def fit_baseline(name: str, prepared: Prepared, params: dict | None = None, seed: int = 0,
                 perturb: Callable[[Inputs, int], Inputs] | None = None) -> SeedResult:
    """A registered baseline (sf/forecast/baselines), fitted on the training products and scored the same way;
    with a prepared refit, test is scored by the baseline fitted on train + validation, as the models are."""
    from sf.forecast.baselines import create_baseline

    t0 = time.perf_counter()
    model = create_baseline(name, **(params or {}))
    # a baseline that early-stops (lightgbm) takes the validation products the neural models stop on
    takes_val = "val" in inspect.signature(model.fit).parameters
    model = model.fit(prepared.parts["train"], **({"val": prepared.parts["val"]} if takes_val else {}))
    result = _score(model.predict, prepared.parts, prepared.hit_threshold, seed, (), perturb)
    if prepared.refit_parts is not None:
        again = create_baseline(name, **(params or {})).fit(prepared.refit_parts["train"])
        _score_refit_test(result, again.predict, prepared, seed, (), perturb)
    result.seconds = time.perf_counter() - t0
    return result


def _score(forecast, parts: dict[str, Inputs], threshold: float, seed: int, quantiles: tuple, perturb) -> SeedResult:
    metrics, forecasts = {}, {}
    for name in EVAL_SPLITS:
        part = parts.get(name)
        if part is None or len(part) == 0:
            continue
        if perturb is not None:
            part = perturb(part, seed)
        forecasts[name] = forecast(part)
        q = quantiles if forecasts[name].ndim == 3 else None
        metrics[name] = compute_metrics(part.y, forecasts[name], part.y_mask, threshold, q)
    return SeedResult(seed=seed, metrics=metrics, forecasts=forecasts, quantiles=quantiles)


# ---------------------------------------------------------------- sf train


@dataclass
class RunResult:
    out: Path
    config: TrainConfig
    metrics: dict
    fits: list[FitResult]
    prepared: Prepared
    predictions: dict[str, np.ndarray]  # split -> seed-ensemble forecasts, rows as in the part


def train_run(cfg: TrainConfig, resume: bool = False, force: bool = False, console=None, progress: bool = True,
              prepared: Prepared | None = None, make_plots: bool = True, allow_stale_features: bool = False) -> RunResult:
    """The whole `sf train`: read and split (or reuse `prepared`), one fit per seed, scores, run folder.

    The split comes from the run folder's split.parquet on --resume, so reused seeds and new ones share it."""
    cfg = cfg.resolved()
    resolve_device(cfg.device)  # a missing GPU is refused before anything is read or cleared
    out = writable_dir(cfg.out)
    if prepared is None:
        if cfg.features is not None:  # refuse a mismatched run folder before the long read
            RF.check_out_dir(out, cfg, store_fingerprint(read_attrs(cfg.features)), resume, force)
        saved = RF.read_split(out) if resume and RF.has_split(out) else None
        prepared = prepare(cfg, split=saved, check_content=not allow_stale_features)
    RF.check_out_dir(out, cfg, prepared.store, resume, force)
    with RF.one_writer(out):
        RF.check_out_dir(out, cfg, prepared.store, resume, force)  # a run that held the lock may have finished since
        RF.start(out, cfg, prepared, resume)
        seeds: list[SeedResult] = []
        with EpochProgress(console, progress, cfg.epochs) as bar:
            for seed in cfg.seed_list:
                seeds.append(_one_seed(cfg, prepared, seed, out, resume, bar))
        RF.drop_stale_checkpoints(out, cfg.seed_list)
        ensemble = {k: np.mean([s.forecasts[k] for s in seeds], axis=0) for k in seeds[0].forecasts}
        metrics = run_metrics(cfg, prepared, seeds, ensemble)
        RF.finish(out, metrics, prepared, seeds)
        fits = [s.fitted for s in seeds]
        if make_plots:
            RF.plots(out, fits, prepared, ensemble, cfg)
        RS.finished(out)
    return RunResult(out=out, config=cfg, metrics=metrics, fits=fits, prepared=prepared, predictions=ensemble)


def _one_seed(cfg: TrainConfig, prepared: Prepared, seed: int, out: Path, resume: bool, bar) -> SeedResult:
    ckpt = RF.checkpoint_path(out, seed)
    fitted = RF.resumable(ckpt, cfg, prepared.store) if resume else None
    if fitted is not None:
        bar.note(f"seed {seed}: reused {ckpt}")
        RS.seed_done(out, seed, ckpt)
        return score_fitted(fitted, prepared, threads=cfg.threads)
    result = train_seed(cfg, prepared, seed, progress=bar.tracker(f"seed {seed}"))
    train = prepared.final_train
    save_checkpoint(ckpt, result.fitted, cfg, prepared.store, train.attribute_vocab, train.attribute_names,
                    train.exog_names, train.horizon)
    RS.seed_done(out, seed, ckpt)
    return result


def run_metrics(cfg: TrainConfig, prepared: Prepared, seeds: list[SeedResult], ensemble: dict[str, np.ndarray]) -> dict:
    """metrics.json: per split the seeds' summary, the seed ensemble and the mean-curve reference."""
    fits = [s.fitted for s in seeds]
    q = tuple(seeds[0].quantiles)
    metrics: dict = {
        "name": cfg.name, "model": cfg.model, "fusion": cfg.fusion, "head": cfg.head, "loss": cfg.loss,
        "quantiles": list(q), "exog_future": cfg.exog_future, "data": str(cfg.data), "features": str(cfg.features),
        "store": prepared.store,
        "horizon": prepared.parts["train"].horizon, "seeds": cfg.seed_list,
        "split": {"kind": prepared.kind, **prepared.info},
        "train_mean_curve": [float(v) for v in prepared.mean_curve], "hit_threshold": prepared.hit_threshold,
        "hit_definition": "total horizon sales > median total of the training products; score = predicted total",
        "training": {"best_epoch": [f.best_epoch for f in fits],
                     "epochs_run": [len(f.selection_history) for f in fits], "refit": [f.selection is not None for f in fits],
                     "seconds": [f.seconds for f in fits], "y_scale": fits[0].y_scale, "hparams": fits[0].hparams,
                     "choice": [f.choice for f in fits]},
        "history": {str(f.seed): f.selection_history for f in fits},
    }
    for name in ensemble:
        part = prepared.parts[name]
        # the reference curve comes from the products the scored models were fitted on (train + validation for test
        # after a refit), so the comparison beside it is like for like
        curve = mean_curve(prepared.final_train) if name == "test" else prepared.mean_curve
        baseline = np.tile(curve, (len(part), 1))
        metrics[name] = seed_summary(
            [s.metrics[name] for s in seeds],
            ensemble=compute_metrics(part.y, ensemble[name], part.y_mask, prepared.hit_threshold, q or None),
            mean_curve=compute_metrics(part.y, baseline, part.y_mask, prepared.hit_threshold))
    return metrics
