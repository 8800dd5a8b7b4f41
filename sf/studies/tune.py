"""`sf tune`: hyper-parameter search over the cached features with Optuna — the two-stage design's pay-off.

The store is read once into memory and split once by the engine (`engine.prepare`, the split `sf train`
uses); every trial is `engine.train_seed` per seed (the same fit, early stopping and batching as `sf train`)
and is scored by pooled WAPE on the validation products, averaged over `seeds` seeds. The test products
are dropped before the first trial (`validation_only`): tuning never sees them.

    objective(trial) = mean over seeds s of WAPE_val( fit(config + trial's choices, seed s) )

Pruning: after every epoch the trial reports its mean validation WAPE so far (the finished seeds, and the
running seed's epoch that early stopping keeps so far, scored in one pass without dropout: sf's MC-dropout
forecast is scored once, at the end); the median pruner stops a trial mid-fit once it is worse than the median of
earlier trials at the same epoch of the same seed (after a warm-up of PRUNE_WARMUP epochs). The study lives in `study.db` (SQLite) in the output
folder, so an interrupted search resumes where it stopped and several worker processes (forked, sharing
the in-memory features) feed one study. At the end: `best.toml` (the base settings plus the best trial's,
a file `sf train --config` takes), `trials.csv`, `study.png` (validation WAPE per trial, best so far).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np

from sf.data.atomic import atomic_write_text
from sf.errors import SfError
from sf.forecast import engine
from sf.forecast.config import TrainConfig

# ---------------------------------------------------------------- search spaces (one per model)

SearchSpace = Callable[[object], dict]  # trial -> TrainConfig overrides; model arguments under "hparams"


def _common(trial) -> dict:
    # Not searched, settled on VISUELLE's validation split (docs/tuning-log.md): L1, the loss pooled WAPE
    # rewards (MSE's median 66.9 vs 62.4 over 29 trials), and no weight averaging (every averaged trial lost).
    return {"lr": trial.suggest_float("lr", 1e-4, 3e-3, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64]),
            "weight_decay": trial.suggest_categorical("weight_decay", [0.0, 1e-5, 1e-4]),
            "target": trial.suggest_categorical("target", ["log", "scaled"]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.4)}


def _sf(trial) -> dict:
    # Attention fusions only: sf stays of the paper's family (words <-> image regions feeding a recurrent head).
    return {**_common(trial), "hidden": trial.suggest_categorical("hidden", [16, 30, 48, 64]),
            "fusion": trial.suggest_categorical("fusion", ["i2t_image", "biattn", "t2i", "i2t"]),
            "popularity": trial.suggest_categorical("popularity", [False, True]),
            # Modality and fused-vector dropout gained on VISUELLE and cost the demo; the head's skip did the
            # reverse (tuning log, rows 61, 65 and 88): choices for a study of the catalogue at hand. A trial fixes
            # fused dropout (one fit per seed) where sf train's defaults fit both and choose on validation (row 103).
            # With modality dropout on, the fused vector is dropped at the larger of the two rates.
            "hparams": {"layers": trial.suggest_categorical("layers", [1, 2]),
                        "modality_dropout": trial.suggest_categorical("modality_dropout", [0.0, 0.2]),
                        "fused_dropout": trial.suggest_categorical("fused_dropout", [0.0, 0.2]),
                        "skip": trial.suggest_categorical("skip", [False, True])}}


def _gtm(trial) -> dict:
    return {**_common(trial), "hidden": trial.suggest_categorical("hidden", [16, 32, 64]),
            "hparams": {"heads": trial.suggest_categorical("heads", [2, 4]),
                        "layers": trial.suggest_categorical("layers", [1, 2])}}


def _ekambaram(trial) -> dict:
    return {**_common(trial), "hidden": trial.suggest_categorical("hidden", [16, 32, 64])}


SPACES: dict[str, SearchSpace] = {"sf": _sf, "gtm": _gtm, "ekambaram": _ekambaram}


def apply(base: TrainConfig, overrides: dict) -> TrainConfig:
    """The base config with a trial's choices (hparams merged, not replaced)."""
    over = dict(overrides)
    hp = {**base.hparams, **over.pop("hparams", {})}
    return replace(base, **over, hparams=hp)


# ---------------------------------------------------------------- the study


@dataclass(frozen=True)
class TuneConfig:
    features: Path
    data: Path
    model: str = "sf"
    trials: int = 50  # in all, counting finished and pruned trials of a resumed study
    seeds: int = 2  # per trial; the objective is their mean validation WAPE
    workers: int = 1  # processes feeding the study
    timeout: float | None = None  # seconds; stop starting trials after it
    sampler_seed: int = 0
    out: Path | None = None  # default runs/tune_<store>_<model>
    train: TrainConfig = field(default_factory=TrainConfig)

    def resolved(self) -> "TuneConfig":
        out = self.out or Path("runs") / f"tune_{Path(self.features).stem}_{self.model}"
        if self.model not in SPACES:
            raise SfError(f"--model {self.model!r}: no search space; tunable: {', '.join(SPACES)}")
        for name in ("trials", "seeds", "workers"):
            if getattr(self, name) < 1:
                raise SfError(f"--{name}: must be >= 1, got {getattr(self, name)}")
        return replace(self, out=Path(out))


