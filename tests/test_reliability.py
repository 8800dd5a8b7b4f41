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
from sf.extract import sources as I
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
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]  # progress shares stderr
    assert len(lines) == 1 and err.strip().splitlines()[-1] == lines[0], err
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


def _header_offset(store: Path, name: str) -> int:
    """Where the object header (shape, type, layout messages) of dataset `name` starts."""
    with h5py.File(store, "r") as f:
        return h5py.h5o.get_info(f[name].id).addr


@pytest.mark.parametrize("where", ["metadata", "chunk"])
@pytest.mark.parametrize("command", [["cache", "verify"], ["cache", "info"], ["train", "--data", "DATA", "--features"],
                                     ["extract", "--backbone", "resnet18", "--weights", "random", "--image-size", "32",
                                      "--text-encoder", "hash", "--data", "DATA", "--out"]],
                         ids=["verify", "info", "train", "extract"])
def test_damaged_store_is_one_line_for_every_command(real, tmp_path, cli, where, command):
    root, store = real
    offset = _header_offset(store, S.IMAGE_GRID) + 8 if where == "metadata" else _chunk_offset(store, S.IMAGE_GRID)
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
        assert "image/grid rows 0" in line and "checksum" in line  # the store rows whose grid the chunk holds
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


# ---------------------------------------------------------------- case 3: runs and results are not silently replaced


TRAIN = ["--epochs", "1", "--seeds", "1", "--hidden", "4"]


@pytest.fixture(scope="module")
def trained(fake, tmp_path_factory):
    """A finished run on the fake catalogue, and a second catalogue with the same dataset name."""
    root, store = fake
    base = tmp_path_factory.mktemp("trained")
    from tests.conftest import run_cli

    code, _, _ = run_cli(["train", "--features", store, "--data", root, *TRAIN, "--out", base / "mix"])
    assert code == 0
    other, other_store = fake_dataset(base / "other", n=30, horizon=6, seed=3)  # also named "fake"
    return root, store, base / "mix", other, other_store


@pytest.mark.parametrize("change, named", [
    ({"--fusion": "concat"}, "fusion: 'i2t_image' -> 'concat'"),
    ({"--seeds": "2"}, "seeds: 1 -> 2"),
    ({"--lr": "0.01"}, "lr: 0.001 -> 0.01"),
], ids=["fusion", "seeds", "lr"])
def test_train_refuses_to_replace_a_run_with_other_settings(trained, cli, change, named):
    root, store, run, *_ = trained
    before = snapshot(run)
    settings = {"--epochs": "1", "--seeds": "1", "--hidden": "4", **change}
    args = [x for kv in settings.items() for x in kv]
    line = one_error_line(*cli("train", "--features", store, "--data", root, *args, "--out", run))
    assert named in line and "--force" in line
    assert ("--resume" in line) == ("--seeds" in change)
    assert snapshot(run) == before


def test_train_refuses_another_store_or_data_and_force_replaces(trained, tmp_path, cli):
    root, store, run, other, other_store = trained
    import shutil

    copy = shutil.copytree(run, tmp_path / "mix")
    before = snapshot(copy)
    line = one_error_line(*cli("train", "--features", other_store, "--data", other, *TRAIN, "--out", copy))
    assert "features:" in line and "data:" in line
    assert snapshot(copy) == before
    code, _, err = cli("train", "--features", other_store, "--data", other, *TRAIN, "--out", copy, "--force")
    assert code == 0, err
    assert json.loads((copy / "config.json").read_text())["data"] == str(other)


def test_evaluate_refuses_to_replace_an_evaluation_of_other_data(trained, cli):
    root, store, run, other, other_store = trained
    code, _, err = cli("evaluate", "--model", run, "--data", root, "--store", store, "--no-extract")
    assert code == 0, err
    folder = run / "eval_fake"  # both catalogues are named "fake"
    before = snapshot(folder)
    line = one_error_line(*cli("evaluate", "--model", run, "--data", other, "--store", other_store, "--no-extract"))
    assert str(folder) in line and "data:" in line and "--force" in line
    assert snapshot(folder) == before
    code, _, err = cli("evaluate", "--model", run, "--data", root, "--store", store, "--no-extract")
    assert code == 0, err  # the same evaluation again replaces itself


