"""sf from Python: the same engine as the command line, in the fit / predict / save / load style of
neuralforecast, with polars frames in and out (pandas accepted on input).

Every call here is what the matching command does — `Forecaster.fit` is `sf train`, `predict` is
`sf predict`, `evaluate` is `sf evaluate`, `explain` is `sf explain`, `ablate` / `compare` are `sf ablate` /
`sf compare` — on the same config dataclass and engine functions, so the same settings and seeds give the
same numbers (tests/test_api.py checks that against the CLI).

A whole round trip on a small synthetic catalogue (random image weights and a hashed-word text encoder so it
runs anywhere in seconds; use the defaults for real work):

>>> import sf, tempfile
>>> tmp = tempfile.mkdtemp()
>>> data = sf.demo_data(f"{tmp}/shop", products=60, image_size=32)
>>> store = sf.extract(data, f"{tmp}/shop.h5", backbone="resnet18", weights="random", text_encoder="hash",
...                    image_size=32)
>>> store
FeatureStore('.../shop.h5', backbone='resnet18', rows=60)
>>> fc = sf.Forecaster(model="sf", fusion="i2t_image", head="bilstm", seeds=1, epochs=2,
...                    loss="quantile", quantiles=(0.1, 0.5, 0.9))
>>> fc = fc.fit(store, data, out=f"{tmp}/run")
>>> sorted(fc.metrics["val"]["mean"])[:4]
['AUC', 'Accuracy', 'MAE', 'R2']
>>> pred = fc.predict(data)
>>> pred.columns
['product_id', 'step', 'date', 'yhat', 'p10', 'p50', 'p90', 'observed']
>>> pred.height == 60 * 12
True
>>> fc.save(f"{tmp}/saved")
>>> again = sf.Forecaster.load(f"{tmp}/saved")
>>> again.predict(data)["yhat"].to_list() == pred["yhat"].to_list()
True
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Union

import polars as pl

from sf.errors import SfError

PathLike = Union[str, Path]
Frame = Any  # a polars DataFrame, or a pandas DataFrame (converted)
Data = Union[PathLike, Mapping[str, Any]]  # a dataset folder, or frames: {"products", "sales", "exog", "dataset", "images"}
TABLES = ("products", "sales", "exog")


def _quiet():
    from rich.console import Console

    return Console(file=io.StringIO(), force_terminal=False)


def to_polars(frame: Frame, name: str = "frame") -> pl.DataFrame:
    """A polars DataFrame from polars or pandas input.

    >>> import pandas as pd
    >>> to_polars(pd.DataFrame({"product_id": ["a"], "units": [3]})).columns
    ['product_id', 'units']
    """
    if isinstance(frame, pl.DataFrame):
        return frame
    if isinstance(frame, pl.LazyFrame):
        return frame.collect()
    if type(frame).__module__.startswith("pandas"):
        return pl.from_pandas(frame)
    raise SfError(f"{name}: expected a polars or pandas DataFrame, got {type(frame).__name__}")


FRAMES_MARK = ".sf-frames"


def write_dataset(frames: Mapping[str, Any], folder: PathLike) -> Path:
    """Frames -> a dataset folder in the data contract (Parquet tables, dataset.toml, images/ linked), so
    every command's one loader and its checks read them. Keys: products (required), sales, exog, dataset
    (a dict: name, period, exog_link, exog_lookback), images (the folder that products.image is relative to)."""
    unknown = set(frames) - {*TABLES, "dataset", "images"}
    if unknown:
        raise SfError(f"frames: unknown key(s) {sorted(unknown)}; expected products, sales, exog, dataset, images")
    if "products" not in frames:
        raise SfError("frames: a 'products' frame is required")
    folder = Path(folder)
    if folder.exists():
        # Only a folder this function wrote (a previous fit's frames) is replaced; anything else is the user's.
        if not (folder / FRAMES_MARK).is_file():
            raise SfError(f"{folder}: exists and was not written from frames by sf; choose another folder or remove it")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / FRAMES_MARK).write_text("written by sf.api.write_dataset; replaced on the next write\n")
    for name in TABLES:
        if frames.get(name) is not None:
            to_polars(frames[name], name).write_parquet(folder / f"{name}.parquet")
    meta = frames.get("dataset") or {}
    if meta:
        from sf.plain import toml_value

        (folder / "dataset.toml").write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in meta.items()))
    images = frames.get("images")
    if images is not None:
        if not Path(images).is_dir():
            raise SfError(f"{images}: images folder not found")
        (folder / "images").symlink_to(Path(images).resolve(), target_is_directory=True)
    return folder


def _is_frame(x: Any) -> bool:
    return isinstance(x, (pl.DataFrame, pl.LazyFrame)) or type(x).__module__.startswith("pandas")


def _like_input(frame: pl.DataFrame, given: Any) -> Any:
    """pandas in, pandas out: the caller's kind of frame."""
    return frame.to_pandas() if type(given).__module__.startswith("pandas") else frame


