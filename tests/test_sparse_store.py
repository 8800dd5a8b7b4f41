"""Sparse grids (schema 2) and stage 2 streaming them from the store under a memory budget."""

from __future__ import annotations

from dataclasses import replace

import h5py
import numpy as np
import pytest

from sf.cache import schema as S
from sf.cache.merge import merge_stores
from sf.cache.reader import load_features
from sf.cache.writer import StoreFiles, dense_grid
from sf.data.contract import load_dataset
from sf.errors import SfError
from sf.forecast.fit import fit, predict
from sf.forecast.inputs import build_inputs
from sf.forecast.splits import make_split
from tests.fakes import make_dataset, write_store
from tests.test_train import FAST


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root, store = make_dataset(tmp_path_factory.mktemp("sparse") / "d", n=80, horizon=5)
    with h5py.File(store, "r") as f:  # a third of the products without an image
        keys = list(f[S.KEYS].asstr()[()])
        pooled, text = f[S.IMAGE_POOLED][()].astype(np.float32), f[S.TEXT_POOLED][()].astype(np.float32)
        hashes = list(f[S.CONTENT_HASH].asstr()[()])
    has = np.arange(len(keys)) % 3 != 0
    store = write_store(root / "store.h5", keys, pooled, text, has_image=has, content_hashes=hashes)
    return root, store, has


def test_rows_without_an_image_store_no_grid(fake):
    _, store, has = fake
    with h5py.File(store, "r") as f:
        assert f[S.IMAGE_GRID].shape[0] == has.sum() < len(has)
        assert (f[S.IMAGE_GRID_SLOT][()] >= 0).tolist() == has.tolist()


def test_schema_1_store_reads_the_same_features_and_converts(fake, tmp_path):
    root, store, has = fake
    with h5py.File(store, "r") as f:
        keys = list(f[S.KEYS].asstr()[()])
        pooled, text = f[S.IMAGE_POOLED][()].astype(np.float32), f[S.TEXT_POOLED][()].astype(np.float32)
    old = write_store(tmp_path / "old.h5", keys, pooled, text, has_image=has, schema=1)
    new = write_store(tmp_path / "sparse.h5", keys, pooled, text, has_image=has)
    a, b = load_features(new), load_features(old)
    assert a.fingerprint == b.fingerprint  # layout only: a run trained on one applies to the other
    np.testing.assert_array_equal(np.asarray(a.image_grid), np.asarray(b.image_grid))
    out = merge_stores(tmp_path / "new.h5", [old]).out
    with h5py.File(out, "r") as f, h5py.File(old, "r") as g:
        assert f.attrs["schema_version"] == S.SCHEMA_VERSION and f[S.IMAGE_GRID].shape[0] == has.sum()
        np.testing.assert_array_equal(dense_grid(f), g[S.IMAGE_GRID][()])


def test_unknown_schema_is_refused_in_one_line(fake, tmp_path):
    _, store, _ = fake
    bad = tmp_path / "v9.h5"
    bad.write_bytes(store.read_bytes())
    with h5py.File(bad, "r+") as f:
        f.attrs["schema_version"] = 9
        f.attrs["fingerprint"] = S.fingerprint({k: f.attrs[k] for k in S.FINGERPRINT_KEYS})
    with pytest.raises(SfError, match="schema version 9 is not one this sf reads") as e:
        load_features(bad)
    assert "\n" not in str(e.value)


def test_free_space_check_refuses_a_run_the_disk_cannot_hold(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    files = StoreFiles(tmp_path / "s.h5")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**12, 0, 10**9))
    assert files.check_space(10**8) == 2 * 10**8
    with pytest.raises(SfError, match=r"needs about 4.00 GB free .* only 1.00 GB is free"):
        files.check_space(2 * 10**9)


def test_streamed_training_gives_the_in_memory_numbers(fake):
    root, store, _ = fake
    ds = load_dataset(root)
    mem, streamed = load_features(store, memory_budget_bytes=2**40), load_features(store, memory_budget_bytes=0)
    assert not mem.image_grid.streamed and streamed.image_grid.streamed
    out = []
    for feats in (mem, streamed):
        inp = build_inputs(ds, feats)
        parts = {k: inp.take(v) for k, v in make_split(inp, "time").items()}
        fitted = fit("sf", parts["train"], parts["val"], replace(FAST, epochs=3), seed=1)
        out.append(predict(fitted, parts["val"]))
    np.testing.assert_array_equal(out[0], out[1])


def test_cli_memory_budget_streams_and_rejects_nonsense(fake, cli, tmp_path):
    root, store, _ = fake
    code, _, err = cli("--memory-budget", "lots", "cache", "info", store)
    assert code == 2 and "--memory-budget: 'lots' is not a size" in err and err.count("\n") == 1
