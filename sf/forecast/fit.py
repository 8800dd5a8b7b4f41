"""Training any registered forecaster from cached features: `fit` with early stopping, then `predict`.

The whole loop is below, in the spirit of nanoGPT's train.py: seed, build the model from its dims and
hyper-parameters, scale the targets, shuffle, step, evaluate on validation each epoch, keep the best
weights, stop after `patience` epochs without improvement. Everything is in memory (see batching.py).
Without validation products (the refit on train + validation, whose epoch count was chosen on validation
before) it trains exactly `cfg.epochs` epochs and keeps the last weights.
"""

from __future__ import annotations

import inspect
import time
import weakref
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from torch import nn

from sf import keyed_noise
from sf.device import resolve_device
from sf.errors import SfError
from sf.forecast.batching import TensorInputs, decode_target
from sf.forecast.config import TrainConfig
from sf.forecast.inputs import Inputs, concat
from sf.forecast.losses import Objective
from sf.forecast.metrics import point_index
from sf.forecast.models import Dims, create_model, model_entry
from sf.forecast.popularity import PopularityReference, popularity_features

MC_SEED = 1234  # offset of the MC-dropout draws from the fit's seed (sf.forecast.fit._mc_dropout)
EVAL_BATCH = 256  # the widened image grid of a batch is B x 49 x 2048 floats: keep it small


@dataclass
class FitResult:
    model: nn.Module
    model_name: str
    dims: Dims
    hparams: dict  # the arguments the model was built with (besides dims)
    y_scale: float  # targets are units / y_scale while training (or log1p of that, target "log")
    loss: str = "mse"
    quantiles: tuple[float, ...] = ()
    history: list[dict] = field(default_factory=list)  # per epoch: epoch, train_loss, val_loss, seconds
    best_epoch: int = 0
    seed: int = 0
    seconds: float = 0.0
    target: str = "scaled"
    popularity: PopularityReference | None = None  # the training products' levels, when the model reads them
    # Set on a model refit on train + validation (engine.train_seed): the selection fit's history and its
    # validation forecasts, the only honest validation figures such a model has.
    selection: dict | None = None
    # Set when the engine chose among the model's validated choices (engine.train_seed): {"chosen": {arg: value},
    # "tried": [{arg: value, "val_wape": ..., "best_epoch": ...}, ...]}.
    choice: dict | None = None

    @property
    def selection_history(self) -> list[dict]:
        """The per-epoch losses that chose the epoch: a refit model's own history has no validation loss."""
        return self.selection["history"] if self.selection else self.history


# The last split's popularity signals: (weak refs to train and val, reference, their signal arrays). Weak, so
# the cache never keeps a finished run's inputs (image grids included) alive; the arrays are small.
_POPULARITY: list[tuple] = []


def _with_popularity(train: Inputs, val: Inputs, recent: bool) -> tuple[PopularityReference, Inputs, Inputs]:
    """The popularity reference of a fit and its inputs with the signals. They depend on the data and on `recent`
    (with the recent-sales signals or not) only, not on the seed or the other settings, so the fits of a study or a
    seed loop over the same inputs compute them once (about a second each on VISUELLE). A refit (no validation
    products) always computes its own."""
    hit = _POPULARITY[0] if _POPULARITY else None
    if not len(val) or hit is None or hit[0]() is not train or hit[1]() is not val or hit[2].recent != recent:
        # Every product whose sales this run reads; each product's signals count only weeks sold before its release.
        reference = PopularityReference.from_inputs(concat([train, val]) if len(val) else train, target_scale(train),
                                                    recent=recent)
        hit = (weakref.ref(train), weakref.ref(val), reference, popularity_features(train, reference),
               popularity_features(val, reference))
        if len(val):  # a refit's empty validation set is a new object each time: caching it would only evict
            _POPULARITY[:] = [hit]
    reference, p_train, p_val = hit[2:]
    return reference, replace(train, popularity=p_train), replace(val, popularity=p_val)