PYTHON_TERMS = (("--force", "force=True"), ("--out", "out="), ("--resume", "resume=True"), ("--store", "store="), (" or --name", ""))


def _in_python_terms(e: SfError) -> SfError:
    """The engine's messages name CLI options; from Python the same advice names the keyword."""
    text = str(e)
    for cli, py in PYTHON_TERMS:
        text = text.replace(cli, py)
    return type(e)(text) if type(e) is SfError else SfError(text)


def _scratch(out: PathLike | None, prefix: str) -> Path:
    """`out`, or a new temporary folder: nothing is written into the working directory unless asked."""
    import tempfile

    return Path(out) if out is not None else Path(tempfile.mkdtemp(prefix=prefix))


def _dataset(data: Data, scratch: Path) -> Path:
    if isinstance(data, Mapping):
        return write_dataset(data, scratch)
    if isinstance(data, (str, Path)):
        return Path(data)
    raise SfError(f"data: expected a dataset folder or a mapping of frames, got {type(data).__name__}")


# ---------------------------------------------------------------- stage 1


class FeatureStore:
    """An HDF5 feature store made by `sf extract` / `sf.extract` (stage 1's output, stage 2's input).

    >>> import sf
    >>> sf.FeatureStore("no/such.h5")
    Traceback (most recent call last):
    ...
    sf.errors.SfError: no/such.h5: feature store not found
    """

    def __init__(self, path: PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise SfError(f"{path}: feature store not found")

    @property
    def attrs(self) -> dict:
        """The store's metadata: backbone, weights (+ sha256), preprocessing, text encoder, counts."""
        from sf.cache.reader import read_attrs

        return read_attrs(self.path)

    @property
    def keys(self) -> list[str]:
        """The rows' keys (product ids for a dataset store), in store order."""
        from sf.apply.new_products import store_keys

        return sorted(store_keys(self.path))

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r}, backbone={self.attrs.get('backbone')!r}, rows={len(self)})"

    def __fspath__(self) -> str:
        return str(self.path)


def extract(data: Data, out: PathLike | None = None, *, backbone: str | None = None, weights: str | None = None,
            text_encoder: str | None = None, progress: bool = False, **options: Any) -> FeatureStore:
    """Stage 1, as `sf extract --data`: run the frozen image backbone and text encoder once over a dataset
    (a folder, or frames with an `images` folder) into an HDF5 store; incremental and resumable.

    Defaults are the CLI's (`resnet101`, `imagenet`, `minilm`); other keywords are `sf extract` options
    (`batch_size`, `image_size`, `device`, `fit`, ...). Returns the store.
    """
    from sf.extract.job import extract_dataset

    given = {k: v for k, v in dict(backbone=backbone, weights=weights, text_encoder=text_encoder).items() if v is not None}
    folder = _dataset(data, Path(out or "cache").with_suffix(".frames"))
    console = None if progress else _quiet()
    return FeatureStore(extract_dataset(folder, out, console=console, **given, **options))


