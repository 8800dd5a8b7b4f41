"""`sf report`: one self-contained HTML file for a run or demo folder (see docs/report.md)."""

from __future__ import annotations

from pathlib import Path


def write_report(folder: str | Path, out: str | Path | None = None, max_products: int | None = None,
                 device: str = "cpu") -> Path:
    """Collect what `folder` holds, render it, write `out` (default `<folder>/report.html`) atomically.

    `folder` may also be `sf predict`'s forecasts file: a page of new products' forecasts and orders
    (default `<file stem>_report.html` beside it)."""
    from sf.data.atomic import atomic_write_text
    from sf.report.page import render, render_forecasts

    folder = Path(folder)
    if folder.is_file():
        from sf.report.forecasts import load_forecasts

        path = Path(out) if out is not None else folder.with_name(f"{folder.stem}_report.html")
        atomic_write_text(path, render_forecasts(load_forecasts(folder)))
        return path
    from sf.report.collect import collect

    report = collect(folder, max_products=max_products, device=device)
    path = Path(out) if out is not None else folder / "report.html"
    atomic_write_text(path, render(report))
    return path
