"""`sf demo-data`: a synthetic catalogue, in the data contract, whose sales depend on what products
look like and what their descriptions say, by rules written down in its README.md.

The rules (all in the tables below, which the README is generated from):
    log level = BASE + category + material + visual + text + exog + noise
    visual    = SATURATION_COEF * (saturation - 0.5) + VALUE_COEF * (value - 0.6) + pattern
                (HSV of the main colour *as drawn*: each product's shade is jittered around its named
                colour, so the picture knows more than the `color` attribute does)
    text      = sum of the signal words present ("premium", "limited edition", "basic", "eco"); these
                words appear only in the description, never in an attribute
    exog      = EXOG_COEF * (mean of the product's category and colour trends over the 4 weeks
                before release - 50) / 20
    week t    = Poisson(exp(level) * launch(t) * season(t))
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from sf.data.atomic import refuse_existing, staged_dir
from sf.data.contract import load_dataset
from sf.data.demo_draw import PATTERNS, Look, draw, hsv, shade
from sf.progress import progress_iter
from sf.errors import SfError

# category -> (sales effect, weekly decay after the launch peak, season amplitude, peak week of year)
CATEGORIES: dict[str, tuple[float, float, float, int]] = {
    "t-shirt": (0.30, 0.20, 0.35, 28),
    "dress": (0.00, 0.14, 0.30, 24),
    "trousers": (0.10, 0.08, 0.15, 44),
    "bag": (-0.20, 0.06, 0.10, 50),
    "shoe": (-0.10, 0.10, 0.20, 12),
}
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (205, 30, 40), "orange": (235, 125, 30), "yellow": (240, 205, 40), "green": (40, 150, 70),
    "teal": (20, 140, 140), "blue": (40, 85, 195), "navy": (30, 40, 100), "purple": (125, 50, 155),
    "pink": (235, 120, 170), "black": (28, 28, 28), "grey": (130, 130, 130), "beige": (215, 190, 150),
    "brown": (125, 78, 40),
}
MATERIALS: dict[str, list[str]] = {
    "t-shirt": ["cotton", "linen", "jersey", "polyester"],
    "dress": ["cotton", "linen", "silk", "polyester"],
    "trousers": ["denim", "cotton", "linen", "wool"],
    "bag": ["leather", "canvas", "nylon"],
    "shoe": ["leather", "canvas", "suede"],
}
MATERIAL_EFFECT = {"leather": 0.15, "silk": 0.10, "polyester": -0.15, "nylon": -0.10}
PATTERN_EFFECT = {"solid": 0.0, "stripes": 0.30, "dots": -0.20, "checks": 0.10}
PATTERN_WEIGHTS = (0.4, 0.2, 0.2, 0.2)
PATTERN_PHRASE = {"solid": "in a plain solid colour", "stripes": "with stripes", "dots": "with polka dots",
                  "checks": "with a check pattern"}
# word -> (probability a product has it, effect on log level). Only the description carries them.
SIGNAL_WORDS: dict[str, tuple[float, float]] = {
    "premium": (0.20, 1.05), "limited edition": (0.15, 0.75), "basic": (0.20, -0.90), "eco": (0.20, 0.60),
}
FILLER = ["regular fit", "easy to care for", "new season", "classic look", "soft touch", "everyday wear",
          "machine washable", "relaxed shape", "designed in house", "a versatile piece", "pairs with anything",
          "true to size"]
# A level of e^4 ≈ 55 units a week at the launch peak and little unexplained noise keep Poisson noise from
# drowning what the pictures, words and trends say. The words and the pre-release trends move sales more than
# the shade does: k-NN on pictures or attributes sees the shade but neither of them, so a model that reads the
# description and the trends is measurably better (docs/results.md, the demo: what was tried).
BASE = 4.0
SATURATION_COEF = 1.0
VALUE_COEF = 0.7
EXOG_COEF = 1.2
NOISE_SD = 0.15
SPLIT_FRACTIONS = (0.70, 0.85)  # of the release period: train before the first, val before the second, then test


@dataclass
class DemoConfig:
    out: Path = Path("demo_data")
    products: int = 300
    seed: int = 0
    weeks: int = 12  # sales weeks per product
    image_size: int = 128
    start: str = "2022-01-03"  # first possible release date (a Monday)
    release_weeks: int = 104  # releases are spread over this many weeks
    exog_lookback: int = 52  # weeks of trends generated before the first release
    # What dataset.toml declares as exog_lookback: the weeks before each release the models read. The rule uses
    # the last 4; 8 weeks scored 48.0 against 54.1 for all 52 on the demo's validation split (docs/results.md).
    trend_window: int = 8
    missing_image_frac: float = 0.05
    empty_text_frac: float = 0.02
    name: str = "demo"

    def validate(self) -> None:
        if self.products < 1 or self.weeks < 1 or self.release_weeks < 1 or self.exog_lookback < 0:
            raise SfError("demo-data: products, weeks and release_weeks must be >= 1 and exog_lookback >= 0")
        if not 0 <= self.trend_window <= self.exog_lookback:
            raise SfError(f"demo-data: trend_window must be between 0 and exog_lookback ({self.exog_lookback}), "
                          f"got {self.trend_window}")
        if self.image_size < 16:
            raise SfError(f"demo-data: image_size must be at least 16 pixels, got {self.image_size}")
        for name in ("missing_image_frac", "empty_text_frac"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SfError(f"demo-data: {name} must be between 0 and 1, got {getattr(self, name)}")
        try:
            date.fromisoformat(self.start)
        except ValueError:
            raise SfError(f"demo-data: start must be a date YYYY-MM-DD, got {self.start!r}") from None


@dataclass
class Product:
    product_id: str
    look: Look
    color: str
    material: str
    release_week: int  # weeks after cfg.start
    words: list[str]  # signal words in the description
    text: str
    has_image: bool
    noise: float
    units: list[int] = field(default_factory=list)


def _exog(cfg: DemoConfig) -> tuple[list[date], dict[str, np.ndarray]]:
    """Weekly 0..100 'search trend' per category and per colour, from start - lookback to the last sale."""
    rng = np.random.default_rng([cfg.seed, 1_000_003])
    n = cfg.exog_lookback + cfg.release_weeks + cfg.weeks
    start = date.fromisoformat(cfg.start) - timedelta(weeks=cfg.exog_lookback)
    dates = [start + timedelta(weeks=k) for k in range(n)]
    t = np.arange(n)
    series = {}
    for term in [*CATEGORIES, *COLORS]:
        walk = np.zeros(n)
        for k in range(1, n):  # mean-reverting random walk: slow fashion swings
            walk[k] = 0.93 * walk[k - 1] + rng.normal(0, 4.0)
        season = 15 * np.sin(2 * np.pi * t / 52 + rng.uniform(0, 2 * np.pi))
        series[term] = np.round(np.clip(50 + season + walk, 0, 100), 1)
    return dates, series


def _description(rng: np.random.Generator, category: str, color: str, material: str, pattern: str) -> tuple[str, list[str]]:
    words = [w for w, (p, _) in SIGNAL_WORDS.items() if rng.uniform() < p]
    if "premium" in words and "basic" in words:  # a product is not both
        words.remove("basic" if rng.uniform() < 0.5 else "premium")
    adjectives = [w for w in ("premium", "basic", "eco") if w in words]
    head = " ".join([*adjectives, color, material, category])
    parts = [f"{head[0].upper()}{head[1:]} {PATTERN_PHRASE[pattern]}."]
    if "limited edition" in words:
        parts.append("Limited edition.")
    filler = [FILLER[k] for k in rng.choice(len(FILLER), size=int(rng.integers(1, 4)), replace=False)]
    parts.append(", ".join(filler).capitalize() + ".")
    return " ".join(parts), words


def _sample_product(cfg: DemoConfig, i: int) -> Product:
    # One generator per product: product i is the same whatever the catalogue size.
    rng = np.random.default_rng([cfg.seed, i])
    category = str(rng.choice(list(CATEGORIES)))
    color = str(rng.choice(list(COLORS)))
    rgb = shade(COLORS[color], vividness=rng.uniform(0.3, 1.0), lightness=rng.uniform(-0.3, 0.3))
    pattern = str(rng.choice(PATTERNS, p=PATTERN_WEIGHTS))
    secondary = (238, 238, 238) if rng.uniform() < 0.5 else tuple(int(c * 0.4) for c in rgb)
    look = Look(category=category, rgb=rgb, pattern=pattern, secondary=secondary,
                period=float(rng.uniform(0.06, 0.14)), scale=float(rng.uniform(0.88, 1.04)),
                shift=(float(rng.uniform(-0.04, 0.04)), float(rng.uniform(-0.03, 0.03))), vertical=bool(rng.uniform() < 0.5))
    material = str(rng.choice(MATERIALS[category]))
    text, words = _description(rng, category, color, material, pattern)
    has_text = rng.uniform() >= cfg.empty_text_frac
    return Product(
        product_id=f"demo{i:05d}", look=look, color=color, material=material,
        release_week=int(rng.integers(0, cfg.release_weeks)),
        words=words if has_text else [], text=text if has_text else "",
        has_image=bool(rng.uniform() >= cfg.missing_image_frac), noise=float(rng.normal(0, NOISE_SD)),
    )


def visual_effect(rgb: tuple[int, int, int], pattern: str) -> float:
    _, s, v = hsv(rgb)
    return SATURATION_COEF * (s - 0.5) + VALUE_COEF * (v - 0.6) + PATTERN_EFFECT[pattern]


def _simulate_sales(cfg: DemoConfig, p: Product, i: int, exog: dict[str, np.ndarray], start: date) -> list[int]:
    rng = np.random.default_rng([cfg.seed, i, 7])
    effect, decay, amp, peak = CATEGORIES[p.look.category]
    r = cfg.exog_lookback + p.release_week  # index of the release week in the exog series
    before = slice(max(0, r - 4), r) if r > 0 else slice(0, 1)
    trend = (exog[p.look.category][before].mean() + exog[p.color][before].mean()) / 2
    level = (BASE + effect + MATERIAL_EFFECT.get(p.material, 0.0) + visual_effect(p.look.rgb, p.look.pattern)
             + sum(SIGNAL_WORDS[w][1] for w in p.words) + EXOG_COEF * (trend - 50) / 20 + p.noise)
    t = np.arange(cfg.weeks)
    launch = np.where(t == 0, 0.5, np.exp(-decay * np.maximum(t - 1, 0)))
    release = start + timedelta(weeks=p.release_week)
    week_of_year = release.isocalendar().week + t
    season = 1 + amp * np.cos(2 * np.pi * (week_of_year - peak) / 52)
    return rng.poisson(math.exp(level) * launch * season).astype(int).tolist()


def _readme(cfg: DemoConfig, n_images: int, n_text: int) -> str:
    rows = lambda d: "\n".join(f"| {k} | {v:+.2f} |" for k, v in d.items())  # noqa: E731
    words = "\n".join(f"| {w} | {p:.0%} | {e:+.2f} |" for w, (p, e) in SIGNAL_WORDS.items())
    cats = "\n".join(f"| {c} | {e:+.2f} | {d:.2f} | {a:.2f} | {pk} |" for c, (e, d, a, pk) in CATEGORIES.items())
    return f"""# Synthetic demo catalogue `{cfg.name}` (sf demo-data, seed {cfg.seed})