def extract_like(ds, like, out, console=None):
    """Stage 1 for stage 2: features of new products made exactly like the store `like` — the one hook through
    which predict / evaluate / explain ask for features (sf/forecast and sf/apply never import sf/extract);
    the CLI passes its stderr console to show progress, the API stays quiet."""
    from sf.extract.job import extract_dataset

    return extract_dataset(ds, out, console=console or _quiet(), like=like)


# ---------------------------------------------------------------- stage 2


class Forecaster:
    """sf's forecaster (or any registered model) over cached features: `fit` trains every seed exactly as
    `sf train` does and keeps the run folder; the other methods read that folder, as the CLI does.

    Settings are `sf train`'s (`TrainConfig` fields, same names and defaults): model, fusion, head, horizon,
    seeds, epochs, loss, quantiles, hidden, dropout, target, split, observe_max, device, ...

    >>> import sf
    >>> sf.Forecaster(fusion="concat", head="lstm", seeds=3)
    Forecaster(model='sf', fusion='concat', head='lstm', seeds=3, unfitted)
    >>> sf.Forecaster(fusion="nope")
    Traceback (most recent call last):
    ...
    sf.errors.SfError: config fusion: 'nope' is not one of ...
    """

    def __init__(self, model: str = "sf", fusion: str = "i2t_image", head: str = "bilstm", horizon: int | None = None,
                 seeds: int = 5, **settings: Any):
        from sf.forecast.config import load_config

        if "quantiles" in settings and settings["quantiles"] is not None:
            settings["quantiles"] = tuple(float(q) for q in settings["quantiles"])
        self.config = load_config(None, model=model, fusion=fusion, head=head, horizon=horizon, seeds=seeds, **settings)
        self.config.validate()  # a wrong name fails here, not after the store is read
        self.run_dir: Path | None = None

    def __repr__(self) -> str:
        c = self.config
        state = f"run_dir={str(self.run_dir)!r}" if self.run_dir else "unfitted"
        return f"Forecaster(model={c.model!r}, fusion={c.fusion!r}, head={c.head!r}, seeds={c.seeds}, {state})"

    # -------------------------------------------------------------- training

    def fit(self, store: FeatureStore | PathLike | Frame, data: Data | Frame | None = None, out: PathLike | None = None,
            *, images: PathLike | None = None, dataset: Mapping[str, Any] | None = None,
            extract_options: Mapping[str, Any] | None = None, force: bool = False, progress: bool = False) -> "Forecaster":
        """Train every seed exactly as `sf train --features STORE --data DATA` does.

        Either `fit(store, data)` (a feature store and a dataset folder or frames), or from a notebook
        `fit(products, sales, images=FOLDER)` with frames (pandas or polars): the features are then extracted
        first, as `sf extract` would (`extract_options`: its keywords, e.g. backbone, weights, text_encoder),
        into `out`. Everything is written under `out` (default: a new temporary folder). Returns self;
        `metrics` then holds metrics.json."""
        from sf.forecast.engine import train_run

        out = _scratch(out, "sf-run-")
        try:
            if _is_frame(store):
                frames = {"products": store, "sales": data, "images": images, "dataset": dataset}
                folder = write_dataset({k: v for k, v in frames.items() if v is not None}, out / "dataset")
                store = extract(folder, out / "features.h5", progress=progress, **dict(extract_options or {}))
                run_dir = out / "run"
            else:
                if data is None:
                    raise SfError("fit: give a dataset (fit(store, data)) or frames (fit(products, sales, images=...))")
                folder = _dataset(data, out / "dataset")
                run_dir = out
            cfg = replace(self.config, features=Path(store), data=folder, out=run_dir)
            result = train_run(cfg, force=force, console=None if progress else _quiet(), progress=progress)
        except SfError as e:
            raise _in_python_terms(e) from None
        self.config, self.run_dir = result.config, Path(result.out)
        return self

    def cross_validation(self, store: FeatureStore | PathLike, data: Data, folds: int = 4, *, cutoffs: str = "auto",
                         window: int | None = None, out: PathLike | None = None, workers: int = 0,
                         force: bool = False, progress: bool = False) -> pl.DataFrame:
        """Rolling-origin backtest of this forecaster's settings, as `sf backtest` (neuralforecast's
        cross_validation): each fold trains on the products released before its cutoff and forecasts the next
        season's (or window's) products. Returns the long frame of forecasts.parquet: model, fold, cutoff,
        product_id, step, y, yhat (the seed ensemble); the run's figures are in <out>/backtest.json."""
        from sf.studies.backtest import BacktestConfig, run_backtest

        out = Path(out) if out is not None else None
        folder = _dataset(data, (out or Path("runs")) / "dataset")
        cfg = BacktestConfig(features=Path(store), data=folder, folds=folds, cutoffs=cutoffs, window=window,
                             train=self.config, workers=workers, out=out, force=force)
        result = run_backtest(cfg, console=None if progress else _quiet(), progress=progress)
        return result.forecasts

    def _run(self) -> Path:
        if self.run_dir is None:
            raise SfError("this Forecaster is not fitted: call fit(store, data) or Forecaster.load(run_folder)")
        return self.run_dir

    @property
    def metrics(self) -> dict:
        """The run's metrics.json: per split the seeds' mean, std, per-seed values, seed ensemble, mean curve."""
        import json

        return json.loads((self._run() / "metrics.json").read_text())

    # -------------------------------------------------------------- applying

    def predict(self, new_products: Data | Frame, *, images: PathLike | None = None, observed: int | None = None,
                store: PathLike | None = None, extract: bool = True, out: PathLike | None = None) -> Frame:
        """Forecast products the model has never seen (a products frame, pandas or polars, with `images` the
        folder its image paths are in; or a folder with a products table and images/; or frames), as
        `sf predict`: their features are extracted with exactly the model's extractor. Nothing is written
        to the model folder: scratch files go under `out` (default: a new temporary folder). Returns one row
        per product and step, as the input's kind of frame (pandas in, pandas out): product_id, step, date,
        yhat, the quantile columns of a quantile model (p10, p50, p90), observed."""
        from sf.apply.predict import PredictConfig, predict_new

        run = self._run()
        scratch = _scratch(out, "sf-predict-")
        data = {"products": new_products, "images": images} if _is_frame(new_products) else new_products
        if images is not None and isinstance(data, Mapping):
            data = {**data, "images": images}
        try:
            folder = _dataset(data, scratch / "new_products")
            cfg = PredictConfig(model=run, data=folder, out=scratch / f"forecasts_{folder.name}.parquet",
                                store=Path(store) if store else (scratch / "features.h5" if extract else None),
                                observed=observed)
            frame = predict_new(cfg, extract=extract_like if extract else None, console=_quiet()).forecasts
        except SfError as e:
            raise _in_python_terms(e) from None
        return _like_input(frame, new_products)

    def evaluate(self, data: Data, *, split: str | None = None, observed: int = 0, store: PathLike | None = None,
                 extract: bool = True) -> dict:
        """Score the model on products with known sales (a folder or frames), as `sf evaluate`: every metric
        per seed (mean ± std), for the seed ensemble and for the training mean curve. Returns metrics.json."""
        from sf.apply.evaluate import EvaluateConfig, evaluate_run

        run = self._run()
        folder = _dataset(data, run / "api_eval")
        cfg = EvaluateConfig(model=run, data=folder, store=Path(store) if store else None, split=split,
                             observed=observed)
        return evaluate_run(cfg, extract=extract_like if extract else None, console=_quiet()).metrics

    def explain(self, product_id: str, data: Data | None = None, *, out: PathLike | None = None) -> dict:
        """Why this forecast, as `sf explain`: region and word attention, the forecast band, analogs. Writes
        the PNG (default <run>/explain/<product>.png) and returns the numbers (its JSON)."""
        from sf.apply.explain import ExplainConfig, explain_product
        from sf.extract.tokens import token_strings

        run = self._run()
        folder = None
        if data is not None:
            folder = _dataset(data, run / "api_explain")
        cfg = ExplainConfig(model=run, product=product_id, data=folder, out=Path(out) if out else None)
        exp = explain_product(cfg, extract=extract_like, words_for=token_strings, console=_quiet())
        return {**exp.to_json(), "png": str(exp.png)}

    def report(self, out: PathLike | None = None) -> Path:
        """The self-contained HTML report of this run, as `sf report RUN` (default <run>/report.html)."""
        from sf.report import write_report

        return write_report(self._run(), out)

    # -------------------------------------------------------------- persistence

    def save(self, path: PathLike) -> None:
        """Copy the run folder (config, checkpoints with the store fingerprint, metrics) to `path`."""
        path = Path(path)
        if path.resolve() == self._run().resolve():
            return
        if path.exists():
            raise SfError(f"{path}: exists; choose a new folder")
        shutil.copytree(self._run(), path)

    @classmethod
    def load(cls, path: PathLike) -> "Forecaster":
        """A Forecaster over a run folder from `fit`, `save` or `sf train`."""
        from sf.forecast.config import config_from_dict

        import json

        path = Path(path)
        if not (path / "config.json").is_file():
            raise SfError(f"{path}: not a run folder (no config.json)")
        self = cls.__new__(cls)
        cfg = json.loads((path / "config.json").read_text())
        self.config = config_from_dict(cfg.get("config", cfg))
        self.run_dir = path
        return self


