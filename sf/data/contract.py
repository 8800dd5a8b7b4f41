"""The dataset contract: a folder of products, sales, optional exogenous series and images.

    DIR/
      products.parquet|csv   product_id (unique), image, text, release_date, [split], attribute columns...
      sales.parquet|csv      product_id, step (0-based periods since release) or date, units (>= 0)
      exog.parquet|csv       optional: date + one column per term (linked to products by attribute value)
      dataset.toml           optional: name, period, exog_link, exog_lookback, [columns], numeric, missing,
                             before_release (docs/data.md#reading-your-own-exports)
      images/                product images; products.image is relative to this folder

Exports are read as retailers write them: own column names ([columns]), comma or semicolon CSVs, ISO dates or
timestamps, several rows per product and period (days, stores) summed into the period, zero weeks left out.
Every violation is one line naming file, row (1-based data row, header excluded) and column: the first
raises SfError, or (sf data check) up to a cap are collected into one DataProblems. Nothing here writes to disk.
"""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl

from sf.data.headers import check_csv_header, check_names, clip, columns_list
from sf.errors import SfError, where

PERIOD_DAYS = {"day": 1, "week": 7, "month": 30.4375}
RESERVED = {"product_id", "image", "text", "release_date", "split"}
SPLITS = ("train", "val", "test")  # the products' split column, in this order wherever splits are listed
DATE_FORMAT = "%Y-%m-%d"
# A date, or an ISO timestamp whose day is the date (exports write 2023-04-16 00:00:00 or 2023-04-16T10:30:00Z).
ISO_DAY = r"^(\d{4}-\d{2}-\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
SPLIT_ALIASES = {"validation": "val", "valid": "val", "training": "train", "testing": "test"}
# The names [columns] in dataset.toml may give another name to (sf's name = "the export's name").
MAPPABLE = ("product_id", "image", "text", "release_date", "split", "step", "date", "units")
MISSING = ("zero", "unobserved")  # what a period without a sales row inside a product's selling span means
BEFORE_RELEASE = ("refuse", "step0")  # a sales row dated before the product's release date
MAX_PROBLEMS = 50  # sf data check lists this many violations, then counts the rest


@dataclass(frozen=True)
class DatasetMeta:
    name: str = "dataset"
    period: str = "week"
    # Attribute columns whose *values* name columns of the exog table (VISUELLE: category, color, fabric).
    exog_link: tuple[str, ...] = ()
    # How many periods of each linked exog series before release a model sees.
    exog_lookback: int = 52
    columns: tuple[tuple[str, str], ...] = ()  # (sf's name, the export's name) from [columns]
    numeric: tuple[str, ...] = ()  # product columns read as numbers (price, discount, stores), not categories
    missing: str = "zero"
    before_release: str = "refuse"

    def renames(self) -> dict[str, str]:
        """The export's column name -> sf's."""
        return {theirs: ours for ours, theirs in self.columns}


class DataProblems(SfError):
    """Every violation found in one pass (sf data check): the lines, then how many more were not listed."""

    def __init__(self, lines: list[str], more: int = 0):
        self.lines, self.more = list(lines), more
        rest = len(self.lines) - 1 + more
        super().__init__(self.lines[0] + (f" (and {rest} more problems: sf data check lists them)" if rest else ""))


@dataclass
class Problems:
    """Where violations go: the first one raises (every command), or with a cap they are collected."""

    cap: int | None = None
    lines: list[str] = field(default_factory=list)
    more: int = 0

    def add(self, line: str) -> None:
        if self.cap is None:
            raise SfError(line)
        if len(self.lines) < self.cap:
            self.lines.append(line)
        else:
            self.more += 1

    def rows(self, mask: pl.Series, message: Callable[[int], str]) -> np.ndarray:
        """Report each row where `mask` is true (or null) with message(i), i 0-based; returns those rows."""
        idx = np.flatnonzero(mask.fill_null(True).to_numpy())
        for i in idx:
            if self.cap is not None and len(self.lines) >= self.cap:
                self.more += len(idx) - int(np.searchsorted(idx, i))
                break
            self.add(message(int(i)))
        return idx

    def raise_any(self) -> None:
        if self.lines:
            raise DataProblems(self.lines, self.more)


