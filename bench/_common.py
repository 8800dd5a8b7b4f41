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
