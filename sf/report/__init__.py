"""`sf report`: one self-contained HTML file for a run or demo folder (see docs/report.md)."""

from __future__ import annotations

from pathlib import Path


def write_report(folder: str | Path, out: str | Path | None = None, max_products: int | None = None,
                 device: str = "cpu") -> Path:
    """Collect what `folder` holds, render it, write `out` (default `<folder>/report.html`) atomically."""
    from sf.data.atomic import atomic_write_text
    from sf.report.collect import collect
    from sf.report.page import render

    report = collect(folder, max_products=max_products, device=device)
    path = Path(out) if out is not None else Path(folder) / "report.html"
    atomic_write_text(path, render(report))
    return path
