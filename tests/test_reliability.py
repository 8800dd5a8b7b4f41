"""Issue 11: bad input and damaged files give one `error:` line and exit 2, and nothing already written changes.

Each case: the command, the one line it must print, exit code 2, and a snapshot of every file that existed
before, compared byte for byte after.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from sf.cache import schema as S
from sf.cache.reader import load_features
from sf.data.contract import load_dataset
from sf.extract import inputs as I
from sf.extract import job
from tests.fakes import dataset_hashes, make_dataset as fake_dataset, write_store
from tests.test_extract_helpers import make_dataset, tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[1]


def snapshot(*roots: Path) -> dict[str, str]:
    """sha256 of every file under `roots` (and the roots themselves if files)."""
    out = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
        for p in files:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def one_error_line(code: int, out: str, err: str) -> str:
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """A trainable fake catalogue and its store (no backbone runs)."""
    return fake_dataset(tmp_path_factory.mktemp("rel") / "base", n=60, horizon=6)


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """A tiny real extraction (checksummed chunks) and its dataset folder."""
    root = make_dataset(tmp_path_factory.mktemp("real") / "shop", n=12, no_image=(3,))
    return root, job.run(I.from_dataset(root), root.parent / "shop.h5", tiny_config()).out


# ---------------------------------------------------------------- case 1: features that are not the data's


def _other_catalogue_store(root: Path, tmp: Path) -> Path:
    """Same product ids, another catalogue's images and text (what `sf extract` of `other` would store)."""
    other, _ = fake_dataset(tmp / "other", n=60, horizon=6, seed=7)
    for pid in ("p0000", "p0001"):
        Image.new("RGB", (8, 8), (9, 9, 9)).save(other / "images" / f"{pid}.png") if (other / "images").is_dir() else None
    f = load_features(root / "store.h5")
    return write_store(tmp / "other.h5", f.keys, f.image_pooled.astype(np.float32), f.text_pooled.astype(np.float32),
                       content_hashes=[h[::-1] for h in f.content_hash])


def _replaced_image(root: Path, tmp: Path) -> Path:
    images = root / "images"
    images.mkdir(exist_ok=True)
    Image.new("RGB", (8, 8), (1, 2, 3)).save(images / "p0007.png")  # p0007's image changed since extraction
    return root / "store.h5"


@pytest.mark.parametrize("make_store, names", [
    (_other_catalogue_store, "60 of 60 product(s)"),
    (_replaced_image, "1 of 60 product(s)"),
], ids=["another catalogue", "one image replaced"])
def test_train_refuses_features_not_made_from_the_data(fake, tmp_path, cli, make_store, names):
    root, _ = fake
    work = tmp_path / "base"
    import shutil

    shutil.copytree(root, work)
    store = make_store(work, tmp_path)
    before = snapshot(work, store)
    line = one_error_line(*cli("train", "--features", store, "--data", work, "--epochs", "1", "--seeds", "1",
                               "--out", tmp_path / "run"))
    assert names in line and "not made from the image/text" in line
    assert f"sf extract --data {work} --out {store}" in line and "--allow-stale-features" in line
    if names.startswith("1 of"):
        assert "(p0007)" in line
    assert snapshot(work, store) == before and not (tmp_path / "run").exists()


def test_allow_stale_features_overrides_the_content_check(fake, tmp_path, cli):
    root, _ = fake
    store = _other_catalogue_store(root, tmp_path)
    code, out, err = cli("train", "--features", store, "--data", root, "--epochs", "1", "--seeds", "1",
                         "--hidden", "4", "--out", tmp_path / "run", "--allow-stale-features")
    assert code == 0, err
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_content_hashes_of_stage_one_and_stage_two_agree(real):
    root, store = real
    f = load_features(store)
    assert list(f.content_hash) == dataset_hashes(load_dataset(root))


# ---------------------------------------------------------------- case 2: damaged stores


