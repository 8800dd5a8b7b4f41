"""Issue 31, class 1: a disk that fills during any write is one `error:` line naming the file, exit 2, no
crash, no leftover temp file, and every file that was whole before is byte-identical after.

Real full disks come from a small tmpfs (needs root and mount; skipped otherwise); the write sites that any
library uses (torch.save, polars, h5py parts) also get an injected ENOSPC, which needs nothing.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from sf.errors import SfError
from tests.fakes import make_dataset as fake_dataset
from tests.test_extract_helpers import make_dataset
from tests.test_reliability import TRAIN, one_error_line, snapshot

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[1]
EXTRACT = ["--backbone", "resnet18", "--weights", "random", "--image-size", "64", "--text-encoder", "hash",
           "--batch-size", "4", "--workers", "0", "--device", "cpu"]


class SmallDisk:
    """A tmpfs of a few MiB; `fill(leave)` leaves `leave` bytes free, `grow()` gives room again."""

    def __init__(self, root: Path):
        self.root = root

    def fill(self, leave: int) -> None:
        filler = self.root / "filler"
        filler.unlink(missing_ok=True)
        free = shutil.disk_usage(self.root).free
        with open(filler, "wb") as fh:
            fh.write(b"\0" * max(0, free - leave))

    def grow(self) -> None:
        (self.root / "filler").unlink(missing_ok=True)
        subprocess.run(["mount", "-o", "remount,size=64m", str(self.root)], check=True)


@pytest.fixture
def small_disk(tmp_path):
    root = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    root.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(root)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and `mount -t tmpfs` for a real full disk")
    try:
        yield SmallDisk(root)
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def leftovers(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.tmp"))


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return fake_dataset(tmp_path_factory.mktemp("disk") / "base", n=40, horizon=6)


@pytest.fixture(scope="module")
def run(fake, tmp_path_factory):
    from tests.conftest import run_cli

    root, store = fake
    out = tmp_path_factory.mktemp("disk-run") / "run"
    assert run_cli(["train", "--features", store, "--data", root, *TRAIN, "--out", out])[0] == 0
    return out


def test_extract_onto_a_full_disk_is_one_line_then_resumes(small_disk, tmp_path):
    """It was a segfault (exit 139): h5py closing a part file after a failed write on the writer thread."""
    data = make_dataset(tmp_path / "shop", n=24)
    out = small_disk.root / "s.h5"
    small_disk.fill(leave=200_000)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "sf.cli", "extract", "--data", str(data), "--out", str(out), *EXTRACT]
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    line = one_error_line(p.returncode, "", p.stderr.strip().splitlines()[-1])
    # either the up-front free-space check or the write that met the full disk refuses it, naming the store
    assert ("No space left on device" in line or "is free; free some space" in line) and str(out) in line
    assert leftovers(small_disk.root) == []
    small_disk.grow()
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    from sf.cache.reader import load_features

    assert len(load_features(out).keys) == 24 and leftovers(small_disk.root) == []


@pytest.mark.parametrize("leave", [2_000, 60_000], ids=["no room for config", "no room for a checkpoint"])
def test_train_onto_a_full_disk_names_the_file(fake, small_disk, cli, leave):
    root, store = fake
    out = small_disk.root / "run"
    small_disk.fill(leave=leave)
    line = one_error_line(*cli("train", "--features", store, "--data", root, *TRAIN, "--hidden", "64", "--out", out))
    assert str(out) in line and "could not be written: No space left on device" in line, line
    assert "Traceback" not in line and leftovers(small_disk.root) == []


def test_predict_and_report_onto_a_full_disk_name_the_file_and_keep_the_old_one(fake, run, small_disk, cli):
    root, store = fake
    forecasts = small_disk.root / "f.csv"
    assert cli("predict", "--model", run, "--data", root, "--store", store, "--no-extract", "--out", forecasts)[0] == 0
    assert cli("report", run, "--out", small_disk.root / "r.html")[0] == 0
    before = snapshot(small_disk.root)
    small_disk.fill(leave=0)
    before.pop(str(small_disk.root / "filler"), None)
    line = one_error_line(*cli("predict", "--model", run, "--data", root, "--store", store, "--no-extract",
                               "--out", forecasts))
    assert str(small_disk.root) in line and "No space left on device" in line, line
    line = one_error_line(*cli("report", run, "--out", small_disk.root / "r.html"))
    assert str(small_disk.root / "r.html") in line and "No space left on device" in line, line
    after = snapshot(small_disk.root)
    after.pop(str(small_disk.root / "filler"), None)
    assert after == before and leftovers(small_disk.root) == []


# ---------------------------------------------------------------- injected ENOSPC (no root needed)


def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_checkpoint_write_that_torch_save_fails_is_one_error(tmp_path, monkeypatch):
    """torch.save's own message on a full disk is `unexpected pos 576 vs 534`, a RuntimeError."""
    import torch

    from sf.data.atomic import atomic_write

    monkeypatch.setattr("sf.errors.os.statvfs", lambda _p: os.statvfs_result((4096, 4096, 10, 0, 0, 10, 0, 0, 0, 255)))
    target = tmp_path / "seed0.pt"
    target.write_bytes(b"the old checkpoint")

    def save(tmp):
        torch.save({"x": 1}, tmp)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    with pytest.raises(SfError, match=r"seed0\.pt: could not be written: No space left on device"):
        atomic_write(target, save)
    assert target.read_bytes() == b"the old checkpoint" and leftovers(tmp_path) == []


def test_a_bug_that_is_not_the_disk_is_not_called_a_full_disk(tmp_path):
    from sf.data.atomic import atomic_write

    with pytest.raises(RuntimeError, match="a real bug"):
        atomic_write(tmp_path / "x", lambda tmp: (_ for _ in ()).throw(RuntimeError("a real bug")))
    assert leftovers(tmp_path) == []


def test_part_and_fold_writes_on_a_full_disk_keep_the_store(tmp_path, monkeypatch):
    """Injected at the two store write sites: a part file and folding the parts into the store."""
    from sf.extract import job, sources as I
    from tests.test_extract_helpers import tiny_config

    data = make_dataset(tmp_path / "shop", n=8)
    out = job.run(I.from_dataset(data), tmp_path / "s.h5", tiny_config()).out
    make_dataset(tmp_path / "shop", n=12)  # four new rows to add
    before = snapshot(out)
    real_open = open

    def full_open(path, mode="r", *a, **k):
        if "w" in mode and str(path).endswith(".h5.tmp"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr("builtins.open", full_open)
    with pytest.raises(SfError, match=r"part-000001\.h5\.tmp: could not be written: No space left"):
        job.run(I.from_dataset(data), out, tiny_config())
    monkeypatch.setattr("builtins.open", real_open)
    monkeypatch.setattr("sf.cache.writer.shutil.disk_usage", lambda _p: shutil._ntuple_diskusage(10, 10, 0))
    monkeypatch.setattr("sf.cache.writer.StoreFiles.check_space", lambda self, new: 0)  # past the up-front check
    with pytest.raises(SfError, match=r"s\.h5\.tmp: could not be written: No space left on device \(folding"):
        job.run(I.from_dataset(data), out, tiny_config())
    assert snapshot(out) == before and leftovers(tmp_path) == []
    monkeypatch.undo()
    assert job.run(I.from_dataset(data), out, tiny_config()).extracted == 0  # the parts of the failed run count