@dataclass
class TuneResult:
    out: Path
    best_value: float
    best_params: dict
    best_config: TrainConfig
    trials: list[dict]  # number, state, value, params, seconds
    seconds: float


# Epochs of the first seed before a trial may be pruned: a slow start (a small learning rate) is not a bad trial.
PRUNE_WARMUP = 5

_PREPARED: list[engine.Prepared] = []  # the validation-only data, set before workers fork


def validation_only(prepared: engine.Prepared) -> engine.Prepared:
    """The same prepared data with no test products: a trial cannot read (or be scored on) them."""
    test = prepared.parts["test"]
    return replace(prepared, parts={**prepared.parts, "test": test.take(np.zeros(0, dtype=np.int64))}, refit_parts=None)


def _pruner():
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=PRUNE_WARMUP)


def objective_for(cfg: TuneConfig, base: TrainConfig):
    from optuna import TrialPruned

    def objective(trial) -> float:
        run_cfg = apply(base, SPACES[cfg.model](trial))
        scores: list[float] = []
        for i, seed in enumerate(run_cfg.seed_list[: cfg.seeds]):
            kept = {"loss": float("inf"), "wape": float("nan")}  # the epoch early stopping keeps so far

            def report(h: dict, i=i, kept=kept) -> None:
                # Step i * epochs + epoch: the finished seeds with the WAPE of the epoch this seed keeps so far,
                # so a trial is compared with the others at the same epoch of the same seed and stops mid-fit.
                if h["val_loss"] < kept["loss"]:
                    kept.update(loss=h["val_loss"], wape=h.get("val_wape", float("nan")))
                if np.isfinite(kept["wape"]):
                    trial.report((sum(scores) + kept["wape"]) / (len(scores) + 1), i * run_cfg.epochs + h["epoch"])
                    if trial.should_prune():
                        raise TrialPruned()

            result = engine.train_seed(run_cfg, _PREPARED[0], seed, progress=report)
            scores.append(result.metrics["val"]["WAPE"])
        return float(np.mean(scores))

    return objective


def _optimize(args, on_trial=None) -> None:
    import optuna

    cfg, base, storage, name, worker = args
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The pruner is not stored with the study: each worker passes its own, or Optuna's default would prune.
    study = optuna.load_study(study_name=name, storage=storage, pruner=_pruner(),
                              sampler=optuna.samplers.TPESampler(seed=cfg.sampler_seed + worker))
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    if sum(t.state in done for t in study.get_trials(deepcopy=False)) >= cfg.trials:
        return  # a resumed study that is already complete
    callbacks = [optuna.study.MaxTrialsCallback(cfg.trials, states=done)]
    if on_trial is not None:
        callbacks.append(lambda study, trial: on_trial())
    study.optimize(objective_for(cfg, base), n_trials=cfg.trials, timeout=cfg.timeout, callbacks=callbacks,
                   catch=(SfError,))


def run_tune(cfg: TuneConfig, prepared: engine.Prepared | None = None, console=None, progress: bool = True) -> TuneResult:
    """Run (or resume) the study; `prepared` (from `engine.prepare`) skips reading the store again."""
    try:
        import optuna
    except ImportError:
        raise SfError("sf tune needs Optuna: pip install -e '.[tune]'") from None
    cfg = cfg.resolved()
    t0 = time.perf_counter()
    # Trials are scored on validation only, so none refits (best.toml keeps the refit setting for `sf train`).
    base = replace(cfg.train, model=cfg.model, features=cfg.features, data=cfg.data, seeds=cfg.seeds, threads=1,
                   refit=False)
    if prepared is None:
        prepared = engine.prepare(base, label=Path(cfg.data).name)
    _PREPARED[:] = [validation_only(prepared)]

    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(out / 'study.db').resolve()}"
    name = f"sf-tune-{cfg.model}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize", pruner=_pruner(),
                                load_if_exists=True)
    _check_resume(study, cfg, base)
    jobs = [(cfg, base, storage, name, w) for w in range(cfg.workers)]
    stop = _Progress(study, cfg.trials, console, progress)
    try:
        if cfg.workers == 1 or "fork" not in mp.get_all_start_methods():
            _optimize(jobs[0], on_trial=stop.update)
        else:
            with mp.get_context("fork").Pool(cfg.workers) as pool:
                pending = pool.map_async(_optimize, jobs)
                while not pending.ready():
                    stop.update()
                    pending.wait(2)
                pending.get()
    finally:
        stop.close()
        _PREPARED.clear()
    study = optuna.load_study(study_name=name, storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise SfError(f"{out}: no trial finished (all pruned or failed); see {out / 'trials.csv'}")
    best = study.best_trial
    best_cfg = apply(replace(cfg.train, model=cfg.model, features=cfg.features, data=cfg.data),
                     SPACES[cfg.model](optuna.trial.FixedTrial(best.params)))
    trials = [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
               "seconds": (t.datetime_complete - t.datetime_start).total_seconds()
               if t.datetime_complete and t.datetime_start else None} for t in study.trials]
    result = TuneResult(out=out, best_value=float(best.value), best_params=dict(best.params), best_config=best_cfg,
                        trials=trials, seconds=time.perf_counter() - t0)
    _write(result, cfg)
    return result


