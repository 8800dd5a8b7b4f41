"""The feature store: layout, incremental reruns, fingerprints, verify, info and shard merging."""

from __future__ import annotations

import json

import h5py
import polars as pl
import numpy as np
import pytest

from sf.cache import schema as S
from sf.cache.merge import merge_stores
from sf.cache.reader import load_features, read_attrs
from sf.cache.verify import verify_store
from sf.errors import SfError
from sf.extract import sources as I
from sf.extract import job
from tests.test_extract_helpers import assert_same_store, make_dataset, make_images, random_image, store_arrays, tiny_config

pytestmark = [pytest.mark.numerics, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("ds") / "shop", n=14, no_image=(3,), missing=(5,), empty_text=(7,))


@pytest.fixture(scope="module")
def base_store(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("store") / "shop.h5"
    return job.run(I.from_dataset(dataset), out, tiny_config()).out


def test_layout_dtypes_and_rows(base_store):
    f = load_features(base_store)
    n = 14
    assert f.keys == [f"p{i:03d}" for i in range(n)]  # input order
    assert f.image_pooled.shape == (n, 512) and f.image_pooled.dtype == np.float16
    assert f.image_grid.shape == (n, 1, 512) and f.image_grid.dtype == np.float16  # 32 px -> 1x1 grid
    assert f.text_tokens.shape == (n, 32, 256) and f.text_tokens.dtype == np.float16
    assert f.text_mask.dtype == bool and f.text_pooled.shape == (n, 256)
    assert f.status[3] == "no_image" and f.status[5] == "unreadable" and (np.delete(f.status, [3, 5]) == "ok").all()
    assert not f.has_text[7] and f.has_text.sum() == n - 1
    # pooled is the mean of the grid (1x1 here: equal); no-image rows are zero but keep their text.
    np.testing.assert_array_equal(f.image_grid[:, 0], f.image_pooled)
    assert not f.image_pooled[3].any() and f.text_mask[3].any()
    a = f.attrs
    assert a["backbone"] == "resnet18" and a["random_weights"] is True and a["complete"] is True
    assert a["fingerprint"] == S.fingerprint(a)
    prep = json.loads(a["preprocessing"])
    assert prep["image"]["image_size"] == 32 and prep["image"]["fit"] == "pad" and prep["text"]["max_tokens"] == 32
    assert len(a["weights_sha256"]) == 64 and len(a["text_encoder_sha256"]) == 64
    assert "torch" in json.loads(a["versions"])


def test_numeric_datasets_are_chunked_checksummed_and_appendable(base_store):
    with h5py.File(base_store, "r") as f:
        for name in (S.IMAGE_POOLED, S.IMAGE_GRID, S.TEXT_TOKENS, S.TEXT_MASK, S.TEXT_POOLED, S.INPUT_INDEX):
            ds = f[name]
            assert ds.fletcher32 and ds.chunks is not None and ds.maxshape[0] is None, name
            row_bytes = ds.dtype.itemsize * int(np.prod(ds.shape[1:]))
            assert ds.chunks[0] * row_bytes <= 256 * 1024


def test_rerun_is_a_no_op_and_changes_are_incremental(dataset, base_store, tmp_path):
    import shutil

    ds = tmp_path / "shop"
    shutil.copytree(dataset, ds)
    out = tmp_path / "s.h5"
    shutil.copyfile(base_store, out)
    before = store_arrays(out)
    r = job.run(I.from_dataset(ds), out, tiny_config())
    assert r.extracted == 0 and r.skipped == 14
    random_image(999).save(ds / "images" / "img002.png")  # changed image
    text = (ds / "products.csv").read_text().replace("p004,img004.png,", "p004,img004.png,brand new words ")
    (ds / "products.csv").write_text(text + "p100,img000.png,an added product,2020-01-06\n")
    (ds / "sales.csv").write_text((ds / "sales.csv").read_text() + "p100,0,1.0\n")
    r = job.run(I.from_dataset(ds), out, tiny_config())
    assert r.extracted == 3 and r.skipped == 12
    after = store_arrays(out)
    keys = list(after["keys"])
    assert keys == list(before["keys"]) + ["p100"]
    changed = {2, 4}
    for i in set(range(14)) - changed:
        assert after["image/grid"][i].tobytes() == before["image/grid"][i].tobytes()
        assert after["text/tokens"][i].tobytes() == before["text/tokens"][i].tobytes()
    assert after["image/pooled"][2].tobytes() != before["image/pooled"][2].tobytes()
    assert after["text/pooled"][4].tobytes() != before["text/pooled"][4].tobytes()
    np.testing.assert_array_equal(after["image/pooled"][14], after["image/pooled"][0])  # same image as p000


def test_different_extractor_is_refused_with_what_differs(dataset, base_store, tmp_path):
    import shutil

    out = tmp_path / "s.h5"
    shutil.copyfile(base_store, out)
    with pytest.raises(SfError, match=r"different extractor \(backbone: 'resnet18' != 'resnet34'"):
        job.run(I.from_dataset(dataset), out, tiny_config(backbone="resnet34"))
    with pytest.raises(SfError, match="weights_sha256"):
        job.run(I.from_dataset(dataset), out, tiny_config(seed=1))
    with pytest.raises(SfError, match="preprocessing"):
        job.run(I.from_dataset(dataset), out, tiny_config(fit="crop"))
    with pytest.raises(SfError, match="text_encoder"):
        job.run(I.from_dataset(dataset), out, tiny_config(text_encoder="none"))
    with pytest.raises(SfError, match="pooled-only"):
        job.run(I.from_dataset(dataset), out, tiny_config(pooled_only=True))
    assert_same_store(out, base_store)  # refused runs leave the store untouched


def test_verify_passes_then_catches_a_flipped_byte(base_store, tmp_path, cli):
    import shutil

    out = tmp_path / "s.h5"
    shutil.copyfile(base_store, out)
    assert verify_store(out).ok
    code, stdout, _ = cli("cache", "verify", out)
    assert code == 0 and "all checksums match" in stdout
    with h5py.File(out, "r") as f:
        info = f[S.IMAGE_GRID].id.get_chunk_info(0)
        ok = np.flatnonzero(f[S.STATUS].asstr()[()] == "ok")  # the grid holds rows with an image only
    assert len(ok) < 14
    data = bytearray(out.read_bytes())
    data[info.byte_offset + 100] ^= 0xFF
    out.write_bytes(bytes(data))
    res = verify_store(out)
    assert not res.ok and res.failures[0][0] == S.IMAGE_GRID and "checksum" in res.failures[0][2]
    code, stdout, stderr = cli("cache", "verify", out)
    assert code == 2 and stdout == "" and stderr.count("\n") == 1
    shown = ", ".join(map(str, ok[:5])) + f" (+{len(ok) - 5} more)"  # reported by store row, not grid slot
    assert "damaged" in stderr and f"image/grid rows {shown}" in stderr and "checksum" in stderr


def test_verify_catches_changed_strings(base_store, tmp_path):
    import shutil

    out = tmp_path / "s.h5"
    shutil.copyfile(base_store, out)
    with h5py.File(out, "r+") as f:
        f[S.KEYS][0] = "tampered"
    res = verify_store(out)
    assert not res.ok and "strings_sha256" in res.failures[0][2]


def test_info_prints_metadata_and_counts(base_store, tmp_path, cli):
    code, stdout, _ = cli("cache", "info", base_store, "--json", tmp_path / "i.json")
    assert code == 0
    assert "resnet18" in stdout and "RANDOM" in stdout and "status unreadable" in stdout
    info = json.loads((tmp_path / "i.json").read_text())
    assert info["rows"] == 14 and info["status"] == {"ok": 12, "no_image": 1, "unreadable": 1}
    assert info["rows_with_text"] == 13
    assert info["decoder"] == {"pillow": 12} and "decoded by pillow" in stdout


def test_three_shards_merge_into_the_unsharded_store(dataset, base_store, tmp_path, cli):
    shards = []
    for i in range(3):
        r = job.run(I.from_dataset(dataset), tmp_path / f"s{i}.h5", tiny_config(shard=f"{i}/3"))
        assert read_attrs(r.out)["shard"] == f"{i}/3"
        shards.append(r.out)
    sizes = [len(load_features(p).keys) for p in shards]
    assert sum(sizes) == 14 and all(s > 0 for s in sizes)  # each key in exactly one shard
    code, stdout, stderr = cli("cache", "merge", tmp_path / "all.h5", *shards)
    assert code == 0, stderr
    assert "input order restored" in stdout
    assert_same_store(tmp_path / "all.h5", base_store)
    merged, base = read_attrs(tmp_path / "all.h5"), read_attrs(base_store)
    assert merged["fingerprint"] == base["fingerprint"] and merged["complete"] is True
    assert verify_store(tmp_path / "all.h5").ok
    code, _, stderr = cli("cache", "merge", tmp_path / "all.h5", *shards)
    assert code == 2 and "--force" in stderr


def test_merge_refuses_different_fingerprints(dataset, base_store, tmp_path):
    other = job.run(I.from_dataset(dataset), tmp_path / "o.h5", tiny_config(seed=7, shard="0/2")).out
    with pytest.raises(SfError, match="different extractor.*weights_sha256"):
        merge_stores(tmp_path / "m.h5", [base_store, other])
    with pytest.raises(SfError, match="is in both"):
        merge_stores(tmp_path / "m.h5", [base_store, base_store])
    assert not (tmp_path / "m.h5").exists()


def test_shard_spec_parsing():
    assert I.parse_shard("1/3") == (1, 3) and I.parse_shard(None) is None
    for bad in ("3/3", "x", "1/0", "-1/2"):
        with pytest.raises(SfError, match="--shard"):
            I.parse_shard(bad)
    keys = [f"k{i}" for i in range(200)]
    parts = [I.shard_of(k, 4) for k in keys]
    assert parts == [I.shard_of(k, 4) for k in keys] and set(parts) == {0, 1, 2, 3}


def test_pooled_only_and_compression(tmp_path):
    make_images(tmp_path / "imgs", 5)
    r = job.run(I.from_images_dir(tmp_path / "imgs"), tmp_path / "p.h5", tiny_config(pooled_only=True, compression="gzip"))
    f = load_features(r.out)
    assert f.image_grid is None and f.image_pooled.shape == (5, 512)
    assert f.text_tokens is None and f.text_mask is None and not f.has_text.any()  # --images: no text
    with h5py.File(r.out, "r") as h:
        assert h[S.IMAGE_POOLED].compression == "gzip"
    full = load_features(job.run(I.from_images_dir(tmp_path / "imgs"), tmp_path / "f.h5", tiny_config()).out)
    np.testing.assert_array_equal(f.image_pooled, full.image_pooled)


def test_interrupted_run_is_incomplete_until_rerun(dataset, base_store, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = job._row_block

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(job, "_row_block", flaky)
    out = tmp_path / "s.h5"
    with pytest.raises(KeyboardInterrupt):
        job.run(I.from_dataset(dataset), out, tiny_config(checkpoint_seconds=1e9))
    with pytest.raises(SfError, match="incomplete"):
        load_features(out)
    partial = load_features(out, allow_incomplete=True)
    # Two batches of 4 were decoded; rows leave once their images have run, so a prefix in input order is kept.
    assert 0 < len(partial.keys) <= 8
    assert partial.keys == [f"p{i:03d}" for i in range(len(partial.keys))]
    monkeypatch.setattr(job, "_row_block", real)
    r = job.run(I.from_dataset(dataset), out, tiny_config())
    assert r.extracted == 14 - len(partial.keys)
    assert_same_store(out, base_store)
    assert read_attrs(out)["complete"] is True


def test_extract_dataset_and_recreating_the_extractor_from_attrs(dataset, base_store, tmp_path):
    path = job.extract_dataset(dataset, tmp_path / "a.h5", **{k: v for k, v in tiny_config().__dict__.items() if k != "expect"})
    assert_same_store(path, base_store)
    cfg = job.config_from_attrs(base_store)
    assert (cfg.backbone, cfg.weights, cfg.seed, cfg.image_size, cfg.text_encoder) == ("resnet18", "random", 0, 32, "hash")
    # Re-created from the attrs alone (precision included, on any CPU): the very same computation, so the
    # very same bytes. (With `--precision auto` choosing bf16 on some CPUs, this once differed by bf16 rounding.)
    again = job.extract_dataset(dataset, tmp_path / "b.h5", like=base_store, workers=0, batch_size=4)
    assert read_attrs(again)["precision"] == read_attrs(base_store)["precision"] == "fp32"
    assert_same_store(again, base_store)
    attrs = dict(read_attrs(base_store), weights_sha256="0" * 64)
    with pytest.raises(SfError, match="cannot re-create.*weights_sha256"):
        job.extract_dataset(dataset, tmp_path / "c.h5", like=attrs, workers=0)


def test_two_writers_are_refused(dataset, tmp_path):
    from sf.cache.writer import StoreFiles

    with StoreFiles(tmp_path / "s.h5").locked():
        with pytest.raises(SfError, match="another `sf extract`"):
            job.run(I.from_dataset(dataset), tmp_path / "s.h5", tiny_config())


def test_sparse_images_share_forward_passes_and_keep_their_features(tmp_path, monkeypatch):
    """A catalogue where few products have an image runs full forward passes, not one per row batch."""
    sparse = make_dataset(tmp_path / "sparse", n=16, no_image=tuple(i for i in range(16) if i % 4))
    dense = tmp_path / "dense"
    dense.mkdir()
    for i in range(0, 16, 4):
        (dense / f"img{i:03d}.png").write_bytes((sparse / "images" / f"img{i:03d}.png").read_bytes())
    calls = []
    real = job.ImageFeaturizer.submit
    monkeypatch.setattr(job.ImageFeaturizer, "submit", lambda self, x: calls.append(len(x)) or real(self, x))

    s = load_features(job.run(I.from_dataset(sparse), tmp_path / "s.h5", tiny_config(text_encoder="none")).out)
    assert calls == [4]  # 4 images over 4 row batches of 4: one full pass, not 4 mostly padded ones
    assert s.keys == [f"p{i:03d}" for i in range(16)]  # still input order
    assert s.has_image.tolist() == [i % 4 == 0 for i in range(16)]
    assert not s.image_pooled[~s.has_image].any()

    d = load_features(job.run(I.from_images_dir(dense), tmp_path / "d.h5", tiny_config(text_encoder="none")).out)
    np.testing.assert_array_equal(s.image_pooled[s.has_image], d.image_pooled[d.rows([f"img{i:03d}" for i in range(0, 16, 4)])])
    np.testing.assert_array_equal(s.image_grid[s.has_image], d.image_grid[d.rows([f"img{i:03d}" for i in range(0, 16, 4)])])


def test_parts_fold_into_the_rows_their_keys_own(base_store, tmp_path):
    """A later part that changes a key a fresh part appended must overwrite that key's row, no other."""
    from sf.cache.writer import StoreFiles, read_block

    with h5py.File(base_store, "r") as f:
        block = read_block(f)
    attrs = read_attrs(base_store)
    files = StoreFiles(tmp_path / "s.h5")
    files.write_part(attrs, block.take([0, 1, 2]))
    changed = block.take([1])
    changed.image_pooled = changed.image_pooled + np.float16(1)
    changed.content_hash = ["changed"]
    files.write_part(attrs, changed)
    files.finalize(attrs, complete=True)
    f = load_features(tmp_path / "s.h5")
    assert f.keys == block.keys[:3]
    np.testing.assert_array_equal(f.image_pooled[1], block.image_pooled[1] + np.float16(1))
    np.testing.assert_array_equal(f.image_pooled[[0, 2]], block.image_pooled[[0, 2]])


def test_shards_updated_from_a_reordered_listing_merge_in_its_order(tmp_path):
    import shutil

    a = make_dataset(tmp_path / "a", n=10)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    products = pl.read_csv(b / "products.csv")
    products.reverse().write_csv(b / "products.csv")  # the catalogue's new export lists products the other way round
    (b / "images" / "img004.png").write_bytes((a / "images" / "img007.png").read_bytes())  # one product re-shot
    for data in (a, b):  # shards made from listing a, then updated incrementally from listing b
        shards = [job.run(I.from_dataset(data), tmp_path / f"s{i}.h5", tiny_config(shard=f"{i}/2")).out for i in range(2)]
    merged = merge_stores(tmp_path / "m.h5", shards).out
    clean = job.run(I.from_dataset(b), tmp_path / "clean.h5", tiny_config()).out
    assert load_features(merged).keys == load_features(clean).keys == products.reverse()["product_id"].to_list()
