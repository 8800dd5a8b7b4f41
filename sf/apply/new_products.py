"""Products a trained model has not seen: their dataset folder and their features, made to fit the model.

Shared by `sf predict`, `sf evaluate` and `sf explain`:
  - `load_new_dataset` reads a folder that may have no sales at all (new products) and takes the
    period, exog link and look-back the model was trained with, so the inputs have the model's shapes;
  - `resolve_features` finds or makes their feature store. Features must come from exactly the model's
    extractor; stage 1 is asked for them through an `Extract` callable that the CLI wires in, because
    sf/forecast never imports sf/extract (docs/architecture.md). The store is checked against the model's
    fingerprint before anything is extracted and again after, and refused with what differs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

import h5py
import polars as pl

from sf.cache import schema as S
from sf.cache.reader import Features, load_features, read_attrs
from sf.data.contract import Dataset, DatasetMeta, load_dataset, load_exog, load_meta, load_products, load_sales
from sf.errors import SfError
from sf.forecast.checkpoints import LoadedRun, check_fingerprint
from sf.forecast.inputs import Inputs, build_inputs

# (dataset, `like`: the store path or attributes to reproduce, out store) -> the store's path.
Extract = Callable[[Dataset, "dict | Path", Path], Path]
NEW_STORE = "features_new.h5"


def run_folder(run: LoadedRun) -> Path:
    """The run folder, also when the run was loaded from one checkpoint file (runs/NAME/checkpoints/seedS.pt)."""
    p = Path(run.run_dir)
    if p.is_file():
        p = p.parent.parent if p.parent.name == "checkpoints" else p.parent
    return p


def training_data(run: LoadedRun) -> Path | None:
    d = run.config.data
    return Path(d) if d is not None and Path(d).is_dir() else None


def training_store(run: LoadedRun) -> Path | None:
    f = run.config.features
    return Path(f) if f is not None and Path(f).is_file() else None


TrainingSide = tuple[Dataset | None, Features | None, Inputs | None]


def training_inputs(run: LoadedRun, notes: list[str], check_content: bool = True) -> TrainingSide:
    """The model's training data, store and their inputs in the model's attribute codes (what analogs and the
    baselines `sf evaluate` scores beside the model are drawn from); Nones and a note when not at hand."""
    data, store = training_data(run), training_store(run)
    if data is None or store is None:
        notes.append(f"training data or store not at hand ({run.config.data}, {run.config.features})")
        return None, None, None
    feats = load_features(store)
    check_fingerprint(run, feats.attrs)
    ds = load_dataset(data)
    return ds, feats, build_inputs(ds, feats, horizon=run.horizon, attribute_vocab=run.attribute_vocab,
                                   check_content=check_content)


def training_side(run: LoadedRun) -> tuple[TrainingSide, list[str]]:
    """training_inputs with its notes returned rather than appended."""
    notes: list[str] = []
    return training_inputs(run, notes), notes


def _table(root: Path, stem: str) -> bool:
    return any((root / f"{stem}{ext}").exists() for ext in (".parquet", ".csv"))


def _meta(root: Path, run: LoadedRun, notes: list[str]) -> DatasetMeta:
    """The folder's dataset.toml, else the training data's (under this folder's name), else the model's own."""
    dims = run.models[0].dims
    train_dir = training_data(run)
    if (root / "dataset.toml").exists():
        meta = load_meta(root)
        if train_dir is not None and (train_dir / "dataset.toml").exists():
            trained = load_meta(train_dir).period
            if meta.period != trained:
                raise SfError(f"{root / 'dataset.toml'}: period {meta.period!r}, but the model was trained on "
                              f"{trained!r} sales ({train_dir}); forecast steps would mean something else")
    elif train_dir is not None and (train_dir / "dataset.toml").exists():
        # All of the training data's reading (period, exog link, [columns], numeric), under this folder's name.
        meta = replace(load_meta(train_dir), name=root.name)
        notes.append(f"{root} has no dataset.toml: period, exog link, look-back and column names taken from {train_dir}")
    else:
        meta = DatasetMeta(name=root.name, exog_link=tuple(run.exog_names), exog_lookback=dims.lookback)
        notes.append(f"{root} has no dataset.toml: weekly periods and the model's exog link assumed")
    if list(meta.exog_link) != list(run.exog_names) or meta.exog_lookback != dims.lookback:
        raise SfError(
            f"{root / 'dataset.toml'}: exog_link {list(meta.exog_link)} with exog_lookback {meta.exog_lookback} "
            f"does not match the model's ({list(run.exog_names)}, {dims.lookback}); use the training data's settings"
        )
    return meta


def load_new_dataset(root: str | Path, run: LoadedRun, require_sales: bool = False) -> tuple[Dataset, list[str]]:
    """A dataset folder for `run`'s model: products (+ images) required; sales optional unless asked.

    A folder without exog.* uses the training data's exog series (they are dated, so they cover new
    releases as far as they reach). Returns the dataset and notes worth telling the user.
    """
    root = Path(root)
    if not root.is_dir():
        raise SfError(f"{root}: dataset folder not found")
    notes: list[str] = []
    meta = _meta(root, run, notes)
    products, attrs = load_products(root, meta)
    if _table(root, "sales"):
        sales = load_sales(root, products, meta.period, meta, notes=notes)
    elif require_sales:
        raise SfError(f"{root}: no sales.csv or sales.parquet; scoring needs the products' actual sales")
    else:
        sales = pl.DataFrame(schema={"product_id": pl.Utf8, "step": pl.Int64, "units": pl.Float32})
    exog = load_exog(root)
    train_dir = training_data(run)
    if exog is None and meta.exog_link:
        if train_dir is not None and _table(train_dir, "exog"):
            exog = load_exog(train_dir)
            notes.append(f"{root} has no exog table: using {train_dir}'s series")
        else:
            notes.append(f"no exog series for {root} (and the training data is not at hand): the model sees zeros")
    for col in meta.exog_link:
        if col not in products.columns:
            raise SfError(f"{root}: products lack the column {col!r}, which links them to the exog series")
    unknown = {n: sorted({v for v in products[n].to_list() if v and v not in set(run.attribute_vocab.get(n, []))})
               for n in run.attribute_names if n in products.columns}
    unknown = {n: v for n, v in unknown.items() if v}
    if unknown:
        first = next(iter(unknown))
        notes.append(f"attribute values the model never saw count as unknown (e.g. {first}: {unknown[first][:3]})")
    numeric = [c for c in meta.numeric if c in products.columns]
    return Dataset(root=root, meta=meta, products=products, sales=sales, exog=exog, attribute_columns=attrs,
                   numeric_columns=numeric), notes


def store_keys(path: Path) -> set[str]:
    with h5py.File(path, "r") as f:
        return set(f[S.KEYS].asstr()[()])


def resolve_features(run: LoadedRun, ds: Dataset, store: str | Path | None = None, extract: Extract | None = None,
                     console=None) -> Features:
    """Features of every product in `ds` from the model's extractor.

    `store`: where they are (or go); default `<run>/features_new.h5`, or the training store when `ds` is
    the training folder itself and the store holds all its products. With `extract`, products the store
    lacks (or whose image or text changed) are extracted into it first, incrementally; without it the
    store must already hold them all. A store made by another extractor is refused either way.
    """
    source = training_store(run)
    train_dir = training_data(run)
    if (store is None and source is not None and train_dir is not None and Path(ds.root).resolve() == train_dir.resolve()
            and set(ds.product_ids) <= store_keys(source)):
        # Products of the training folder itself (e.g. `sf evaluate --split test`): their features exist.
        feats = load_features(source)
        _check(run, feats.attrs, source)
        return feats
    path = Path(store) if store is not None else run_folder(run) / NEW_STORE
    if path.exists():
        _check(run, read_attrs(path), path)  # refuse before spending time extracting
    if extract is not None:
        like: dict | Path = run.store
        if source is not None:
            attrs = read_attrs(source)
            # The training store records more than the model does (e.g. the random-weights seed).
            if attrs.get("fingerprint") == run.store.get("fingerprint"):
                like = source
        path = Path(extract(ds, like, path))
    elif not path.exists():
        raise SfError(f"{path}: no feature store for these products; pass --store with one made by "
                      f"`sf extract --data {ds.root}` using the model's backbone and text encoder")
    feats = load_features(path)
    _check(run, feats.attrs, path)
    return feats


def _check(run: LoadedRun, attrs: dict, path: Path) -> None:
    try:
        check_fingerprint(run, attrs)
    except SfError as e:
        raise SfError(f"feature store {path} does not fit the model: {e} (delete the store to re-extract it "
                      f"with the model's settings, or pass another --store)") from None
