"""Which seeds of a run folder are finished, and whether the run is: `run_state.json`, beside config.json.

    {"config_sha256": sha256 of config.json, "seeds": {"0": sha256 of checkpoints/seed0.pt, ...},
     "finished": true once metrics.json and predictions.parquet are written}

Written by the one `sf train` that holds the folder's lock (`.sf-train.lock`), so applying a model can tell
a whole run from one killed after 1 of 4 seeds, or from a folder where two runs' files mixed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sf.data.atomic import atomic_write_text
from sf.errors import SfError

STATE = "run_state.json"
LOCK = ".sf-train.lock"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write(out: Path, state: dict) -> None:
    atomic_write_text(out / STATE, json.dumps(state, indent=2, sort_keys=True))


def begin(out: Path) -> None:
    """A new (or resumed) run: no seed finished yet under this config.json."""
    _write(out, {"config_sha256": _sha256(out / "config.json"), "seeds": {}, "finished": False})


def seed_done(out: Path, seed: int, checkpoint: Path) -> None:
    state = read(out)
    state["seeds"][str(seed)] = _sha256(checkpoint)
    _write(out, state)


def finished(out: Path) -> None:
    state = read(out)
    state["finished"] = True
    _write(out, state)


def read(out: Path) -> dict:
    path = out / STATE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SfError(f"{path}: unreadable ({type(e).__name__}); retrain with `sf train --force`") from None
    if not (isinstance(state, dict) and isinstance(state.get("seeds"), dict)):
        raise SfError(f"{path}: not a run state record; retrain with `sf train --force`")
    return state


def check_whole(run_dir: Path, checkpoints: list[Path], seeds: list[int] | None) -> None:
    """Refuse a run folder that is not one finished run: killed before its last seed, or mixed with another."""
    if not (run_dir / STATE).exists():
        _check_legacy(run_dir, checkpoints)
        return
    state = read(run_dir)
    config = run_dir / "config.json"
    if not config.is_file() or _sha256(config) != state.get("config_sha256"):
        raise SfError(f"{config}: is not the config its checkpoints were trained with (another run wrote into "
                      f"{run_dir}); retrain with `sf train --force`")
    for p in checkpoints:
        if state["seeds"].get(p.stem[4:]) != _sha256(p):
            raise SfError(f"{p}: not a checkpoint of the run in {run_dir} (another run wrote it); "
                          "retrain with `sf train --force`")
    if not state.get("finished"):
        done = sorted(int(s) for s in state["seeds"])
        total = len(seeds) if seeds is not None else "?"
        raise SfError(f"{run_dir}: training stopped before it finished ({len(done)} of {total} seed(s) done: "
                      f"{done or 'none'}); rerun the same `sf train` with --resume to finish it")


def _check_legacy(run_dir: Path, checkpoints: list[Path]) -> None:
    """Runs from before run_state.json: whole when metrics.json lists exactly the seeds on disk."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        metrics = None
    on_disk = sorted(int(p.stem[4:]) for p in checkpoints)
    listed = metrics.get("seeds") if isinstance(metrics, dict) else None
    if listed is None or sorted(listed) != on_disk:
        raise SfError(f"{run_dir}: no finished run here (metrics.json missing or listing seeds {listed} where "
                      f"checkpoints hold {on_disk}); rerun `sf train` with --resume, or --force to retrain")
