"""The engine under `sf ablate` and `sf compare`: one split, many (model, seed) runs, the same metrics.

Every run reads the same in-memory train / validation / test Inputs (`Shared`), made once per feature
store. Runs go to a pool of forked worker processes, one torch thread each: forking shares the feature
arrays copy-on-write, so N workers still hold one copy of them (see bench/ablate.py for the timing of
pool vs. one process). Results are plain dicts, so the same code serves a one-process run.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

import numpy as np
import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sf.data.atomic import atomic_write_text
from sf.errors import SfError
from sf.forecast.config import TrainConfig
from sf.forecast.inputs import Inputs, with_training_vocab
from sf.forecast.metrics import POINT_METRICS, aggregate, compute_metrics, hit_threshold
from sf.forecast.splits import describe, make_split, resolve_kind

SPLITS = ("train", "val", "test")
EVAL_SPLITS = ("val", "test")


# ---------------------------------------------------------------- shared data


@dataclass
class Shared:
    """One feature store's products, split once: what every run of a table reads."""

    label: str  # e.g. the store's backbone, or the dataset's name
    parts: dict[str, Inputs]  # train / val / test
    split_kind: str
    split_info: dict  # sizes, release ranges, shares without image / text (splits.describe)
    hit_threshold: float  # the training products' median total (metrics.hit_threshold)
    store: dict = field(default_factory=dict)  # store attributes worth recording (backbone, fingerprint...)

    @property
    def split_id(self) -> str:
        return split_id(self.parts)


def split_id(parts: dict[str, Inputs]) -> str:
    """A short hash of which products are in which part: equal ids, equal splits."""
    h = hashlib.sha256()
    for k in SPLITS:
        h.update(k.encode() + b"\0" + "\0".join(parts[k].product_ids).encode() + b"\1")
    return h.hexdigest()[:16]


def make_shared(label: str, inp: Inputs, cfg: TrainConfig, split: dict[str, np.ndarray] | None = None,
                store: dict | None = None) -> Shared:
    """Split `inp` (or apply the given `split`, row indices into `inp`) and keep only the parts."""
    kind = resolve_kind(inp, cfg.split)
    if split is None:
        split = make_split(inp, kind, seed=cfg.split_seed, fractions=cfg.fractions)
    inp = with_training_vocab(inp, split["train"])
    parts = {k: inp.take(split[k]) for k in SPLITS}
    if len(parts["val"]) == 0:
        raise SfError(f"{label}: the {kind} split left no validation products ({len(inp)} in all); "
                      "early stopping and every choice need some")
    train = parts["train"]
    return Shared(label=label, parts=parts, split_kind=kind, split_info=describe(inp, split),
                  hit_threshold=hit_threshold(train.y, train.y_mask), store=dict(store or {}))


# ---------------------------------------------------------------- perturbations (sanity controls)


def shuffle_features(inp: Inputs, seed: int = 0) -> Inputs:
    """Every product gets another product's image and text features (one permutation for both):
    a model that really reads its features must get worse."""
    perm = np.random.default_rng(seed).permutation(len(inp))
    keys = ("image_grid", "image_pooled", "has_image", "text_tokens", "text_mask", "text_pooled", "has_text")
    return replace(inp, **{k: getattr(inp, k)[perm] for k in keys})


PERTURBATIONS: dict[str, Callable[[Inputs, int], Inputs]] = {"shuffled_features": shuffle_features}


# ---------------------------------------------------------------- runs


@dataclass(frozen=True)
class Job:
    """One row's one seed. `kind` is "neural" (sf.forecast.base.MODELS) or "baseline" (baselines.BASELINES)."""

    row: str
    data: str  # key into the shared data
    kind: str
    model: str
    cfg: TrainConfig
    seed: int = 0
    params: tuple = ()  # baseline constructor arguments / model hparams, as sorted (key, value) pairs
    perturb: str | None = None  # a PERTURBATIONS name, applied to val/test inputs at evaluation
    cost: float = 1.0  # relative expected run time: the pool starts the longest first, so no core idles at the end


_SHARED: dict[str, Shared] = {}  # set before the pool forks; workers read it, never write it


