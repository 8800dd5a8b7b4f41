"""The `sf train` settings as command-line options, declared once and shared by `sf train`, `sf ablate` and
`sf compare`. Defaults shown in the help come from TrainConfig itself, and `train_settings` turns the
options given into TrainConfig fields; tests/test_config_cli.py checks that every field is an option (or
named in TOML_ONLY) and that docs/train.md's table states the same defaults.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Annotated, Optional

import typer

from sf.forecast.config import LOSSES, SPLIT_KINDS, TrainConfig, load_config, parse_quantiles

D = TrainConfig()
TOML_ONLY = ("weight_decay", "grad_clip", "split_seed", "fractions", "threads", "hparams", "popularity", "ema",
             "recency_half_life", "recent_sales", "choose_on_validation")  # --config only
# Flags that set a field to something other than their own value.
FLAG_FIELDS = {"no_exog": ("exog", False), "no_attributes": ("attributes", False), "exog_future": ("exog_future", True)}

Features = Annotated[Optional[Path], typer.Option("--features", "-f", help="Feature store from `sf extract` (HDF5).")]
Data = Annotated[Optional[Path], typer.Option("--data", "-d", help="Dataset folder with the products' sales.")]
Horizon = Annotated[Optional[int], typer.Option(help="Steps to forecast (default: the longest sales history).")]
Model = Annotated[Optional[str], typer.Option(help=f"Registered model: sf, gtm, ekambaram (default: {D.model}).")]
Fusion = Annotated[Optional[str], typer.Option(
    help=f"biattn | t2i | i2t | concat | image | text | none (default: {D.fusion}).")]
Head = Annotated[Optional[str], typer.Option(help=f"bilstm | lstm (default: {D.head}).")]
Hidden = Annotated[Optional[int], typer.Option(help="Hidden width (default: each model's own; sf: 30).")]
Dropout = Annotated[Optional[float], typer.Option(help="Dropout (default: each model's own; sf: 0.2).")]
Epochs = Annotated[Optional[int], typer.Option(
    help=f"Most epochs per run (default: {D.epochs}); early stopping on validation.")]
Patience = Annotated[Optional[int], typer.Option(
    help=f"Epochs without a better validation loss before stopping (default: {D.patience}).")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", help=f"Batch size (default: {D.batch_size}).")]
Lr = Annotated[Optional[float], typer.Option(help=f"Learning rate (default: {D.lr:g}).")]
Loss = Annotated[Optional[str], typer.Option(help=f"{' | '.join(LOSSES)} (default: {D.loss}).")]
Quantiles = Annotated[Optional[str], typer.Option(help="With --loss quantile, e.g. 0.1,0.5,0.9.")]
Target = Annotated[Optional[str], typer.Option(
    help=f"log: fit log(1 + units/mean) | scaled: units/mean (default: {D.target}).")]
AllowStale = Annotated[bool, typer.Option(
    "--allow-stale-features", help="Use features even where the image/text changed since extraction (checked by content hash).")]
Seeds = Annotated[Optional[int], typer.Option(help=f"Seeds per model, averaged (default: {D.seeds}).")]
Seed = Annotated[Optional[int], typer.Option(help=f"First seed (default: {D.seed}).")]
Split = Annotated[Optional[str], typer.Option(
    help=f"{' | '.join(SPLIT_KINDS)}: auto = time if release dates exist, else random (default: {D.split}).")]
ObserveMax = Annotated[Optional[int], typer.Option(
    "--observe-max", help=f"Train with the first k <= N weeks of sales as input (default: {D.observe_max}).")]
NoExog = Annotated[bool, typer.Option("--no-exog", help="Leave the exogenous series out (ablation).")]
ExogFuture = Annotated[bool, typer.Option(
    "--exog-future", help="Also feed the exog series over the forecast horizon: known-future covariates, which a "
    "retailer rarely has (default: only the weeks before release); recorded and labelled in every table.")]
Refit = Annotated[Optional[bool], typer.Option(
    "--refit/--no-refit", help=f"After choosing the epoch count on validation, train again on train + validation and "
    f"keep that model; validation figures stay the first fit's (default: {'--refit' if D.refit else '--no-refit'}).")]
NoAttributes = Annotated[bool, typer.Option("--no-attributes", help="Leave the attribute embeddings out.")]
Device = Annotated[Optional[str], typer.Option(help=f"auto | cpu | cuda (default: {D.device}).")]
RunModel = Annotated[Path, typer.Option("--model", "-m", help="Run folder from `sf train` (or one checkpoint file).")]
# Applying a model (predict, evaluate, explain) to products the training store may not hold.
NewStore = Annotated[Optional[Path], typer.Option(
    "--store", help="Feature store for these products (default: <run>/features_new.h5; explain without --data: the training store).")]
# The order quantity (sf.apply.totals): a quantile of the product's total over the horizon.
ServiceLevel = Annotated[Optional[float], typer.Option(
    "--service-level", help="Order the total's quantile at this probability of not running short (default 0.8).")]
CostOver = Annotated[Optional[float], typer.Option(
    "--cost-over", help="Cost of a unit left over (with --cost-under: order at the ratio under / (under + over)).")]
CostUnder = Annotated[Optional[float], typer.Option("--cost-under", help="Cost of a unit short (lost margin).")]
ExtractMissing = Annotated[bool, typer.Option(
    "--extract/--no-extract",
    help="Extract features the store lacks with the model's own backbone and text encoder (--no-extract: the store must hold them).")]
Config = Annotated[Optional[Path], typer.Option("--config", help="TOML file with `sf train` settings (flags win), or a preset: paper.")]


def train_settings(config: Path | None, **given) -> TrainConfig:
    """TrainConfig from the TOML file, then the options given (None: not given; flags map per FLAG_FIELDS)."""
    values = {}
    for name, value in given.items():
        if name in FLAG_FIELDS:
            field, when_set = FLAG_FIELDS[name]
            values[field] = when_set if value else None
        elif name == "quantiles":
            values[name] = parse_quantiles(value)
        else:
            values[name] = value
    return load_config(config, **values)


# The training options every study (sf ablate, sf compare) takes, in --help order, with their "not given" value.
STUDY_OPTIONS = {"seeds": (Seeds, None), "seed": (Seed, None), "epochs": (Epochs, None), "patience": (Patience, None),
                 "batch_size": (BatchSize, None), "lr": (Lr, None), "hidden": (Hidden, None), "split": (Split, None),
                 "device": (Device, None), "exog_future": (ExogFuture, False), "refit": (Refit, None), "config": (Config, None)}


def study_command(fn):
    """Give a study command the shared training options after its own; it receives them as one TrainConfig
    (its `train` parameter), so the options are declared, listed and mapped once for every study."""
    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "train"]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
              for name, (kind, default) in STUDY_OPTIONS.items()]

    @functools.wraps(fn)
    def command(**given):
        settings = {name: given.pop(name) for name in STUDY_OPTIONS}
        return fn(train=train_settings(settings.pop("config"), **settings), **given)

    command.__signature__ = sig.replace(parameters=[*own, *shared])
    return command
