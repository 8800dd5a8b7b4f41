"""Issue 31, class 2: an interrupted or empty extraction never costs the store, and a rerun finishes it.

Ctrl-C (SIGINT) at several moments of `sf extract`, kill -9 with decoding workers alive (they inherit the
lock), a header-only products table, and a 0-row store as earlier versions left it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from sf.cache.reader import load_features
from sf.cache.verify import verify_store
from tests.test_extract_helpers import assert_same_store, make_dataset
from tests.test_reliability import one_error_line

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[1]
ARGS = ["--backbone", "efficientnet_lite0", "--weights", "random", "--image-size", "32", "--text-encoder", "hash",
        "--batch-size", "2", "--device", "cpu", "--precision", "fp32"]
# The real command line, with a part file after every batch (many moments to be interrupted at).
CHILD = "import sys; import sf.extract.job as j; j.PART_BYTES = 1; from sf.cli import main; main(sys.argv[1:])"


def start(data: Path, out: Path, workers: int = 0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    env.pop("SF_FAILPOINT", None)
    cmd = [sys.executable, "-c", CHILD, "extract", "--data", str(data), "--out", str(out), *ARGS,
           "--workers", str(workers)]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_parts(proc: subprocess.Popen, parts: Path, k: int, timeout: float = 120) -> None:
    t = time.monotonic()
    while time.monotonic() - t < timeout and proc.poll() is None:
        if (k == 0 and "extract" in _peek(parts)) or (parts.is_dir() and len(list(parts.glob("part-*.h5"))) >= k > 0):
            return
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be interrupted"


def _peek(parts: Path) -> str:
    return "extract" if parts.with_name(parts.name.replace(".parts", ".lock")).exists() else ""


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("int")
    data = make_dataset(root / "shop", n=24, no_image=(5,))
    clean = root / "clean.h5"
    p = start(data, clean)
    assert p.wait(timeout=300) == 0, p.stderr.read()
    return data, clean


@pytest.mark.slow
@pytest.mark.parametrize("after_parts", [0, 1, 4], ids=["while planning", "after one part", "after four parts"])
def test_ctrl_c_keeps_finished_rows_and_a_rerun_finishes(shop, tmp_path, after_parts):
    data, clean = shop
    out = tmp_path / "s.h5"
    p = start(data, out)
    wait_parts(p, out.with_name("s.h5.parts"), after_parts)
    os.killpg(p.pid, signal.SIGINT)  # what Ctrl-C sends: the whole process group, workers included
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "Traceback" not in err, err
    if out.exists():  # rows finished before the interrupt are kept, marked incomplete
        assert verify_store(out).summary().endswith("rerun the same `sf extract` to finish it")
    p = start(data, out)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert_same_store(out, clean)
    assert verify_store(out).ok


@pytest.mark.slow
def test_kill_9_with_workers_alive_does_not_block_an_immediate_rerun(shop, tmp_path):
    """Forked decoding workers inherit the flock and hold it for seconds after their parent dies."""
    data, clean = shop
    out = tmp_path / "s.h5"
    p = start(data, out, workers=2)
    wait_parts(p, out.with_name("s.h5.parts"), 1)
    p.send_signal(signal.SIGKILL)  # the parent only: its workers live on
    p.wait(timeout=30)
    q = start(data, out, workers=0)
    _, err = q.communicate(timeout=300)
    assert q.returncode == 0, err
    assert_same_store(out, clean)
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_a_live_writer_still_holds_the_lock(tmp_path):
    from sf.cache.writer import StoreFiles
    from sf.errors import SfError

    files = StoreFiles(tmp_path / "s.h5")
    with files.locked():
        assert files.lock_path.read_text().strip() == str(os.getpid())
        with pytest.raises(SfError, match=rf"writing this store right now \(pid {os.getpid()}\)"):
            with StoreFiles(tmp_path / "s.h5").locked():
                pass


def test_header_only_products_table_writes_nothing(tmp_path, cli):
    data = make_dataset(tmp_path / "shop", n=4)
    table = tmp_path / "empty.csv"
    table.write_text("product_id,image,text\n")
    out = tmp_path / "e.h5"
    line = one_error_line(*cli("extract", "--images", data / "images", "--products", table, "--out", out, *ARGS))
    assert str(table) in line and "no product rows" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.csv", "shop"]


def test_a_zero_row_store_is_incomplete_not_damaged_and_is_extended(tmp_path, cli):
    """What an interrupted or empty extraction of earlier versions left: a valid store with no rows."""
    from sf.cache.writer import StoreFiles
    from sf.extract import job, sources as I
    from tests.test_extract_helpers import tiny_config

    data = make_dataset(tmp_path / "shop", n=6)
    ext = job.build_extractor(tiny_config(), with_text=True)
    files = StoreFiles(tmp_path / "s.h5")
    files.finalize(ext.attrs(None, I.from_dataset(data).listing_sha256), complete=False)
    with h5py.File(files.out, "r") as f:
        assert f["keys"].shape == (0,)
    code, out, err = cli("cache", "verify", files.out)
    assert "incomplete" in out + err and "damaged" not in out + err
    report = job.run(I.from_dataset(data), files.out, tiny_config(), extractor=ext)
    assert report.extracted == 6 and len(load_features(files.out).keys) == 6
