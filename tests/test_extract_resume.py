"""Crash safety: SIGKILL an extraction anywhere, rerun, and get exactly the store of one clean run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sf.cache.reader import load_features
from sf.errors import SfError
from sf.extract import sources as I
from sf.extract import job
from tests.test_extract_helpers import assert_same_store, make_dataset, tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]
# A part file after every batch (many places to die); EfficientNet-Lite because torchvision takes seconds to import.
CFG = dict(checkpoint_seconds=0, batch_size=2, backbone="efficientnet_lite0")
CHILD = (
    "import sys; from sf.extract import job, sources as I; from tests.test_extract_helpers import tiny_config; "
    f"job.run(I.from_dataset(sys.argv[1]), sys.argv[2], tiny_config(**{CFG!r}))"
)


def start(data: Path, out: Path, failpoint: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # as one_torch_thread does in-process
    env.pop("SF_FAILPOINT", None)
    if failpoint:
        env["SF_FAILPOINT"] = failpoint
    return subprocess.Popen([sys.executable, "-c", CHILD, str(data), str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_after_parts(proc: subprocess.Popen, parts: Path, k: int, delay: float, timeout: float = 90) -> None:
    """SIGKILL once k part files exist (plus `delay` seconds): somewhere in the middle of the run."""
    t = time.monotonic()
    while time.monotonic() - t < timeout and proc.poll() is None:
        if parts.is_dir() and len(list(parts.glob("part-*.h5"))) >= k:
            time.sleep(delay)
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.numerics
@pytest.mark.slow
def test_sigkill_anywhere_then_rerun_equals_one_clean_run(tmp_path):
    data = make_dataset(tmp_path / "shop", n=20, no_image=(4,), missing=(9,), empty_text=(2,))
    clean = job.run(I.from_dataset(data), tmp_path / "clean.h5", tiny_config(**CFG)).out
    out = tmp_path / "killed.h5"
    parts = out.with_name(out.name + ".parts")
    rng = random.Random(int(os.environ.get("SF_TEST_SEED", "0")))

    # 1. killed at a random moment while parts are being written
    proc = start(data, out)
    kill_after_parts(proc, parts, k=rng.randint(1, 3), delay=rng.uniform(0.0, 0.01))
    if not out.exists():
        with pytest.raises(SfError, match="killed before finishing|not found"):
            load_features(out)
    # 2.-5. killed exactly inside each write window: half-written part, fresh part, store temp file, after rename
    for point in ("part-before-rename", "part-written", "finalize-before-rename", "finalize-renamed"):
        proc = start(data, out, point)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL, f"{point}: {err.decode()[-2000:]}"
    assert parts.is_dir() and out.exists()  # died between renaming the store and deleting its parts

    report = job.run(I.from_dataset(data), out, tiny_config(**CFG))
    assert report.extracted == 0
    assert_same_store(out, clean)
    assert load_features(out).attrs["complete"] is True
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("killed"))
    assert leftovers == ["killed.h5", "killed.h5.lock"]  # no temp file or part left; the lock file stays by design