def run_job(job: Job, shared: dict[str, Shared] | None = None) -> dict:
    """Fit and score one job; returns per-split metrics (units) and what was run on which products."""
    data = (shared if shared is not None else _SHARED)[job.data]
    parts = data.parts
    t0 = time.perf_counter()
    out: dict = {"row": job.row, "data": job.data, "model": job.model, "seed": job.seed,
                 "split_id": split_id(parts)}
    if job.kind == "baseline":
        from sf.forecast.baselines import create_baseline

        model = create_baseline(job.model, **dict(job.params)).fit(parts["train"])
        forecast = model.predict
        out.update(best_epoch=None, epochs_run=None)
    else:
        from sf.forecast.train import fit, predict

        fitted = fit(job.model, parts["train"], parts["val"], job.cfg, job.seed, hparams=dict(job.params) or None)
        forecast = lambda inp: predict(fitted, inp, threads=job.cfg.threads)  # noqa: E731
        out.update(best_epoch=fitted.best_epoch, epochs_run=len(fitted.history))
    for name in EVAL_SPLITS:
        part = parts[name]
        if len(part) == 0:
            continue
        if job.perturb:
            part = PERTURBATIONS[job.perturb](part, job.seed)
        yhat = forecast(part)
        quantiles = tuple(job.cfg.quantiles) if yhat.ndim == 3 else None  # a quantile-loss config from --config
        out[name] = compute_metrics(part.y, yhat, part.y_mask, data.hit_threshold, quantiles)
    out["seconds"] = time.perf_counter() - t0
    return out


def _run_in_worker(job: Job) -> dict:
    return run_job(job)


def default_workers() -> int:
    """One worker per usable core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_jobs(jobs: list[Job], shared: dict[str, Shared], workers: int = 0, console: Console | None = None,
             description: str = "runs", progress: bool = True) -> list[dict]:
    """Run every job, in a pool of `workers` forked processes (0: one per core; 1: in this process).

    Neural jobs run in the pool; baselines (a second or less each) run here while the pool works."""
    from sf.forecast import models, train  # noqa: F401  (imported once here, inherited by every forked worker)

    workers = workers or default_workers()
    neural = [j for j in jobs if j.kind != "baseline"]
    if workers > 1 and neural and _uses_cuda(neural):
        workers = 1  # CUDA does not survive fork; one process drives the GPU
    if workers > 1 and "fork" not in mp.get_all_start_methods():
        workers = 1
    results: list[dict] = []
    with _RunProgress(console, progress, len(jobs), description) as bar:
        if workers == 1 or len(neural) <= 1:
            for job in jobs:
                results.append(run_job(job, shared))
                bar.advance(results[-1])
            return results
        _SHARED.clear()
        _SHARED.update(shared)
        try:
            with mp.get_context("fork").Pool(min(workers, len(neural))) as pool:
                longest_first = sorted(neural, key=lambda j: -j.cost)  # stable: ties keep their order
                pending = pool.imap_unordered(_run_in_worker, longest_first)
                for job in jobs:
                    if job.kind == "baseline":
                        results.append(run_job(job, shared))
                        bar.advance(results[-1])
                for res in pending:
                    results.append(res)
                    bar.advance(res)
        finally:
            _SHARED.clear()
    return results


def _uses_cuda(jobs: Iterable[Job]) -> bool:
    import torch

    return any(j.cfg.device == "cuda" or (j.cfg.device == "auto" and torch.cuda.is_available()) for j in jobs)


class _RunProgress:
    """A rich bar over runs: done / total, seconds per run, elapsed."""

    def __init__(self, console: Console | None, enabled: bool, total: int, description: str) -> None:
        self.enabled, self.total, self.description = enabled, total, description
        self.console = console or Console(stderr=True)
        self.bar = None
        self.start = time.perf_counter()

    def __enter__(self):
        if self.enabled:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]}  {task.fields[last]}"), TimeElapsedColumn(),
                                console=self.console, transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task(self.description, total=self.total, rate="", last="")
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def advance(self, res: dict) -> None:
        if self.bar is None:
            return
        done = self.bar.tasks[0].completed + 1
        per = (time.perf_counter() - self.start) / done
        wape = res.get("val", {}).get("WAPE")
        last = f"{res['row']} seed {res['seed']}: val WAPE {wape:.1f}" if wape is not None else res["row"]
        self.bar.update(self.task, advance=1, rate=f"{per:.1f} s/run", last=last)


# ---------------------------------------------------------------- summaries


def summarise(results: list[dict], rows: list[str], data: str | None = None) -> list[dict]:
    """Per row (in the given order): per split, mean and std over seeds of every metric, plus the per-seed values."""
    out = []
    for row in rows:
        mine = [r for r in results if r["row"] == row and (data is None or r["data"] == data)]
        if not mine:
            continue
        mine.sort(key=lambda r: r["seed"])
        entry = {"row": row, "data": mine[0]["data"], "model": mine[0]["model"], "seeds": [r["seed"] for r in mine],
                 "split_ids": sorted({r["split_id"] for r in mine}),
                 "seconds": float(np.mean([r["seconds"] for r in mine])),
                 "best_epoch": [r["best_epoch"] for r in mine], "epochs_run": [r["epochs_run"] for r in mine]}
        for name in EVAL_SPLITS:
            scores = [r[name] for r in mine if name in r]
            if scores:
                agg = aggregate(scores)
                entry[name] = {"mean": {k: v["mean"] for k, v in agg.items()},
                               "std": {k: v["std"] for k, v in agg.items()}, "per_seed": scores}
        out.append(entry)
    return out


def report_split(summary: list[dict]) -> str:
    """The split the tables report: test when there is one, else validation."""
    return "test" if any("test" in s for s in summary) else "val"


def table_frame(summary: list[dict], extra: dict[str, list] | None = None) -> pl.DataFrame:
    """One line per (row, split): mean and std of every point metric (CSV form)."""
    lines = []
    for i, s in enumerate(summary):
        for name in EVAL_SPLITS:
            if name not in s:
                continue
            line = {"row": s["row"], "data": s["data"], "model": s["model"], "split": name, "seeds": len(s["seeds"])}
            line.update({k: v[i] for k, v in (extra or {}).items()})
            for m in POINT_METRICS:
                line[f"{m}_mean"] = s[name]["mean"].get(m)
                line[f"{m}_std"] = s[name]["std"].get(m)
            line["seconds_per_run"] = s["seconds"]
            lines.append(line)
    return pl.DataFrame(lines, infer_schema_length=None)


def write_csv(df: pl.DataFrame, path) -> None:
    atomic_write_text(path, df.write_csv())


def metrics_table(title: str, split: str, lead: list[tuple[str, dict]]) -> Table:
    """The ablation's and the comparison's table: `lead` columns, every metric on `split`, then validation
    WAPE (where the table reports test) and seconds per run. Rows follow `cell()`'s formatting."""
    table = Table(title=title)
    for name, options in lead:
        table.add_column(name, **options)
    for m in METRIC_FORMATS:
        table.add_column(f"{m}{' (pooled)' if m == 'WAPE' else ''}", justify="right")
    if split != "val":
        table.add_column("val WAPE", justify="right", style="dim")
    table.add_column("s/run", justify="right", style="dim")
    return table


