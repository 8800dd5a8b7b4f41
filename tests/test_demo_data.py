"""`sf demo-data`: deterministic, contract-valid, and its sales really depend on the pictures' pixels and
the descriptions' words. Features here are computed from the files, never from generator internals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sf.data.check import check_dataset
from sf.data.contract import exog_window, load_dataset
from sf.data.demo import SIGNAL_WORDS, DemoConfig, generate
from sf.errors import SfError

TABLES = ("products.csv", "sales.csv", "exog.csv", "dataset.toml", "README.md")


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> Path:
    """Large enough for held-out R² to be stable, small pictures to stay fast."""
    return generate(DemoConfig(out=tmp_path_factory.mktemp("demo") / "cat", products=600, seed=0, image_size=48))


def _small(out: Path, seed: int, products: int = 40) -> Path:
    return generate(DemoConfig(out=out, products=products, seed=seed, image_size=32))


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a, b, c = _small(tmp_path / "a", 3), _small(tmp_path / "b", 3), _small(tmp_path / "c", 4)
    for name in TABLES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    images = sorted(p.name for p in (a / "images").iterdir())
    assert images and images == sorted(p.name for p in (b / "images").iterdir())
    for name in images:
        assert (a / "images" / name).read_bytes() == (b / "images" / name).read_bytes(), name
    cfg_a, cfg_b = (json.loads((d / "demo_config.json").read_text()) for d in (a, b))
    assert {k: v for k, v in cfg_a.items() if k != "out"} == {k: v for k, v in cfg_b.items() if k != "out"}

    assert (a / "products.csv").read_bytes() != (c / "products.csv").read_bytes()
    assert (a / "sales.csv").read_bytes() != (c / "sales.csv").read_bytes()
    shared = sorted(set(images) & {p.name for p in (c / "images").iterdir()})
    assert any(np.asarray(Image.open(a / "images" / n)).tobytes() != np.asarray(Image.open(c / "images" / n)).tobytes()
               for n in shared)


def test_a_product_does_not_depend_on_catalogue_size(tmp_path):
    small, big = _small(tmp_path / "s", 5, products=10), _small(tmp_path / "b", 5, products=25)
    head = lambda p, n: (p / "products.csv").read_text().splitlines()[: n + 1]  # noqa: E731
    assert head(small, 10) == head(big, 10)


def test_catalogue_passes_the_contract_and_exercises_missing_modalities(catalogue):
    ds = load_dataset(catalogue)
    s = check_dataset(catalogue)
    assert s.products == 600 and s.images_missing == 0 and not s.warnings
    assert 0.02 * 600 <= 600 - s.images_referenced <= 0.10 * 600  # about 5% without a picture
    assert 1 <= 600 - s.products_with_text <= 0.06 * 600  # a few without a description
    assert (s.horizon_min, s.horizon_max) == (12, 12) and s.exog_linked_products == 600
    assert set(s.splits) == {"train", "val", "test"} and s.splits["train"] > s.splits["val"]
    assert set(ds.attribute_columns) == {"category", "color", "pattern", "material"}
    # Models read the declared window before release, shorter than the generated history (docs/results.md).
    assert ds.meta.exog_link == ("category", "color") and ds.meta.exog_lookback == DemoConfig().trend_window == 8
    first, last = np.datetime64(s.release_first), np.datetime64(s.release_last)
    assert 90 * 7 <= (last - first).astype(int) <= 104 * 7  # spread over about two years
    img = Image.open(next(p for p in ds.image_paths().values() if p))
    assert img.size == (48, 48) and img.mode == "RGB" and img.getpixel((0, 0)) == (255, 255, 255)
    readme = (catalogue / "README.md").read_text()
    assert all(w in readme for w in SIGNAL_WORDS) and "saturation" in readme


# --- the built-in signal, measured the way a skeptical user would ---------------------------------


def _image_features(path: Path) -> list[float]:
    rgb = Image.open(path).convert("RGB")
    a = np.asarray(rgb, dtype=np.float64) / 255
    hsv = np.asarray(rgb.convert("HSV"), dtype=np.float64) / 255
    fg = a.min(axis=2) < 0.94  # the background is white
    v = a.mean(axis=2)
    edges_x = np.abs(np.diff(v, axis=1))[fg[:, 1:] & fg[:, :-1]]
    edges_y = np.abs(np.diff(v, axis=0))[fg[1:] & fg[:-1]]
    h = fg.shape[0] // 3
    return [fg.mean(), *a[fg].mean(axis=0), hsv[fg][:, 1].mean(), hsv[fg][:, 2].mean(), hsv[fg][:, 1].std(),
            hsv[fg][:, 2].std(), edges_x.mean(), edges_y.mean(), fg[:h].mean(), fg[:, :h].mean()]


def _bag_of_words(texts: list[str]) -> np.ndarray:
    tokens = [re.findall(r"[a-z]+", t.lower()) for t in texts]
    vocab = sorted({w for t in tokens for w in t})
    return np.array([[t.count(w) for w in vocab] for t in tokens], dtype=np.float64)


def _one_hot(ds, columns) -> np.ndarray:
    return np.hstack([(ds.products[c].to_numpy()[:, None] == np.unique(ds.products[c].to_numpy())[None]).astype(float)
                      for c in columns])


def _cv_r2(X: np.ndarray, y: np.ndarray, folds: int = 5, lam: float = 1.0) -> float:
    """Mean held-out R² of ridge regression over `folds` random splits of the products."""
    idx = np.random.default_rng(0).permutation(len(y))
    scores = []
    for k in range(folds):
        te = idx[k::folds]
        tr = np.setdiff1d(idx, te)
        mu, sd = X[tr].mean(0), X[tr].std(0) + 1e-9
        Z = np.hstack([(X - mu) / sd, np.ones((len(X), 1))])
        reg = lam * np.eye(Z.shape[1])
        reg[-1, -1] = 0.0
        w = np.linalg.solve(Z[tr].T @ Z[tr] + reg, Z[tr].T @ y[tr])
        scores.append(1 - ((y[te] - Z[te] @ w) ** 2).sum() / ((y[te] - y[tr].mean()) ** 2).sum())
    return float(np.mean(scores))


@pytest.fixture(scope="module")
def measured(catalogue):
    ds = load_dataset(catalogue)
    ids, y, _ = ds.sales_matrix()
    paths = ds.image_paths()
    has_image = np.array([paths[i] is not None for i in ids])
    return {
        "ds": ds,
        "ids": ids,
        "log_sales": np.log1p(y.sum(axis=1)),
        "has_image": has_image,
        "image": np.array([_image_features(paths[i]) if paths[i] else [0.0] * 12 for i in ids]),
        "text": _bag_of_words(ds.products["text"].to_list()),
        "attributes": _one_hot(ds, ["category", "color", "pattern", "material"]),
    }


def test_picture_pixels_predict_sales(measured):
    keep = measured["has_image"]
    r2 = _cv_r2(measured["image"][keep], measured["log_sales"][keep])
    assert r2 > 0.1, f"held-out R² of image features {r2:.3f}"


def test_description_words_predict_sales(measured):
    r2 = _cv_r2(measured["text"], measured["log_sales"])
    assert r2 > 0.1, f"held-out R² of bag of words {r2:.3f}"


def test_pictures_and_text_beat_attributes_alone(measured):
    keep = measured["has_image"]
    y = measured["log_sales"][keep]
    attrs = measured["attributes"][keep]
    alone = _cv_r2(attrs, y)
    both = _cv_r2(np.hstack([attrs, measured["image"][keep], measured["text"][keep]]), y)
    assert both > alone + 0.05, f"attributes {alone:.3f}, + image + text {both:.3f}"


def test_exog_before_release_moves_sales(measured):
    ds, ids, y = measured["ds"], measured["ids"], measured["log_sales"]
    window, names = exog_window(ds, ids, horizon=0)
    assert names == ["category", "color"]
    trend = window[:, -4:, :].mean(axis=(1, 2))  # the 4 weeks before release
    X = np.hstack([measured["attributes"], np.ones((len(y), 1))])
    residual = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
    assert np.corrcoef(trend, residual)[0, 1] > 0.4  # 0.58 on this catalogue (docs/data.md)


# --- the command ------------------------------------------------------------------------------------


def test_cli_writes_refuses_and_forces(tmp_path, cli):
    out = tmp_path / "demo"
    code, stdout, err = cli("demo-data", out, "-n", 12, "--image-size", 24, "--weeks", 6)
    assert code == 0, err
    assert "12 products" in stdout and load_dataset(out).max_horizon() == 6
    before = (out / "sales.csv").read_bytes()
    code, _, err = cli("demo-data", out, "-n", 12, "--seed", 1)
    assert code == 2 and "--force" in err and (out / "sales.csv").read_bytes() == before
    code, _, err = cli("demo-data", out, "-n", 12, "--seed", 1, "--force", "--image-size", 24)
    assert code == 0 and (out / "sales.csv").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no temp folders left


@pytest.mark.parametrize("kwargs,needle", [
    ({"image_size": 8}, "image_size"), ({"products": 0}, "products"), ({"missing_image_frac": 1.5}, "missing_image_frac"),
    ({"start": "soon"}, "start"), ({"trend_window": 53}, "trend_window"), ({"trend_window": -1}, "trend_window"),
])
def test_bad_config_is_refused_before_writing(tmp_path, kwargs, needle):
    with pytest.raises(SfError, match=needle):
        generate(DemoConfig(out=tmp_path / "x", **kwargs))
    assert not (tmp_path / "x").exists()
