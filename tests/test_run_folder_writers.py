"""Issue 31, class 3: a run folder holds one run. One `sf train` writes it at a time (a lock), and
`run_state.json` records which seeds finished, so a killed or mixed run is refused by every command that
applies it (predict, evaluate, explain, report), and `--resume` finishes a killed one.
"""

from __future__ import annotations

import json
import re
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes import make_dataset as fake_dataset
from tests.test_reliability import one_error_line, snapshot

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[1]
TRAIN = ["--epochs", "2", "--hidden", "4"]


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return fake_dataset(tmp_path_factory.mktemp("runs") / "base", n=40, horizon=6)


def start_train(root: Path, store: Path, out: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "sf.cli", "train", "--features", str(store), "--data", str(root), *TRAIN,
           "--out", str(out), *args]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def seeds_done(out: Path) -> int:
    try:
        return len(json.loads((out / "run_state.json").read_text())["seeds"])
    except (OSError, ValueError, KeyError):
        return -1


def wait_seeds(proc: subprocess.Popen, out: Path, k: int, timeout: float = 180) -> None:
    t = time.monotonic()
    while time.monotonic() - t < timeout and proc.poll() is None and seeds_done(out) < k:
        time.sleep(0.02)
    assert proc.poll() is None, f"training ended before {k} seed(s) were done: {proc.stderr.read()[-2000:]}"


def apply_commands(run: Path, root: Path, store: Path, tmp: Path) -> list[list]:
    return [
        ["predict", "--model", run, "--data", root, "--store", store, "--no-extract", "--out", tmp / "f.csv"],
        ["evaluate", "--model", run, "--data", root, "--store", store, "--no-extract", "--out", tmp / "ev"],
        ["explain", "--model", run, "--product", "p0001", "--data", root, "--store", store, "--no-extract",
         "--out", tmp / "x.png"],
        ["report", run, "--out", tmp / "r.html"],
    ]


@pytest.mark.slow
def test_a_second_writer_is_refused_and_a_killed_run_is_refused_until_resumed(fake, tmp_path, cli):
    root, store = fake
    out = tmp_path / "R"
    first = start_train(root, store, out, "--seeds", "4")
    try:
        wait_seeds(first, out, 1)
        # What used to mix two runs in one folder: a second `sf train --force` 6 s later.
        line = one_error_line(*cli("train", "--features", store, "--data", root, *TRAIN, "--seeds", "2",
                                   "--lr", "0.01", "--force", "--out", out))
        assert f"{out}: another `sf train` is writing this run folder right now (pid {first.pid})" in line
        first.send_signal(signal.SIGKILL)  # killed after 1..3 of 4 seeds
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    before = snapshot(out)
    for command in apply_commands(out, root, store, tmp_path):
        line = one_error_line(*cli(*command))
        assert f"{out}: training stopped before it finished" in line and "of 4 seed(s) done" in line, (command, line)
        assert "--resume" in line
    assert snapshot(out) == before
    # Nothing holds the lock of a killed run: an immediate --resume finishes it.
    code, _, err = cli("train", "--features", store, "--data", root, *TRAIN, "--seeds", "4", "--resume", "--out", out)
    assert code == 0, err
    assert cli(*apply_commands(out, root, store, tmp_path)[0])[0] == 0


@pytest.fixture(scope="module")
def finished(fake, tmp_path_factory):
    from tests.conftest import run_cli

    root, store = fake
    base = tmp_path_factory.mktemp("finished")
    for name, lr in (("a", "0.001"), ("b", "0.01")):
        args = ["train", "--features", store, "--data", root, *TRAIN, "--seeds", "2", "--lr", lr, "--out", base / name]
        assert run_cli(args)[0] == 0
    return base / "a", base / "b"


def _config_of_another_run(run: Path, other: Path) -> None:
    shutil.copy(other / "config.json", run / "config.json")


def _checkpoint_of_another_run(run: Path, other: Path) -> None:
    shutil.copy(other / "checkpoints" / "seed1.pt", run / "checkpoints" / "seed1.pt")


def _extra_checkpoint(run: Path, other: Path) -> None:
    shutil.copy(other / "checkpoints" / "seed1.pt", run / "checkpoints" / "seed7.pt")


def _legacy_without_metrics(run: Path, other: Path) -> None:
    (run / "run_state.json").unlink()
    (run / "metrics.json").unlink()


@pytest.mark.parametrize("mix, says", [
    (_config_of_another_run, r"config\.json: is not the config its checkpoints were trained with"),
    (_checkpoint_of_another_run, r"seed1\.pt: not a checkpoint of the run in"),
    (_extra_checkpoint, r"seed7\.pt: not a checkpoint of the run in"),
    (_legacy_without_metrics, "no finished run here|run folder without metrics.json"),
], ids=["config", "checkpoint", "extra checkpoint", "no record, no metrics"])
def test_a_mixed_run_folder_is_refused_by_every_command(fake, finished, tmp_path, cli, mix, says):
    root, store = fake
    run = shutil.copytree(finished[0], tmp_path / "run")
    mix(run, finished[1])
    for command in apply_commands(run, root, store, tmp_path):
        line = one_error_line(*cli(*command))
        assert re.search(says, line), (command, line)


def test_a_run_from_before_the_record_is_used_when_its_metrics_list_its_seeds(fake, finished, tmp_path, cli):
    root, store = fake
    run = shutil.copytree(finished[0], tmp_path / "run")
    (run / "run_state.json").unlink()
    code, _, err = cli(*apply_commands(run, root, store, tmp_path)[0])
    assert code == 0, err