def cell(summary_row: dict, split: str, metric: str, fmt: str = "{:.1f}") -> str:
    part = summary_row.get(split)
    if not part or part["mean"].get(metric) is None or np.isnan(part["mean"][metric]):
        return "–"
    mean, std = part["mean"][metric], part["std"][metric]
    return f"{fmt.format(mean)} ± {fmt.format(std)}" if len(summary_row["seeds"]) > 1 else fmt.format(mean)


METRIC_FORMATS = {"MAE": "{:.2f}", "RMSE": "{:.2f}", "R2": "{:.3f}", "AUC": "{:.3f}", "Accuracy": "{:.3f}",
                  "WAPE": "{:.1f}"}


# ---------------------------------------------------------------- plots


def bar_chart(summary: list[dict], split: str, path, title: str, metrics: tuple[str, ...] = ("WAPE", "MAE")):
    """Horizontal bars of each row's mean with ± std error bars, one panel per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sf.forecast.plots import save

    rows = [s for s in summary if split in s]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 + 4 * len(metrics), 0.4 * len(rows) + 1.6), squeeze=False,
                             sharey=True, layout="constrained")
    y = np.arange(len(rows))
    for ax, m in zip(axes[0], metrics):
        mean = np.array([s[split]["mean"].get(m, np.nan) for s in rows], dtype=float)
        std = np.array([s[split]["std"].get(m, 0.0) for s in rows], dtype=float)
        ax.barh(y, mean, xerr=std, color=[f"C{i % 10}" for i in range(len(rows))], alpha=0.8, capsize=3)
        ax.set_yticks(y, [s["row"] for s in rows], fontsize=8)
        ax.set_xlabel(f"{m} ({split}; mean ± std over seeds)" + (" — lower is better" if m in ("WAPE", "MAE") else ""))
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].invert_yaxis()  # shared: first row on top in both panels
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def step_chart(panels: dict[str, list[dict]], split: str, path, title: str):
    """Pooled WAPE per horizon step, one line per row, one panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sf.forecast.plots import save

    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False, layout="constrained")
    for ax, (label, summary) in zip(axes[0], panels.items()):
        for i, s in enumerate(x for x in summary if split in x):
            steps = np.asarray(s[split]["mean"].get("WAPE_per_step", []), dtype=float)
            std = np.asarray(s[split]["std"].get("WAPE_per_step", np.zeros_like(steps)), dtype=float)
            if steps.size == 0:
                continue
            t = np.arange(1, steps.size + 1)
            ax.plot(t, steps, marker="o", ms=3, color=f"C{i % 10}", label=s["row"])
            if len(s["seeds"]) > 1:
                ax.fill_between(t, steps - std, steps + std, color=f"C{i % 10}", alpha=0.12)
        ax.set_xlabel("horizon step")
        ax.set_ylabel(f"pooled WAPE, {split} (%)")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)
