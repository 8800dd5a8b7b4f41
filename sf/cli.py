"""The `sf` command line: parse, call, print. All work lives in the packages it calls."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from sf import cli_options as O
from sf.consoles import messages_console, plain, results_console
from sf.errors import SfError
from sf.forecast.config import TrainConfig
from sf.outputs import writable_dir, writable_file

console = results_console()
err_console = messages_console()

app = typer.Typer(
    help="Forecast new-product sales from images, descriptions and sales history.\n\n"
    "Two stages: `sf extract` runs frozen backbones once into an HDF5 feature store; "
    "`sf train` trains fusion + forecasting heads from that store.\n\n"
    "Example: sf demo-data demo_data && sf extract --data demo_data --backbone efficientnet_lite0 && sf train --features cache/demo_efficientnet_lite0.h5 --data demo_data",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


data_app = typer.Typer(help="Validate and summarise dataset folders.", no_args_is_help=True)
import_app = typer.Typer(help="Convert public datasets into sf's data contract.", no_args_is_help=True)
cache_app = typer.Typer(help="Inspect, verify and merge HDF5 feature stores.", no_args_is_help=True)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"sf {version('sf')}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print sf's version and exit."),
    memory_budget: Optional[str] = typer.Option(
        None, "--memory-budget", help="Image grids stage 2 may hold in memory, e.g. 2G, 0 (always read from the "
        "store per batch) or auto: half the available memory (default; env SF_MEMORY_BUDGET)."),
) -> None:
    """Forecast new-product sales from images, descriptions and sales history."""
    from sf.cache.budget import set_memory_budget

    set_memory_budget(memory_budget)


app.add_typer(data_app, name="data")
app.add_typer(import_app, name="import")
app.add_typer(cache_app, name="cache")


# ---------------------------------------------------------------- data contract


@data_app.command("check")
def data_check(
    data: Path = typer.Argument(..., help="Dataset folder (products, sales, optional exog, images/)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the summary as JSON here."),
) -> None:
    """Validate a dataset folder against the contract and summarise it.

    Example: sf data check demo_data
    """
    from sf.data.check import check_dataset, print_summary, write_json
    from sf.data.contract import DataProblems

    if json_out:
        writable_file(json_out)
    try:
        summary = check_dataset(data)
    except DataProblems as e:  # every violation, one line each, so one run shows what to fix
        for line in e.lines:
            err_console.print(f"[bold red]error:[/] {plain(line)}", highlight=False, soft_wrap=True)
        if e.more:
            err_console.print(f"[bold red]error:[/] ... and {e.more:,} more", highlight=False, soft_wrap=True)
        raise typer.Exit(e.exit_code)
    print_summary(summary, console, err_console)
    if json_out:
        write_json(summary, json_out)


@import_app.command("visuelle")
def import_visuelle(
    src: Path = typer.Argument(..., help="VISUELLE folder: train.csv and/or test.csv, gtrends.csv, normalization_scale.npy, images/."),
    out: Path = typer.Argument(..., help="Output dataset folder (created; must not exist or be empty unless --force)."),
    force: bool = typer.Option(False, help="Replace an existing output folder."),
) -> None:
    """Convert VISUELLE's wide CSVs into the data contract (units = value x scale).

    Descriptions are built from the attributes; split = train/test by source file; gtrends.csv becomes exog.csv.

    Example: sf import visuelle ../shared/data/visuelle data/visuelle
    """
    from sf.data.visuelle import import_visuelle as run

    summary = run(src, out, force=force, progress=True)
    console.print(str(summary), highlight=False)
    console.print(f"next: sf data check {out}", highlight=False)


@app.command("demo-data")
def demo_data(
    out: Path = typer.Argument(Path("demo_data"), help="Output dataset folder."),
    products: int = typer.Option(300, "--products", "-n", help="Number of products."),
    seed: int = typer.Option(0, help="Random seed; same seed, same catalogue."),
    weeks: int = typer.Option(12, help="Weeks of sales per product."),
    image_size: int = typer.Option(128, help="Image side in pixels."),
    force: bool = typer.Option(False, help="Replace an existing output folder."),
) -> None:
    """Generate a synthetic catalogue whose sales depend on what products look like and say.

    Example: sf demo-data demo_data --products 300 --seed 0
    """
    from sf.data.demo import DemoConfig, generate

    writable_dir(out)
    cfg = DemoConfig(out=out, products=products, seed=seed, weeks=weeks, image_size=image_size)
    path = generate(cfg, force=force, progress=True)
    console.print(f"demo catalogue written to [bold]{path}[/] ({products} products, seed {seed}); "
                  f"the sales rules are in {path / 'README.md'}", highlight=False)
    console.print(f"next: sf data check {path}", highlight=False)


# ---------------------------------------------------------------- stage 1


@app.command("extract")
def extract(
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of images; keys are paths relative to it, without extension."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder (data contract): keys are product_id, text is extracted too."),
    products: Optional[Path] = typer.Option(None, "--products", help="Products table (csv/parquet: product_id, image, text) for --images."),
    out: Optional[Path] = typer.Option(None, "--out", help="Store path (default cache/NAME_BACKBONE.h5)."),
    backbone: str = typer.Option("resnet101", help="Image backbone (see --list)."),
    weights: str = typer.Option("imagenet", help="imagenet, random, or a state-dict file."),
    seed: int = typer.Option(0, help="Seed for --weights random."),
    text_encoder: str = typer.Option("minilm", "--text-encoder", help="minilm, hash (no download) or none."),
    text_len: int = typer.Option(32, "--text-len", help="Tokens kept per description."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per forward pass."),
    workers: Optional[int] = typer.Option(None, help="Decoding processes (default: chosen from device and job size)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    precision: str = typer.Option("auto", help="auto, fp32, bf16 or fp16 (auto: bf16/fp16 on GPU, fp32 on CPU; docs/numerics.md)."),
    shard: Optional[str] = typer.Option(None, help="I/N: extract only keys hashing to shard I of N (I from 0), or auto (torchrun/SLURM)."),
    strict: bool = typer.Option(False, help="Exit non-zero when any image is unreadable."),
    pooled_only: bool = typer.Option(False, "--pooled-only", help="Store pooled vectors only, no region grid."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Input side in pixels (default: the backbone's)."),
    fit: str = typer.Option("pad", help="pad (letterbox on white) or crop (centre crop)."),
    compression: str = typer.Option("none", help="none, gzip or lzf."),
    max_pixels: int = typer.Option(89_478_485, "--max-pixels", help="Refuse larger images (decompression-bomb guard)."),
    decoder: str = typer.Option("auto", help="auto, pillow or torchvision (auto: batched nvJPEG on CUDA, Pillow on CPU)."),
    engine: str = typer.Option("local", help="local (this machine) or ray (a Ray cluster: RAY_ADDRESS, else a local one; needs Ray: the ray extra)."),
    concurrency: Optional[int] = typer.Option(None, help="--engine ray: actors (default: one per GPU, else every CPU but one)."),
    list_: bool = typer.Option(False, "--list", help="List backbones and text encoders, then exit."),
) -> None:
    """Run frozen image/text encoders once into an HDF5 feature store (incremental and resumable).

    Example: sf extract --images jd/ --backbone efficientnet_lite0
    """
    from sf.extract import job, report
    from sf.extract import sources as I

    if list_:
        report.print_registries(console)
        return
    if (images is None) == (data is None) and products is None:
        raise SfError("give exactly one of --images DIR or --data DIR (see `sf extract --help`)")
    if data is not None and (images is not None or products is not None):
        raise SfError("--data takes the images and products from the dataset folder; drop --images/--products")
    cfg = job.ExtractConfig(
        backbone=backbone, weights=weights, seed=seed, text_encoder=text_encoder, text_len=text_len,
        image_size=image_size, fit=fit, batch_size=batch_size, workers=workers, device=device, precision=precision,
        shard=shard, strict=strict, pooled_only=pooled_only, compression=compression, max_pixels=max_pixels,
        decoder=decoder, engine=engine, concurrency=concurrency,
    )
    if data is not None:
        rows = I.from_dataset(data)
    elif products is not None:
        rows = I.from_products_table(products, images)
    else:
        rows = I.from_images_dir(images)
    result = job.run(rows, out, cfg, err_console)
    report.print_report(result, console)
    job.check_outcome(result, strict)


@cache_app.command("info")
def cache_info(
    store: Path = typer.Argument(..., help="Feature store (.h5)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the information as JSON here."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="A run folder from `sf train`: also check the store fits it and say if its precision differs."),
) -> None:
    """Print a store's metadata (backbone, weights, preprocessing, text encoder) and row counts.

    Example: sf cache info runs/demo/model/features_new.h5 --model runs/demo/model
    """
    from sf.cache.info import print_info, store_info

    if json_out:
        writable_file(json_out)
    info = store_info(store)
    print_info(info, console)
    if model is not None:
        from sf.forecast.checkpoints import check_fingerprint, load_run, precision_note

        run = load_run(model)
        check_fingerprint(run, info["attrs"])
        note = precision_note(run, info["attrs"], store)
        info["model"] = {"run": str(model), "fingerprint_fits": True, "precision_note": note}
        _print_notes([note or f"{store} fits {model}: same extractor; precision {info['attrs'].get('precision', '?')}, "
                               f"trained on {run.store.get('precision') or 'unrecorded'}"])
    if json_out:
        from sf.cache.info import write_json

        write_json(info, json_out)


@cache_app.command("verify")
def cache_verify(store: Path = typer.Argument(..., help="Feature store (.h5).")) -> None:
    """Read every chunk and check its checksum; one line: ok, incomplete or damaged (exit 2).

    Example: sf cache verify cache/visuelle_resnet101.h5
    """
    from sf.cache.verify import verify_store

    result = verify_store(store)
    if not result.ok:
        raise SfError(result.summary())
    console.print(result.summary(), highlight=False, soft_wrap=True)


@cache_app.command("merge")
def cache_merge(
    out: Path = typer.Argument(..., help="Merged store to write."),
    shards: list[Path] = typer.Argument(..., help="Shard stores (same fingerprint)."),
    force: bool = typer.Option(False, help="Replace OUT if it exists."),
) -> None:
    """Combine shard stores from `sf extract --shard I/N` into one, without re-extracting.

    Example: sf cache merge cache/all.h5 cache/visuelle_resnet101.shard*.h5
    """
    from sf.cache.merge import merge_stores

    r = merge_stores(out, shards, force=force)
    order = "input order restored" if r.ordered_by_input else "concatenated in the order given"
    console.print(f"merged {r.shards} store(s), {r.rows} rows -> [bold]{r.out}[/] ({order})")


# ---------------------------------------------------------------- stage 2


@app.command("train")
def train(
    features: O.Features = None,
    data: O.Data = None,
    horizon: O.Horizon = None,
    model: O.Model = None,
    fusion: O.Fusion = None,
    head: O.Head = None,
    hidden: O.Hidden = None,
    dropout: O.Dropout = None,
    epochs: O.Epochs = None,
    patience: O.Patience = None,
    batch_size: O.BatchSize = None,
    lr: O.Lr = None,
    loss: O.Loss = None,
    quantiles: O.Quantiles = None,
    target: O.Target = None,
    seeds: O.Seeds = None,
    seed: O.Seed = None,
    split: O.Split = None,
    observe_max: O.ObserveMax = None,
    no_exog: O.NoExog = False,
    exog_future: O.ExogFuture = False,
    no_attributes: O.NoAttributes = False,
    refit: O.Refit = None,
    device: O.Device = None,
    config: O.Config = None,
    name: Optional[str] = typer.Option(None, help="Run name (default: <store>_<model>_<fusion>_<head>)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default: runs/<name>)."),
    resume: bool = typer.Option(False, help="Reuse finished seeds' checkpoints in the run folder (same settings and store)."),
    force: bool = typer.Option(False, help="Replace a run folder made with other settings, data or store."),
    allow_stale: O.AllowStale = False,
) -> None:
    """Train fusion + forecasting head from cached features (no backbone runs) and score it.

    Writes the run folder: config.json, checkpoints/seed*.pt, metrics.json, predictions.parquet and PNGs.

    Example: sf train --features cache/demo_efficientnet_lite0.h5 --data demo_data --fusion biattn --head bilstm
    """
    from sf.forecast.engine import train_run
    from sf.forecast.run_table import run_table

    cfg = O.train_settings(
        config, features=features, data=data, horizon=horizon, model=model, fusion=fusion, head=head, hidden=hidden,
        dropout=dropout, epochs=epochs, patience=patience, batch_size=batch_size, lr=lr, loss=loss,
        quantiles=quantiles, target=target, seeds=seeds, seed=seed, split=split, observe_max=observe_max,
        no_exog=no_exog, exog_future=exog_future, no_attributes=no_attributes, refit=refit, device=device, name=name, out=out)
    result = train_run(cfg, resume=resume, force=force, console=err_console, allow_stale_features=allow_stale)
    console.print(run_table(result.metrics))
    for note in result.metrics.get("notes", []):
        err_console.print(f"[bold yellow]warning:[/] {plain(note)}", highlight=False, soft_wrap=True)
    console.print(f"run folder: [bold]{result.out}[/] (metrics.json, predictions.parquet, checkpoints/, *.png)")

# ---------------------------------------------------------------- ablate / compare


@app.command("ablate")
@O.study_command
def ablate(
    features: Path = typer.Option(..., "--features", "-f", help="Main feature store (the paper: ResNet-101)."),
    data: Path = typer.Option(..., "--data", "-d", help="Dataset folder with the products' sales."),
    backbone: str = typer.Option("resnet18", help="The grid's other backbone."),
    features_alt: Optional[Path] = typer.Option(None, "--features-alt", help="Store of --backbone (default: --features with its backbone name swapped)."),
    extras: bool = typer.Option(False, "--extras/--no-extras", help="Also text only, image only, no exog, one-way attention (default: the paper's 8 rows only)."),
    workers: int = typer.Option(0, help="Parallel runs, one process and thread each; 0 = one per core."),
    engine: str = typer.Option("local", help="local (processes here) or ray (one Ray task per row and seed: RAY_ADDRESS, else a local instance; needs Ray: the ray extra)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: runs/ablate_<store name>)."),
    train: TrainConfig = None,  # the shared training options (cli_options.study_command)
    allow_stale: O.AllowStale = False,
) -> None:
    """The paper's ablation (Table 4): backbone x fusion {biattn, concat = attention removed} x head {lstm, bilstm}.

    Every row over the seeds on the same split; writes ablation.csv/.json/.png. No backbone runs.

    Example: sf ablate --features cache/visuelle_resnet101.h5 --backbone resnet18 --data data/visuelle --seeds 5
    """
    from sf.studies.ablate import AblateConfig, ablation_table, run_ablation

    cfg = AblateConfig(features=features, data=data, backbone=backbone, features_alt=features_alt, extras=extras,
                       workers=workers, engine=engine, out=out, train=train,
                        allow_stale_features=allow_stale)
    result = run_ablation(cfg, console=err_console)
    console.print(ablation_table(result))
    for note in result.notes:
        err_console.print(f"[yellow]note:[/] {plain(note)}", highlight=False, soft_wrap=True)
    console.print(f"written: [bold]{result.out}[/] (ablation.csv, ablation.json, ablation.png, config.json)")


@app.command("compare")
@O.study_command
def compare(
    data: list[Path] = typer.Option(..., "--data", "-d", help="Dataset folder; repeat for a table across data sets."),
    features: Optional[list[Path]] = typer.Option(None, "--features", "-f", help="Store per --data, same order (default: cache/<name>_<backbone>.h5)."),
    backbone: str = typer.Option("resnet101", help="Names the default stores."),
    models: Optional[str] = typer.Option(None, help="Comma-separated (default: mean_curve,attribute_mean,knn_image,knn_attributes,knn_both,lightgbm,lightgbm_pca,gtm,ekambaram,sf; the lightgbm rows need sf[lightgbm])."),
    shuffled_control: bool = typer.Option(False, "--shuffled-control", help="Add sf scored on shuffled image/text features (a sanity row)."),
    tune_trials: int = typer.Option(0, "--tune-trials", help="Give every neural model the same `sf tune` budget (trials on validation) first [0: none]."),
    backtest: int = typer.Option(0, "--backtest", help="Score every model on K rolling-origin folds instead (see `sf backtest`; one --data) [0: the one split]."),
    force: bool = typer.Option(False, help="With --backtest: replace a backtest made with other settings."),
    workers: int = typer.Option(0, help="Parallel runs, one process and thread each; 0 = one per core."),
    engine: str = typer.Option("local", help="local (processes here) or ray (one Ray task per row and seed: RAY_ADDRESS, else a local instance; needs Ray: the ray extra)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: runs/compare_<data names>)."),
    train: TrainConfig = None,  # the shared training options (cli_options.study_command)
    allow_stale: O.AllowStale = False,
) -> None:
    """Baselines, GTM-style, Ekambaram-style and sf in one harness (Table 2); several --data give Table 3.

    Same split, metrics and seeds for every model; writes compare.csv/.json, compare.png, compare_steps.png.

    Example: sf compare --features cache/visuelle_resnet101.h5 --data data/visuelle --seeds 5
    """
    from sf.studies.compare import DEFAULT_MODELS, CompareConfig, across_table, compare_table, run_compare

    names = tuple(m.strip() for m in models.split(",") if m.strip()) if models else DEFAULT_MODELS
    if backtest:
        from sf.studies.backtest import BacktestConfig, check_single, print_backtest, run_backtest

        check_single(data, features or [])
        bt = BacktestConfig(features=features[0], data=data[0], folds=backtest, models=names, train=train,
                            workers=workers, engine=engine, out=out, force=force, allow_stale_features=allow_stale)
        print_backtest(run_backtest(bt, console=err_console), console)
        return
    cfg = CompareConfig(data=tuple(data), features=tuple(features or ()), backbone=backbone, models=names,
                        shuffled_control=shuffled_control, workers=workers, engine=engine, out=out, train=train,
                        allow_stale_features=allow_stale,
                        tune_trials=tune_trials)
    result = run_compare(cfg, console=err_console)
    for label in result.tables:
        console.print(compare_table(result, label))
    if len(result.tables) > 1:
        console.print(across_table(result))
    for note in result.notes:
        err_console.print(f"[yellow]note:[/] {plain(note)}", highlight=False, soft_wrap=True)
    console.print(f"written: [bold]{result.out}[/] (compare.csv, compare.json, PNGs, config.json)")

@app.command("backtest")
@O.study_command
def backtest(
    features: Path = typer.Option(..., "--features", "-f", help="Feature store from `sf extract` (HDF5)."),
    data: Path = typer.Option(..., "--data", "-d", help="Dataset folder with the products' sales."),
    folds: int = typer.Option(4, help="Rolling-origin folds (cutoffs), the latest last."),
    cutoffs: str = typer.Option("auto", help="seasons (the products' season column: the last K seasons) | windows (K windows of release dates) | auto (seasons when there is a season column)."),
    window: Optional[int] = typer.Option(None, help="With windows: weeks per window (default: K equal windows over the latest half of the release dates)."),
    horizon: O.Horizon = None,
    model: O.Model = None,
    fusion: O.Fusion = None,
    head: O.Head = None,
    workers: int = typer.Option(0, help="Parallel runs (folds x seeds), one process and thread each; 0 = one per core."),
    engine: str = typer.Option("local", help="local (processes here) or ray (one Ray task per fold and seed; needs sf[ray])."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: runs/backtest_<store>_<model>)."),
    force: bool = typer.Option(False, help="Replace a backtest made with other settings, data or store."),
    train: TrainConfig = None,  # the shared training options (cli_options.study_command)
    allow_stale: O.AllowStale = False,
) -> None:
    """Rolling-origin evaluation by release date: each fold trains on the products released before its cutoff
    (sales known by then) and forecasts the next season's or window's products, scored on the seed ensemble.

    Writes backtest.json, forecasts.parquet (model, fold, cutoff, product_id, step, y, yhat), backtest.png.

    Example: sf backtest --features cache/visuelle_efficientnet_lite0.h5 --data data/visuelle --folds 4
    """
    from dataclasses import replace as _replace

    from sf.studies.backtest import BacktestConfig, print_backtest, run_backtest

    given = {k: v for k, v in {"horizon": horizon, "model": model, "fusion": fusion, "head": head}.items() if v is not None}
    cfg = BacktestConfig(features=features, data=data, folds=folds, cutoffs=cutoffs, window=window,
                         train=_replace(train, **given), workers=workers, engine=engine, out=out, force=force,
                         allow_stale_features=allow_stale)
    print_backtest(run_backtest(cfg, console=err_console), console)


@app.command("tune")
def tune(
    features: Path = typer.Option(..., "--features", "-f", help="Feature store from `sf extract` (HDF5)."),
    data: Path = typer.Option(..., "--data", "-d", help="Dataset folder with the products' sales."),
    model: str = typer.Option("sf", help="Model to tune: sf, gtm, ekambaram (each has its search space)."),
    trials: int = typer.Option(50, help="Trials in all (a resumed study counts its finished and pruned ones)."),
    seeds: int = typer.Option(2, help="Seeds per trial; the objective is their mean validation WAPE."),
    workers: int = typer.Option(1, help="Processes feeding the study (one torch thread each)."),
    timeout: Optional[float] = typer.Option(None, help="Seconds after which no new trial starts."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML with the `sf train` settings not searched."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Study folder (default: runs/tune_<store>_<model>)."),
) -> None:
    """Search hyper-parameters on the validation split (Optuna; the test split is never read).

    Every trial trains from the in-memory store with `sf train`'s loop; pruning, a resumable SQLite study, parallel
    workers. Writes best.toml (for `sf train --config`), trials.csv, tune.json and study.png.

    Example: sf tune --features cache/visuelle_efficientnet_lite0.h5 --data data/visuelle --trials 50 --workers 2
    """
    from sf.forecast.config import load_config
    from sf.studies.tune import TuneConfig, run_tune

    cfg = TuneConfig(features=features, data=data, model=model, trials=trials, seeds=seeds, workers=workers,
                     timeout=timeout, out=out, train=load_config(config))
    result = run_tune(cfg, console=err_console)
    states = [t["state"] for t in result.trials]
    console.print(f"{len(states)} trials ({states.count('COMPLETE')} finished, {states.count('PRUNED')} pruned) in "
                  f"{result.seconds:.0f} s; best validation WAPE {result.best_value:.2f} with "
                  + ", ".join(f"{k}={v}" for k, v in result.best_params.items()), highlight=False)
    console.print(f"written: [bold]{result.out}[/] (best.toml, trials.csv, tune.json, study.png, study.db); "
                  f"next: sf train --config {result.out / 'best.toml'}", highlight=False)

# ---------------------------------------------------------------- predict / evaluate / explain / demo


def _extract_like(ds, like, out):
    """Stage 1 for stage 2 (the one hook, shared with the Python API), with its progress bar on stderr."""
    from sf.api import extract_like

    return extract_like(ds, like, out, console=err_console)


def _token_strings(texts, store_attrs):
    from sf.extract.tokens import token_strings

    return token_strings(texts, store_attrs)


def _print_notes(notes) -> None:
    for note in notes:
        err_console.print(f"note: {plain(note)}", highlight=False, soft_wrap=True)


@app.command("predict")
def predict(
    model: O.RunModel,
    data: Path = typer.Option(..., "--data", "-d", help="Folder of new products: products table + images/; sales optional."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Forecast table, .parquet or .csv (default: <run>/forecasts_<data name>.parquet)."),
    store: O.NewStore = None,
    observed: Optional[int] = typer.Option(None, "--observed", help="Use at most this many leading weeks of given sales (default: all the model was trained to use)."),
    extract: O.ExtractMissing = True,
    device: str = typer.Option("cpu", help="cpu | cuda (for the forecasting model; extraction picks its own)."),
    force: bool = typer.Option(False, help="Replace a file at --out (or the .json/.png beside it) that sf predict did not write."),
    allow_stale: O.AllowStale = False,
    service_level: O.ServiceLevel = None,
    cost_over: O.CostOver = None,
    cost_under: O.CostUnder = None,
) -> None:
    """Forecast products the model has never seen (no sales needed), one row per product and step.

    Features are extracted with exactly the model's backbone, weights, preprocessing and text encoder,
    incrementally; a store made otherwise is refused. Quantile models add p10/p50/p90-style columns.
    Beside it, <out>_totals: per product the total over the horizon, its 80% interval (from sample paths,
    calibrated on the run's validation products) and the order quantity (newsvendor, docs/apply.md).

    Example: sf predict --model runs/demo/model --data runs/demo/new --out forecasts.csv
    """
    from sf.apply.predict import PredictConfig, predict_new, summary_table, totals_path

    cfg = PredictConfig(model=model, data=data, out=out, store=store, observed=observed, device=device,
                        allow_stale_features=allow_stale, force=force, service_level=service_level,
                        cost_over=cost_over, cost_under=cost_under)
    result = predict_new(cfg, extract=_extract_like if extract else None, console=err_console)
    console.print(summary_table(result))
    _print_notes(result.notes)
    console.print(f"forecasts: [bold]{result.out}[/] ({result.forecasts.height} rows; plot {result.out.with_suffix('.png')}); "
                  f"totals and orders: {totals_path(result.out)}; features: {result.store}", highlight=False)


@app.command("evaluate")
def evaluate(
    model: O.RunModel,
    data: Path = typer.Option(..., "--data", "-d", help="Dataset folder with the products' sales (e.g. next season)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Result folder (default: <run>/eval_<data name>)."),
    store: O.NewStore = None,
    split: Optional[str] = typer.Option(None, help="Score only products whose split column is this (train | val | test)."),
    observed: int = typer.Option(0, "--observed", help="Give the first K weeks as inputs and score the later ones."),
    baselines: Optional[str] = typer.Option(None, help="Comma-separated baselines fitted on the model's training products and scored beside it (e.g. attribute_mean,knn_image,knn_both)."),
    extract: O.ExtractMissing = True,
    device: str = typer.Option("cpu", help="cpu | cuda."),
    force: bool = typer.Option(False, help="Replace an evaluation of another model or data in the result folder."),
    allow_stale: O.AllowStale = False,
    service_level: O.ServiceLevel = None,
    cost_over: O.CostOver = None,
    cost_under: O.CostUnder = None,
) -> None:
    """Score a trained model on another dataset folder: every metric of `sf train` beside the training mean curve.

    Writes metrics.json, predictions.parquet, forecasts.png and totals.png to the result folder; also what
    sf's order quantity would have cost against ordering the point forecast or the mean curve.

    Example: sf evaluate --model runs/demo/model --data runs/demo/heldout
    """
    from sf.apply.evaluate import EvaluateConfig, evaluate_run, evaluate_table, orders_table

    names = tuple(b.strip() for b in baselines.split(",") if b.strip()) if baselines else ()
    cfg = EvaluateConfig(model=model, data=data, out=out, store=store, split=split, observed=observed, device=device,
                         allow_stale_features=allow_stale, force=force, baselines=names,
                         service_level=service_level, cost_over=cost_over, cost_under=cost_under)
    result = evaluate_run(cfg, extract=_extract_like if extract else None, console=err_console)
    console.print(evaluate_table(result.metrics))
    console.print(orders_table(result.metrics))
    _print_notes(result.metrics["notes"])
    console.print(f"results: [bold]{result.out}[/] (metrics.json, predictions.parquet, forecasts.png, totals.png); "
                  f"baseline from {result.metrics['reference']}", highlight=False)


@app.command("explain")
def explain(
    model: O.RunModel,
    product: str = typer.Option(..., "--product", "-p", help="product_id to explain."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Folder holding the product (default: the model's training data)."),
    store: O.NewStore = None,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="PNG to write (default: <run>/explain/<product>.png)."),
    analogs: int = typer.Option(5, help="Nearest training products to show with their real sales."),
    extract: O.ExtractMissing = True,
    allow_stale: O.AllowStale = False,
) -> None:
    """Explain one product's forecast in a PNG: attention over its image and words, band, analog products.

    Shows the product image with its region-attention heatmap, the most attended words, the forecast with
    its quantile band, and the nearest training products with their real sales curves.

    Example: sf explain --model runs/demo/model --product demo00042
    """
    from sf.apply.explain import ExplainConfig, explain_product

    cfg = ExplainConfig(model=model, product=product, data=data, store=store, out=out, analogs=analogs,
                        allow_stale_features=allow_stale)
    exp = explain_product(cfg, extract=_extract_like if extract else None, words_for=_token_strings,
                          console=err_console)
    words = ", ".join(f"{w} {100 * s:.0f}%" for w, s in exp.words[:5]) or "–"
    console.print(f"{exp.product_id}: forecast total {exp.forecast.sum():,.0f} units; most attended words: {words}",
                  highlight=False)
    if exp.analogs:
        console.print("analogs: " + ", ".join(f"{a.product_id} ({a.similarity:.2f})" for a in exp.analogs), highlight=False)
    _print_notes(exp.notes)
    console.print(f"explanation: [bold]{exp.png}[/] (numbers in {exp.png.with_suffix('.json')})", highlight=False)


@app.command("report")
def report(
    folder: Path = typer.Argument(..., help="A run folder (from `sf train`) or a demo folder (from `sf demo`)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML file (default: FOLDER/report.html)."),
    max_products: Optional[int] = typer.Option(None, "--max-products", help="Show only the first N products."),
    device: str = typer.Option("cpu", help="cpu | cuda (the models run once over the shown products)."),
) -> None:
    """Write one self-contained HTML report: headline metrics, comparison and ablation, a product browser.

    No server and no network: CSS, JavaScript, charts (SVG) and images are inside the file.

    Example: sf report runs/demo
    """
    from sf.report import write_report

    path = write_report(folder, out, max_products=max_products, device=device)
    console.print(f"report: [bold]{path}[/] (open it in a browser)", highlight=False)


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Demo folder (a previous demo there is replaced)."),
    products: Optional[int] = typer.Option(None, "--products", "-n", help="Catalogue size [300; --fast 120]."),
    seed: int = typer.Option(0, help="Seed for the catalogue, the weights and the training."),
    fast: bool = typer.Option(False, "--fast", help="A smoke run: 120 small products, few epochs, one seed."),
    epochs: Optional[int] = typer.Option(None, help="Most epochs of the main model [40; --fast 8]."),
    seeds: Optional[int] = typer.Option(None, help="Seeds of the main model [2; --fast 1]."),
    study_epochs: Optional[int] = typer.Option(None, "--study-epochs", help="Most epochs per ablation/comparison run [25; --fast 5]."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Catalogue picture side in pixels [128; --fast 64]."),
    extract_size: Optional[int] = typer.Option(None, "--extract-size", help="Backbone input side in pixels [160; --fast 64]."),
    backbone: Optional[str] = typer.Option(None, help="Image backbone (the best with pretrained weights offline)."),
    weights: Optional[str] = typer.Option(None, help="imagenet | random | PATH (what the backbone choice found)."),
    text_encoder: Optional[str] = typer.Option(None, "--text-encoder", help="minilm | hash (minilm if installed)."),
    ablation: bool = typer.Option(True, "--ablation/--no-ablation", help="Run the small ablation."),
    compare: bool = typer.Option(True, "--compare/--no-compare", help="Run the model comparison."),
) -> None:
    """Run the whole tool on a synthetic catalogue in a few minutes and write runs/demo/report.html.

    Generates the catalogue, holds out its latest releases as new products, extracts features, trains,
    runs a small ablation and comparison, predicts, evaluates and explains the new products.

    Example: sf demo
    """
    from sf.demo import DemoSettings, paths_table, run_demo

    given = dict(out=out, seed=seed, products=products, epochs=epochs, seeds=seeds, study_epochs=study_epochs,
                 image_size=image_size, extract_size=extract_size, backbone=backbone, weights=weights,
                 text_encoder=text_encoder, ablation=ablation, compare=compare)
    given = {k: v for k, v in given.items() if v is not None}
    settings = DemoSettings.fast(**given) if fast else DemoSettings(**given)
    result = run_demo(settings, console=err_console)
    console.print(paths_table(result))
    console.print(f"read the report: [bold]{result.report}[/]", highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: SfError becomes one line on stderr and exit code 2, never a traceback."""
    try:
        app(args=argv, prog_name="sf")
    except SfError as e:
        err_console.print(f"[bold red]error:[/] {plain(e)}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except OSError as e:  # a path the OS refused (read-only, a file where a folder should be, disk full)
        from sf.outputs import os_error_line

        err_console.print(f"[bold red]error:[/] {plain(os_error_line(e))}", highlight=False, soft_wrap=True)
        sys.exit(SfError.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
