"""`sf extract --engine ray`: the same decode -> forward -> rows pieces (sf.extract.job.featurize), run by a
pool of Ray actors over `ray.data.read_binary_files`; the driver folds the workers' parts into the store.

    driver   plans like the local engine (content hashes, rows already in the store or its parts are
             skipped), checks local files (missing, folder, no permission: the reasons the local
             engine gives), and puts the row metadata (key, hash, text, listing position) in the
             object store
    read     read_binary_files over the unique image paths (Ray read tasks); rows without a file
             join as empty rows, so their text is encoded by the workers too
    actors   map_batches with an actor pool (`--concurrency`, one GPU each on a GPU cluster): each
             builds the extractor once, checks its fingerprint against the driver's, runs a batch
             of rows through featurize and writes them as one part file, named by the batch's
             first listing position (concurrent writers cannot number parts by listing the folder)
    driver   counts finished parts, then `StoreFiles.finalize` folds them into the store (the local
             engine's fold). A killed driver leaves finished parts; the rerun skips their rows.

Parts go to `STORE.parts/` beside the store: on a cluster, put the store on a filesystem every node
mounts. Ray retries a batch whose worker died; a retried batch rewrites the same rows, and folding a row
twice gives the same store. Rows of a Ray-built store are in part order, not listing order (their
`input_index` still gives the listing position; `sf cache merge` restores it).
"""

from __future__ import annotations

import os
import stat
import time
import uuid
from dataclasses import dataclass, replace

from rich.console import Console

from sf.cache import schema as S
from sf.cache.writer import StoreFiles, failpoint
from sf.errors import SfError
from sf.extract.images import BadImage, unreadable_reason
from sf.ray_cluster import connect

EMPTY_ROW = "sf-row:"  # path of a dataset row that stands for a listing row without a file to read
PASSES_PER_PART = 4  # forward passes of rows per Ray batch (= per part file)


@dataclass(frozen=True)
class Pool:
    actors: int
    cpus: float  # per actor
    gpus: float  # per actor
    read_cpus: float  # per read task
    threads: int  # torch intra-op threads per actor


def pool_for(resources: dict, concurrency: int | None, device: str) -> Pool:
    """Actor pool that leaves room for read tasks: if the actors hold every CPU, nothing reads and the
    pipeline stalls. GPU clusters (unless --device cpu): one actor per GPU."""
    cpus, gpus = float(resources.get("CPU", 1)), int(resources.get("GPU", 0))
    if concurrency is not None and concurrency < 1:
        raise SfError(f"--concurrency must be >= 1, got {concurrency}")
    read_cpus = 1.0 if cpus >= 2 else 0.25
    if gpus and device != "cpu":
        n = concurrency or gpus
        if n > gpus:
            raise SfError(f"--concurrency {n}: the cluster has {gpus} GPU(s), one per actor")
        actor_cpus = max(0.25, min(4.0, (cpus - read_cpus) / n))
        return Pool(n, actor_cpus, 1.0, read_cpus, 1)
    n = concurrency or max(1, int(cpus - read_cpus))
    actor_cpus = min(1.0, (cpus - read_cpus) / n)
    return Pool(n, actor_cpus, 0.0, read_cpus, max(1, int(actor_cpus)))


def local_problem(path) -> BadImage | None:
    """What the local engine would say about a local file it cannot read (read_binary_files would fail the
    whole run on a missing file, and list a folder's contents instead of refusing it)."""
    try:
        st = os.stat(path)
    except OSError as e:
        return unreadable_reason(e)
    if stat.S_ISDIR(st.st_mode):
        return BadImage("is a folder, not a file")
    if not os.access(path, os.R_OK):
        return BadImage("permission denied")
    return None