@contextmanager
def cpu_threads(n: int):
    """Run the block with `n` torch CPU threads, then restore the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def target_scale(inp: Inputs) -> float:
    """Mean units per observed (product, step) cell: the targets become O(1) whatever the catalogue."""
    obs = inp.y[inp.y_mask]
    return float(max(obs.mean() if obs.size else 1.0, 1e-6))


def model_hparams(model_name: str, cfg: TrainConfig, hparams: dict | None = None) -> dict:
    """The config's shared settings that the model's constructor names (unset ones keep the model's own
    default), then `cfg.hparams`, then `hparams`."""
    accepted = inspect.signature(model_entry(model_name).cls.__init__).parameters
    shared = {"hidden": cfg.hidden, "dropout": cfg.dropout, "fusion": cfg.fusion, "head": cfg.head,
              "use_exog": cfg.exog, "exog_future": cfg.exog_future, "use_attributes": cfg.attributes}
    out = {k: v for k, v in shared.items() if k in accepted and v is not None}
    out.update(cfg.hparams or {})
    out.update(hparams or {})
    return out


def fit(model_name: str, train: Inputs, val: Inputs, cfg: TrainConfig, seed: int, hparams: dict | None = None,
        progress: Callable[[dict], None] | None = None) -> FitResult:
    """Train `model_name` on `train`, choosing the epoch on `val`; with `val` empty, exactly cfg.epochs epochs."""
    with cpu_threads(cfg.threads):
        return _fit(model_name, train, val, cfg, seed, hparams, progress)


def _fit(model_name, train, val, cfg, seed, hparams, progress) -> FitResult:
    device = resolve_device(cfg.device)
    objective = Objective(cfg.loss, tuple(cfg.quantiles) if cfg.loss == "quantile" else ())
    torch.manual_seed(seed)
    reference = None
    if cfg.popularity:
        reference, train, val = _with_popularity(train, val, cfg.recent_sales)
    dims = Dims.from_inputs(train, n_outputs=cfg.n_outputs)
    hp = model_hparams(model_name, cfg, hparams)
    try:
        model = create_model(model_name, dims, **hp).to(device)
        model.popularity_reference = reference  # what TensorInputs.for_model computes the signals from
    except TypeError as e:
        raise SfError(f"model {model_name!r}: bad hyper-parameters {hp} ({e})") from None
    y_scale = target_scale(train)
    tr, va = (TensorInputs.for_model(p, model, y_scale, cfg.target, device) for p in (train, val))
    weight = recency_weights(train, cfg.recency_half_life).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    gen = torch.Generator().manual_seed(seed)

    history: list[dict] = []
    best_loss, best_epoch, best_state = float("inf"), 0, None
    averaged = WeightAverage(model, cfg.ema) if cfg.ema else None
    scored = averaged.module if averaged is not None else model
    t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        total, cells = 0.0, 0
        for idx in torch.randperm(tr.n, generator=gen).split(cfg.batch_size):
            observed = torch.randint(0, cfg.observe_max + 1, (len(idx),), generator=gen) if cfg.observe_max else 0
            b = tr.batch(idx, observed)
            weighted = b["loss_mask"] * weight[idx, None]
            n = b["loss_mask"].sum()
            loss = objective.loss_sum(model(b), b["y"], weighted) / weighted.sum().clamp(min=1e-12)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            if averaged is not None:
                averaged.update(model)
            total, cells = total + loss.item() * int(n), cells + int(n)
        train_loss = total / max(cells, 1)
        # Scored under every observation regime it was trained for (0..observe_max known weeks), so the epoch
        # chosen is good for new products and for short-observation forecasts alike.
        scores = [evaluate(scored, va, objective, k, y_scale, cfg.target) for k in range(cfg.observe_max + 1) if va.n]
        val_loss = float(np.mean([loss for loss, _ in scores])) if va.n else train_loss
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                        "seconds": time.perf_counter() - t0})
        if va.n:  # a new product's pooled WAPE (no weeks known), what `sf tune` prunes on
            history[-1]["val_wape"] = scores[0][1]
        if progress:
            progress(history[-1])
        if val_loss < best_loss or not va.n:  # no validation: the epoch count was chosen already
            best_loss, best_epoch = val_loss, epoch
            best_state = {k: v.detach().clone() for k, v in scored.state_dict().items()}
        elif epoch - best_epoch >= cfg.patience:
            break
    if best_state is None:
        raise SfError(f"{model_name}: training diverged (validation loss {history[-1]['val_loss']}); try a lower --lr")
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(model=model, model_name=model_name, dims=dims, hparams=hp, y_scale=y_scale,
                     loss=objective.loss, quantiles=objective.quantiles, history=history, best_epoch=best_epoch,
                     seed=seed, seconds=time.perf_counter() - t0, target=cfg.target, popularity=reference)


def recency_weights(inp: Inputs, half_life: float) -> torch.Tensor:
    """(N,) loss weights of the training products: 2^(-(latest release - release) / half_life), mean 1; all ones
    when half_life is 0. A product without a release date gets the mean weight."""
    if half_life <= 0 or not len(inp):
        return torch.ones(len(inp))
    days = inp.release.astype("datetime64[D]").astype("float64")
    known = ~np.isnat(inp.release)
    if not known.any():
        return torch.ones(len(inp))
    w = np.exp2(-(days[known].max() - days) / half_life)
    w = np.where(known, w, w[known].mean())
    return torch.as_tensor(w / w.mean(), dtype=torch.float32)


class WeightAverage:
    """An exponential moving average of a model's weights, with the usual warm-up: the decay after n steps is
    min(ema, (1 + n) / (10 + n)), so on a small catalogue (a few steps per epoch) the average follows the
    training weights instead of staying near the random initialisation."""

    def __init__(self, model: nn.Module, ema: float) -> None:
        import copy

        self.module, self.ema, self.steps = copy.deepcopy(model), ema, 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = min(self.ema, (1 + self.steps) / (10 + self.steps))
        self.steps += 1
        for mine, theirs in zip(self.module.parameters(), model.parameters()):
            mine.lerp_(theirs, 1 - decay)


@torch.no_grad()
def evaluate(model: nn.Module, data: TensorInputs, objective: Objective, observed: int = 0, y_scale: float = 1.0,
             target: str = "scaled") -> tuple[float, float]:
    """(mean loss per observed cell, pooled WAPE in % of units over the cells forecast) over `data`, in eval
    mode (no dropout); both from the same forward pass. The WAPE's point forecast is what `predict` returns."""
    model.eval()
    total, cells, error, units = 0.0, 0, 0.0, 0.0
    for idx in torch.arange(data.n).split(EVAL_BATCH):
        b = data.batch(idx, observed)
        raw = model(b)
        total += float(objective.loss_sum(raw, b["y"], b["loss_mask"]))
        cells += int(b["loss_mask"].sum())
        out = objective.outputs(raw)
        point = decode_target(out[..., point_index(objective.quantiles)], y_scale, target).clamp(min=0)
        actual, m = decode_target(b["y"], y_scale, target), b["loss_mask"].to(raw.dtype)
        error += float(((point - actual).abs() * m).sum())
        units += float((actual * m).sum())
    return total / max(cells, 1), 100.0 * error / units if units > 0 else float("nan")


