"""Rich progress bars with a rate, one construction for every long loop in sf.

    bar(console, *fields)   the one Progress layout: description, bar, done/total, the given text fields, elapsed
    progress_iter           wrap an iterable (dataset import, demo catalogue)
    EpochProgress           one line per seed: epochs done, epochs/s, train / validation loss (sf train)
    RunProgress             runs done of a study, seconds per run, the last run's validation WAPE (ablate, compare)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Callable, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")


def bar(console: Console | None, *fields: str, transient: bool = False, eta: bool = False) -> Progress:
    """description, bar, done/total, then each text field (a rich format string over `task.fields`), elapsed."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), *map(TextColumn, fields),
               TimeElapsedColumn()]
    if eta:
        columns += [TextColumn("eta"), TimeRemainingColumn()]
    # Progress is never a result: without a console it goes to stderr, not rich's default stdout.
    return Progress(*columns, console=console or Console(stderr=True), transient=transient)


def progress_iter(items: Iterable[T], total: int, description: str, enabled: bool = True, unit: str = "it") -> Iterator[T]:
    if not enabled:
        yield from items
        return
    with bar(None, "[progress.data.speed]{task.fields[rate]}", transient=True, eta=True) as progress:
        task = progress.add_task(description, total=total, rate="")
        for item in items:
            yield item
            speed = progress.tasks[0].speed
            progress.update(task, advance=1, rate=f"{speed:,.0f} {unit}/s" if speed else "")


class _Bar:
    """A bar that exists only when enabled; entered and left like rich's Progress."""

    fields: tuple[str, ...] = ()
    transient = False

    def __init__(self, console: Console | None, enabled: bool) -> None:
        self.console, self.enabled, self.bar = console, enabled, None

    def __enter__(self):
        if self.enabled:
            self.bar = bar(self.console, *self.fields, transient=self.transient)
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.console.print(text)


class EpochProgress(_Bar):
    """One line per seed: epochs done, rate, current train / validation loss."""

    fields = ("epochs  {task.fields[rate]}  {task.fields[loss]}",)

    def __init__(self, console: Console | None, enabled: bool, epochs: int) -> None:
        super().__init__(console, enabled)
        self.epochs = epochs

    def tracker(self, label: str) -> Callable[[dict], None] | None:
        """A callback for one seed's fit (called with each epoch's history entry); None when disabled."""
        if self.bar is None:
            return None
        task = self.bar.add_task(label, total=self.epochs, rate="", loss="")
        clock = {"start": time.perf_counter(), "last": time.perf_counter(), "epoch": 0}

        def update(h: dict) -> None:
            now = time.perf_counter()
            if h["epoch"] <= clock["epoch"]:  # the seed's next fit (a validated choice: engine.train_seed) began
                clock["start"] = clock["last"]  # when the previous fit's last epoch ended
            clock.update(epoch=h["epoch"], last=now)
            rate = h["epoch"] / max(now - clock["start"], 1e-9)
            if "choice" in h:
                self.bar.update(task, description=f"{label} ({h['choice']})")
            self.bar.update(task, completed=h["epoch"], rate=f"{rate:.1f}/s",
                            loss=f"train {h['train_loss']:.4f}  val {h['val_loss']:.4f}"
                            + (f"  val WAPE {h['val_wape']:.1f}" if "val_wape" in h else ""))

        return update


class RunProgress(_Bar):
    """A study's runs: done / total, seconds per run, the last run's validation WAPE."""

    fields = ("{task.fields[rate]}  {task.fields[last]}",)
    transient = True

    def __init__(self, console: Console | None, enabled: bool, total: int, description: str) -> None:
        super().__init__(console or Console(stderr=True), enabled)
        self.total, self.description, self.start = total, description, time.perf_counter()

    def __enter__(self):
        super().__enter__()
        if self.bar is not None:
            self.task = self.bar.add_task(self.description, total=self.total, rate="", last="")
        return self

    def advance(self, label: str, seed: int, wape: float | None) -> None:
        if self.bar is None:
            return
        done = self.bar.tasks[0].completed + 1
        per = (time.perf_counter() - self.start) / done
        last = f"{label} seed {seed}: val WAPE {wape:.1f}" if wape is not None else label
        self.bar.update(self.task, advance=1, rate=f"{per:.1f} s/run", last=last)