def test_predict_refuses_to_replace_a_file_it_did_not_write_and_says_what_it_replaces(trained, tmp_path, cli):
    root, store, run, other, other_store = trained
    mine = tmp_path / "f.csv"
    mine.write_text("my,own\n1,2\n")
    before = snapshot(tmp_path)
    line = one_error_line(*cli("predict", "--model", run, "--data", other, "--store", other_store, "--no-extract",
                               "--out", mine))
    assert str(mine) in line and "not an earlier forecasts" in line
    assert snapshot(tmp_path) == before
    out = tmp_path / "g.csv"
    assert cli("predict", "--model", run, "--data", other, "--store", other_store, "--no-extract", "--out", out)[0] == 0
    assert cli("predict", "--model", run, "--data", other, "--store", other_store, "--no-extract", "--out", out)[0] == 0
    stray = tmp_path / "h.png"  # a file of the user's where the plot of h.csv would go
    stray.write_bytes(b"not a plot")
    before = snapshot(tmp_path)
    line = one_error_line(*cli("predict", "--model", run, "--data", other, "--store", other_store, "--no-extract",
                               "--out", tmp_path / "h.csv"))
    assert str(stray) in line and snapshot(tmp_path) == before
    # Forecasts of other data at the same path are re-creatable: replaced, and the output says so.
    code, stdout, err = cli("predict", "--model", run, "--data", root, "--store", store, "--no-extract", "--out", out)
    assert code == 0 and f"replaced {out}, which held forecasts of another run and data" in (stdout + err).replace("\n", "")


# ---------------------------------------------------------------- case 4: unwritable outputs


@pytest.fixture
def blocked(tmp_path) -> Path:
    """A path under a regular file: every write below it fails with ENOTDIR, for root too (permission
    bits would not stop root; this reaches the same code path an immutable or read-only folder does)."""
    (tmp_path / "blocker").write_text("a file, not a folder\n")
    return tmp_path / "blocker"


@pytest.mark.parametrize("command, target", [
    (["extract", "--backbone", "resnet18", "--weights", "random", "--image-size", "32", "--text-encoder", "hash",
      "--data", "REAL", "--out"], "x.h5"),
    (["train", "--features", "STORE", "--data", "ROOT", *TRAIN, "--out"], "run"),
    (["predict", "--model", "RUN", "--data", "ROOT", "--store", "STORE", "--no-extract", "--out"], "f.csv"),
    (["demo-data", "--products", "10"], "d"),
    (["data", "check", "ROOT", "--json"], "s.json"),
    (["cache", "info", "STORE", "--json"], "s.json"),
], ids=["extract", "train", "predict", "demo-data", "data-check-json", "cache-info-json"])
def test_unwritable_output_is_one_line_naming_the_path(trained, real, blocked, cli, command, target):
    root, store, run, *_ = trained
    subs = {"REAL": real[0], "STORE": store, "ROOT": root, "RUN": run}
    path = blocked / "sub" / target
    before = snapshot(blocked.parent, root, run)
    code, out, err = cli(*[subs.get(a, a) for a in command], path)
    if command[0] == "extract":
        err = err.strip().splitlines()[-1] + "\n"  # after the random-weights warning
    line = one_error_line(code, "", err)
    assert str(path) in line and ("not a folder" in line or "not writable" in line)
    assert snapshot(blocked.parent, root, run) == before  # nothing written, not even a .lock


def test_train_out_that_is_a_file_is_refused(trained, tmp_path, cli):
    root, store, *_ = trained
    existing = tmp_path / "existing_file.csv"
    existing.write_text("a,b\n")
    line = one_error_line(*cli("train", "--features", store, "--data", root, *TRAIN, "--out", existing))
    assert str(existing) in line and "not a folder" in line
    assert existing.read_text() == "a,b\n"


def test_immutable_folder_when_the_sandbox_allows_it(real, tmp_path, cli):
    folder = tmp_path / "ro"
    folder.mkdir()
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not permitted here (no CAP_LINUX_IMMUTABLE); test_unwritable_output_* covers the path")
    try:
        code, out, err = cli("demo-data", "--products", "10", folder / "d")
        line = one_error_line(code, "", err)
        assert str(folder / "d") in line and "not writable" in line
    finally:
        subprocess.run(["chattr", "-i", str(folder)])


# ---------------------------------------------------------------- case 5: headers


def _with_header(root: Path, dst: Path, header: bytes | None = None, whole: bytes | None = None) -> Path:
    import shutil

    shutil.copytree(root, dst)
    products = dst / "products.csv"
    if whole is not None:
        products.write_bytes(whole)
    else:
        body = products.read_bytes().split(b"\n", 1)[1]
        products.write_bytes(header + b"\n" + body)
    return dst


@pytest.mark.parametrize("header, whole, says", [
    (b"product_id,image,text,release_date,category, category", None, "'category' appears twice in the header (columns 5 and 6)"),
    (b"product_id,image,text,release_date,category,category", None, "'category' appears twice"),
    (b"product_id,image,text,release_date,", None, "column 5 of the header has no name"),
    (None, np.random.default_rng(0).integers(0, 256, 10 * 2**20, dtype=np.uint8).tobytes(), "not UTF-8 text"),
    (None, b"x" * (10 * 2**20) + b"\n1\n", "header line is longer than 1 MiB"),
    (b",".join(b"c%d" % i for i in range(60_000)), None, "more characters)"),
], ids=["trimmed duplicate", "exact duplicate", "blank name", "10 MB random bytes", "10 MB header line",
        "long header echo cut"])