def _check_resume(study, cfg: TuneConfig, base: TrainConfig) -> None:
    """A resumed study must tune the same model on the same settings, else its trials mean something else."""
    settings = {k: v for k, v in base.to_dict().items() if k not in ("threads", "device", "out", "name")}
    stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", settings)
        return
    # A setting added to sf after the study began ran at its default value (the behaviour before it existed).
    defaults = TrainConfig().to_dict()
    diff = sorted(k for k in settings if stored.get(k, defaults.get(k)) != settings[k])
    if diff:
        raise SfError(f"{cfg.out / 'study.db'}: holds a study with other settings ({', '.join(diff)}); "
                      f"choose another --out or delete it")


class _Progress:
    """A rich bar over finished trials (polled from the study), with seconds per trial and the best so far."""

    def __init__(self, study, total: int, console, enabled: bool) -> None:
        self.study, self.total, self.bar = study, total, None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("tune"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                                TimeElapsedColumn(), console=console or Console(stderr=True), transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task("tune", total=total, info="")
        self.t0 = time.perf_counter()

    def update(self) -> None:
        if self.bar is None:
            return
        trials = [t for t in self.study.get_trials(deepcopy=False) if t.state.is_finished()]
        values = [t.value for t in trials if t.value is not None and t.state.name == "COMPLETE"]
        per = (time.perf_counter() - self.t0) / max(len(trials), 1)
        info = f"{per:.0f} s/trial" + (f", best val WAPE {min(values):.2f}" if values else "")
        self.bar.update(self.task, completed=min(len(trials), self.total), info=info)

    def close(self) -> None:
        if self.bar is not None:
            self.update()
            self.bar.__exit__(None, None, None)


# ---------------------------------------------------------------- outputs


def to_toml(cfg: TrainConfig) -> str:
    """A TrainConfig as TOML that `sf train --config` reads back to the same config (None values omitted)."""
    from sf.plain import toml_value

    d = cfg.to_dict()
    return "".join(f"{f.name} = {toml_value(d[f.name])}\n" for f in fields(cfg) if d[f.name] is not None)


def _write(result: TuneResult, cfg: TuneConfig) -> None:
    import json

    import polars as pl

    out = result.out
    header = (f"# sf tune: best of {sum(t['state'] == 'COMPLETE' for t in result.trials)} finished trials "
              f"({cfg.model}), validation WAPE {result.best_value:.2f} (mean of {cfg.seeds} seeds)\n"
              f"# use: sf train --config {out / 'best.toml'}\n")
    atomic_write_text(out / "best.toml", header + to_toml(result.best_config))
    rows = [{"number": t["number"], "state": t["state"], "val_WAPE": t["value"], "seconds": t["seconds"],
             **{k: str(v) for k, v in t["params"].items()}} for t in result.trials]
    atomic_write_text(out / "trials.csv", pl.DataFrame(rows, infer_schema_length=None).write_csv())
    atomic_write_text(out / "tune.json", json.dumps(
        {"config": {k: str(v) for k, v in asdict(cfg).items() if k != "train"}, "train": cfg.train.to_dict(),
         "best_value": result.best_value, "best_params": result.best_params, "trials": result.trials,
         "seconds": result.seconds}, indent=2, default=str))
    plot_study(result, out / "study.png", f"sf tune {cfg.model}: validation WAPE per trial (mean of {cfg.seeds} seeds)")


def plot_study(result: TuneResult, path, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sf.forecast.plots import save

    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    done = [t for t in result.trials if t["state"] == "COMPLETE"]
    pruned = [t for t in result.trials if t["state"] == "PRUNED"]
    x = [t["number"] for t in done]
    y = [t["value"] for t in done]
    ax.scatter(x, y, s=14, label="finished trial")
    if pruned:
        ax.scatter([t["number"] for t in pruned], [np.nan] * len(pruned), s=14)  # keeps the axis honest
        for t in pruned:
            ax.axvline(t["number"], color="0.85", lw=0.6, zorder=0)
    order = np.argsort(x)
    ax.plot(np.asarray(x)[order], np.minimum.accumulate(np.asarray(y)[order]), color="C3", label="best so far")
    ax.set_xlabel("trial (grey lines: pruned)")
    ax.set_ylabel("validation WAPE (pooled, %)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)
