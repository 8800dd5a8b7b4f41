"""`sf train`'s settings: one typed dataclass, loadable from TOML, saved resolved beside every run.

Defaults: the paper's model family and optimiser (the image regions' attention over the words beside the mean
region, then a two-layer BiLSTM; hidden 30, lr 1e-3, batch 32, up to 100 epochs, dropout, early stopping on
the validation set, a 7:2:1 split, five seeds averaged), trained the way a
50-trial `sf tune` study and 5-seed reruns chose on VISUELLE's validation split (docs/tuning-log.md): L1 on
log(1 + units / ū), weight decay 1e-4, no weight averaging and popularity signals of earlier products
(`--refit` adds a refit on train + validation; off, as the nested protocol chose); sf's fused dropout is chosen
per seed on validation (`choose_on_validation`). The paper's exact recipe (MSE on units / ū, no popularity) is the preset
`--config paper`. Paths in a TOML file are read
relative to the current folder, like the same paths given on the command line.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from sf.checks import non_finite
from sf.errors import SfError
from sf.plain import plain

LOSSES = ("mse", "l1", "quantile")
SPLIT_KINDS = ("auto", "random", "time", "column")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    features: Path | None = None  # the HDF5 store made by `sf extract`
    data: Path | None = None  # the dataset folder (products, sales, exog)
    out: Path | None = None  # run folder; default runs/<name>
    name: str | None = None  # default: <store name>_<model>[_<fusion>_<head>]
    model: str = "sf"
    # i2t_image: the image regions attend to the words (one half of the paper's biattn) beside the mean region: 59.7 vs
    # 60.1 validation WAPE on VISUELLE over ten seeds, 46.7 vs 48.0 on the demo catalogues over four training draws
    # (tuning-log row 80b). i2t alone scored 59.3 but reads a picture only through the words its regions pick
    # (docs/model.md); `--config paper` keeps biattn.
    fusion: str = "i2t_image"
    head: str = "bilstm"
    hidden: int | None = None  # None: the model's own default (sf: 30, the paper's)
    dropout: float | None = None  # None: the model's own default (sf: 0.2)
    exog: bool = True  # feed the exogenous series (ablation: False)
    # Known-future covariates: also feed the exog series over the forecast horizon. Off by default: a retailer
    # forecasting a new product has the series only up to its release (GTM's protocol: the 52 weeks before).
    exog_future: bool = False
    # Popularity signals from earlier training products' sales (sf.forecast.popularity) as a static input.
    popularity: bool = True
    # ...and among them the recent-sales signals (what products sold in the weeks before the release). Off: they
    # carried a stale level into a season forecast after a gap (69.0 ± 6.1 vs 62.0 ± 0.8 without), tied on VISUELLE's
    # validation (59.9 vs 60.1 over ten seeds) and on the demo over four draws (tuning-log row 78).
    recent_sales: bool = False
    attributes: bool = True  # learned attribute embeddings as a static input
    horizon: int | None = None  # default: the longest sales history in the data
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4  # Adam's L2 term; the tune study's choice in 22 of its 29 finished trials
    grad_clip: float = 1.0
    patience: int = 10  # epochs without a better validation loss before stopping
    # After the epoch count is chosen on validation, train again (same seed) on train + validation for that
    # many epochs and keep that model: it has seen the latest seasons' sales level and attribute values, which
    # a time split otherwise withholds from it. Validation figures stay the first fit's; test is the refit's.
    # Off by default: repeated inside the training products (the nested protocol, docs/tuning-log.md row 23)
    # it over-forecast the next season (forecast/actual 1.18) and scored 71.2 ± 9.0 against 65.8 ± 3.8.
    refit: bool = False
    # Weight of a training product's loss halves every this many days it was released before the latest one
    # (0: all equal). The sales level drifts across seasons; a newer product is more like the next one.
    recency_half_life: float = 0.0
    # Exponential moving average of the weights (0: off): validation, early stopping and the saved model use
    # the averaged weights. Off by default: on VISUELLE every tune trial that averaged did worse on validation
    # (the average lags the weights the early stopping picks; docs/tuning-log.md).
    ema: float = 0.0
    # l1 aims at the median of every (product, week) cell, what pooled WAPE rewards; log(1 + x) is monotone, so
    # l1 on "log" has the same minimiser as on "scaled" while big sellers weigh less on the gradient.
    loss: str = "l1"
    # What the loss sees: scaled = units / ū (ū = mean training units per step; the paper's target), log =
    # log(1 + units / ū). Metrics are always in units. With L1, log beat scaled on VISUELLE validation
    # (61.6 ± 0.6 vs 64.8 ± 0.8, 5 seeds, docs/tuning-log.md).
    target: str = "log"
    quantiles: tuple[float, ...] = ()  # with loss = "quantile", e.g. (0.1, 0.5, 0.9)
    observe_max: int = 0  # train with the first k ~ U{0..observe_max} weeks of sales given as inputs
    seeds: int = 5
    seed: int = 0  # first seed; the run uses seed, seed+1, ..., seed+seeds-1
    split: str = "auto"
    split_seed: int = 0  # the split stays the same across the model seeds
    fractions: tuple[float, float, float] = (0.7, 0.2, 0.1)
    device: str = "auto"
    threads: int = 1  # CPU threads per run: these models are small, so one thread per run wastes least and
    # leaves the other cores to parallel runs (two threads on a busy 2-core machine were 10x slower, not faster)
    hparams: dict = field(default_factory=dict)  # extra model arguments (e.g. {"layers": 2})
    # Fit every candidate of the model's `validated_choices` that `hparams` leaves unset (sf: fused_dropout 0 and
    # 0.2) and keep, per seed, the one with the lower validation WAPE; false: one fit with the model's defaults.
    choose_on_validation: bool = True

    def to_dict(self) -> dict:
        return plain(self)

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seed, self.seed + self.seeds))

    @property
    def n_outputs(self) -> int:
        return len(self.quantiles) if self.loss == "quantile" else 1

    def resolved(self) -> "TrainConfig":
        """Fill the name and run folder, and check every value; raises SfError naming the bad field."""
        cfg = self
        if cfg.name is None:
            stem = Path(cfg.features).stem if cfg.features else "run"
            tag = f"{cfg.model}_{cfg.fusion}_{cfg.head}" if cfg.model == "sf" else cfg.model
            cfg = replace(cfg, name=f"{stem}_{tag}")
        if cfg.out is None:
            cfg = replace(cfg, out=Path("runs") / cfg.name)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        from sf.forecast.batching import TARGETS  # imported here: they load torch, which a config need not
        from sf.forecast.heads import HEADS
        from sf.forecast.models import MODELS
        from sf.fusion import FUSIONS

        def bad(name, why):
            raise SfError(f"config {name}: {why}")

        for name, value in non_finite(self):
            bad(name, f"must be a finite number, got {value}")

        for name, choices in (("model", MODELS), ("fusion", FUSIONS), ("head", HEADS), ("loss", LOSSES),
                              ("target", TARGETS),
                              ("split", SPLIT_KINDS), ("device", DEVICES)):
            if getattr(self, name) not in choices:
                bad(name, f"{getattr(self, name)!r} is not one of {', '.join(choices)}")
        for name in ("hidden", "epochs", "batch_size", "seeds", "patience", "threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                bad(name, f"must be >= 1, got {getattr(self, name)}")
        if self.horizon is not None and self.horizon < 1:
            bad("horizon", f"must be >= 1, got {self.horizon}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            bad("dropout", f"must be in [0, 1), got {self.dropout}")
        if self.lr <= 0:
            bad("lr", f"must be > 0, got {self.lr}")
        if self.recency_half_life < 0:
            bad("recency_half_life", f"must be >= 0 (0: off), got {self.recency_half_life}")
        if not 0 <= self.ema < 1:
            bad("ema", f"must be in [0, 1), got {self.ema}")
        if self.observe_max < 0:
            bad("observe_max", f"must be >= 0, got {self.observe_max}")
        if len(self.fractions) != 3 or min(self.fractions) < 0 or abs(sum(self.fractions) - 1) > 1e-6:
            bad("fractions", f"must be three shares (train, val, test) summing to 1, got {list(self.fractions)}")
        if self.loss == "quantile":
            q = self.quantiles
            if not q:
                bad("quantiles", "loss 'quantile' needs quantiles, e.g. 0.1,0.5,0.9")
            if any(not 0 < x < 1 for x in q) or any(b <= a for a, b in zip(q, q[1:])):
                bad("quantiles", f"must be increasing and strictly between 0 and 1, got {list(q)}")


def inputs_label(exog_future: bool) -> str:
    """What every table says about its exogenous inputs, so a known-future result is never mistaken for a forecast."""
    return "known-future covariates (exog over the horizon)" if exog_future else "pre-release inputs"


def parse_quantiles(text: str | None) -> tuple[float, ...] | None:
    """'0.1,0.5,0.9' -> (0.1, 0.5, 0.9); None stays None."""
    if text is None:
        return None
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise SfError(f"--quantiles: {text!r} is not a comma-separated list of numbers, e.g. 0.1,0.5,0.9") from None


_TUPLES = {"quantiles", "fractions"}
_FIELD_TYPES = {f.name: str(f.type) for f in fields(TrainConfig)}
_PATHS = {"features", "data", "out"}


_CHECKS = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "dict": lambda v: isinstance(v, dict),
}


def _coerce(name: str, value, source: str):
    """Check a value from TOML/JSON/the CLI against the field's type, naming the source when it is wrong."""
    if name in _TUPLES:
        if not isinstance(value, (list, tuple)) or not all(_CHECKS["float"](v) for v in value):
            raise SfError(f"{source}: {name} must be a list of numbers, got {value!r}")
        return tuple(float(v) for v in value)
    if name in _PATHS:
        return None if value is None else Path(value)
    kind = _FIELD_TYPES[name]
    if value is None and kind.endswith("| None"):
        return None
    base = kind.removesuffix(" | None")
    if not _CHECKS[base](value):
        raise SfError(f"{source}: {name} must be a{'n' if base == 'int' else ''} {base}, got {value!r}")
    return float(value) if base == "float" else value


