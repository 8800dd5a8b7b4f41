"""The studies' runner: many (config, seed) jobs on the engine, in a pool of forked worker processes.

Every job reads the same prepared train / validation / test parts (sf.forecast.engine.Prepared), made once
per feature store, and is one `engine.train_seed` (or `engine.fit_baseline`) call. Runs go to a pool of
forked workers, one torch thread each: forking shares the feature arrays copy-on-write, so N workers still
hold one copy of them (see bench/ablate.py for the timing of pool vs. one process). Results are plain dicts,
so the same code serves a one-process run, and `engine="ray"` runs each job as a Ray task on a cluster
(sf.studies.ray_jobs).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import dataclass, replace
from typing import Callable, Iterable

import numpy as np
from rich.console import Console

from sf.forecast import engine
from sf.forecast.config import TrainConfig
from sf.forecast.engine import Prepared
from sf.forecast.inputs import Inputs
from sf.errors import SfError
from sf.progress import RunProgress

ENGINES = ("local", "ray")


# ---------------------------------------------------------------- perturbations (sanity controls)


def shuffle_features(inp: Inputs, seed: int = 0) -> Inputs:
    """Every product gets another product's image and text features (one permutation for both):
    a model that really reads its features must get worse."""
    perm = np.random.default_rng(seed).permutation(len(inp))
    keys = ("image_grid", "image_pooled", "has_image", "text_tokens", "text_mask", "text_pooled", "has_text")
    return replace(inp, **{k: getattr(inp, k)[perm] for k in keys})


PERTURBATIONS: dict[str, Callable[[Inputs, int], Inputs]] = {"shuffled_features": shuffle_features}


# ---------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Job:
    """One row's one seed. `kind` is "neural" (a registered model) or "baseline" (a registered baseline)."""

    row: str
    data: str  # key into the prepared data
    kind: str
    model: str
    cfg: TrainConfig
    seed: int = 0
    params: tuple = ()  # baseline constructor arguments / model hparams, as sorted (key, value) pairs
    perturb: str | None = None  # a PERTURBATIONS name, applied to val/test inputs at evaluation
    cost: float = 1.0  # relative expected run time: the pool starts the longest first, so no core idles at the end


_SHARED: dict[str, Prepared] = {}  # set before the pool forks; workers read it, never write it


def run_job(job: Job, shared: dict[str, Prepared] | None = None) -> dict:
    """Fit and score one job on the engine; returns per-split metrics (units) and what ran on which products."""
    data = (shared if shared is not None else _SHARED)[job.data]
    perturb = PERTURBATIONS[job.perturb] if job.perturb else None
    if job.kind == "baseline":
        res = engine.fit_baseline(job.model, data, dict(job.params), seed=job.seed, perturb=perturb)
    else:
        res = engine.train_seed(job.cfg, data, job.seed, model=job.model, hparams=dict(job.params) or None,
                                perturb=perturb)
    # The forecasts travel back (float32, a few hundred kB on VISUELLE) so the study can score each row's seed
    # ensemble, the forecast `sf predict` gives; the summary keeps only that score.
    return {"row": job.row, "data": job.data, "model": job.model, "seed": job.seed, "split_id": data.split_id,
            "best_epoch": res.best_epoch, "epochs_run": res.epochs_run, **res.metrics, "seconds": res.seconds,
            "forecasts": {k: np.asarray(v, np.float32) for k, v in res.forecasts.items()}, "quantiles": res.quantiles}


def _run_in_worker(job: Job) -> dict:
    return run_job(job)


def default_workers() -> int:
    """One worker per usable core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def study_workers(workers: int, engine: str = "local") -> int:
    """How many jobs run at once: `workers` (0: one per core), or on Ray every CPU of the cluster."""
    if engine not in ENGINES:
        raise SfError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if engine == "ray":
        from sf.studies.ray_jobs import cluster_cpus

        return cluster_cpus()
    return workers or default_workers()


def run_jobs(jobs: list[Job], shared: dict[str, Prepared], workers: int = 0, console: Console | None = None,
             description: str = "runs", progress: bool = True, engine: str = "local") -> list[dict]:
    """Run every job, in a pool of `workers` forked processes (0: one per core; 1: in this process), or
    with engine="ray" as Ray tasks (one CPU each; `workers` is then the cluster's CPUs, see study_workers).

    Neural jobs run in the pool; baselines (a second or less each) run here while the pool works."""
    if engine == "ray":
        from sf.studies.ray_jobs import run_on_ray

        results_ray: list[dict] = []
        with RunProgress(console, progress, len(jobs), description) as bar:
            def collect(res: dict) -> None:
                results_ray.append(res)
                bar.advance(res["row"], res["seed"], res.get("val", {}).get("WAPE"))

            run_on_ray(jobs, shared, collect)
        return results_ray
    workers = workers or default_workers()
    neural = [j for j in jobs if j.kind != "baseline"]
    if workers > 1 and neural and _uses_cuda(neural):
        workers = 1  # CUDA does not survive fork; one process drives the GPU
    if workers > 1 and "fork" not in mp.get_all_start_methods():
        workers = 1
    results: list[dict] = []

    def done(res: dict) -> None:
        results.append(res)
        bar.advance(res["row"], res["seed"], res.get("val", {}).get("WAPE"))

    with RunProgress(console, progress, len(jobs), description) as bar:
        if workers == 1 or len(neural) <= 1:
            for job in jobs:
                done(run_job(job, shared))
            return results
        _SHARED.clear()
        _SHARED.update(shared)
        try:
            with mp.get_context("fork").Pool(min(workers, len(neural))) as pool:
                longest_first = sorted(neural, key=lambda j: -j.cost)  # stable: ties keep their order
                pending = pool.imap_unordered(_run_in_worker, longest_first)
                for job in jobs:
                    if job.kind == "baseline":
                        done(run_job(job, shared))
                for res in pending:
                    done(res)
        finally:
            _SHARED.clear()
    return results


def _uses_cuda(jobs: Iterable[Job]) -> bool:
    import torch

    return any(j.cfg.device == "cuda" or (j.cfg.device == "auto" and torch.cuda.is_available()) for j in jobs)
