"""`sf import visuelle`: VISUELLE's wide CSVs -> the data contract.

Source layout (Skenderi et al. 2021):
    train.csv [test.csv]      one row per product; columns 0..11 = weekly sales / scale, external_code,
                              season, category, color, fabric, extra, release_date, image_path, ...
    normalization_scale.npy   the scale (1065.0)
    gtrends.csv               date + one weekly Google Trends series per category / color / fabric value
    images/                   <external_code>.jpg|.png (or the original <image_path> layout)

Output: products.csv, sales.csv (units = value x scale), exog.csv, dataset.toml, images/.
Built in a temp folder beside `out`, validated by the contract loader, then renamed into place.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from sf.data.atomic import refuse_existing, staged_dir
from sf.data.contract import DATE_FORMAT, load_dataset, read_as_strings
from sf.progress import progress_iter
from sf.errors import SfError, where

SPLIT_FILES = (("train.csv", "train"), ("test.csv", "test"))
ATTRIBUTES = ("category", "color", "fabric", "extra", "season")
REQUIRED = ("external_code", "release_date", *ATTRIBUTES)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
EXOG_LINK = ("category", "color", "fabric")  # gtrends has one series per value of these columns
EXOG_LOOKBACK = 52  # weeks of trends before release, as GTM-Transformer uses
# value x scale carries float noise from the original division (5.000000000000001); 6 decimals
# removes it without hiding any real fraction.
UNITS_DECIMALS = 6


@dataclass
class ImportSummary:
    out: str
    products: int
    splits: dict[str, int]
    images: int
    sales_rows: int
    weeks: int
    exog_terms: int
    scale: float
    negative_clipped: int  # weekly values below zero (net returns) set to 0, as the contract requires units >= 0
    exog_unavailable: tuple[str, ...] = ()  # gtrends terms that are -1 (no data) in every week: left out

    def __str__(self) -> str:
        split = ", ".join(f"{k} {v:,}" for k, v in self.splits.items())
        return (f"imported {self.products:,} products ({split}), {self.images:,} images, {self.sales_rows:,} sales rows "
                f"({self.weeks} weeks, units = value x {self.scale:g}), {self.exog_terms} exog terms -> {self.out}"
                + (f"; {self.negative_clipped} negative weekly values (net returns) set to 0" if self.negative_clipped else "")
                + (f"; {len(self.exog_unavailable)} trends terms without data (-1 throughout) left out: "
                   f"{', '.join(self.exog_unavailable)}" if self.exog_unavailable else ""))


def _read_scale(src: Path) -> float:
    path = src / "normalization_scale.npy"
    if not path.is_file():
        raise SfError(f"{path}: not found (VISUELLE ships the sales scale, 1065, in this file)")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:
        raise SfError(f"{path}: cannot be read as a .npy array ({type(e).__name__})") from None
    if arr.size != 1 or not np.issubdtype(arr.dtype, np.number) or not np.isfinite(arr).all() or float(arr.ravel()[0]) <= 0:
        raise SfError(f"{path}: expected one positive number, got array of shape {arr.shape} and dtype {arr.dtype}")
    return float(arr.ravel()[0])


def _first_bad(mask: pl.Series) -> int | None:
    idx = np.flatnonzero(mask.fill_null(True).to_numpy())
    return int(idx[0]) if idx.size else None


def _sales_columns(df: pl.DataFrame, path: Path) -> list[str]:
    weeks = sorted((c for c in df.columns if c.isdigit()), key=int)
    if not weeks or [int(c) for c in weeks] != list(range(len(weeks))):
        raise SfError(f"{where(path, column='0')}: expected weekly sales columns 0, 1, 2, ... (got {', '.join(weeks) or 'none'})")
    return weeks


def _floats(df: pl.DataFrame, col: str, path: Path) -> np.ndarray:
    parsed = df[col].str.strip_chars().cast(pl.Float64, strict=False)
    i = _first_bad(parsed.is_null() | ~parsed.is_finite())
    if i is not None:
        raise SfError(f"{where(path, i + 1, col)}: {df[col][i]!r} is not a finite number")
    return parsed.to_numpy()


def _describe(row: dict[str, str]) -> str:
    """'long sleeve in yellow acrylic with hem, SS17 season' from the attribute values present."""
    text = row["category"] or "item"
    look = " ".join(v for v in (row["color"], row["fabric"]) if v)
    if look:
        text += f" in {look}"
    if row["extra"]:
        text += f" with {row['extra']}"
    if row["season"]:
        text += f", {row['season']} season"
    return text


def _read_split(path: Path, split: str, scale: float) -> tuple[pl.DataFrame, np.ndarray, list[str]]:
    """One source CSV -> (products rows, units (N, W), original image_path values)."""
    df = read_as_strings(path)
    for c in REQUIRED:
        if c not in df.columns:
            raise SfError(f"{where(path, column=c)}: required VISUELLE column is missing")
    weeks = _sales_columns(df, path)
    units = np.stack([_floats(df, c, path) for c in weeks], axis=1) * scale
    codes = df["external_code"].str.strip_chars()
    i = _first_bad(codes.is_null() | (codes == ""))
    if i is not None:
        raise SfError(f"{where(path, i + 1, 'external_code')}: empty external_code")
    # Integer codes written as 12.0 by some tools would otherwise become product "12.0".
    codes = codes.str.replace(r"^(\d+)\.0+$", "$1")
    i = _first_bad(~codes.is_first_distinct())
    if i is not None:
        raise SfError(f"{where(path, i + 1, 'external_code')}: duplicate external_code {codes[i]!r}")
    release = df["release_date"].str.strip_chars()
    i = _first_bad(release.str.to_date(DATE_FORMAT, strict=False).is_null())
    if i is not None:
        raise SfError(f"{where(path, i + 1, 'release_date')}: cannot parse date {df['release_date'][i]!r} (expected YYYY-MM-DD)")
    attrs = {c: df[c].fill_null("").str.strip_chars() for c in ATTRIBUTES}
    products = pl.DataFrame({"product_id": codes, "release_date": release, **attrs, "split": [split] * df.height})
    image_paths = df["image_path"].fill_null("").to_list() if "image_path" in df.columns else [""] * df.height
    return products, units, image_paths


def _find_image(src_images: Path, names: set[str], code: str, original: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        for name in (f"{code}{suffix}", f"{code}{suffix.upper()}"):
            if name in names:
                return src_images / name
    if original:  # the original release keeps images as <season>/<n>.png
        p = (src_images / original).resolve()
        if p.is_relative_to(src_images.resolve()) and p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            return p
    return None


def _locate_images(src_images: Path, codes: list[str], originals: list[str]) -> list[Path | None]:
    names = {p.name for p in src_images.iterdir()} if src_images.is_dir() else set()
    return [_find_image(src_images, names, code, orig) for code, orig in zip(codes, originals)]


def _sales_long(parts: list[tuple[list[str], np.ndarray]]) -> tuple[pl.DataFrame, int]:
    """(ids, units (N, W)) blocks -> long product_id, step, units, and how many negatives became 0."""
    pid_col, step_col, unit_col = [], [], []
    for ids, units in parts:
        n, w = units.shape
        pid_col += [pid for pid in ids for _ in range(w)]
        step_col.append(np.tile(np.arange(w), n))
        unit_col.append(units.reshape(-1))
    units = np.round(np.concatenate(unit_col), UNITS_DECIMALS)
    # VISUELLE has a few weeks of net returns (-1, -2 units); the contract counts sales, so they become 0.
    negative = int((units < 0).sum())
    sales = pl.DataFrame({"product_id": pid_col, "step": np.concatenate(step_col), "units": np.maximum(units, 0.0)})
    return sales, negative


def _read_exog(src: Path) -> pl.DataFrame:
    path = src / "gtrends.csv"
    if not path.is_file():
        raise SfError(f"{path}: not found (VISUELLE's weekly Google Trends, one column per attribute value)")
    df = read_as_strings(path)
    if "date" not in df.columns:
        raise SfError(f"{where(path, column='date')}: required column is missing")
    dates = df["date"].str.strip_chars()
    i = _first_bad(dates.str.to_date(DATE_FORMAT, strict=False).is_null())
    if i is not None:
        raise SfError(f"{where(path, i + 1, 'date')}: cannot parse date {df['date'][i]!r} (expected YYYY-MM-DD)")
    # Google Trends run 0..100; VISUELLE writes -1 where a term has no trends data. A term with no week
    # available (three fabrics) is left out, so its products get zeros, as for any unknown term; scaled as
    # published, its -1 would have become -1e6 (a column's maximum of -1 floored to 1e-6).
    series = {c: _floats(df, c, path) for c in df.columns if c != "date"}
    kept = {c: np.maximum(v, 0.0) for c, v in series.items() if (v >= 0).any()}
    return pl.DataFrame({"date": dates, **kept}), sorted(set(series) - set(kept))


def import_visuelle(src: str | Path, out: str | Path, force: bool = False, progress: bool = False) -> ImportSummary:
    """Convert the VISUELLE folder `src` into a contract dataset folder `out` (atomically)."""
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise SfError(f"{src}: VISUELLE folder not found")
    if src.resolve() == out.resolve() or src.resolve().is_relative_to(out.resolve()):
        raise SfError(f"{out}: the output folder would replace the VISUELLE source folder {src}")
    refuse_existing(out, force)  # fail before reading anything
    scale = _read_scale(src)
    sources = [(src / name, split) for name, split in SPLIT_FILES if (src / name).is_file()]
    if not sources:
        raise SfError(f"{src}: neither train.csv nor test.csv found")
    parts = [_read_split(path, split, scale) for path, split in sources]
    products = pl.concat([p for p, _, _ in parts], how="vertical")
    i = _first_bad(~products["product_id"].is_first_distinct())
    if i is not None:
        raise SfError(f"{where(sources[-1][0], i + 1 - parts[0][0].height, 'external_code')}: "
                      f"external_code {products['product_id'][i]!r} also appears in {sources[0][0].name}")
    exog, unavailable = _read_exog(src)

    originals = [o for _, _, paths in parts for o in paths]
    found = _locate_images(src / "images", products["product_id"].to_list(), originals)
    image_names = [f"{code}{p.suffix.lower()}" if p else "" for code, p in zip(products["product_id"].to_list(), found)]
    texts = [_describe(r) for r in products.select(ATTRIBUTES).iter_rows(named=True)]
    products = products.with_columns(pl.Series("image", image_names), pl.Series("text", texts)).select(
        "product_id", "image", "text", "release_date", *ATTRIBUTES, "split"
    )
    sales, negative = _sales_long([(p["product_id"].to_list(), units) for p, units, _ in parts])

    with staged_dir(out, force=force) as tmp:
        (tmp / "images").mkdir()
        pairs = [(f, name) for f, name in zip(found, image_names) if f is not None]
        for f, name in progress_iter(pairs, len(pairs), "copying images", enabled=progress, unit="img"):
            shutil.copyfile(f, tmp / "images" / name)
        products.write_csv(tmp / "products.csv")
        sales.write_csv(tmp / "sales.csv")
        exog.write_csv(tmp / "exog.csv")
        link = ", ".join(f'"{c}"' for c in EXOG_LINK)
        (tmp / "dataset.toml").write_text(
            f'name = "visuelle"\nperiod = "week"\nexog_link = [{link}]\nexog_lookback = {EXOG_LOOKBACK}\n'
        )
        load_dataset(tmp)  # what we hand over must pass the contract, or nothing is written

    splits = dict(products.group_by("split", maintain_order=True).len().iter_rows())
    return ImportSummary(out=str(out), products=products.height, splits=splits, images=len(pairs),
                         sales_rows=sales.height, weeks=int(sales["step"].max()) + 1, exog_terms=exog.width - 1, scale=scale,
                         negative_clipped=negative, exog_unavailable=tuple(unavailable))
