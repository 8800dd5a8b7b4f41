"""`sf explain`: region attention, most attended words, forecast band and analog products, in one PNG."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pytest
from PIL import Image

from sf.cache import schema as S
from sf.data.contract import load_dataset
from sf.errors import SfError
from sf.forecast.config import TrainConfig
from sf.apply.explain import ExplainConfig, explain_product, region_weights, word_weights
from sf.forecast.engine import train_run
from tests.fakes import make_dataset, refresh_hashes

H = 6


def split_words(texts, attrs):
    return [t.split() for t in texts]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("explain")
    root, store = make_dataset(base / "train", n=80, horizon=H)
    (root / "images").mkdir()
    Image.new("RGB", (40, 24), (200, 30, 30)).save(root / "images" / "p0003.png")  # one real picture
    refresh_hashes(root, store)
    cfg = TrainConfig(features=store, data=root, out=base / "run", epochs=3, seeds=2, hidden=8, patience=3,
                      loss="quantile", quantiles=(0.1, 0.5, 0.9), fusion="biattn")  # both maps: regions and words
    train_run(cfg, progress=False)
    return root, store, base / "run"


@pytest.mark.filterwarnings("error::UserWarning")  # e.g. matplotlib giving up on the layout, seen by every user
def test_explain_a_training_product(trained, tmp_path):
    root, _, run = trained
    exp = explain_product(ExplainConfig(model=run, product="p0003", out=tmp_path / "x.png"), words_for=split_words)
    # region attention over the store's 1x4 grid: a distribution
    assert exp.regions.shape == (1, 4)
    assert exp.regions.min() >= 0 and exp.regions.sum() == pytest.approx(1, abs=1e-5)
    # words are the description's own, ranked, with shares of the attention
    assert {w for w, _ in exp.words} == {"item", "p0003"}
    shares = [s for _, s in exp.words]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1 + 1e-6
    # forecast inside its band; the actual sales are shown since the product has them
    assert (exp.band[:, 0] <= exp.forecast + 1e-4).all() and (exp.forecast <= exp.band[:, 1] + 1e-4).all()
    _, y, _ = load_dataset(root).sales_matrix(["p0003"], H)
    np.testing.assert_allclose(exp.actual, y[0], rtol=1e-6)
    # five analogs from the training products (never validation or test ones), never itself, most similar
    # first, with their real sales
    assert len(exp.analogs) == 5 and "p0003" not in [a.product_id for a in exp.analogs]
    held_out = set(pl.read_parquet(run / "predictions.parquet")["product_id"].to_list())
    assert not held_out & {a.product_id for a in exp.analogs}
    # the reference curve is the one `sf train` scored against: the training products' mean
    np.testing.assert_allclose(exp.reference, json.loads((run / "metrics.json").read_text())["train_mean_curve"])
    sims = [a.similarity for a in exp.analogs]
    assert sims == sorted(sims, reverse=True) and max(sims) <= 1 + 1e-6
    ids = [a.product_id for a in exp.analogs]
    _, ya, _ = load_dataset(root).sales_matrix(ids, H)
    np.testing.assert_allclose(np.stack([a.y for a in exp.analogs]), ya, rtol=1e-6)
    # the PNG and its numbers
    with Image.open(tmp_path / "x.png") as im:
        assert im.width > 800 and im.height > 500
    saved = json.loads((tmp_path / "x.json").read_text())
    assert saved["product_id"] == "p0003" and len(saved["analogs"]) == 5


def _copy_rows(src: Path, dst: Path, rows: list[int], keys: list[str], has_image: list[bool]) -> Path:
    """A store for new products whose features are copies of training rows (same extractor attributes)."""
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        from sf.cache.grid import from_dense
        from sf.cache.writer import dense_grid

        for name in (S.IMAGE_POOLED, S.TEXT_TOKENS, S.TEXT_MASK, S.TEXT_POOLED):
            data = f[name][rows]
            if name == S.IMAGE_POOLED:
                data[~np.array(has_image)] = 0
            g.create_dataset(name, data=data)
        grid = from_dense(dense_grid(f, np.array(rows)), np.array(has_image))  # the sparse layout
        g.create_dataset(S.IMAGE_GRID, data=grid.data)
        g.create_dataset(S.IMAGE_GRID_SLOT, data=grid.slot)
        str_dt = h5py.string_dtype()
        g.create_dataset(S.KEYS, data=np.array(keys, dtype=object), dtype=str_dt)
        g.create_dataset(S.CONTENT_HASH, data=np.array(keys, dtype=object), dtype=str_dt)
        g.create_dataset(S.STATUS, data=np.array(["ok" if h else "no_image" for h in has_image], dtype=object), dtype=str_dt)
        g.create_dataset(S.REASON, data=np.array([""] * len(keys), dtype=object), dtype=str_dt)
        g.attrs.update(dict(f.attrs))
    return dst


def test_a_twin_of_a_training_product_finds_it_first(trained, tmp_path):
    _, store, run = trained
    held_out = set(pl.read_parquet(run / "predictions.parquet")["product_id"].to_list())  # val + test products
    with h5py.File(store, "r") as f:
        keys = list(f[S.KEYS].asstr()[()])
    row = next(i for i, k in enumerate(keys) if k not in held_out)
    new = tmp_path / "new"
    new.mkdir()
    pl.DataFrame({"product_id": ["twin", "blind"], "image": ["twin.png", ""], "text": [f"item {keys[row]}", "item blind"],
                  "release_date": ["2022-03-07", "2022-03-07"], "category": ["a", "b"]}).write_csv(new / "products.csv")
    new_store = _copy_rows(store, tmp_path / "new.h5", [row, 12], ["twin", "blind"], [True, False])

    # The twin's features are copied from another product's row on purpose: the content check must be overridden.
    with pytest.raises(SfError, match="not made from the image/text"):
        explain_product(ExplainConfig(model=run, product="twin", data=new, store=new_store, out=tmp_path / "t.png"))
    exp = explain_product(ExplainConfig(model=run, product="twin", data=new, store=new_store, out=tmp_path / "t.png",
                                        allow_stale_features=True), words_for=split_words)
    assert exp.analogs[0].product_id == keys[row]
    assert exp.analogs[0].similarity == pytest.approx(1.0, abs=1e-4)
    assert exp.actual is None  # a new product: no sales to show

    blind = explain_product(ExplainConfig(model=run, product="blind", data=new, store=new_store, out=tmp_path / "b.png",
                                          allow_stale_features=True), words_for=split_words)
    assert blind.regions is None and not blind.has_image
    assert any("no image" in n for n in blind.notes)
    assert np.isfinite(blind.forecast).all() and blind.png.exists()


def test_default_fusion_shows_words_and_says_why_no_region_map(trained, tmp_path):
    """sf's default fusion (i2t_image) has the regions' attention over the words but no word attends to the
    regions, so there is a word map and no region map; the explanation says so instead of leaving the picture
    silently unmarked."""
    root, store, _ = trained
    cfg = TrainConfig(features=store, data=root, out=tmp_path / "run", epochs=2, seeds=1, hidden=8, patience=2)
    assert cfg.fusion == "i2t_image"
    train_run(cfg, progress=False)
    exp = explain_product(ExplainConfig(model=tmp_path / "run", product="p0003", out=tmp_path / "x.png"),
                          words_for=split_words)
    assert exp.has_image and exp.regions is None
    assert any("no region map" in n for n in exp.notes)
    assert {w for w, _ in exp.words} == {"item", "p0003"} and exp.png.exists()


def test_unknown_product_is_one_line_error(trained, cli):
    _, _, run = trained
    with pytest.raises(SfError, match="nope"):
        explain_product(ExplainConfig(model=run, product="nope"))
    code, out, err = cli("explain", "--model", run, "--product", "nope")
    assert code == 2 and err.startswith("error:") and "nope" in err


def test_cli_explain(trained, tmp_path, cli):
    _, _, run = trained
    code, out, err = cli("explain", "--model", run, "--product", "p0007", "--out", tmp_path / "e.png")
    assert code == 0, err
    assert (tmp_path / "e.png").stat().st_size > 10_000
    assert "analogs:" in out and "e.png" in out


def test_attention_summaries():
    t2i = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]])  # 3 words x 4 regions
    mask = np.array([True, True, False])  # the third word is padding
    np.testing.assert_allclose(region_weights(t2i, mask, (2, 2)), [[0.4, 0.4], [0.1, 0.1]])
    i2t = np.array([[0.9, 0.1, 0.0], [0.5, 0.5, 0.0]])  # 2 regions x 3 words
    words = word_weights(i2t, mask, ["red", "", "pad"])  # "" = a special token: not listed, keeps its share
    assert words == [("red", pytest.approx(0.7))]
    assert word_weights(i2t, mask, ["red", ","]) == [("red", pytest.approx(0.7))]  # punctuation is not a word


def test_word_pieces_are_shown_as_whole_words():
    """"cash ##mere" is one word, "cashmere", with the pieces' shares summed; a piece after a special token or
    punctuation starts a word of its own."""
    i2t = np.array([[0.1, 0.2, 0.3, 0.15, 0.25]])
    mask = np.ones(5, bool)
    words = dict(word_weights(i2t, mask, ["cash", "##mere", "sued", "##e", "cash"]))
    assert words == {"cashmere": pytest.approx(0.3), "suede": pytest.approx(0.45), "cash": pytest.approx(0.25)}
    words = dict(word_weights(i2t, mask, ["wool", ",", "##en", "", "##x"]))
    assert set(words) == {"wool", "en", "x"}
