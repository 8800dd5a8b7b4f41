"""`sf compare`: the paper's Table 2 (models × metrics) in one harness, and Table 3 (across data sets).

Every contender reads the same cached features and is scored on the same split, with the same metrics
(units) and the same seeds:

    mean_curve, attribute_mean, knn_image, knn_attributes, knn_both   sf/forecast/baselines (deterministic:
                                                                       one run each, no ± column)
    gtm        GTM-Transformer style (sf/forecast/models/gtm.py)
    ekambaram  attention-based multimodal encoder-decoder RNN (sf/forecast/models/ekambaram.py)
    sf         sf's model with the config's fusion and head (i2t_image + bilstm by default)

The neural models are trained by the same engine as `sf train` (`sf.forecast.engine.train_seed`: early
stopping on validation only).
With several data folders, each gets its own store and split, and one table lines them up (Table 3).
`shuffled_control` adds "sf (shuffled features)": sf trained normally, then scored with every product's
image and text features given to another product — if it is not clearly worse than sf, sf is not using
what the features say.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from sf.cache.reader import load_features
from sf.data.atomic import atomic_write_text
from sf.data.contract import load_dataset
from sf.errors import SfError
from sf.forecast import engine
from sf.forecast.config import TrainConfig, inputs_label
from sf.plain import plain
from sf.studies import pool
from sf.studies import tables as T

DEFAULT_MODELS = ("mean_curve", "attribute_mean", "knn_image", "knn_attributes", "knn_both", "lightgbm", "lightgbm_pca",
                  "gtm", "ekambaram", "sf")
SF = "sf"
OUTPUTS = ("config.json", "compare.csv", "compare.json", "compare.png", "compare_steps.png")


@dataclass(frozen=True)
class Contender:
    """One row of the table: a registered baseline or neural model, optionally under a perturbation."""

    name: str  # the row label
    model: str
    kind: str  # "baseline" | "neural"
    params: tuple = ()  # constructor arguments (baselines) / hparams (models), sorted (key, value) pairs
    perturb: str | None = None  # a studies.pool.PERTURBATIONS name, applied to val/test inputs
    description: str = ""


def contenders(names: list[str] | tuple[str, ...], shuffled_control: bool = False) -> list[Contender]:
    """Registry lookups: a baseline name or a model name; anything else is an error listing both."""
    from sf.forecast.baselines import BASELINES
    from sf.forecast.models import MODELS

    names = available(names)
    out = []
    for name in names:
        if name in BASELINES:
            out.append(Contender(name, name, "baseline", description=BASELINES[name].description))
        elif name in MODELS:
            out.append(Contender(name, name, "neural", description=MODELS[name].description))
        else:
            raise SfError(f"--models: unknown model {name!r}; baselines: {', '.join(BASELINES)}; "
                          f"models: {', '.join(sorted(MODELS))}")
    if len({c.name for c in out}) != len(out):
        raise SfError(f"--models: a model is named twice ({', '.join(names)})")
    if shuffled_control:
        out.append(Contender("sf (shuffled features)", SF, "neural", perturb="shuffled_features",
                             description="sf scored with every product's image/text features permuted"))
    return out


def available(names) -> tuple[str, ...]:
    """`names` without the LightGBM baselines when lightgbm is not installed and `names` are the defaults (said by
    `skipped_note`); asked for by name, they are an error that says how to install it."""
    from sf.forecast.baselines import gbm

    if gbm.available():
        return tuple(names)
    if tuple(names) == DEFAULT_MODELS:
        return tuple(n for n in names if n not in gbm.NAMES)
    for n in names:
        if n in gbm.NAMES:
            raise SfError(f"--models {n}: {gbm.missing_reason()}")
    return tuple(names)


def skipped_note(names) -> list[str]:
    """The line that says which default rows were left out, and why (empty when none was)."""
    from sf.forecast.baselines import gbm

    left = [n for n in names if n not in available(names)]
    return [f"{', '.join(left)} skipped: {gbm.missing_reason()}"] if left else []


@dataclass(frozen=True)
class CompareConfig:
    data: tuple[Path, ...]  # one or more dataset folders
    features: tuple[Path, ...] = ()  # one store per data folder, in the same order; default cache/<name>_<backbone>.h5
    backbone: str = "resnet101"  # names the default stores
    models: tuple[str, ...] = DEFAULT_MODELS
    shuffled_control: bool = False
    workers: int = 0  # 0: one process per core
    engine: str = "local"  # local (a pool of processes here) | ray (one Ray task per row and seed)
    out: Path | None = None  # default runs/compare_<dataset names>
    train: TrainConfig = field(default_factory=TrainConfig)
    allow_stale_features: bool = False  # use features whose image/text changed since extraction
    # The same tuning budget for every neural model: `sf tune` with this many trials (validation only) per model
    # and data set before its seeds are trained with the best settings found. 0: every model on `train`.
    tune_trials: int = 0
    tune_seeds: int = 2

    def to_dict(self) -> dict:
        return plain(self)


@dataclass
class CompareResult:
    out: Path
    tables: dict[str, list[dict]]  # data label -> summary rows (contender order)
    splits: dict[str, dict]
    notes: list[str]
    seconds: float
    workers: int
    contenders: list[Contender]
    exog_future: bool = False  # known-future covariates (cfg.train.exog_future), said in every table


def resolve_stores(cfg: CompareConfig) -> list[tuple[Path, Path]]:
    """(data folder, store) pairs; a missing store is an error that names the `sf extract` call making it."""
    if not cfg.data:
        raise SfError("sf compare needs at least one --data folder")
    if cfg.features and len(cfg.features) != len(cfg.data):
        raise SfError(f"give one --features per --data, in the same order ({len(cfg.features)} stores for "
                      f"{len(cfg.data)} data folders), or none to use cache/<name>_{cfg.backbone}.h5")
    pairs = []
    for i, data in enumerate(cfg.data):
        if cfg.features:
            store = Path(cfg.features[i])
        else:
            name = load_dataset(data).meta.name
            store = Path("cache") / f"{name}_{cfg.backbone}.h5"
        if not store.exists():
            raise SfError(f"{store}: feature store not found; make it with: "
                          f"sf extract --data {data} --backbone {cfg.backbone} --out {store}")
        pairs.append((Path(data), store))
    return pairs


def _labels(pairs: list[tuple[Path, Path]]) -> list[str]:
    """Data set names for the table; the folder path where two share a name."""
    names = [load_dataset(d).meta.name for d, _ in pairs]
    return [n if names.count(n) == 1 else str(d) for n, (d, _) in zip(names, pairs)]


def run_compare(cfg: CompareConfig, console: Console | None = None, progress: bool = True,
                rows: list[Contender] | None = None) -> CompareResult:
    """Score every contender on every data set; `rows` overrides the registry lookup of `cfg.models`."""
    t0 = time.perf_counter()
    skipped = skipped_note(cfg.models) if rows is None else []
    rows = rows if rows is not None else contenders(cfg.models, cfg.shuffled_control)
    train_cfg = replace(cfg.train, model=SF)
    train_cfg.validate()
    pairs = resolve_stores(cfg)
    labels = _labels(pairs)
    shared, stores = {}, {}
    for label, (data, store) in zip(labels, pairs):
        feats = load_features(store)
        shared[label] = engine.prepare(train_cfg, feats, load_dataset(data), label=label,
                                       check_content=not cfg.allow_stale_features)
        info = {"path": str(store), "backbone": feats.attrs.get("backbone"), "fingerprint": feats.fingerprint}
        stores[label] = {k: str(v) for k, v in info.items()}
        del feats
    workers = pool.study_workers(cfg.workers, cfg.engine)
    out = Path(cfg.out) if cfg.out else Path("runs") / ("compare_" + "+".join(Path(d).name for d in cfg.data))
    tuned = _tune_each(cfg, rows, shared, pairs, labels, out, workers, console, progress) if cfg.tune_trials else {}
    results = pool.run_jobs(jobs_for(rows, labels, train_cfg, workers, tuned), shared, workers, console, "compare",
                            progress, engine=cfg.engine)

    tables, splits, notes = {}, {}, skipped
    for label in labels:
        summary = T.summarise(results, [c.name for c in rows], data=label, shared=shared)
        ids = {i for s in summary for i in s["split_ids"]}
        if len(ids) != 1:
            raise RuntimeError(f"{label}: models were scored on different splits: {sorted(ids)}")
        split = T.report_split(summary)
        for rank, s in enumerate(sorted(summary, key=lambda s: _wape(s, split)), start=1):
            s["rank"] = rank
        tables[label] = summary
        sh = shared[label]
        splits[label] = {"kind": sh.kind, "split_id": ids.pop(), "store": stores[label], **sh.info}
        notes += honesty_notes(label, summary, rows, split)
    result = CompareResult(out=out, tables=tables, splits=splits, notes=notes, seconds=time.perf_counter() - t0,
                           workers=workers, contenders=rows, exog_future=train_cfg.exog_future)
    _write(result, cfg)
    return result


def jobs_for(rows: list[Contender], labels: list[str], train_cfg: TrainConfig, workers: int,
          tuned: dict | None = None) -> list[pool.Job]:
    """Every contender on every data set: neural models once per seed (with their tuned settings, if any),
    deterministic baselines once."""
    threads = 1 if workers > 1 else train_cfg.threads
    jobs = []
    for label in labels:
        for c in rows:
            run_cfg = replace((tuned or {}).get((label, c.model), train_cfg), model=c.model, threads=threads)
            seeds = [train_cfg.seed] if c.kind == "baseline" else train_cfg.seed_list
            jobs += [pool.Job(c.name, label, c.kind, c.model, run_cfg, s, c.params, c.perturb) for s in seeds]
    return jobs


def _tune_each(cfg: CompareConfig, rows, shared, pairs, labels, out: Path, workers: int, console, progress) -> dict:
    """(data label, model) -> the TrainConfig `sf tune` found best on that data set's validation split, with the
    same number of trials for every neural model (studies under out/tune_<label>_<model>/)."""
    from sf.studies.tune import SPACES, TuneConfig, run_tune

    tuned = {}
    for label, (data, store) in zip(labels, pairs):
        for model in dict.fromkeys(c.model for c in rows if c.kind == "neural"):
            if model not in SPACES:
                raise SfError(f"--tune-trials: model {model!r} has no search space ({', '.join(SPACES)})")
            tcfg = TuneConfig(features=store, data=data, model=model, trials=cfg.tune_trials, seeds=cfg.tune_seeds,
                              workers=workers, out=out / f"tune_{_slug(label)}_{model}", train=cfg.train)
            result = run_tune(tcfg, prepared=shared[label], console=console, progress=progress)
            tuned[(label, model)] = replace(result.best_config, features=None, data=None, seeds=cfg.train.seeds)
    return tuned


def _wape(s: dict, split: str) -> float:
    v = s.get(split, {}).get("mean", {}).get("WAPE")
    return float("inf") if v is None or np.isnan(v) else v


def honesty_notes(label: str, summary: list[dict], rows: list[Contender], split: str) -> list[str]:
    """Say where a baseline (or another model) matches or beats sf, metric by metric."""
    by_name = {s["row"]: s for s in summary}
    mine = by_name.get(SF)
    if mine is None or split not in mine:
        return []
    notes = []
    lower_better = {"WAPE": True, "MAE": True, "RMSE": True, "R2": False, "AUC": False}
    for metric, lower in lower_better.items():
        ref = mine[split]["mean"].get(metric)
        if ref is None or np.isnan(ref):
            continue
        beaten = []
        for c in rows:
            other = by_name.get(c.name)
            if c.name == SF or c.perturb or other is None or split not in other:
                continue
            v = other[split]["mean"].get(metric)
            if v is not None and not np.isnan(v) and (v <= ref if lower else v >= ref):
                beaten.append(f"{c.name} ({v:.3g})")
        if beaten:
            notes.append(f"{label}: on {split} {metric}, sf ({ref:.3g}) is matched or beaten by {', '.join(beaten)}")
    return notes


def _write(result: CompareResult, cfg: CompareConfig) -> None:
    out = result.out
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
    frames = []
    for label, summary in result.tables.items():
        frames.append(T.table_frame(summary, {"dataset": [label] * len(summary), "rank": [s["rank"] for s in summary]}))
    import polars as pl

    T.write_csv(pl.concat(frames, how="diagonal_relaxed"), out / "compare.csv")
    payload = {"config": cfg.to_dict(), "splits": result.splits, "notes": result.notes, "seconds": result.seconds,
               "workers": result.workers,
               "models": {c.name: {"model": c.model, "kind": c.kind, "params": dict(c.params), "perturb": c.perturb,
                                   "description": c.description} for c in result.contenders},
               "tables": result.tables}
    atomic_write_text(out / "compare.json", json.dumps(payload, indent=2, default=str))
    first = next(iter(result.tables.values()))
    split = T.report_split(first)
    n = len(cfg.train.seed_list)
    for label, summary in result.tables.items():
        name = "compare.png" if len(result.tables) == 1 else f"compare_{_slug(label)}.png"
        T.bar_chart(summary, T.report_split(summary), out / name,
                    f"sf compare — {label}, {T.report_split(summary)} split, neural models over {n} seed(s)")
    T.step_chart(result.tables, split, out / "compare_steps.png",
                 f"pooled WAPE per horizon step ({split}; neural models: mean over {n} seed(s), band = ± std)")


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)


def compare_table(result: CompareResult, label: str) -> Table:
    """Table 2 for one data set: one row per contender, ranked by pooled WAPE on the reported split."""
    summary = result.tables[label]
    split = T.report_split(summary)
    sp = result.splits[label]
    n = max(len(s["seeds"]) for s in summary)
    table = T.study_table(f"{label}: {split} metrics in units — neural models mean ± std over {n} seed(s), "
                            f"baselines deterministic; {sp['kind']} split (same for every row); "
                            f"{inputs_label(result.exog_future)}", split,
                            [("rank", {"justify": "right"}), ("model", {})], ensemble := T.shows_ensemble(summary))
    for s in summary:
        cells = T.study_cells(s, split, ensemble)
        style = "bold" if s["row"] == SF else None
        table.add_row(str(s["rank"]), s["row"], *cells, f"{s['seconds']:.1f}", style=style)
    table.caption = (f"train {sp['train']['products']}, val {sp['val']['products']}, test {sp['test']['products']} "
                     f"products; store {sp['store'].get('path')}")
    return table


def across_table(result: CompareResult, metrics: tuple[str, ...] = ("WAPE", "MAE")) -> Table:
    """Table 3: one row per contender, its reported-split metrics on every data set side by side."""
    table = Table(title="Across data sets — each on its own store and split; neural models mean ± std over seeds; "
                        + inputs_label(result.exog_future))
    table.add_column("model")
    for label, summary in result.tables.items():
        split = T.report_split(summary)
        for m in metrics:
            table.add_column(f"{label}\n{split} {m}", justify="right")
    names = [c.name for c in result.contenders]
    for name in names:
        cells = []
        for summary in result.tables.values():
            s = next((x for x in summary if x["row"] == name), None)
            split = T.report_split(summary)
            cells += [T.cell(s, split, m) if s else "–" for m in metrics]
        table.add_row(name, *cells, style="bold" if name == SF else None)
    return table
