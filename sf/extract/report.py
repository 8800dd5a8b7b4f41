"""The end-of-run summary: what was extracted, what was skipped and why rows are not ok."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table

from sf.cache import schema as S
from sf.extract.job import ExtractReport

MAX_LISTED = 10


def print_report(report: ExtractReport, console: Console) -> None:
    t = Table(title=f"sf extract -> {report.out}", show_header=True, header_style="bold")
    t.add_column("rows", justify="left")
    t.add_column("count", justify="right")
    t.add_row("in this input", str(report.rows))
    t.add_row("extracted now", str(report.extracted))
    t.add_row("already in store (same content)", str(report.skipped))
    for status in (S.STATUS_OK, S.STATUS_NO_IMAGE, S.STATUS_UNREADABLE):
        t.add_row(f"status {status}", str(report.counts.get(status, 0)))
    if report.extracted:
        t.add_row("speed (decode -> forward -> write)", f"{report.rows_per_s:.1f} rows/s over {report.seconds:.1f} s")
    console.print(t)
    if report.unreadable:
        u = Table(title=f"unreadable images ({len(report.unreadable)})", header_style="bold")
        u.add_column("reason")
        u.add_column("rows", justify="right")
        u.add_column("first key")
        by_reason = Counter(_reason_kind(r) for _, r in report.unreadable)
        first = {}
        for key, r in report.unreadable:
            first.setdefault(_reason_kind(r), (key, r))
        for kind, n in by_reason.most_common(MAX_LISTED):
            u.add_row(first[kind][1], str(n), first[kind][0])
        console.print(u)
    for note in report.notes[:MAX_LISTED]:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    if len(report.notes) > MAX_LISTED:
        console.print(f"[yellow]note:[/] ... and {len(report.notes) - MAX_LISTED} more")
    if report.random_weights:
        console.print("[bold yellow]warning:[/] this store was made with RANDOM backbone weights (random_weights=True)")


def _reason_kind(reason: str) -> str:
    """Group reasons that differ only in details in parentheses (sizes, decoder messages)."""
    return reason.split(" (")[0].split(":")[0]


def print_registries(console: Console) -> None:
    from sf.extract import backbones, text

    t = Table(title="image backbones (--backbone)", header_style="bold")
    for col in ("name", "channels", "input", "grid", "installed", "pretrained here", "notes"):
        t.add_column(col)
    for b in backbones.BACKBONES.values():
        g = b.grid(b.image_size)
        pretrained = b.available() and (b.imagenet_cached() if not b.weights_requires else b.weights_available())
        t.add_row(b.name, str(b.channels), f"{b.image_size}px", f"{g[0]}x{g[1]}", _yes(b.available()), _yes(pretrained), b.notes)
    console.print(t)
    u = Table(title="text encoders (--text-encoder)", header_style="bold")
    for col in ("name", "dim", "available", "what it costs"):
        u.add_column(col)
    for e in text.TEXT_ENCODERS.values():
        u.add_row(e.name, str(e.dim), _yes(e.available()), e.cost)
    console.print(u)


def _yes(flag: bool) -> str:
    return "[green]yes[/]" if flag else "[red]no[/]"