{cfg.products} products released weekly from {cfg.start} over {cfg.release_weeks} weeks, {cfg.weeks} weeks of
sales each; {n_images} have a picture and {n_text} a description (the rest exercise missing modalities).
Generated by `sf demo-data`; the configuration is in `demo_config.json`. Same seed, same bytes.

## How sales are made (the known signal)

    log level = {BASE} + category + material + visual + text + exog + noise (normal, sd {NOISE_SD})
    units in week t = Poisson(exp(level) * launch(t) * season(t))
    launch(t) = 0.5 at t = 0, then exp(-decay * (t - 1));  season(t) = 1 + amplitude * cos(2 pi (week of year - peak) / 52)

**Visual** (only fully visible in the picture): `{SATURATION_COEF} * (saturation - 0.5) + {VALUE_COEF} * (value - 0.6) + pattern`,
with saturation and value (HSV, 0..1) of the main colour as drawn. Each product's shade is its named
colour pulled towards grey and lightened or darkened at random, so two "red" products differ.

| pattern | effect |
| --- | --- |
{rows(PATTERN_EFFECT)}

**Text** (only in the description, never an attribute): the sum of the signal words present.

| word | share of products | effect |
| --- | --- | --- |
{words}

**Exog**: `{EXOG_COEF} * (mean of the category's and the colour's trend over the 4 weeks before release - 50) / 20`;
`exog.csv` holds one weekly series per category and per colour, linked through `exog_link = ["category", "color"]`.
`dataset.toml` declares `exog_lookback = {cfg.trend_window}`: models read each linked series over the {cfg.trend_window} weeks before release.