def extract_rows(inputs, hashes, todo, ext, files: StoreFiles, attrs: dict, console: Console) -> None:
    """The Ray engine's part of `sf.extract.job.run`: every row in `todo` ends in a part file."""
    from sf.progress import bar

    ray = connect()
    cfg = ext.cfg
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # ours below
    ctx.print_on_execution_start = False

    meta = {"keys": [], "hashes": [], "index": [], "text": [], "known": {}, "by_path": {}}
    empty_rows = []
    for pos, j in enumerate(todo):
        it = inputs.items[j]
        meta["keys"].append(it.key)
        meta["hashes"].append(hashes[j])
        meta["index"].append(int(inputs.index[j]))
        meta["text"].append(it.text)
        problem = None if it.image is None else local_problem(it.image)
        if it.image is None or problem is not None:
            meta["known"][pos] = None if problem is None else str(problem)
            empty_rows.append({"bytes": b"", "path": f"{EMPTY_ROW}{pos}"})
        else:
            meta["by_path"].setdefault(os.path.abspath(it.image), []).append(pos)

    pool = pool_for(ray.cluster_resources(), cfg.concurrency, cfg.device)
    parts = []
    if meta["by_path"]:
        parts.append(ray.data.read_binary_files(sorted(meta["by_path"]), include_paths=True, num_cpus=pool.read_cpus))
    if empty_rows:
        parts.append(ray.data.from_items(empty_rows))
    ds = parts[0] if len(parts) == 1 else parts[0].union(*parts[1:])
    ds = ds.map_batches(
        RowsToPart,
        fn_constructor_kwargs=dict(cfg=replace(cfg, workers=0, expect=None), attrs=attrs, out=str(files.out),
                                   meta=ray.put(meta), threads=pool.threads, has_text=inputs.has_text),
        batch_size=cfg.batch_size * PASSES_PER_PART,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=pool.actors),
        num_cpus=pool.cpus,
        num_gpus=pool.gpus,
    )
    progress = bar(console, "{task.fields[rate]:>6.1f} rows/s")
    start, done = time.perf_counter(), 0
    with progress:
        task = progress.add_task(f"[bold]extract[/] ray x{pool.actors} -> {files.out.name}", total=len(todo), rate=0.0)
        for row in ds.iter_rows():
            done += int(row["rows"])
            progress.update(task, completed=done, rate=done / max(time.perf_counter() - start, 1e-9))
            failpoint("ray-driver-part")
    if done != len(todo):
        raise SfError(f"the Ray workers returned {done} of {len(todo)} rows; rerun to extract the rest")


class RowsToPart:
    """A Ray actor: batches of (path, bytes) -> rows through featurize -> one part file per batch."""

    def __init__(self, cfg, attrs: dict, out: str, meta, threads: int, has_text: bool):
        import ray
        import torch

        from sf.extract import job

        torch.set_num_threads(threads)
        self.job = job
        self.ext = job.build_extractor(cfg, with_text=has_text)
        diff = S.fingerprint_diff(attrs, self.ext.attrs())
        if diff:
            raise SfError(f"a Ray worker cannot re-create the driver's extractor: {'; '.join(diff)}")
        self.attrs, self.files, self.compression = attrs, StoreFiles(out), cfg.compression
        self.meta = ray.get(meta) if isinstance(meta, ray.ObjectRef) else meta

    def __call__(self, batch: dict) -> dict:
        from sf.extract import sources as I

        m = self.meta
        pos, sources = [], []
        for path, data in zip(batch["path"], batch["bytes"]):
            path = str(path)
            if path.startswith(EMPTY_ROW):
                j = int(path[len(EMPTY_ROW):])
                reason = m["known"][j]
                pos.append(j)
                sources.append(None if reason is None else BadImage(reason))
            else:
                for j in m["by_path"][os.path.abspath(path)]:
                    pos.append(j)
                    sources.append(bytes(data))
        order = sorted(range(len(pos)), key=pos.__getitem__)
        pos, sources = [pos[k] for k in order], [sources[k] for k in order]
        items = [I.Item(m["keys"][j], None, m["text"][j]) for j in pos]
        blocks = [b for bs in self.job.featurize(self.ext, items, [m["hashes"][j] for j in pos],
                                                  [m["index"][j] for j in pos], sources, 0, self.job.ImageQueue(self.ext))
                  for b in bs]
        first = min(m["index"][j] for j in pos)
        name = f"part-{first:09d}-{uuid.uuid4().hex[:8]}.h5"
        self.files.write_part(self.attrs, blocks, self.compression, name=name)
        import numpy as np

        return {"part": np.array([name]), "rows": np.array([len(pos)])}