@torch.no_grad()
def predict(fitted, inp: Inputs, observed_steps: int = 0, threads: int = 1) -> np.ndarray:
    """Forecasts in units, clipped at 0: (N, H) for a point model, (N, H, Q) for quantiles.

    `fitted` is a FitResult, anything with `.model`, `.y_scale`, `.loss`, `.quantiles` (a loaded
    checkpoint), or a run with `.models` (its seeds' forecasts are averaged).
    """
    if hasattr(fitted, "models"):
        return np.mean([predict(m, inp, observed_steps, threads) for m in fitted.models], axis=0)
    with cpu_threads(threads):
        return _predict(fitted, inp, observed_steps)


@torch.no_grad()
def predict_paths(fitted, inp: Inputs, observed_steps: int = 0, threads: int = 1) -> np.ndarray:
    """Every seed's every MC-dropout pass, not averaged: (N, P, H[, Q]) in units, P = seeds x passes (one pass
    per seed for a model without MC dropout). `predict` is their mean over P."""
    if hasattr(fitted, "models"):
        return np.concatenate([predict_paths(m, inp, observed_steps, threads) for m in fitted.models], axis=1)
    with cpu_threads(threads):
        return _predict(fitted, inp, observed_steps, keep_passes=True)


def _predict(fitted, inp: Inputs, observed_steps: int, keep_passes: bool = False) -> np.ndarray:
    model = fitted.model
    objective = Objective(fitted.loss, tuple(fitted.quantiles))
    target = getattr(fitted, "target", "scaled")
    data = TensorInputs.for_model(inp, model, fitted.y_scale, target)

    def forecast(idx: torch.Tensor) -> np.ndarray:
        raw = objective.outputs(model(data.batch(idx, observed_steps))).float().cpu().numpy()
        return np.clip(decode_target(raw, fitted.y_scale, target), 0, None)

    passes = model.mc_passes
    if passes and data.n:
        out = _mc_dropout(model, forecast, inp.product_ids, passes, int(getattr(fitted, "seed", 0)), keep_passes)
    else:
        model.eval()
        parts = [forecast(idx) for idx in torch.arange(data.n).split(EVAL_BATCH)]
        out = np.concatenate(parts) if parts else np.zeros((0, inp.horizon, fitted.dims.n_outputs), np.float32)
        out = out[:, None] if keep_passes else out
    return out if objective.loss == "quantile" else out[..., 0]


def _mc_dropout(model: nn.Module, forecast: Callable[[torch.Tensor], np.ndarray], keys: list, passes: int,
                seed: int, keep_passes: bool = False) -> np.ndarray:
    """Each product's forecast: the mean of `passes` forecasts with dropout on (MC dropout), in units.

    A product's draws are seeded from the fit's seed and the product's id, so its forecast depends on nothing
    else in the call (not on the rows around it) and the same product always gets the same forecast; the
    caller's random state is left as it was. A model whose draws are keyed per product (sf.keyed_noise) runs
    the passes of as many products per forward call as fit in EVAL_BATCH rows; any other model one product's
    passes per call, seeded from the global stream. `keep_passes`: every pass, (N, passes, ...), not their mean."""
    seeds = [MC_SEED + 1_000_003 * seed + zlib.crc32(str(key).encode()) for key in keys]
    device = next(model.parameters()).device
    out = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model.train()
        try:
            if getattr(model, "keyed_draws", False):
                per_call = max(1, EVAL_BATCH // passes)
                for start in range(0, len(keys), per_call):
                    chunk = seeds[start:start + per_call]
                    rows = torch.arange(start, start + len(chunk)).repeat_interleave(passes)
                    with keyed_noise.keyed_rows(chunk, passes):
                        f = forecast(rows)
                    f = f.reshape(len(chunk), passes, *f.shape[1:])
                    out.append(f if keep_passes else f.mean(axis=1))
                return np.concatenate(out)
            for i, s in enumerate(seeds):
                torch.manual_seed(s)
                f = forecast(torch.full((passes,), i, dtype=torch.long))
                out.append(f if keep_passes else f.mean(axis=0))
        finally:
            model.eval()
    return np.stack(out)
