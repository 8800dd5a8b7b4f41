"""Open a demo's HTML report in headless Chromium, click through it, print what happened and keep a screenshot.

    python bench/report_browser.py                       # runs `sf demo --fast` into a temporary folder first
    python bench/report_browser.py --folder runs/demo    # an existing demo or run folder (report rewritten)

The screenshot goes to bench/results/report/report.png (full page, first product's detail opened).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sf.report import write_report  # noqa: E402
from sf.report.browser import find_chromium, inspect_report  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, help="demo or run folder (default: a fresh `sf demo --fast`)")
    ap.add_argument("--screenshot", type=Path, default=ROOT / "bench" / "results" / "report" / "report.png")
    args = ap.parse_args()
    if find_chromium() is None:
        print("no Chromium: apt-get install chromium", file=sys.stderr)
        return 2
    folder = args.folder
    if folder is None:
        from sf.cli import main as sf_main

        folder = Path(tempfile.mkdtemp(prefix="sf-report-")) / "demo"
        try:
            sf_main(["demo", "--fast", "--out", str(folder)])
        except SystemExit as e:
            if e.code not in (0, None):
                return int(e.code)
    t = time.perf_counter()
    html = write_report(folder)
    built = time.perf_counter() - t
    t = time.perf_counter()
    facts = inspect_report(html, args.screenshot)
    checked = time.perf_counter() - t
    print(f"report {html}: {html.stat().st_size / 1e6:.2f} MB, {facts['rows']} products, written in {built:.1f} s")
    print(f"browser: {len(facts['errors'])} console error(s) {facts['errors']}, external resources {facts['external']}, "
          f"checked in {checked:.1f} s")
    for (key, direction), order in facts["sorted"].items():
        print(f"  sorted by {key} {direction}: first {order[:3]}")
    if "filter" in facts:
        print(f"  filter category={facts['filter'][0]!r}: {facts['filter'][2]}")
    print(f"screenshot: {facts.get('screenshot')}")
    return 0 if not facts["errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
