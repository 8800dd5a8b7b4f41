"""What every bench script shares: where the real images are, and how a result is printed and kept as JSON."""

from __future__ import annotations

import json
from pathlib import Path

VISUELLE_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "visuelle" / "images"


def print_pairs(result: dict, width: int = 16) -> None:
    for k, v in result.items():
        print(f"{k:>{width}}  {v}")


def write_json(path: Path | None, obj) -> None:
    """Keep a result as indented JSON when --json was given (its folder made if needed)."""
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, indent=2))


def overrides(pairs: list[str]) -> dict:
    """`--set KEY=VALUE` pairs (TOML values; `hparams.X` for a model argument) as TrainConfig overrides."""
    import tomllib

    out: dict = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        value = tomllib.loads(f"v = {value}")["v"]
        if key.startswith("hparams."):
            out.setdefault("hparams", {})[key.removeprefix("hparams.")] = value
        else:
            out[key] = tuple(value) if isinstance(value, list) else value
    return out


def run_sf_demo(out: Path, seed: int, extra: list[str] = ()) -> Path:
    """`sf demo --out OUT --seed SEED --no-ablation --no-compare [extra]` in this process; its folder."""
    from sf.cli import main as sf_main

    try:
        sf_main(["demo", "--out", str(out), "--seed", str(seed), "--no-ablation", "--no-compare", *extra])
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    return out
