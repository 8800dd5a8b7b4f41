"""Results never silently replace other results: a run folder, an evaluation folder or a forecast file
that was made from other settings, data, model or store is refused unless --force.

`sf train` into a folder holding a run with the same settings replaces it (that is a rerun); with
--resume, finished seeds are reused and only the seed count may change (sf.forecast.runs checks each
checkpoint). Anything else names what differs.
"""

from __future__ import annotations

import json
from pathlib import Path

from sf.cache import schema as S
from sf.errors import SfError

# Settings that change how a run is computed, not what it is.
RUN_FREE = {"device", "threads", "out", "name"}
PATHS = {"features", "data"}


def _same_path(a, b) -> bool:
    if a is None or b is None:
        return a == b
    return Path(a).resolve() == Path(b).resolve()


def _read_json(path: Path) -> dict | None:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def check_run_folder(out: Path, config: dict, store: dict, resume: bool, force: bool) -> None:
    """Refuse to train into `out` if it holds a run made with other settings, data or store."""
    if force or not out.is_dir():
        return
    old = _read_json(out / "config.json")
    if old is None:
        if (out / "checkpoints").is_dir() or (out / "metrics.json").exists():
            raise SfError(f"{out}: holds a run whose config.json is missing or unreadable; choose another --out, "
                          "or --force to replace it")
        return
    free = RUN_FREE | ({"seeds", "seed"} if resume else set())
    diffs = []
    for k, v in config.items():
        if k in free or k == "store" or k not in old:  # a setting newer than the run: nothing to compare
            continue
        same = _same_path(old.get(k), v) if k in PATHS else old.get(k) == v
        if not same:
            diffs.append(f"{k}: {old.get(k)!r} -> {v!r}")
    old_store = old.get("store") or {}
    if old_store.get("fingerprint") not in (None, store.get("fingerprint")):
        diffs += [f"store {d}" for d in (S.fingerprint_diff(old_store, store) or ["fingerprint"])]
    if diffs:
        shown = "; ".join(diffs[:4]) + (f" (+{len(diffs) - 4} more)" if len(diffs) > 4 else "")
        only_seeds = all(d.split(":")[0] in ("seeds", "seed") for d in diffs)
        hint = "--resume to add seeds to it" if only_seeds else "another --out or --name"
        raise SfError(f"{out}: holds a run made with other settings ({shown}); use {hint}, or --force to replace it")


def check_result_file(out: Path, sidecar: Path, made_by: dict, force: bool, what: str,
                      beside: tuple[Path, ...] = (), replace_other: bool = False) -> str | None:
    """Refuse to replace `out` (described by the JSON `sidecar`) unless it was made by the same `made_by`
    fields (paths compared resolved) or --force. A file sf did not write is never replaced silently, nor
    the files written `beside` it. With `replace_other`, an earlier result of other inputs is replaced and
    the returned note says so (a copied run folder holds its old paths, so for cheap, re-creatable results
    a path difference is a note, not a refusal)."""
    if force:
        return None
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        stray = [p for p in (sidecar, *beside) if p.exists() and p != out and not p.is_relative_to(out)]
        if stray:
            raise SfError(f"{stray[0]}: exists and would be replaced by this {what}; choose another --out, "
                          "or --force to replace it")
        return None
    old = _read_json(sidecar) if sidecar.is_file() else None
    if old is None:
        raise SfError(f"{out}: exists and is not an earlier {what} (no readable {sidecar.name} beside it); "
                      "choose another --out, or --force to replace it")
    config = old.get("config") if isinstance(old.get("config"), dict) else {}
    diffs = [f"{k}: {old.get(k, config.get(k))!r} -> {str(v)!r}" for k, v in made_by.items()
             if not _same_path(old.get(k, config.get(k)), v)]
    if diffs and replace_other:
        return f"replaced {out}, which held {what} of another {' and '.join(made_by)} ({'; '.join(diffs)})"
    if diffs:
        raise SfError(f"{out}: holds {what} of another {' and '.join(made_by)} ({'; '.join(diffs)}); "
                      "choose another --out, or --force to replace it")
    return None