# ---------------------------------------------------------------- studies


def ablate(store: FeatureStore | PathLike, data: PathLike, *, store_alt: FeatureStore | PathLike | None = None,
           backbone: str = "resnet18", extras: bool = False, seeds: int = 5, out: PathLike | None = None,
           workers: int = 0, **settings: Any) -> pl.DataFrame:
    """The ablation grid, as `sf ablate`: backbone × fusion {biattn, concat} × head {lstm, bilstm} (+ one-change
    extras), every row over `seeds`, same split. Returns ablation.csv as a polars frame (one row per grid row
    and split, METRIC_mean / METRIC_std columns); the folder also holds ablation.json and ablation.png."""
    from sf.studies.ablate import AblateConfig, run_ablation
    from sf.forecast.config import load_config

    train = load_config(None, seeds=seeds, **settings)
    cfg = AblateConfig(features=Path(store), data=Path(data), backbone=backbone,
                       features_alt=Path(store_alt) if store_alt else None, extras=extras, workers=workers,
                       out=Path(out) if out else None, train=train)
    result = run_ablation(cfg, console=_quiet(), progress=False)
    return pl.read_csv(Path(result.out) / "ablation.csv")


def compare(store: FeatureStore | PathLike, data: PathLike, *, models: tuple[str, ...] | None = None,
            seeds: int = 5, shuffled_control: bool = False, out: PathLike | None = None, workers: int = 0,
            **settings: Any) -> pl.DataFrame:
    """Every model in one harness, as `sf compare`: baselines, GTM-, Ekambaram-style and sf on the same split
    and seeds. Returns compare.csv as a polars frame (one row per model and split, with rank)."""
    from sf.studies.compare import CompareConfig, run_compare
    from sf.forecast.config import load_config

    train = load_config(None, seeds=seeds, **settings)
    kw = {"models": tuple(models)} if models else {}
    cfg = CompareConfig(data=(Path(data),), features=(Path(store),), shuffled_control=shuffled_control,
                        workers=workers, out=Path(out) if out else None, train=train, **kw)
    result = run_compare(cfg, console=_quiet(), progress=False)
    return pl.read_csv(Path(result.out) / "compare.csv")


def demo_data(out: PathLike, products: int = 300, seed: int = 0, **options: Any) -> Path:
    """A synthetic catalogue whose sales follow what its images and descriptions show, as `sf demo-data`.
    Returns the dataset folder."""
    from sf.data.demo import DemoConfig, generate

    return generate(DemoConfig(out=Path(out), products=products, seed=seed, **options))
