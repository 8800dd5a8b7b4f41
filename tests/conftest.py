"""Shared fixtures: CLI runner, real-data location, small generated datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from sf.cli import main

VISUELLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "visuelle"


def run_cli(args: list[str], capsys=None) -> tuple[int, str, str]:
    """Run `sf ARGS` in-process; returns (exit code, stdout, stderr), both "" without capsys (a module fixture)."""
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    if capsys is None:
        return code, "", ""
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def cli(capsys):
    return lambda *args: run_cli(list(args), capsys)


@pytest.fixture(scope="session")
def visuelle_dir() -> Path:
    if not (VISUELLE / "train.csv").exists():
        pytest.skip(f"real VISUELLE data not present at {VISUELLE}")
    return VISUELLE


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch):
    # Tests never touch the network; make hub libraries fail fast instead of retrying.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("COLUMNS", "200")
    os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def one_torch_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread avoids OpenMP spin contention
    (25x slower here under load). Modules opt in with pytestmark = pytest.mark.usefixtures(...)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
