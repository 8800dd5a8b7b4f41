"""Reading the exports retailers have: own column names, semicolons, timestamps, daily rows per store, zero
weeks left out, pre-release orders, numeric columns; and sf data check listing every violation in one run."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from sf.data.check import check_dataset
from sf.data.contract import DataProblems, load_dataset
from sf.errors import SfError

PRODUCTS = """\
article_id;picture;description;launch;split;category;price
A1;;red shirt;2023-04-10;train;shirt;19.99
A2;;blue dress;2023-04-10 00:00:00;validation;dress;49.5
A3;;green shirt;2023-04-17T00:00:00Z;test;shirt;
"""
# Daily rows per store: A1 sells in weeks 0 and 2 only (week 1 left out: no sales), A2 in week 0.
SALES = """\
article_id;date_sold;store;qty
A1;2023-04-10 00:00:00;s1;2
A1;2023-04-10 00:00:00;s2;3
A1;2023-04-12 00:00:00;s1;1
A1;2023-04-24 00:00:00;s1;4
A2;2023-04-11 00:00:00;s2;5
A3;2023-04-17 00:00:00;s1;1
"""
TOML = """\
numeric = ["price"]

[columns]
product_id = "article_id"
image = "picture"
text = "description"
release_date = "launch"
date = "date_sold"
units = "qty"
"""


@pytest.fixture
def export(tmp_path) -> Path:
    root = tmp_path / "shop"
    (root / "images").mkdir(parents=True)
    (root / "products.csv").write_text(PRODUCTS)
    (root / "sales.csv").write_text(SALES)
    (root / "dataset.toml").write_text(TOML)
    return root


def _units(ds) -> dict[str, list[tuple[int, float]]]:
    return {p: list(zip(g["step"].to_list(), g["units"].to_list()))
            for (p,), g in ds.sales.group_by("product_id", maintain_order=True)}


def test_an_export_is_read_with_its_own_names_semicolons_timestamps_and_daily_store_rows(export):
    ds = load_dataset(export)
    assert ds.product_ids == ["A1", "A2", "A3"]
    assert ds.products["split"].to_list() == ["train", "val", "test"]  # 'validation' is val
    assert [str(d) for d in ds.products["release_date"].to_list()] == ["2023-04-10", "2023-04-10", "2023-04-17"]
    # A1: week 0 = 2 + 3 + 1 (two stores, two days), week 1 missing -> zero, week 2 = 4
    assert _units(ds) == {"A1": [(0, 6.0), (1, 0.0), (2, 4.0)], "A2": [(0, 5.0)], "A3": [(0, 1.0)]}
    ids, y, m = ds.sales_matrix(["A1"], 3)
    assert m.all()  # the zero week is observed: zero sales, not unknown
    assert any("summed into" in n for n in ds.notes)
    assert any("1 weeks without a sales row" in n and 'missing = "unobserved"' in n for n in ds.notes)


def test_price_declared_numeric_is_a_number_not_a_category(export):
    ds = load_dataset(export)
    assert ds.numeric_columns == ["price"] and "price" not in ds.attribute_columns
    assert ds.attribute_columns == ["category"]
    assert ds.products["price"].to_list() == [19.99, 49.5, None]  # empty: missing, not zero
    s = check_dataset(export)
    assert s.numeric["price"]["missing"] == 1 and s.numeric["price"]["max"] == 49.5


def test_a_numeric_looking_category_is_warned_about(export):
    (export / "dataset.toml").write_text(TOML.replace('numeric = ["price"]\n', ""))
    rows = "\n".join(f"B{i};;item;2023-04-10;train;shirt;{10 + i}.5" for i in range(20))
    (export / "products.csv").write_text(PRODUCTS + rows + "\n")
    s = check_dataset(export)
    assert any("'price' looks numeric" in w and 'numeric = ["price"]' in w for w in s.warnings)


def test_missing_unobserved_keeps_the_old_reading(export):
    (export / "dataset.toml").write_text('missing = "unobserved"\n' + TOML)
    ds = load_dataset(export)
    assert _units(ds)["A1"] == [(0, 6.0), (2, 4.0)]
    _, _, m = ds.sales_matrix(["A1"], 3)
    assert m.tolist() == [[True, False, True]]


def test_pre_release_orders_are_refused_with_the_fix_or_folded_into_step0(export):
    (export / "sales.csv").write_text(SALES + "A3;2023-04-03 00:00:00;s1;7\n")
    with pytest.raises(SfError, match=r"sales.csv, row 7, column 'date'.*before product 'A3'.*before_release = \"step0\""):
        load_dataset(export)
    (export / "dataset.toml").write_text('before_release = "step0"\n' + TOML)
    ds = load_dataset(export)
    assert _units(ds)["A3"] == [(0, 8.0)]
    assert any("pre-release" in n for n in ds.notes)


def test_mapping_errors_name_the_setting(export):
    (export / "dataset.toml").write_text(TOML.replace('units = "qty"', 'units = "quantity"'))
    with pytest.raises(SfError, match=r"\[columns\] names 'quantity', which neither products nor sales has"):
        load_dataset(export)
    (export / "dataset.toml").write_text(TOML + 'colour = "x"\n')
    with pytest.raises(SfError, match=r"\[columns\] 'colour' is not one of sf's columns"):
        load_dataset(export)
    (export / "dataset.toml").write_text(TOML.replace('numeric = ["price"]', 'numeric = ["weight"]'))
    with pytest.raises(SfError, match=r"column 'weight'.*declares it numeric"):
        load_dataset(export)


def test_check_lists_every_violation_in_one_run(export, cli):
    bad = SALES.replace("A1;2023-04-12 00:00:00;s1;1", "A1;2023-04-12 00:00:00;s1;-1").replace(
        "A2;2023-04-11 00:00:00;s2;5", "A9;2023-04-11 00:00:00;s2;5")
    (export / "sales.csv").write_text(bad + "A3;yesterday;s1;1\n")
    (export / "products.csv").write_text(PRODUCTS.replace("49.5", "cheap"))
    with pytest.raises(DataProblems) as e:
        check_dataset(export)
    assert len(e.value.lines) == 4
    code, out, err = cli("data", "check", export)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("error: ") for line in lines)
    for needle in ("products.csv, row 2, column 'price'", "sales.csv, row 3, column 'units'",
                   "sales.csv, row 5, column 'product_id'", "sales.csv, row 7, column 'date'"):
        assert sum(needle in line for line in lines) == 1, (needle, err)
    # any other command: the first, in one line, saying there are more
    with pytest.raises(SfError, match=r"and 3 more problems: sf data check lists them") as one:
        load_dataset(export, max_problems=10)
    assert "\n" not in str(one.value)


def test_the_list_is_capped(export, cli):
    rows = "".join(f"A1;2023-04-10;s1;-{i + 1}\n" for i in range(60))
    (export / "sales.csv").write_text(SALES + rows)
    code, out, err = cli("data", "check", export)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 51 and lines[-1] == "error: ... and 10 more"


def test_comma_csv_with_parquet_sales_and_typed_timestamps(export):
    (export / "products.csv").write_text(PRODUCTS.replace(";", ","))
    pl.DataFrame({"article_id": ["A1", "A1"], "qty": [1.0, 2.0],
                  "date_sold": pl.Series(["2023-04-10 09:00", "2023-04-11 18:30"]).str.to_datetime()}
                 ).write_parquet(export / "sales.parquet")
    (export / "sales.csv").unlink()
    ds = load_dataset(export)
    assert _units(ds)["A1"] == [(0, 3.0)]


def test_the_documented_export_reads_as_the_docs_say(tmp_path):
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / "data.md").read_text()
    body = text.split("<!-- section:exports -->")[1].split("<!-- /section:exports -->")[0]
    root = tmp_path / "doc"
    (root / "images").mkdir(parents=True)
    for name, content in re.findall(r"^```\w+ (\S+)\n(.*?)^```", body, flags=re.M | re.S):
        (root / name).write_text(content)
    ds = load_dataset(root)
    assert _units(ds)["A1"] == [(0, 6.0), (1, 0.0), (2, 4.0)]
    assert ds.numeric_columns == ["price"] and ds.products["split"].to_list() == ["train", "val"]