# Named configs `--config NAME` takes besides a TOML file. "paper": the attention-RNN paper's exact model and
# training (biattn + a one-layer BiLSTM, hidden 30, MSE on sales / ū, no popularity signals, no weight averaging), kept
# reproducible whatever sf's defaults become; `sf ablate` runs it as a row.
PRESETS: dict[str, dict] = {
    "paper": {"model": "sf", "fusion": "biattn", "head": "bilstm", "hidden": 30, "dropout": 0.2, "loss": "mse",
              "target": "scaled", "popularity": False, "ema": 0.0, "lr": 1e-3, "batch_size": 32, "weight_decay": 0.0,
              "refit": False, "hparams": {"layers": 1, "mc_passes": 0, "fused_dropout": 0.0}},
}


def load_config(path: str | Path | None = None, **overrides) -> TrainConfig:
    """TrainConfig from an optional TOML file or preset name (PRESETS), then `overrides` (None values are
    ignored: "not given")."""
    values: dict = {}
    known = {f.name: f for f in fields(TrainConfig)}
    if path is not None and str(path) in PRESETS and not Path(path).is_file():
        values.update(PRESETS[str(path)])
        path = None
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise SfError(f"{path}: config file not found (or a preset: {', '.join(PRESETS)})")
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise SfError(f"{path}: invalid TOML ({e})") from None
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise SfError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")
        values.update({k: _coerce(k, v, str(path)) for k, v in raw.items()})
    for k, v in overrides.items():
        if k not in known:
            raise SfError(f"unknown setting {k!r}")
        if v is not None:
            values[k] = _coerce(k, v, f"--{k.replace('_', '-')}")
    try:
        return TrainConfig(**values)
    except TypeError as e:
        raise SfError(f"{path or 'config'}: {e}") from None


def config_from_dict(d: dict) -> TrainConfig:
    """Inverse of TrainConfig.to_dict (as read back from JSON or a checkpoint); unknown keys are dropped."""
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: _coerce(k, v, "config") for k, v in d.items() if k in known})