| category | effect | decay | season amplitude | peak week |
| --- | --- | --- | --- | --- |
{cats}

| material | effect |
| --- | --- |
{rows(MATERIAL_EFFECT)}

Other materials: 0. `split` is by release date: the first {SPLIT_FRACTIONS[0]:.0%} of the release period train,
then {SPLIT_FRACTIONS[1] - SPLIT_FRACTIONS[0]:.0%} val, the rest test.

A model that ignores pictures and descriptions can learn category, material, colour name, pattern and
exog, but not the shade or the signal words: using images and text should beat it. Analogs found by
picture or attributes alone (k-NN on image features, the attribute mean) see the shade, the pattern and
the named attributes, but neither the words nor the pre-release trends: a model reading all of them should
beat those too.
"""


def _split(release_week: int, cfg: DemoConfig) -> str:
    frac = release_week / cfg.release_weeks
    return "train" if frac < SPLIT_FRACTIONS[0] else "val" if frac < SPLIT_FRACTIONS[1] else "test"


def generate(cfg: DemoConfig, force: bool = False, progress: bool = False) -> Path:
    """Write the catalogue to cfg.out (atomically: a temp folder beside it, then a rename). Returns cfg.out."""
    cfg.validate()
    out = Path(cfg.out)
    refuse_existing(out, force)
    start = date.fromisoformat(cfg.start)
    dates, exog = _exog(cfg)
    products = [_sample_product(cfg, i) for i in range(cfg.products)]
    for i, p in enumerate(products):
        p.units = _simulate_sales(cfg, p, i, exog, start)

    with staged_dir(out, force=force) as tmp:
        (tmp / "images").mkdir()
        for p in progress_iter(products, len(products), "drawing products", enabled=progress, unit="img"):
            if p.has_image:
                draw(p.look, cfg.image_size).save(tmp / "images" / f"{p.product_id}.png", format="PNG")
        pl.DataFrame({
            "product_id": [p.product_id for p in products],
            "image": [f"{p.product_id}.png" if p.has_image else "" for p in products],
            "text": [p.text for p in products],
            "release_date": [(start + timedelta(weeks=p.release_week)).isoformat() for p in products],
            "category": [p.look.category for p in products],
            "color": [p.color for p in products],
            "pattern": [p.look.pattern for p in products],
            "material": [p.material for p in products],
            "split": [_split(p.release_week, cfg) for p in products],
        }).write_csv(tmp / "products.csv")
        pl.DataFrame({
            "product_id": [p.product_id for p in products for _ in range(cfg.weeks)],
            "step": [t for _ in products for t in range(cfg.weeks)],
            "units": [u for p in products for u in p.units],
        }).write_csv(tmp / "sales.csv")
        pl.DataFrame({"date": [d.isoformat() for d in dates], **exog}).write_csv(tmp / "exog.csv")
        (tmp / "dataset.toml").write_text(
            f'name = "{cfg.name}"\nperiod = "week"\nexog_link = ["category", "color"]\nexog_lookback = {cfg.trend_window}\n'
        )
        (tmp / "demo_config.json").write_text(json.dumps({**asdict(cfg), "out": str(cfg.out)}, indent=2) + "\n")
        (tmp / "README.md").write_text(_readme(cfg, sum(p.has_image for p in products), sum(bool(p.text) for p in products)))
        load_dataset(tmp)  # hand over only what the contract accepts
    return out
