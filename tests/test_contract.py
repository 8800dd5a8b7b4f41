"""The data contract: every violation is one line naming file/row/column, exits 2 and writes nothing;
valid folders (CSV or Parquet, steps or dates) load and are summarised correctly."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image
from rich.console import Console

from sf.data.check import check_dataset, print_summary, write_json
from sf.data.contract import exog_window, load_dataset
from sf.errors import SfError

PRODUCTS = """\
product_id,image,text,release_date,category,color,split
a,a.png,red shirt,2020-01-06,shirt,red,train
b,,blue dress,2020-01-13,dress,blue,val
c,sub/c.png,,2020-02-03,shirt,green,test
"""
SALES = """\
product_id,step,units
a,0,5
a,1,3.5
b,0,2
b,1,0
b,2,1
c,0,7
"""
TOML = 'name = "tiny"\nperiod = "week"\nexog_link = ["category", "color"]\nexog_lookback = 2\n'


def _exog_csv() -> str:
    rows = ["date,shirt,dress,red,blue"]
    for k in range(12):
        d = np.datetime64("2019-12-23") + 7 * k
        rows.append(f"{d},{10 * k},{100 - k},{k % 3},{50}")
    return "\n".join(rows) + "\n"


@pytest.fixture
def tiny(tmp_path) -> Path:
    root = tmp_path / "tiny"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8), (200, 20, 20)).save(root / "images" / "a.png")
    (root / "products.csv").write_text(PRODUCTS)
    (root / "sales.csv").write_text(SALES)
    (root / "exog.csv").write_text(_exog_csv())
    (root / "dataset.toml").write_text(TOML)
    return root


def _edit(root: Path, name: str, old: str, new: str) -> None:
    p = root / name
    text = p.read_text()
    assert old in text, f"test setup: {old!r} not in {name}"
    p.write_text(text.replace(old, new, 1))


def _sales_by_date(root: Path) -> None:
    (root / "sales.csv").write_text(
        "product_id,date,units\na,2020-01-06,5\na,2020-01-13,3\nb,2020-01-13,2\nb,2020-01-20,1\n"
    )


# (id, how to break the folder, file, row, column). Rows are 1-based data rows (header excluded).
VIOLATIONS = [
    ("missing column units", lambda r: (r / "sales.csv").write_text("product_id,step\na,0\n"), "sales.csv", None, "units"),
    ("missing column product_id", lambda r: _edit(r, "products.csv", "product_id,", "id,"), "products.csv", None, "product_id"),
    ("duplicate id", lambda r: _edit(r, "products.csv", "c,sub/c.png", "a,sub/c.png"), "products.csv", 3, "product_id"),
    ("negative units", lambda r: _edit(r, "sales.csv", "b,0,2", "b,0,-2"), "sales.csv", 3, "units"),
    ("NaN units", lambda r: _edit(r, "sales.csv", "a,1,3.5", "a,1,NaN"), "sales.csv", 2, "units"),
    ("empty units", lambda r: _edit(r, "sales.csv", "b,2,1", "b,2,"), "sales.csv", 5, "units"),
    ("text units", lambda r: _edit(r, "sales.csv", "b,2,1", "b,2,many"), "sales.csv", 5, "units"),
    ("unknown product in sales", lambda r: _edit(r, "sales.csv", "b,1,0", "zz,1,0"), "sales.csv", 4, "product_id"),
    ("empty product_id in sales", lambda r: _edit(r, "sales.csv", "b,1,0", ",1,0"), "sales.csv", 4, "product_id"),
    ("unparseable release_date", lambda r: _edit(r, "products.csv", "2020-01-13", "2020-13-45"), "products.csv", 2, "release_date"),
    ("non-ISO release_date", lambda r: _edit(r, "products.csv", "2020-02-03", "03/02/2020"), "products.csv", 3, "release_date"),
    ("unparseable sales date", lambda r: (_sales_by_date(r), _edit(r, "sales.csv", "b,2020-01-13", "b,last week")),
     "sales.csv", 3, "date"),
    ("sales date before release", lambda r: (_sales_by_date(r), _edit(r, "sales.csv", "b,2020-01-20", "b,2019-12-30")),
     "sales.csv", 4, "date"),
    ("image escapes folder", lambda r: _edit(r, "products.csv", "sub/c.png", "../x.jpg"), "products.csv", 3, "image"),
    ("image deep escape", lambda r: _edit(r, "products.csv", "a.png", "sub/../../../etc/passwd"), "products.csv", 1, "image"),
    ("image absolute path", lambda r: _edit(r, "products.csv", "a.png", "/etc/passwd"), "products.csv", 1, "image"),
    ("empty product_id", lambda r: _edit(r, "products.csv", "b,,blue", ",,blue"), "products.csv", 2, "product_id"),
    ("bad split value", lambda r: _edit(r, "products.csv", "green,test", "green,holdout"), "products.csv", 3, "split"),
    ("non-integer step", lambda r: _edit(r, "sales.csv", "b,1,0", "b,1.5,0"), "sales.csv", 4, "step"),
    ("text step", lambda r: _edit(r, "sales.csv", "b,1,0", "b,one,0"), "sales.csv", 4, "step"),
    ("negative step", lambda r: _edit(r, "sales.csv", "b,1,0", "b,-1,0"), "sales.csv", 4, "step"),
    ("exog not a number", lambda r: _edit(r, "exog.csv", ",50\n", ",n/a\n"), "exog.csv", 1, "blue"),
    ("exog duplicate date", lambda r: _edit(r, "exog.csv", "2019-12-30", "2019-12-23"), "exog.csv", 2, "date"),
]


@pytest.mark.parametrize("breaks,file,row,column", [v[1:] for v in VIOLATIONS], ids=[v[0] for v in VIOLATIONS])
def test_violation_is_one_line_exit_2_and_writes_nothing(tiny, cli, breaks, file, row, column):
    breaks(tiny)
    out_json = tiny.parent / "summary.json"
    code, out, err = cli("data", "check", tiny, "--json", out_json)
    assert code == 2
    lines = err.strip().splitlines()
    # sf data check lists every violation (one may follow from another: a product renamed away leaves its sales unknown)
    assert all(line.startswith("error: ") for line in lines), err
    first = lines[0]
    assert file in first and f"column '{column}'" in first, err
    if row is not None:
        assert f"row {row}," in first, err
    assert "Traceback" not in err and out == ""
    assert not out_json.exists()
    # every other command stops at the first violation, in one line
    with pytest.raises(SfError) as e:
        load_dataset(tiny)
    assert "\n" not in str(e.value) and str(e.value).startswith(first.removeprefix("error: "))


@pytest.mark.parametrize("toml,needle", [
    ('period = "fortnight"\n', "period"),
    ('exog_link = "category"\n', "exog_link"),
    ('exog_link = ["season"]\n', "season"),
    ("exog_lookback = -3\n", "exog_lookback"),
    ('colour = "red"\n', "unknown key"),
    ("period = \n", "invalid TOML"),
])
def test_bad_dataset_toml(tiny, cli, toml, needle):
    (tiny / "dataset.toml").write_text(toml)
    code, _, err = cli("data", "check", tiny)
    assert code == 2 and "dataset.toml" in err and needle in err, err


def test_parquet_violation_names_row(tiny):
    df = pl.read_csv(tiny / "sales.csv").with_columns(pl.col("units").cast(pl.Float64))
    df = df.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(-1.0).otherwise(pl.col("units")).alias("units"))
    (tiny / "sales.csv").unlink()
    df.write_parquet(tiny / "sales.parquet")
    with pytest.raises(SfError, match=r"sales.parquet, row 4, column 'units': negative units"):
        load_dataset(tiny)


def test_csv_and_parquet_side_by_side_is_refused(tiny):
    pl.read_csv(tiny / "sales.csv").write_parquet(tiny / "sales.parquet")
    with pytest.raises(SfError, match="both sales.parquet and sales.csv"):
        load_dataset(tiny)


def test_missing_folder_and_tables(tmp_path, cli):
    code, _, err = cli("data", "check", tmp_path / "nope")
    assert code == 2 and "not found" in err
    code, _, err = cli("data", "check", tmp_path)
    assert code == 2 and "products.parquet or products.csv" in err


def test_csv_happy_path(tiny):
    ds = load_dataset(tiny)
    assert ds.meta.name == "tiny" and ds.meta.period == "week"
    assert ds.meta.exog_link == ("category", "color") and ds.meta.exog_lookback == 2
    assert ds.product_ids == ["a", "b", "c"]
    assert ds.attribute_columns == ["category", "color"]
    assert ds.products["release_date"].to_list() == [date(2020, 1, 6), date(2020, 1, 13), date(2020, 2, 3)]
    assert ds.products["text"].to_list() == ["red shirt", "blue dress", ""]
    assert ds.image_paths() == {"a": tiny / "images" / "a.png", "b": None, "c": tiny / "images" / "sub" / "c.png"}
    ids, y, m = ds.sales_matrix()
    assert ids == ["a", "b", "c"] and y.shape == (3, 3)
    np.testing.assert_allclose(y, [[5, 3.5, 0], [2, 0, 1], [7, 0, 0]])
    np.testing.assert_array_equal(m, [[1, 1, 0], [1, 1, 1], [1, 0, 0]])
    ids, y, m = ds.sales_matrix(["c", "a"], horizon=2)
    np.testing.assert_allclose(y, [[7, 0], [5, 3.5]])


def test_parquet_happy_path_with_typed_columns(tmp_path):
    root = tmp_path / "pq"
    root.mkdir()
    pl.DataFrame({
        "product_id": [10, 11],
        "image": [None, "11.jpg"],
        "text": ["x", None],
        "release_date": [date(2021, 3, 1), date(2021, 3, 8)],
        "brand": ["k", "m"],
    }).write_parquet(root / "products.parquet")
    pl.DataFrame({"product_id": [11, 10, 10], "step": pl.Series([0, 1, 0], dtype=pl.Int32),
                  "units": [1.5, 2.0, 3.0]}).write_parquet(root / "sales.parquet")
    pl.DataFrame({"date": pl.Series([date(2021, 1, 4), date(2021, 1, 11)]).cast(pl.Datetime("us")),
                  "k": [1, 2]}).write_parquet(root / "exog.parquet")
    ds = load_dataset(root)
    assert ds.meta.name == "pq" and ds.meta.period == "week" and ds.meta.exog_link == ()
    assert ds.product_ids == ["10", "11"] and ds.attribute_columns == ["brand"]
    assert ds.products["image"].to_list() == ["", "11.jpg"] and ds.products["text"].to_list() == ["x", ""]
    assert ds.exog["date"].to_list() == [date(2021, 1, 4), date(2021, 1, 11)]
    _, y, _ = ds.sales_matrix()
    np.testing.assert_allclose(y, [[3.0, 2.0], [1.5, 0.0]])


@pytest.mark.parametrize("period,dates,steps", [
    ("week", ["2020-01-06", "2020-01-12", "2020-01-13", "2020-02-03"], [0, 0, 1, 4]),
    ("day", ["2020-01-06", "2020-01-07", "2020-02-05"], [0, 1, 30]),
    # Calendar months: 2020-02-01 is month 1 although it is fewer than 30 days after 2020-01-06.
    ("month", ["2020-01-06", "2020-02-01", "2020-03-31", "2021-01-06"], [0, 1, 2, 12]),
])
def test_sales_dates_become_steps_in_the_declared_period(tiny, period, dates, steps):
    (tiny / "dataset.toml").write_text(f'period = "{period}"\nmissing = "unobserved"\n')  # only the rows given
    if period == "week":  # 01-06 and 01-12 share week 0: keep one product per date so rows stay unique
        ids = ["a", "b", "a", "c"]
        _edit(tiny, "products.csv", "2020-01-13", "2020-01-06")
        _edit(tiny, "products.csv", "2020-02-03", "2020-01-06")
        steps_by_id = {"a": [0, 1], "b": [0], "c": [4]}
    else:
        ids = ["a"] * len(dates)
        steps_by_id = {"a": steps}
    rows = "\n".join(f"{p},{d},{k + 1}" for k, (p, d) in enumerate(zip(ids, dates)))
    (tiny / "sales.csv").write_text(f"product_id,date,units\n{rows}\n")
    ds = load_dataset(tiny)
    assert ds.meta.period == period and ds.meta.name == "tiny"  # name defaults to the folder
    got = {p: ds.sales.filter(pl.col("product_id") == p)["step"].to_list() for p in steps_by_id}
    assert got == steps_by_id


def test_dataset_toml_is_optional(tiny):
    (tiny / "dataset.toml").unlink()
    ds = load_dataset(tiny)
    assert (ds.meta.name, ds.meta.period, ds.meta.exog_link, ds.meta.exog_lookback) == ("tiny", "week", (), 52)


def test_exog_window_takes_linked_terms_around_release(tiny):
    ds = load_dataset(tiny)
    x, names = exog_window(ds, ["a", "b"], horizon=2)
    assert names == ["category", "color"] and x.shape == (2, 4, 2)
    # a: shirt/red released 2020-01-06 = exog row 2; window rows 0..3. Scaled by each column's max.
    np.testing.assert_allclose(x[0, :, 0], np.array([0, 10, 20, 30]) / 110)
    np.testing.assert_allclose(x[0, :, 1], np.array([0, 1, 2, 0]) / 2)
    # b: dress/blue released 2020-01-13 = exog row 3.
    np.testing.assert_allclose(x[1, :, 0], np.array([99, 98, 97, 96]) / 100)
    np.testing.assert_allclose(x[1, :, 1], 1.0)


def test_exog_window_keeps_a_never_positive_series_bounded(tiny):
    """A series with negative values is scaled by its largest magnitude: VISUELLE's all -1 terms, scaled by
    their maximum (-1, floored to 1e-6), became -1e6 and drove GTM-style to NaN losses."""
    (tiny / "exog.csv").write_text(_exog_csv().replace(",50\n", ",-1\n"))  # blue: -1 in every week
    ds = load_dataset(tiny)
    x, _ = exog_window(ds, ["b"], horizon=2)
    np.testing.assert_allclose(x[0, :, 1], -1.0)
    assert np.abs(x).max() <= 1.0


def test_check_summary_counts(tiny):
    s = check_dataset(tiny)
    assert (s.name, s.period, s.products) == ("tiny", "week", 3)
    assert s.attributes == {"category": 2, "color": 3}
    assert (s.images_referenced, s.images_found, s.images_missing) == (2, 1, 1)
    assert s.missing_image_examples == ["sub/c.png"]
    assert s.products_with_text == 2
    assert (s.sales_rows, s.products_with_sales, s.units_total) == (6, 3, 18.5)
    assert (s.horizon_min, s.horizon_median, s.horizon_max) == (1, 2.0, 3)
    assert (s.release_first, s.release_last, s.products_without_release) == ("2020-01-06", "2020-02-03", 0)
    assert list(s.splits.items()) == [("train", 1), ("val", 1), ("test", 1)]
    assert (s.exog_terms, s.exog_first, s.exog_last) == (4, "2019-12-23", "2020-03-09")
    assert s.exog_linked_products == 3  # c links through category 'shirt' although 'green' has no series
    assert any("image files are missing" in w and "sub/c.png" in w for w in s.warnings)
    assert any("'color' values have no exog column" in w and "'green'" in w for w in s.warnings)


def test_check_without_optional_parts(tiny):
    for name in ("exog.csv", "dataset.toml"):
        (tiny / name).unlink()
    (tiny / "products.csv").write_text("\n".join(l.rsplit(",", 1)[0] for l in (tiny / "products.csv").read_text().splitlines()) + "\n")
    s = check_dataset(tiny)
    assert s.splits == {} and s.exog_terms == 0 and s.exog_link == [] and s.exog_linked_products == 0


def test_check_cli_prints_table_and_writes_json(tiny, cli):
    out_json = tiny.parent / "reports" / "summary.json"
    code, out, err = cli("data", "check", tiny, "--json", out_json)
    assert code == 0, err
    assert "products" in out and "1 missing" in out and "warning:" in err and "warning:" not in out
    saved = json.loads(out_json.read_text())
    assert saved["products"] == 3 and saved["images_missing"] == 1 and saved["splits"]["val"] == 1
    assert [p.name for p in out_json.parent.iterdir()] == ["summary.json"]  # no temp file left


def test_write_json_replaces_atomically(tiny, tmp_path):
    s = check_dataset(tiny)
    target = tmp_path / "s.json"
    target.write_text("old")
    write_json(s, target)
    assert json.loads(target.read_text())["name"] == "tiny"
    console = Console(record=True, width=120)
    print_summary(s, console)
    text = console.export_text()
    assert "2 referenced, 1 found, 1 missing" in text and "1 / 2 / 3 weeks" in text


def test_ragged_csv_names_the_row(tiny, cli):
    _edit(tiny, "sales.csv", "b,1,0", "b,1,0,9")
    code, _, err = cli("data", "check", tiny)
    assert code == 2 and "sales.csv, row 4: 4 fields where the header has 3" in err, err


def _example_files(doc: str, section: str) -> list[tuple[str, str]]:
    text = (Path(__file__).resolve().parents[1] / doc).read_text()
    body = text.split(f"<!-- section:{section} -->")[1].split(f"<!-- /section:{section} -->")[0]
    return re.findall(r"^```\w+ (\S+)\n(.*?)^```", body, flags=re.M | re.S)


def test_readme_worked_example_loads(tmp_path):
    """The files shown in docs/data.md (and, the same, in the README) are a valid dataset and link exog as the text says."""
    files = _example_files("docs/data.md", "data")
    assert _example_files("README.md", "data-example") == files
    assert {name for name, _ in files} == {"products.csv", "sales.csv", "exog.csv", "dataset.toml"}
    root = tmp_path / "tiny"
    root.mkdir()
    for name, body in files:
        (root / name).write_text(body)
    s = check_dataset(root)
    assert (s.products, s.sales_rows, s.images_referenced, s.images_found) == (3, 6, 2, 0)
    assert s.splits == {"train": 2, "test": 1} and s.exog_linked_products == 3
    ds = load_dataset(root)
    x, names = exog_window(ds, ["p1"], horizon=1)
    assert names == ["category", "color"]
    # p1 released 2024-03-04 with a 4-week look-back: t-shirt rows 2024-02-05 .. 2024-03-04.
    np.testing.assert_allclose(x[0, :, 0], np.array([40, 42, 45, 47, 52]) / 55)
    np.testing.assert_allclose(x[0, :, 1], np.array([61, 60, 64, 66, 70]) / 71)
    (root / "sales.csv").write_text("product_id,date,units\np1,2024-03-04,12\np1,2024-03-11,30\n")
    assert load_dataset(root).sales["step"].to_list() == [0, 1]
