"""`sf import visuelle`: a small fake VISUELLE folder (train + an unseen test.csv, an RGBA PNG, the
original <season>/<n>.png layout) and, when present, the real data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from sf.data.check import check_dataset
from sf.data.contract import load_dataset
from sf.data.visuelle import import_visuelle
from sf.errors import SfError

SCALE = 500.0  # not VISUELLE's 1065, so the test proves the scale is read from the file
WEEKS = 12


def _rows(codes, seasons, cats, colors, fabrics, extras, dates, rng) -> pl.DataFrame:
    n = len(codes)
    sales = {str(k): np.round(rng.uniform(0, 0.2, n), 6) for k in range(WEEKS)}
    return pl.DataFrame({
        **sales, "external_code": codes, "season": seasons, "category": cats, "release_date": dates,
        "day": [0.5] * n, "week": [0.1] * n, "month": [0.2] * n, "year": [0.9] * n,
        "image_path": [f"PE17/{c:05d}.png" for c in codes], "color": colors, "fabric": fabrics, "extra": extras,
    })


@pytest.fixture
def fake_src(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    src = tmp_path / "visuelle_src"
    (src / "images" / "PE17").mkdir(parents=True)
    train = _rows([1, 2, 3, 4, 5], ["SS17"] * 3 + ["AW17"] * 2, ["long sleeve", "culottes", "long sleeve", "maxi", "maxi"],
                  ["yellow", "blue", "blue", "red", "yellow"], ["acrylic", "cotton", "acrylic", "lace", "cotton"],
                  ["hem", "", "zip", "hem", "bow"], ["2017-01-05", "2017-01-05", "2017-02-02", "2017-09-07", "2017-09-14"], rng)
    train = train.with_columns(pl.when(pl.col("external_code") == 2).then(-0.002).otherwise(pl.col("3")).alias("3"))
    test = _rows([7, 8], ["SS19", "SS19"], ["culottes", "shorts"], ["red", "blue"], ["lace", "linen"],
                 ["bow", "zip"], ["2019-03-07", "2019-03-14"], rng)
    train.write_csv(src / "train.csv")
    test.write_csv(src / "test.csv")
    np.save(src / "normalization_scale.npy", np.array([SCALE]))
    dates = [str(np.datetime64("2016-01-04") + 7 * k) for k in range(200)]
    terms = ["long sleeve", "culottes", "maxi", "shorts", "yellow", "blue", "red", "acrylic", "cotton", "lace", "linen"]
    trends = {t: rng.integers(0, 100, 200) for t in terms}
    trends["linen"][:5] = -1  # VISUELLE's "no data": weeks become 0, and a term without any data is left out
    trends["satin"] = np.full(200, -1)
    pl.DataFrame({"date": dates, **trends}).write_csv(src / "gtrends.csv")
    Image.new("RGB", (20, 30), (250, 200, 10)).save(src / "images" / "1.jpg")
    Image.new("RGB", (20, 30), (10, 20, 200)).save(src / "images" / "PE17" / "00003.png")  # original layout
    rgba = Image.new("RGBA", (16, 24), (0, 0, 0, 0))
    rgba.paste((200, 10, 10, 255), (4, 4, 12, 20))
    rgba.save(src / "images" / "7.png")
    return src


def test_import_fake_visuelle_with_unseen_test_csv(fake_src, tmp_path):
    out = tmp_path / "out"
    summary = import_visuelle(fake_src, out)
    assert (summary.products, summary.splits, summary.images, summary.weeks) == (7, {"train": 5, "test": 2}, 3, WEEKS)
    assert summary.negative_clipped == 1 and summary.scale == SCALE and summary.exog_terms == 11

    ds = load_dataset(out)
    assert (ds.meta.name, ds.meta.period, ds.meta.exog_link, ds.meta.exog_lookback) == (
        "visuelle", "week", ("category", "color", "fabric"), 52)
    p = ds.products
    assert ds.product_ids == ["1", "2", "3", "4", "5", "7", "8"]
    assert p["split"].to_list() == ["train"] * 5 + ["test"] * 2
    assert p["image"].to_list() == ["1.jpg", "", "3.png", "", "", "7.png", ""]
    assert set(ds.attribute_columns) == {"category", "color", "fabric", "extra", "season"}
    assert p.row(0, named=True)["text"] == "long sleeve in yellow acrylic with hem, SS17 season"
    assert p.row(1, named=True)["text"] == "culottes in blue cotton, SS17 season"  # no extra, no "with"
    assert str(p["release_date"][5]) == "2019-03-07"

    for name, original in [("1.jpg", "1.jpg"), ("3.png", "PE17/00003.png"), ("7.png", "7.png")]:
        assert (out / "images" / name).read_bytes() == (fake_src / "images" / original).read_bytes()
    assert Image.open(out / "images" / "7.png").mode == "RGBA"  # copied as is; decoding is stage 1's job

    raw = pl.concat([pl.read_csv(fake_src / "train.csv"), pl.read_csv(fake_src / "test.csv")])
    expected = np.maximum(raw.select([str(k) for k in range(WEEKS)]).to_numpy() * SCALE, 0)
    ids, y, m = ds.sales_matrix([str(c) for c in raw["external_code"]])
    assert m.all()
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-4)
    assert y[1, 3] == 0.0  # the negative week became 0

    gt = pl.read_csv(fake_src / "gtrends.csv")
    assert ds.exog.columns == [c for c in gt.columns if c != "satin"] and summary.exog_unavailable == ("satin",)
    np.testing.assert_allclose(ds.exog["blue"].to_numpy(), gt["blue"].to_numpy())
    np.testing.assert_allclose(ds.exog["linen"].to_numpy(), np.maximum(gt["linen"].to_numpy(), 0))
    assert ds.exog["linen"][0] == 0 and "satin" in str(summary)
    s = check_dataset(out)
    assert s.images_missing == 0 and s.exog_linked_products == 7 and not s.warnings


def test_import_cli_then_check(fake_src, tmp_path, cli):
    out = tmp_path / "imported"
    code, stdout, err = cli("import", "visuelle", fake_src, out)
    assert code == 0, err
    assert "imported 7 products" in stdout and "train 5, test 2" in stdout
    code, stdout, err = cli("data", "check", out)
    assert code == 0 and "7" in stdout and "train 5" in stdout, err


def _leftovers(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith("."))


def test_existing_output_needs_force_and_failures_keep_it(fake_src, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SfError, match="not empty .*--force"):
        import_visuelle(fake_src, out)
    with pytest.raises(SfError, match="not an earlier result"):  # --force never deletes an arbitrary folder
        import_visuelle(fake_src, out, force=True)
    assert (out / "keep.txt").read_text() == "mine"
    (out / "products.csv").write_text("product_id\nold\n")

    (fake_src / "test.csv").write_text((fake_src / "test.csv").read_text().replace("2019-03-14", "14/03/2019"))
    with pytest.raises(SfError, match=r"test.csv, row 2, column 'release_date'"):
        import_visuelle(fake_src, out, force=True)
    assert (out / "keep.txt").read_text() == "mine" and _leftovers(tmp_path) == []

    (fake_src / "test.csv").unlink()
    import_visuelle(fake_src, out, force=True)
    assert not (out / "keep.txt").exists() and load_dataset(out).products.height == 5
    assert _leftovers(tmp_path) == []


def _replace_in(name: str, old: str, new: str):
    def edit(src: Path):
        p = src / name
        p.write_text(p.read_text().replace(old, new, 1))
    return edit


def _drop_column(name: str, column: str):
    def edit(src: Path):
        pl.read_csv(src / name).drop(column).write_csv(src / name)
    return edit


def _set_cell(name: str, row: int, column: str, value: str):
    def edit(src: Path):
        df = pl.read_csv(src / name, infer_schema=False)
        df = df.with_columns(pl.when(pl.int_range(pl.len()) == row - 1).then(pl.lit(value)).otherwise(pl.col(column)).alias(column))
        df.write_csv(src / name)
    return edit


BROKEN_SOURCES = [
    ("no sales files", lambda s: ((s / "train.csv").unlink(), (s / "test.csv").unlink()), "neither train.csv nor test.csv"),
    ("no gtrends", lambda s: (s / "gtrends.csv").unlink(), "gtrends.csv: not found"),
    ("no scale", lambda s: (s / "normalization_scale.npy").unlink(), "normalization_scale.npy: not found"),
    ("scale not one number", lambda s: np.save(s / "normalization_scale.npy", np.array([1.0, 2.0])), "expected one positive number"),
    ("scale not npy", lambda s: (s / "normalization_scale.npy").write_text("1065"), "cannot be read as a .npy"),
    ("missing column", _drop_column("train.csv", "category"), "train.csv, column 'category': required VISUELLE column"),
    ("missing week column", _drop_column("test.csv", "5"), "test.csv, column '0': expected weekly sales columns"),
    ("sales not a number", _set_cell("train.csv", 4, "7", "abc"), "train.csv, row 4, column '7'"),
    ("bad release date", _set_cell("test.csv", 1, "release_date", "2019-02-30"), "test.csv, row 1, column 'release_date'"),
    ("empty code", _set_cell("train.csv", 2, "external_code", ""), "train.csv, row 2, column 'external_code': empty"),
    ("duplicate code", _set_cell("train.csv", 5, "external_code", "1"), "train.csv, row 5, column 'external_code': duplicate"),
    ("code in both files", _set_cell("test.csv", 2, "external_code", "3"), "test.csv, row 2, column 'external_code'"),
    ("gtrends bad date", _set_cell("gtrends.csv", 3, "date", "soon"), "gtrends.csv, row 3, column 'date'"),
    ("gtrends bad value", _set_cell("gtrends.csv", 9, "red", "x"), "gtrends.csv, row 9, column 'red'"),
    ("ragged csv", _replace_in("train.csv", ",hem\n", ",hem,oops\n"), "train.csv, row 1: 25 fields where the header has 24"),
]


@pytest.mark.parametrize("breaks,needle", [b[1:] for b in BROKEN_SOURCES], ids=[b[0] for b in BROKEN_SOURCES])
def test_broken_sources_fail_with_one_line_and_write_nothing(fake_src, tmp_path, cli, breaks, needle):
    breaks(fake_src)
    out = tmp_path / "out"
    code, stdout, err = cli("import", "visuelle", fake_src, out)
    assert code == 2, stdout
    assert err.startswith("error: ") and err.strip().count("\n") == 0 and needle in err, err
    assert not out.exists() and _leftovers(tmp_path) == []


def test_output_cannot_replace_the_source(fake_src, cli):
    code, _, err = cli("import", "visuelle", fake_src, fake_src, "--force")
    assert code == 2 and "would replace the VISUELLE source" in err and (fake_src / "train.csv").exists()


def test_missing_src_folder(tmp_path, cli):
    code, _, err = cli("import", "visuelle", tmp_path / "nope", tmp_path / "out")
    assert code == 2 and "VISUELLE folder not found" in err


def test_real_visuelle(visuelle_dir, tmp_path):
    out = tmp_path / "visuelle"
    summary = import_visuelle(visuelle_dir, out)
    assert summary.products == 5080 and summary.images == 491 and summary.splits == {"train": 5080}
    ds = load_dataset(out)
    assert ds.products.height == 5080
    assert sum(p is not None for p in ds.image_paths().values()) == 491
    assert all(p.is_file() for p in ds.image_paths().values() if p is not None)
    raw = pl.read_csv(visuelle_dir / "train.csv")
    scale = float(np.load(visuelle_dir / "normalization_scale.npy").ravel()[0])
    assert scale == 1065.0
    _, y, m = ds.sales_matrix([str(c) for c in raw["external_code"]], horizon=12)
    expected = raw.select([str(k) for k in range(12)]).to_numpy() * scale
    assert m.all()
    np.testing.assert_allclose(y, np.maximum(expected, 0), rtol=1e-6, atol=1e-3)  # float32 storage
    assert (expected < 0).sum() == summary.negative_clipped
    # Every linked term has a series except the three that VISUELLE's gtrends has no data for (-1 throughout).
    terms = set(raw["category"]) | set(raw["color"]) | set(raw["fabric"])
    assert set(summary.exog_unavailable) == {"polyviscous", "muslin cotton or silk", "fluid polyviscous"}
    assert set(ds.exog.columns) - {"date"} >= terms - set(summary.exog_unavailable)
    assert min(ds.exog[c].min() for c in ds.exog.columns if c != "date") >= 0