def test_bad_headers_are_refused_by_name(fake, tmp_path, cli, header, whole, says):
    root, _ = fake
    data = _with_header(root, tmp_path / "d", header, whole)
    before = snapshot(data)
    line = one_error_line(*cli("data", "check", data))
    assert says in line and "products.csv" in line
    assert len(line) < 600  # a long header is cut, never echoed whole
    assert snapshot(data) == before


# ---------------------------------------------------------------- case 6: special files in the image folder


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
def test_fifo_and_device_links_become_unreadable_rows_without_hanging(tmp_path):
    from tests.test_extract_helpers import make_images

    make_images(tmp_path / "imgs", 3)
    os.mkfifo(tmp_path / "imgs" / "x.jpg")
    (tmp_path / "imgs" / "zero.jpg").symlink_to("/dev/zero")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    # A child with a timeout: before the fix this spun forever at 100% CPU.
    proc = subprocess.run([sys.executable, "-m", "sf", "extract", "--images", str(tmp_path / "imgs"), "--backbone",
                           "resnet18", "--weights", "random", "--image-size", "32", "--text-encoder", "none",
                           "--workers", "0", "--device", "cpu", "--out", str(tmp_path / "s.h5")],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    f = load_features(tmp_path / "s.h5")
    reasons = dict(zip(f.keys, f.reason))
    assert reasons["x"] == "not a regular file (a FIFO)" and reasons["zero"] == "not a regular file (a device)"
    assert list(f.status).count("ok") == 3


def test_read_cap_refuses_oversized_files(tmp_path, monkeypatch):
    from sf.cache import content
    from sf.extract.images import BadImage, open_checked

    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + b"\0" * 4096)
    monkeypatch.setattr(content, "MAX_IMAGE_BYTES", 1024)
    with pytest.raises(BadImage, match="too large .* read cap"):
        open_checked(big)
    assert content.content_hash(big, "") == content.content_hash(big, "")  # hashed to its refusal, not read


# ---------------------------------------------------------------- case 7: small ones


@pytest.mark.parametrize("args, says", [
    (["--lr", "nan"], "config lr: must be a finite number, got nan"),
    (["--dropout", "inf"], "config dropout: must be a finite number, got inf"),
    (["--horizon", "1000"], "--horizon 1000:"),
    (["--observe-max", "50"], "--observe-max 50: must be below the horizon (6 weeks)"),
], ids=["lr nan", "dropout inf", "horizon beyond the data", "observe-max beyond the horizon"])
def test_train_refuses_impossible_numbers(fake, tmp_path, cli, args, says):
    root, store = fake
    line = one_error_line(*cli("train", "--features", store, "--data", root, *TRAIN, *args, "--out", tmp_path / "r"))
    assert says in line
    assert not (tmp_path / "r").exists()


def test_extract_refuses_negative_max_pixels(real, tmp_path, cli):
    root, _ = real
    code, out, err = cli("extract", "--data", root, "--backbone", "resnet18", "--weights", "random", "--text-encoder",
                         "hash", "--max-pixels", "-1", "--out", tmp_path / "x.h5")
    assert "--max-pixels must be >= 1, got -1" in one_error_line(code, out, err)
    assert not list(tmp_path.iterdir())


def test_out_at_a_non_store_file_leaves_no_lock(real, tmp_path, cli):
    root, _ = real
    target = tmp_path / "notes.h5"
    target.write_text("my notes, not a store\n")
    code, out, err = cli("extract", "--data", root, "--backbone", "resnet18", "--weights", "random", "--image-size",
                         "32", "--text-encoder", "hash", "--out", target)
    assert code == 2 and "not a readable HDF5 feature store" in err.strip().splitlines()[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.h5"]
    assert target.read_text() == "my notes, not a store\n"


def test_undefined_metrics_are_null_with_a_note(fake, tmp_path, cli):
    import polars as pl
    import shutil

    root, store = fake
    zero = shutil.copytree(root, tmp_path / "zero")
    sales = pl.read_csv(zero / "sales.csv").with_columns(pl.lit(0.0).alias("units"))
    sales.write_csv(zero / "sales.csv")
    code, out, err = cli("train", "--features", store, "--data", zero, *TRAIN, "--out", tmp_path / "r")
    assert code == 0, err
    text = (tmp_path / "r" / "metrics.json").read_text()
    metrics = json.loads(text)  # strict JSON: no bare NaN
    assert "NaN" not in text and any("undefined and written as null" in n for n in metrics["notes"])
    assert "warning:" in err and "undefined" in err


def test_predict_notes_products_it_knows_almost_nothing_about(trained, tmp_path):
    import polars as pl
    import shutil

    from sf.apply.predict import PredictConfig, predict_new

    root, store, run, other, other_store = trained
    blind = shutil.copytree(other, tmp_path / "blind")
    products = pl.read_csv(blind / "products.csv")
    products.with_columns(pl.lit("").alias("category"), pl.lit("").alias("release_date")).write_csv(blind / "products.csv")
    result = predict_new(PredictConfig(model=run, data=blind, store=other_store, out=tmp_path / "f.csv"))
    assert any("no known attribute value and no release date" in n for n in result.notes)
