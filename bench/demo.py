"""Benchmark `sf demo`: wall time of every step at the default settings (goal: < 120 s on a 2-core CPU).

Runs the demo into a temporary folder (or --out), then prints the per-step seconds, the total, the
machine's core count and load average (other work on the machine inflates the numbers: re-measure on a
quiet one). Any `sf demo` option can be passed after `--`, e.g. `python bench/demo.py -- --fast`.

    python bench/demo.py
    python bench/demo.py --keep runs/demo_bench -- --products 600
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOAL_S = 120.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", type=Path, help="Demo folder to keep (default: a temporary one, deleted after)")
    ap.add_argument("--json", type=Path, help="Also write the timings here")
    ap.add_argument("demo_args", nargs="*", help="options for `sf demo` (after --)")
    args = ap.parse_args()

    from sf.cli import main as sf_main

    console = Console()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "demo"
        t0 = time.perf_counter()
        try:
            sf_main(["demo", "--out", str(out), *args.demo_args])
        except SystemExit as e:
            if e.code not in (0, None):
                raise
        wall = time.perf_counter() - t0
        timings = _timings(out / "REPORT.md")
    table = Table(title=f"sf demo {' '.join(args.demo_args)}: {wall:.0f} s wall (goal < {GOAL_S:.0f} s)")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for k, v in timings.items():
        table.add_row(k, f"{v:.1f}")
    table.add_row("wall (incl. imports)", f"{wall:.1f}")
    load_after = os.getloadavg()
    table.caption = (f"{os.cpu_count()} CPU core(s); load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
                     f"(> cores means other work shared the machine)")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"steps": timings, "wall": wall, "cores": os.cpu_count(),
                                         "load": [load_before[0], load_after[0]], "args": args.demo_args}, indent=2))


def _timings(report: Path) -> dict[str, float]:
    """The timing table `sf demo` writes into REPORT.md."""
    lines = report.read_text().split("## Timing", 1)[1].split("##", 1)[0].splitlines()
    out = {}
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[1].replace(".", "", 1).isdigit():
            out[cells[0]] = float(cells[1])
    return out


if __name__ == "__main__":
    main()