@dataclass
class Dataset:
    root: Path
    meta: DatasetMeta
    products: pl.DataFrame  # product_id, image, text, release_date, [split], attributes...
    sales: pl.DataFrame  # product_id, step, units — sorted by product_id, step
    exog: pl.DataFrame | None = None  # date + term columns, sorted by date
    attribute_columns: list[str] = field(default_factory=list)  # categorical: values are names
    numeric_columns: list[str] = field(default_factory=list)  # Float64 in products, null where not given
    notes: list[str] = field(default_factory=list)  # conversions worth telling (rows summed, zero weeks filled)

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


def csv_separator(path: Path) -> str:
    """`;` when the header has more semicolons than commas (spreadsheets in many locales save so), else `,`."""
    try:
        with open(path, "rb") as fh:
            line = fh.readline(1 << 20)
    except OSError:
        return ","
    return ";" if line.count(b";") > line.count(b",") else ","


def read_as_strings(path: Path, renames: dict[str, str] | None = None) -> pl.DataFrame:
    """Every column as nullable strings, so each value can be checked and reported by row; columns named in
    `renames` (the export's name -> sf's) get sf's name."""
    sep = csv_separator(path) if path.suffix == ".csv" else ","
    if path.suffix == ".csv":
        check_csv_header(path, sep)  # blank/duplicate names and non-text headers, before polars renames or crashes
    try:
        if path.suffix == ".csv":
            df = pl.read_csv(path, infer_schema=False, separator=sep)
        else:
            df = pl.read_parquet(path)
            df = df.with_columns([_as_string(c, df.schema[c]) for c in df.columns])
    except SfError:
        raise
    except Exception as e:  # polars/pyarrow raise many types for malformed files
        ragged = _first_ragged_row(path, sep) if path.suffix == ".csv" else None
        if ragged:
            raise SfError(ragged) from None
        raise SfError(f"{path}: cannot be read as a table ({type(e).__name__}: {clip((str(e).splitlines() or [''])[0])})") from None
    check_names(df.columns, path)
    df = df.rename({c: c.strip() for c in df.columns})
    renames = {k: v for k, v in (renames or {}).items() if k in df.columns}
    for theirs, ours in renames.items():
        if ours in df.columns:
            raise SfError(f"{path}: has both {ours!r} and {theirs!r}, which dataset.toml [columns] maps to {ours!r}; keep one")
    return df.rename(renames)


def _first_ragged_row(path: Path, sep: str = ",") -> str | None:
    """Polars does not say which line has the wrong number of fields; find it for the message."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = csv.reader(f, delimiter=sep)
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


def _parse_dates(df: pl.DataFrame, col: str, path: Path, allow_empty: bool, problems: Problems | None = None) -> pl.Series:
    """Dates (null where empty or reported): YYYY-MM-DD, or an ISO timestamp's day."""
    problems = problems or Problems()
    raw = df[col].str.strip_chars()
    empty = raw.is_null() | (raw == "")
    # An explicit format: letting polars guess from the first value would accept 2016/12/01 one day
    # and reject it the next, depending on which row comes first.
    parsed = raw.str.extract(ISO_DAY, 1).str.to_date(DATE_FORMAT, strict=False)
    bad = parsed.is_null() & ~empty
    if not allow_empty:
        bad = bad | empty
    problems.rows(bad, lambda i: f"{where(path, i + 1, col)}: cannot parse date {df[col][i]!r} "
                                 "(expected YYYY-MM-DD or an ISO timestamp such as 2023-04-16 00:00:00)")
    return parsed