def _corrupt(src: Path, dst: Path, offset: int, count: int, seed: int = 0) -> Path:
    data = bytearray(src.read_bytes())
    data[offset:offset + count] = np.random.default_rng(seed).integers(0, 256, count, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


def _chunk_offset(store: Path, name: str) -> int:
    with h5py.File(store, "r") as f:
        return f[name].id.get_chunk_info(0).byte_offset + 64


@pytest.mark.parametrize("where", ["metadata", "chunk"])
@pytest.mark.parametrize("command", [["cache", "verify"], ["cache", "info"], ["train", "--data", "DATA", "--features"],
                                     ["extract", "--backbone", "resnet18", "--weights", "random", "--image-size", "32",
                                      "--text-encoder", "hash", "--data", "DATA", "--out"]],
                         ids=["verify", "info", "train", "extract"])
def test_damaged_store_is_one_line_for_every_command(real, tmp_path, cli, where, command):
    root, store = real
    offset = 4000 if where == "metadata" else _chunk_offset(store, S.IMAGE_GRID)
    bad = _corrupt(store, tmp_path / "E.h5", offset, 32)
    before = snapshot(bad)
    args = [root if a == "DATA" else a for a in command] + [bad]
    if command[0] == "train":
        args += ["--out", tmp_path / "run"]
    code, out, err = cli(*args)
    if where == "chunk" and command[1] == "info":
        assert code == 0  # info reads metadata only; the damaged rows are verify's and train's to find
        return
    if command[0] == "extract":  # a warning about random weights comes first; the answer is the last line
        assert code == 2 and "Traceback" not in out + err
        err = err.strip().splitlines()[-1] + "\n"
    line = one_error_line(code, out, err)
    assert str(bad) in line and "damaged" in line
    if where == "chunk" and command[1] in ("verify",):
        assert "image/grid rows 0.." in line and "checksum" in line
    assert snapshot(bad) == before and not (tmp_path / "run").exists()


def test_verify_ok_is_one_line_and_incomplete_is_not_ok(real, tmp_path, cli):
    _, store = real
    code, out, err = cli("cache", "verify", store)
    assert code == 0 and out.count("\n") == 1 and ": ok" in out
    import shutil

    half = shutil.copyfile(store, tmp_path / "half.h5")
    with h5py.File(half, "r+") as f:
        f.attrs["complete"] = False  # what an interrupted extraction leaves
    line = one_error_line(*cli("cache", "verify", half))
    assert "incomplete" in line and "rerun the same `sf extract`" in line


def test_fuzzed_stores_always_answer_in_one_line_and_never_reach_training(real, tmp_path, cli):
    """>= 200 seeded trials of 1-4 flipped bytes over header, metadata and chunks, in a child process so a
    crash or a hang fails the test instead of the run (tests/store_fuzz.py says what each trial checks)."""
    _, store = real
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "store_fuzz.py"), str(store), "240", "11"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    trials = [json.loads(line) for line in proc.stdout.splitlines() if '"trial"' in line]
    assert len(trials) == 240
    assert {t["region"] for t in trials} == {"header", "metadata", "chunks"}
    for t in trials:
        assert not t["verify"].startswith("RAISED") and t["one_line"], t
        assert t["load"] in ("refused", "same"), t  # never a damaged row handed to training
        assert t.get("load_one_line", True), t
    assert sum(t["verify"] == "damaged" for t in trials) > 100  # the flips did damage: the test is not vacuous
    # A sample through the CLI itself: exactly one line on stdout or stderr, exit 0 or 2.
    rng = np.random.default_rng(3)
    size = store.stat().st_size
    for i in range(8):
        bad = _corrupt(store, tmp_path / f"s{i}.h5", int(rng.integers(0, size - 8)), int(rng.integers(1, 8)), seed=i)
        code, out, err = cli("cache", "verify", bad)
        assert code in (0, 2) and "Traceback" not in out + err
        assert len((out + err).strip().splitlines()) == 1, out + err
