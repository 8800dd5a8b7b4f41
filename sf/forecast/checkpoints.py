"""Checkpoints that rebuild a model from the file alone (nanoGPT style), and a run folder's seeds loaded back.

    checkpoints/seed{S}.pt   model name, dims, hparams, state_dict, y_scale, loss + quantiles, config, store
                             fingerprint, attribute vocabulary, horizon, history, the validated choice made

A model remembers the fingerprint of the store it was trained on; `check_fingerprint` refuses another
store at the boundary, saying what differs.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sf.cache import schema as S
from sf.data.atomic import atomic_write
from sf.errors import SfError
from sf.forecast.models import Dims, create_model, model_entry
from sf.forecast.config import TrainConfig, config_from_dict
from sf.forecast.fit import FitResult, predict
from sf.forecast.popularity import PopularityReference
from sf.forecast.inputs import Inputs

CHECKPOINT_FORMAT = "sf-checkpoint/1"


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
    """What a model must remember of its store: the fingerprint, its fields, the feature shapes, and the
    precision and device it was made with (not part of the fingerprint: they move features only by float
    rounding, which `precision_note` reports)."""
    keep = (*S.FINGERPRINT_KEYS, "grid_h", "grid_w", "channels", "text_dim", "text_len", "pooled_only", "precision",
            "device")
    out = {k: S._plain(attrs[k]) for k in keep if k in attrs}
    out["fingerprint"] = str(attrs.get("fingerprint") or S.fingerprint(attrs))
    return out


# Defaults a model had before they changed, for checkpoints that did not record them: sf's head had one
# BiLSTM layer until 2026-11-30 and forecast in one pass without dropout until 2026-11-30 (mc_passes); checkpoints
# record every constructor argument since (resolved_hparams). Arguments added later are absent from those records:
# fused_dropout (2026-12-01) was 0 before it existed.
LEGACY_DEFAULTS: dict[str, dict] = {"sf": {"layers": 1, "mc_passes": 0, "fused_dropout": 0.0}}


def resolved_hparams(model_name: str, hparams: dict) -> dict:
    """The model's constructor arguments with its defaults filled in, so a later change of a default cannot
    rebuild a saved model differently."""
    params = inspect.signature(model_entry(model_name).cls.__init__).parameters
    defaults = {k: p.default for k, p in params.items()
                if k not in ("self", "dims") and p.default is not inspect.Parameter.empty}
    return {**defaults, **hparams}


def save_checkpoint(path: str | Path, fitted: FitResult, cfg: TrainConfig, store_attrs: dict,
                    attribute_vocab: dict, attribute_names: list | None = None, exog_names: list | None = None,
                    horizon: int | None = None) -> Path:
    """Everything needed to rebuild and use the model without the code that trained it."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model_name": fitted.model_name,
        "dims": fitted.dims.to_dict(),
        "hparams": resolved_hparams(fitted.model_name, fitted.hparams),
        "state_dict": {k: v.detach().cpu() for k, v in fitted.model.state_dict().items()},
        "y_scale": fitted.y_scale,
        "target": fitted.target,
        "popularity": None if fitted.popularity is None else fitted.popularity.to_dict(),
        "loss": fitted.loss,
        "quantiles": list(fitted.quantiles),
        "history": fitted.history,
        "best_epoch": fitted.best_epoch,
        "selection": None if fitted.selection is None else {
            "history": fitted.selection["history"],
            "val": None if fitted.selection["val"] is None else np.asarray(fitted.selection["val"]).tolist()},
        "choice": fitted.choice,
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
    hparams = {**LEGACY_DEFAULTS.get(ck["model_name"], {}), **ck["hparams"]}
    model = create_model(ck["model_name"], dims, **hparams)
    model.popularity_reference = PopularityReference.from_dict(ck["popularity"]) if ck.get("popularity") else None
    model.load_state_dict(ck["state_dict"])
    model.to(device).eval()
    return LoadedModel(
        model=model, model_name=ck["model_name"], dims=dims, hparams=hparams, y_scale=ck["y_scale"],
        loss=ck["loss"], quantiles=tuple(ck["quantiles"]), history=ck["history"], best_epoch=ck["best_epoch"],
        seed=ck["seed"], seconds=ck["seconds"], target=ck.get("target", "scaled"), selection=ck.get("selection"),
        choice=ck.get("choice"),
        popularity=model.popularity_reference, config=config_from_dict(ck["config"]), store=ck["store"],
        attribute_vocab=ck["attribute_vocab"], attribute_names=ck["attribute_names"], exog_names=ck["exog_names"],
        horizon=ck["horizon"], path=path,
    )


def checkpoint_paths(run_dir: Path) -> list[Path]:
    """A run folder's seed checkpoints in seed order."""
    return sorted((run_dir / "checkpoints").glob("seed*.pt"), key=lambda p: int(p.stem[4:]))


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """A run folder (every seed's checkpoint) or one checkpoint file, rebuilt from the files alone."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        paths = [run_dir]
    else:
        paths = checkpoint_paths(run_dir)
        if not paths:
            raise SfError(f"{run_dir}: no checkpoints found (expected {run_dir}/checkpoints/seed*.pt; run `sf train`)")
    models = [load_checkpoint(p, device) for p in paths]
    if not run_dir.is_file():
        from sf.forecast.run_state import check_whole

        check_whole(run_dir, paths, models[0].config.seed_list if models[0].config else None)
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


def precision_note(run_or_ckpt, store_attrs: dict, path: str | Path = "store") -> str | None:
    """A line saying that a store was extracted in another precision than the model's training store, else None.

    Such features fit the model (same fingerprint) but differ by bf16/fp16 rounding, up to ~8% of a
    pooled vector (docs/numerics.md), so forecasts may move a little. Checkpoints from before precision was recorded: None."""
    trained = S._plain(run_or_ckpt.store.get("precision"))
    now = S._plain(store_attrs.get("precision"))
    if not trained or not now or trained == now:
        return None
    made_on = S._plain(run_or_ckpt.store.get("device")) or "?"
    return (f"{path} holds {now} features but the model was trained on {trained} features (made on {made_on}): "
            f"they fit it but differ by bf16 rounding (up to ~8% of a vector, docs/numerics.md), so forecasts may move")