def _parse_float(df: pl.DataFrame, col: str, path: Path, problems: Problems | None = None,
                 allow_empty: bool = False) -> pl.Series:
    """Finite floats; null where empty (if allowed) or reported."""
    problems = problems or Problems()
    raw = df[col].str.strip_chars()
    parsed = raw.cast(pl.Float64, strict=False)
    empty = raw.is_null() | (raw == "")
    bad = (parsed.is_null() | ~parsed.is_finite()) & ~(empty if allow_empty else pl.Series([False] * len(raw)))

    def what(i: int) -> str:
        value = df[col][i]
        return "empty value" if value is None or not value.strip() else f"{value!r} is not a finite number"

    bad_rows = problems.rows(bad, lambda i: f"{where(path, i + 1, col)}: {what(i)}")
    if bad_rows.size:
        parsed = parsed.scatter(bad_rows, None)
    return parsed


def _check_image_path(rel: str, images_dir: Path, path: Path, row: int) -> None:
    p = Path(rel)
    if p.is_absolute() or rel.startswith(("/", "\\")):
        raise SfError(f"{where(path, row, 'image')}: {rel!r} is absolute; image paths are relative to images/")
    resolved = (images_dir / p).resolve()
    if not resolved.is_relative_to(images_dir.resolve()):
        raise SfError(f"{where(path, row, 'image')}: {rel!r} escapes the images/ folder")


META_KEYS = {"name", "period", "exog_link", "exog_lookback", "columns", "numeric", "missing", "before_release"}


def _choice(raw: dict, key: str, allowed: tuple[str, ...], p: Path) -> str:
    value = raw.get(key, allowed[0])
    if value not in allowed:
        raise SfError(f"{p}: {key} must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}")
    return value


def _columns_table(raw: object, p: Path) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict):
        raise SfError(f"{p}: [columns] must be a table of sf's name = \"your column\", e.g. product_id = \"article_id\"")
    out = []
    for ours, theirs in raw.items():
        if ours not in MAPPABLE:
            raise SfError(f"{p}: [columns] {ours!r} is not one of sf's columns ({', '.join(MAPPABLE)})")
        if not isinstance(theirs, str) or not theirs.strip():
            raise SfError(f"{p}: [columns] {ours} must name a column of your tables, got {theirs!r}")
        out.append((ours, theirs.strip()))
    theirs = [t for _, t in out]
    dup = next((t for t in theirs if theirs.count(t) > 1), None)
    if dup:
        raise SfError(f"{p}: [columns] maps {dup!r} to more than one of sf's columns")
    return tuple(out)


def meta_from_dict(raw: dict, p: Path, default_name: str) -> DatasetMeta:
    """dataset.toml's settings (or the API's `dataset=` dict) checked; `p` names them in messages."""
    unknown = set(raw) - META_KEYS
    if unknown:
        raise SfError(f"{p}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(META_KEYS))})")
    period = raw.get("period", "week")
    if period not in PERIOD_DAYS:
        raise SfError(f"{p}: period must be one of {', '.join(PERIOD_DAYS)}, got {period!r}")
    name = raw.get("name", default_name)
    if not isinstance(name, str):
        raise SfError(f"{p}: name must be a string, got {name!r}")
    link = raw.get("exog_link", [])
    if not isinstance(link, list) or not all(isinstance(c, str) and c for c in link):
        raise SfError(f"{p}: exog_link must be a list of column names, e.g. [\"category\", \"color\"], got {link!r}")
    lookback = raw.get("exog_lookback", 52)
    if not isinstance(lookback, int) or isinstance(lookback, bool) or lookback < 0:
        raise SfError(f"{p}: exog_lookback must be a whole number >= 0, got {lookback!r}")
    numeric = raw.get("numeric", [])
    if not isinstance(numeric, list) or not all(isinstance(c, str) and c for c in numeric):
        raise SfError(f"{p}: numeric must be a list of products columns, e.g. [\"price\", \"stores\"], got {numeric!r}")
    clash = sorted(set(numeric) & (RESERVED | set(link)))
    if clash:
        raise SfError(f"{p}: numeric names {clash[0]!r}, which cannot be a number (a reserved or exog_link column)")
    return DatasetMeta(name=name, period=period, exog_link=tuple(link), exog_lookback=lookback,
                       columns=_columns_table(raw.get("columns", {}), p), numeric=tuple(numeric),
                       missing=_choice(raw, "missing", MISSING, p),
                       before_release=_choice(raw, "before_release", BEFORE_RELEASE, p))


