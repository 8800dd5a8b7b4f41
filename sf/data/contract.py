"""The dataset contract: a folder of products, sales, optional exogenous series and images.

    DIR/
      products.parquet|csv   product_id (unique), image, text, release_date, [split], attribute columns...
      sales.parquet|csv      product_id, step (0-based periods since release) or date, units (>= 0)
      exog.parquet|csv       optional: date + one column per term (linked to products by attribute value)
      dataset.toml           optional: period, exog_link, exog_lookback, name
      images/                product images; products.image is relative to this folder

Every violation raises SfError with one line naming file, row (1-based data row, header excluded)
and column. Nothing here writes to disk.
"""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from sf.data.headers import check_csv_header, check_names, clip, columns_list
from sf.errors import SfError, where

PERIOD_DAYS = {"day": 1, "week": 7, "month": 30.4375}
RESERVED = {"product_id", "image", "text", "release_date", "split"}
SPLITS = ("train", "val", "test")  # the products' split column, in this order wherever splits are listed
DATE_FORMAT = "%Y-%m-%d"


@dataclass(frozen=True)
class DatasetMeta:
    name: str = "dataset"
    period: str = "week"
    # Attribute columns whose *values* name columns of the exog table (VISUELLE: category, color, fabric).
    exog_link: tuple[str, ...] = ()
    # How many periods of each linked exog series before release a model sees.
    exog_lookback: int = 52


@dataclass
class Dataset:
    root: Path
    meta: DatasetMeta
    products: pl.DataFrame  # product_id, image, text, release_date, [split], attributes...
    sales: pl.DataFrame  # product_id, step, units — sorted by product_id, step
    exog: pl.DataFrame | None = None  # date + term columns, sorted by date
    attribute_columns: list[str] = field(default_factory=list)

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def product_ids(self) -> list[str]:
        return self.products["product_id"].to_list()

    def image_paths(self) -> dict[str, Path | None]:
        """product_id → absolute image path, or None when the product has no image."""
        out: dict[str, Path | None] = {}
        for pid, img in self.products.select("product_id", "image").iter_rows():
            out[pid] = (self.images_dir / img) if img else None
        return out

    def sales_matrix(self, product_ids: list[str] | None = None, horizon: int | None = None):
        """Dense (N, H) units and observed-mask arrays, rows in `product_ids` order (default: products order)."""
        ids = self.product_ids if product_ids is None else list(product_ids)
        h = horizon if horizon is not None else self.max_horizon()
        y = np.zeros((len(ids), h), dtype=np.float32)
        m = np.zeros((len(ids), h), dtype=bool)
        index = {pid: i for i, pid in enumerate(ids)}
        s = self.sales.filter(pl.col("step") < h)
        rows = np.array([index.get(p, -1) for p in s["product_id"].to_list()], dtype=np.int64)
        keep = rows >= 0
        steps = s["step"].to_numpy()[keep]
        y[rows[keep], steps] = s["units"].to_numpy()[keep]
        m[rows[keep], steps] = True
        return ids, y, m

    def max_horizon(self) -> int:
        return int(self.sales["step"].max()) + 1 if self.sales.height else 0


def _find_table(root: Path, stem: str, required: bool) -> Path | None:
    found = [root / f"{stem}{ext}" for ext in (".parquet", ".csv") if (root / f"{stem}{ext}").exists()]
    if len(found) > 1:
        # Silently preferring one would hide edits made to the other.
        raise SfError(f"{root}: both {stem}.parquet and {stem}.csv exist; keep only one")
    if found:
        return found[0]
    if required:
        raise SfError(f"{root}: no {stem}.parquet or {stem}.csv found (see docs/data.md)")
    return None


def read_as_strings(path: Path) -> pl.DataFrame:
    """Every column as nullable strings, so each value can be checked and reported by row."""
    if path.suffix == ".csv":
        check_csv_header(path)  # blank/duplicate names and non-text headers, before polars renames or crashes
    try:
        if path.suffix == ".csv":
            df = pl.read_csv(path, infer_schema=False)
        else:
            df = pl.read_parquet(path)
            df = df.with_columns([_as_string(c, df.schema[c]) for c in df.columns])
    except SfError:
        raise
    except Exception as e:  # polars/pyarrow raise many types for malformed files
        ragged = _first_ragged_row(path) if path.suffix == ".csv" else None
        if ragged:
            raise SfError(ragged) from None
        raise SfError(f"{path}: cannot be read as a table ({type(e).__name__}: {clip((str(e).splitlines() or [''])[0])})") from None
    check_names(df.columns, path)
    return df.rename({c: c.strip() for c in df.columns})


