"""Settings and results as plain JSON-ready values: the one conversion every config.json / metrics.json uses."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np


def plain(value):
    """Dataclasses become dicts, paths strings, tuples lists, numpy scalars and arrays Python numbers and lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def json_default(o):
    """`default=` for json.dumps: what `plain` converts, else a TypeError naming the type."""
    if isinstance(o, (Path, np.generic, np.ndarray)):
        return plain(o)
    raise TypeError(type(o).__name__)


def toml_value(v) -> str:
    """One TOML value (bool, number, string, list, inline table): what best.toml and dataset.toml are written with."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