def load_meta(root: Path) -> DatasetMeta:
    p = root / "dataset.toml"
    if not p.exists():
        return DatasetMeta(name=root.name)
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SfError(f"{p}: invalid TOML ({e})") from None
    return meta_from_dict(raw, p, root.name)


def _empty(s: pl.Series) -> pl.Series:
    return s.is_null() | (s == "")


def load_products(root: Path, meta: DatasetMeta | None = None,
                  problems: Problems | None = None) -> tuple[pl.DataFrame, list[str]]:
    """The products table: (frame, categorical attribute columns); numeric columns become Float64."""
    meta = meta or load_meta(root)
    problems = problems or Problems()
    path = _find_table(root, "products", required=True)
    df = read_as_strings(path, meta.renames())
    _require(df, path, ["product_id"])
    for c in ("image", "text", "release_date"):
        if c not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=pl.Utf8).alias(c))
    pid = df["product_id"].str.strip_chars()
    drop = set(problems.rows(_empty(pid), lambda i: f"{where(path, i + 1, 'product_id')}: empty product_id").tolist())
    dup = ~pid.is_first_distinct() & ~_empty(pid)
    drop |= set(problems.rows(dup, lambda i: f"{where(path, i + 1, 'product_id')}: duplicate product_id {pid[i]!r}").tolist())
    release = _parse_dates(df, "release_date", path, allow_empty=True, problems=problems)
    images = df["image"].fill_null("").str.strip_chars()
    images_dir = root / "images"
    for row, rel in enumerate(images.to_list(), start=1):
        if rel:
            try:
                _check_image_path(rel, images_dir, path, row)
            except SfError as e:
                problems.add(str(e))
                drop.add(row - 1)
    df = df.with_columns(
        pid.alias("product_id"),
        images.alias("image"),
        df["text"].fill_null("").alias("text"),
        release.alias("release_date"),
    )
    if "split" in df.columns:
        split = df["split"].str.strip_chars().str.to_lowercase().replace(SPLIT_ALIASES)
        problems.rows(~split.is_in(list(SPLITS)), lambda i: f"{where(path, i + 1, 'split')}: {df['split'][i]!r} "
                      "is not one of train, val (or validation), test")
        df = df.with_columns(split.alias("split"))
    numeric = list(meta.numeric)
    for c in numeric:
        if c not in df.columns:
            problems.add(f"{where(path, column=c)}: dataset.toml declares it numeric, but products has no such "
                         f"column (columns: {columns_list(df.columns)})")
        else:
            df = df.with_columns(_parse_float(df, c, path, problems, allow_empty=True).alias(c))
    numeric = [c for c in numeric if c in df.columns]
    attrs = [c for c in df.columns if c not in RESERVED and c not in numeric]
    df = df.with_columns([pl.col(c).fill_null("") for c in attrs])
    if drop:
        df = df.with_row_index("_row").filter(~pl.col("_row").is_in(sorted(drop))).drop("_row")
    return df, attrs


