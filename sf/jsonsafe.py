"""JSON that every parser accepts: NaN and infinity (a ratio metric over all-zero sales) become null,
and the caller learns which entries were undefined so it can say so instead of writing bare `NaN`."""

from __future__ import annotations

import json
import math
from collections.abc import Callable


def finite(obj, default: Callable | None = None, path: str = "", undefined: list[str] | None = None):
    """`obj` with every non-finite float replaced by None; the dotted paths replaced go into `undefined`."""
    undefined = [] if undefined is None else undefined
    if isinstance(obj, dict):
        return {k: finite(v, default, f"{path}.{k}" if path else str(k), undefined) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v, default, f"{path}[{i}]", undefined) for i, v in enumerate(obj)]
    if default is not None and not isinstance(obj, (str, int, float, bool, type(None))):
        return finite(default(obj), None, path, undefined)
    if isinstance(obj, float) and not math.isfinite(obj):
        undefined.append(path)
        return None
    return obj


def dumps(obj, default: Callable | None = None, indent: int = 2) -> tuple[str, list[str]]:
    """(strict JSON text, paths of the values that were NaN/inf and are written as null)."""
    undefined: list[str] = []
    clean = finite(obj, default, "", undefined)
    return json.dumps(clean, indent=indent, allow_nan=False), undefined


def undefined_note(paths: list[str]) -> str:
    shown = ", ".join(paths[:4]) + (f" and {len(paths) - 4} more" if len(paths) > 4 else "")
    return (f"{len(paths)} metric(s) undefined and written as null ({shown}): their denominator is zero "
            "(e.g. all-zero sales)")