def _first_ragged_row(path: Path) -> str | None:
    """Polars does not say which line has the wrong number of fields; find it for the message."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = csv.reader(f)
            header = next(rows, [])
            for i, row in enumerate(rows, start=1):
                if row and len(row) != len(header):
                    return f"{where(path, i)}: {len(row)} fields where the header has {len(header)}"
    except (UnicodeDecodeError, csv.Error):
        return None
    return None


def _as_string(col: str, dtype: pl.DataType) -> pl.Expr:
    # Typed Parquet dates/timestamps become ISO dates so they pass the same checks as CSV text.
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        return pl.col(col).dt.strftime(DATE_FORMAT)
    return pl.col(col).cast(pl.Utf8)


def _require(df: pl.DataFrame, path: Path, cols: list[str]) -> None:
    for c in cols:
        if c not in df.columns:
            raise SfError(f"{where(path, column=c)}: required column is missing (columns: {columns_list(df.columns)})")


def _first_bad(mask: pl.Series) -> int | None:
    idx = np.flatnonzero(mask.fill_null(True).to_numpy())
    return int(idx[0]) if idx.size else None


def _parse_dates(df: pl.DataFrame, col: str, path: Path, allow_empty: bool) -> pl.Series:
    raw = df[col].str.strip_chars()
    empty = raw.is_null() | (raw == "")
    # An explicit format: letting polars guess from the first value would accept 2016/12/01 one day
    # and reject it the next, depending on which row comes first.
    parsed = raw.str.to_date(DATE_FORMAT, strict=False)
    bad = parsed.is_null() & ~empty
    if not allow_empty:
        bad = bad | empty
    i = _first_bad(bad)
    if i is not None:
        raise SfError(f"{where(path, i + 1, col)}: cannot parse date {df[col][i]!r} (expected YYYY-MM-DD)")
    return parsed


def _parse_float(df: pl.DataFrame, col: str, path: Path) -> pl.Series:
    raw = df[col].str.strip_chars()
    parsed = raw.cast(pl.Float64, strict=False)
    i = _first_bad(parsed.is_null() | ~parsed.is_finite())
    if i is not None:
        value = df[col][i]
        what = "empty value" if value is None or not value.strip() else f"{value!r} is not a finite number"
        raise SfError(f"{where(path, i + 1, col)}: {what}")
    return parsed


def _check_image_path(rel: str, images_dir: Path, path: Path, row: int) -> None:
    p = Path(rel)
    if p.is_absolute() or rel.startswith(("/", "\\")):
        raise SfError(f"{where(path, row, 'image')}: {rel!r} is absolute; image paths are relative to images/")
    resolved = (images_dir / p).resolve()
    if not resolved.is_relative_to(images_dir.resolve()):
        raise SfError(f"{where(path, row, 'image')}: {rel!r} escapes the images/ folder")


def load_meta(root: Path) -> DatasetMeta:
    p = root / "dataset.toml"
    if not p.exists():
        return DatasetMeta(name=root.name)
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SfError(f"{p}: invalid TOML ({e})") from None
    unknown = set(raw) - {"name", "period", "exog_link", "exog_lookback"}
    if unknown:
        raise SfError(f"{p}: unknown key(s) {', '.join(sorted(unknown))}")
    period = raw.get("period", "week")
    if period not in PERIOD_DAYS:
        raise SfError(f"{p}: period must be one of {', '.join(PERIOD_DAYS)}, got {period!r}")
    name = raw.get("name", root.name)
    if not isinstance(name, str):
        raise SfError(f"{p}: name must be a string, got {name!r}")
    link = raw.get("exog_link", [])
    if not isinstance(link, list) or not all(isinstance(c, str) and c for c in link):
        raise SfError(f"{p}: exog_link must be a list of column names, e.g. [\"category\", \"color\"], got {link!r}")
    lookback = raw.get("exog_lookback", 52)
    if not isinstance(lookback, int) or isinstance(lookback, bool) or lookback < 0:
        raise SfError(f"{p}: exog_lookback must be a whole number >= 0, got {lookback!r}")
    return DatasetMeta(name=name, period=period, exog_link=tuple(link), exog_lookback=lookback)


def load_products(root: Path) -> tuple[pl.DataFrame, list[str]]:
    path = _find_table(root, "products", required=True)
    df = read_as_strings(path)
    _require(df, path, ["product_id"])
    for c in ("image", "text", "release_date"):
        if c not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=pl.Utf8).alias(c))
    pid = df["product_id"].str.strip_chars()
    i = _first_bad(pid.is_null() | (pid == ""))
    if i is not None:
        raise SfError(f"{where(path, i + 1, 'product_id')}: empty product_id")
    i = _first_bad(~pid.is_first_distinct())
    if i is not None:
        raise SfError(f"{where(path, i + 1, 'product_id')}: duplicate product_id {pid[i]!r}")
    release = _parse_dates(df, "release_date", path, allow_empty=True)
    images = df["image"].fill_null("").str.strip_chars()
    images_dir = root / "images"
    for row, rel in enumerate(images.to_list(), start=1):
        if rel:
            _check_image_path(rel, images_dir, path, row)
    df = df.with_columns(
        pid.alias("product_id"),
        images.alias("image"),
        df["text"].fill_null("").alias("text"),
        release.alias("release_date"),
    )
    if "split" in df.columns:
        split = df["split"].str.strip_chars().str.to_lowercase()
        i = _first_bad(~split.is_in(list(SPLITS)))
        if i is not None:
            raise SfError(f"{where(path, i + 1, 'split')}: {df['split'][i]!r} is not one of train, val, test")
        df = df.with_columns(split.alias("split"))
    attrs = [c for c in df.columns if c not in RESERVED]
    df = df.with_columns([pl.col(c).fill_null("") for c in attrs])
    return df, attrs


def _periods_since(release: pl.Series, d: pl.Series, period: str) -> pl.Series:
    """Whole periods from release to each date: days, days // 7, or calendar months (months vary in length)."""
    if period == "month":
        months = (d.dt.year() - release.dt.year()).cast(pl.Int64) * 12 + (d.dt.month().cast(pl.Int64) - release.dt.month().cast(pl.Int64))
        return months.alias("step")
    days = (d - release).dt.total_days()
    return (days // int(PERIOD_DAYS[period])).cast(pl.Int64).alias("step")


def load_sales(root: Path, products: pl.DataFrame, period: str) -> pl.DataFrame:
    path = _find_table(root, "sales", required=True)
    df = read_as_strings(path)
    _require(df, path, ["product_id", "units"])
    if "step" not in df.columns and "date" not in df.columns:
        raise SfError(f"{where(path, column='step')}: required column is missing (give 'step' or 'date')")
    pid = df["product_id"].str.strip_chars()
    i = _first_bad(pid.is_null() | (pid == ""))
    if i is not None:
        raise SfError(f"{where(path, i + 1, 'product_id')}: empty product_id")
    known = pid.is_in(products["product_id"].implode())
    i = _first_bad(~known)
    if i is not None:
        raise SfError(f"{where(path, i + 1, 'product_id')}: unknown product {pid[i]!r} (not in products)")
    units = _parse_float(df, "units", path)
    i = _first_bad(units < 0)
    if i is not None:
        raise SfError(f"{where(path, i + 1, 'units')}: negative units {units[i]}")
    step_col = "step" if "step" in df.columns else "date"
    if step_col == "step":
        stepf = _parse_float(df, "step", path)
        i = _first_bad((stepf < 0) | (stepf != stepf.floor()))
        if i is not None:
            raise SfError(f"{where(path, i + 1, 'step')}: step must be a whole number >= 0, got {df['step'][i]!r}")
        step = stepf.cast(pl.Int64)
    else:
        d = _parse_dates(df, "date", path, allow_empty=False)
        # A lookup, not a join: joins need not keep row order, and rows are reported by position.
        rel = pid.replace_strict(products["product_id"], products["release_date"], default=None, return_dtype=pl.Date)
        i = _first_bad(rel.is_null())
        if i is not None:
            raise SfError(f"{where(path, i + 1, 'date')}: product {pid[i]!r} has no release_date, so a date cannot become a step")
        step = _periods_since(rel, d, period)
        i = _first_bad(step < 0)
        if i is not None:
            raise SfError(f"{where(path, i + 1, 'date')}: {df['date'][i]} is before the product's release_date")
    out = pl.DataFrame({"product_id": pid, "step": step, "units": units.cast(pl.Float32)})
    # Report the second occurrence: that is the row to delete.
    dup = out.select(~pl.struct("product_id", "step").is_first_distinct())
    i = _first_bad(dup.to_series())
    if i is not None:
        how = "" if step_col == "step" else f" (dates are counted in whole {period}s since release)"
        raise SfError(f"{where(path, i + 1, step_col)}: product {pid[i]!r} has more than one row for step {step[i]}{how}")
    return out.sort("product_id", "step")


def load_exog(root: Path) -> pl.DataFrame | None:
    path = _find_table(root, "exog", required=False)
    if path is None:
        return None
    df = read_as_strings(path)
    _require(df, path, ["date"])
    cols = {"date": _parse_dates(df, "date", path, allow_empty=False)}
    i = _first_bad(~cols["date"].is_first_distinct())
    if i is not None:
        raise SfError(f"{where(path, i + 1, 'date')}: date {df['date'][i]} appears more than once")
    for c in df.columns:
        if c != "date":
            cols[c] = _parse_float(df, c, path).cast(pl.Float32)
    return pl.DataFrame(cols).sort("date")


def load_dataset(root: str | Path) -> Dataset:
    root = Path(root)
    if not root.is_dir():
        raise SfError(f"{root}: dataset folder not found")
    meta = load_meta(root)
    products, attrs = load_products(root)
    sales = load_sales(root, products, meta.period)
    exog = load_exog(root)
    for col in meta.exog_link:
        if col not in products.columns:
            raise SfError(f"{root / 'dataset.toml'}: exog_link names column {col!r}, which products does not have")
    return Dataset(root=root, meta=meta, products=products, sales=sales, exog=exog, attribute_columns=attrs)


def exog_window(ds: Dataset, product_ids: list[str], horizon: int) -> tuple[np.ndarray, list[str]]:
    """Per product, its linked exog series over [release - lookback, release + horizon) periods.

    Returns (N, lookback + horizon, len(exog_link)) float32 scaled to [-1, 1] by each column's largest |value|
    ([0, 1] for non-negative series such as Google Trends),
    and the link names. Products without a release date or an unknown term get zeros.
    """
    link = list(ds.meta.exog_link)
    L = ds.meta.exog_lookback
    out = np.zeros((len(product_ids), L + horizon, len(link)), dtype=np.float32)
    if ds.exog is None or not link:
        return out, link
    ex = ds.exog
    dates = ex["date"].to_numpy().astype("datetime64[D]")
    step_days = PERIOD_DAYS[ds.meta.period]
    # By the largest magnitude, so a series with negative values stays within [-1, 1] (by the maximum, a
    # column that is never positive divided by a floor of 1e-6 and reached -1e6); an all-zero one stays zeros.
    scale = {c: float(ex[c].abs().max() or 0.0) or 1.0 for c in ex.columns if c != "date"}
    prod = ds.products.select(["product_id", "release_date", *link])
    rowmap = {r[0]: r for r in prod.iter_rows()}
    offsets = (np.arange(-L, horizon) * step_days).astype("timedelta64[D]")
    for i, pid in enumerate(product_ids):
        r = rowmap.get(pid)
        if r is None or r[1] is None:
            continue
        want = np.datetime64(r[1], "D") + offsets
        # Each target date takes the most recent exog value at or before it (series are sampled weekly).
        pos = np.searchsorted(dates, want, side="right") - 1
        valid = pos >= 0
        for k, term in enumerate(r[2:]):
            if term in scale:
                col = ex[term].to_numpy()
                out[i, valid, k] = col[pos[valid]] / scale[term]
    return out, link
