"""Everything on Ray, on one local instance (2 CPUs, started and stopped by this module): `sf extract --engine
ray` gives the local engine's store and a driver killed mid-run loses nothing; `sf ablate --engine ray` gives
the local pool's table for the same seeds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from sf.cache import schema as S
from sf.cache.reader import read_attrs
from sf.extract import sources as I
from sf.extract import job
from sf.extract.ray_engine import Pool, pool_for
from tests.test_extract_helpers import jpeg_bytes, make_dataset, random_image, store_arrays, tiny_config

ray = pytest.importorskip("ray", reason="Ray is the optional extra sf[ray]")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]
CFG = dict(batch_size=2)  # 8 rows per Ray batch: several parts, so a driver can die between them
RAY = dict(engine="ray", concurrency=1)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    """14 products: no image, a missing file, an empty file, text named .png, a truncated JPEG, a folder."""
    root = make_dataset(tmp_path_factory.mktemp("ray") / "shop", n=14, no_image=(3,), missing=(5,), empty_text=(7,))
    images = root / "images"
    (images / "img002.png").write_bytes(b"")
    (images / "img004.png").write_text("not an image")
    (images / "img006.png").write_bytes(jpeg_bytes(random_image(6, 64, 64))[:300])
    (images / "img009.png").unlink()
    (images / "img009.png").mkdir()
    return root


@pytest.fixture(scope="module")
def local_store(shop, tmp_path_factory) -> Path:
    import torch

    torch.set_num_threads(1)  # as the Ray actors run (one thread each on this 2-CPU instance)
    return job.run(I.from_dataset(shop), tmp_path_factory.mktemp("local") / "s.h5", tiny_config(**CFG)).out


def assert_same_rows(a: Path, b: Path) -> None:
    """Same keys, statuses, reasons, bit-identical features; rows matched by key (a Ray store keeps part order)."""
    x, y = store_arrays(a), store_arrays(b)
    assert sorted(x) == sorted(y)
    kx, ky = list(x[S.KEYS]), list(y[S.KEYS])
    assert sorted(kx) == sorted(ky)
    perm = [kx.index(k) for k in ky]
    for name in y:
        got, want = x[name][perm], y[name]
        if want.dtype.kind in "fiu":
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), f"{name} differs"
        else:
            assert list(got) == list(want), f"{name} differs"


def test_pool_leaves_a_cpu_for_reading():
    assert pool_for({"CPU": 2}, None, "auto") == Pool(actors=1, cpus=1.0, gpus=0.0, read_cpus=1.0, threads=1)
    assert pool_for({"CPU": 2}, 2, "auto") == Pool(actors=2, cpus=0.5, gpus=0.0, read_cpus=1.0, threads=1)
    assert pool_for({"CPU": 16}, None, "cpu").actors == 15
    gpu = pool_for({"CPU": 16, "GPU": 4}, None, "auto")
    assert (gpu.actors, gpu.gpus) == (4, 1.0) and gpu.actors * gpu.cpus + gpu.read_cpus <= 16
    assert pool_for({"CPU": 16, "GPU": 4}, None, "cpu").gpus == 0.0


@pytest.mark.numerics
def test_ray_store_equals_the_local_engines(cluster, shop, local_store, tmp_path):
    out = tmp_path / "ray.h5"
    report = job.run(I.from_dataset(shop), out, tiny_config(**CFG, **RAY))
    assert report.extracted == 14
    assert report.counts == {"ok": 8, "no_image": 1, "unreadable": 5}
    assert dict(report.unreadable)["p009"] == "is a folder, not a file"
    assert_same_rows(out, local_store)
    assert read_attrs(out)["complete"] is True
    assert not out.with_name(out.name + ".parts").exists()


def test_killed_driver_resumes_from_finished_parts(cluster, shop, local_store, tmp_path):
    out = tmp_path / "killed.h5"
    parts = out.with_name(out.name + ".parts")
    child = ("import sys; from sf.extract import job, sources as I; from tests.test_extract_helpers import tiny_config; "
             f"job.run(I.from_dataset(sys.argv[1]), sys.argv[2], tiny_config(**{ {**CFG, **RAY}!r}))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ADDRESS": cluster, "SF_FAILPOINT": "ray-driver-part",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", child, str(shop), str(out)], cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=180)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-3000:]  # died after its first finished part
    assert not out.exists()
    time.sleep(1)  # the dead driver's actors are stopped by the cluster
    finished = set()
    for p in parts.glob("part-*.h5"):
        with h5py.File(p, "r") as f:
            finished.update(f[S.KEYS].asstr()[()])
    assert finished, "no finished part survived the driver"

    report = job.run(I.from_dataset(shop), out, tiny_config(**CFG, **RAY))
    assert report.extracted <= 14 - len(finished)  # finished parts are not redone
    assert_same_rows(out, local_store)
    assert read_attrs(out)["complete"] is True and not parts.exists()
    with h5py.File(out, "r") as f:
        assert sorted(f[S.INPUT_INDEX][()]) == list(range(14))
    assert np.array_equal(np.sort(store_arrays(out)[S.KEYS]), np.sort(store_arrays(local_store)[S.KEYS]))


def test_ablate_on_ray_reproduces_the_local_pool(cluster, tmp_path):
    from sf.forecast.config import TrainConfig
    from sf.studies.ablate import AblateConfig, run_ablation
    from tests import fakes

    root, store = fakes.make_dataset(tmp_path / "abl", n=60, horizon=6)
    common = dict(features=store, data=root, backbone="resnet18", extras=False,
                  train=TrainConfig(epochs=2, seeds=2, patience=2))
    local = run_ablation(AblateConfig(**common, workers=2, out=tmp_path / "local"), progress=False)
    on_ray = run_ablation(AblateConfig(**common, engine="ray", out=tmp_path / "ray"), progress=False)
    assert on_ray.workers == 2  # the instance's CPUs: one torch thread per task, as in the local pool
    rows = [s["row"] for s in local.summary]
    assert rows == [s["row"] for s in on_ray.summary] and len(rows) == 5  # 4 grid rows + the reference
    for a, b in zip(local.summary, on_ray.summary):
        for split in ("val", "test"):
            assert a[split]["per_seed"] == b[split]["per_seed"], (a["row"], split)  # same seeds, same numbers
        assert a["test"]["mean"] == b["test"]["mean"] and a["split_ids"] == b["split_ids"]
