"""The studies' jobs as Ray tasks (`sf ablate/compare --engine ray`): each (row, seed) is one task on the
cluster, one CPU and one torch thread each — the local pool's setting, so the same seeds give the same
numbers. The prepared data (one per feature store) goes to the object store once; every task on a node
reads that node's copy."""

from __future__ import annotations

from sf.forecast.engine import Prepared
from sf.ray_cluster import connect
from sf.studies.pool import Job, run_job


def _run(job: Job, prepared: Prepared) -> dict:
    return run_job(job, {job.data: prepared})


def cluster_cpus() -> int:
    """CPUs of the cluster (joined or started here): how many jobs run at once."""
    return max(1, int(connect().cluster_resources().get("CPU", 1)))


def run_on_ray(jobs: list[Job], shared: dict[str, Prepared], done) -> None:
    """Submit every job (longest first), call `done(result)` as each finishes. Ray retries a task whose
    worker died."""
    ray = connect()
    refs = {name: ray.put(prepared) for name, prepared in shared.items()}
    task = ray.remote(num_cpus=1, max_retries=2)(_run)
    pending = [task.remote(job, refs[job.data]) for job in sorted(jobs, key=lambda j: -j.cost)]
    while pending:
        finished, pending = ray.wait(pending, num_returns=1)
        done(ray.get(finished[0]))