def _periods_since(release: pl.Series, d: pl.Series, period: str) -> pl.Series:
    """Whole periods from release to each date: days, days // 7, or calendar months (months vary in length)."""
    if period == "month":
        months = (d.dt.year() - release.dt.year()).cast(pl.Int64) * 12 + (d.dt.month().cast(pl.Int64) - release.dt.month().cast(pl.Int64))
        return months.alias("step")
    days = (d - release).dt.total_days()
    return (days // int(PERIOD_DAYS[period])).cast(pl.Int64).alias("step")


def _fill_missing_periods(sales: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Zero rows for the periods inside each product's selling span (first to last row) that have none."""
    span = sales.group_by("product_id").agg(pl.int_ranges(pl.col("step").min(), pl.col("step").max() + 1).alias("step"))
    full = span.explode("step").with_columns(pl.col("step").cast(pl.Int64))
    missing = full.join(sales.select("product_id", "step"), on=["product_id", "step"], how="anti")
    if not missing.height:
        return sales, 0
    zeros = missing.with_columns(pl.lit(0.0, dtype=pl.Float32).alias("units"))
    return pl.concat([sales, zeros.select(sales.columns)]), missing.height


def load_sales(root: Path, products: pl.DataFrame, period: str | None = None, meta: DatasetMeta | None = None,
               problems: Problems | None = None, notes: list[str] | None = None) -> pl.DataFrame:
    """product_id, step, units: rows summed into the period, missing periods as `meta.missing` says."""
    meta = meta or load_meta(root)
    period = period or meta.period
    problems = problems or Problems()
    notes = notes if notes is not None else []
    path = _find_table(root, "sales", required=True)
    df = read_as_strings(path, meta.renames())
    _require(df, path, ["product_id", "units"])
    if "step" not in df.columns and "date" not in df.columns:
        raise SfError(f"{where(path, column='step')}: required column is missing (give 'step' or 'date'; "
                      "a column of another name is mapped in dataset.toml [columns], e.g. date = \"date_sold\")")
    pid = df["product_id"].str.strip_chars()
    bad = np.zeros(df.height, dtype=bool)
    bad[problems.rows(_empty(pid), lambda i: f"{where(path, i + 1, 'product_id')}: empty product_id")] = True
    unknown = ~pid.is_in(products["product_id"].implode()) & ~_empty(pid)
    bad[problems.rows(unknown, lambda i: f"{where(path, i + 1, 'product_id')}: unknown product {pid[i]!r} (not in products)")] = True
    units = _parse_float(df, "units", path, problems)
    bad |= units.is_null().to_numpy()
    bad[problems.rows(units.fill_null(0) < 0, lambda i: f"{where(path, i + 1, 'units')}: negative units {units[i]}")] = True
    step_col = "step" if "step" in df.columns else "date"
    if step_col == "step":
        stepf = _parse_float(df, "step", path, problems)
        bad |= stepf.is_null().to_numpy()
        whole = stepf.fill_null(0)
        bad[problems.rows((whole < 0) | (whole != whole.floor()),
                          lambda i: f"{where(path, i + 1, 'step')}: step must be a whole number >= 0, got {df['step'][i]!r}")] = True
        step = stepf.fill_null(0).cast(pl.Int64)
    else:
        d = _parse_dates(df, "date", path, allow_empty=False, problems=problems)
        bad |= d.is_null().to_numpy()
        # A lookup, not a join: joins need not keep row order, and rows are reported by position.
        rel = pid.replace_strict(products["product_id"], products["release_date"], default=None, return_dtype=pl.Date)
        no_rel = rel.is_null() & ~pl.Series(bad)
        bad[problems.rows(no_rel, lambda i: f"{where(path, i + 1, 'date')}: product {pid[i]!r} has no release_date, "
                                            "so a date cannot become a step")] = True
        step = _periods_since(rel, d, period).fill_null(0)
        early = (step < 0) & ~pl.Series(bad)
        if meta.before_release == "step0":
            if early.any():
                notes.append(f"{int(early.sum()):,} sales rows dated before their product's release_date (pre-release "
                             "orders) folded into the release period, step 0 (before_release = \"step0\")")
            step = step.clip(lower_bound=0)
        else:
            bad[problems.rows(early, lambda i: f"{where(path, i + 1, 'date')}: {df['date'][i]} is before product "
                              f"{pid[i]!r}'s release_date {rel[i]}; fix the release_date, or fold pre-release orders "
                              "into step 0 with before_release = \"step0\" in dataset.toml")] = True
    rows = pl.DataFrame({"product_id": pid, "step": step, "units": units.fill_null(0).cast(pl.Float64)}).filter(~pl.Series(bad))
    # Several rows per product and period (days in a week, stores, channels): the period's sales are their sum.
    out = rows.group_by("product_id", "step").agg(pl.col("units").sum())
    if out.height < rows.height:
        unit = "date" if step_col == "date" else "step"
        notes.append(f"{rows.height:,} sales rows summed into {out.height:,} product-{period}s "
                     f"(several rows per product and {unit}: days, stores or channels)")
    out = out.with_columns(pl.col("units").cast(pl.Float32))
    if meta.missing == "zero" and out.height:
        out, filled = _fill_missing_periods(out)
        if filled:
            notes.append(f"{filled:,} {period}s without a sales row inside their product's selling span read as zero "
                         "sales (missing = \"unobserved\" in dataset.toml reads them as not observed)")
    return out.sort("product_id", "step")


def load_exog(root: Path, problems: Problems | None = None) -> pl.DataFrame | None:
    problems = problems or Problems()
    path = _find_table(root, "exog", required=False)
    if path is None:
        return None
    df = read_as_strings(path)
    _require(df, path, ["date"])
    date = _parse_dates(df, "date", path, allow_empty=False, problems=problems)
    problems.rows(~date.is_first_distinct() & date.is_not_null(),
                  lambda i: f"{where(path, i + 1, 'date')}: date {df['date'][i]} appears more than once")
    cols = {"date": date}
    for c in df.columns:
        if c != "date":
            cols[c] = _parse_float(df, c, path, problems).cast(pl.Float32)
    return pl.DataFrame(cols).filter(pl.col("date").is_not_null() & pl.col("date").is_first_distinct()).sort("date")


def _unused_mappings(root: Path, meta: DatasetMeta) -> list[str]:
    """[columns] entries that name no column of any table: a typo would otherwise say 'column missing'."""
    seen: set[str] = set()
    for stem in ("products", "sales"):
        path = _find_table(root, stem, required=False)
        if path is not None:
            seen |= {c.strip() for c in (check_csv_header(path, csv_separator(path)) if path.suffix == ".csv"
                                         else pl.read_parquet_schema(path))}
    return [theirs for _, theirs in meta.columns if theirs not in seen]


def load_dataset(root: str | Path, max_problems: int | None = None) -> Dataset:
    """The dataset folder through the contract. `max_problems`: collect up to that many violations into one
    DataProblems (sf data check) instead of raising the first."""
    root = Path(root)
    if not root.is_dir():
        raise SfError(f"{root}: dataset folder not found")
    meta = load_meta(root)
    problems = Problems(cap=max_problems)
    for theirs in _unused_mappings(root, meta):
        problems.add(f"{root / 'dataset.toml'}: [columns] names {theirs!r}, which neither products nor sales has")
    notes: list[str] = []
    products, attrs = load_products(root, meta, problems)
    sales = load_sales(root, products, meta.period, meta, problems, notes)
    exog = load_exog(root, problems)
    for col in meta.exog_link:
        if col not in products.columns:
            problems.add(f"{root / 'dataset.toml'}: exog_link names column {col!r}, which products does not have")
    problems.raise_any()
    return Dataset(root=root, meta=meta, products=products, sales=sales, exog=exog, attribute_columns=attrs,
                   numeric_columns=[c for c in meta.numeric if c in products.columns], notes=notes)


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
