"""`sf tune`: a few trials on the fake data, through `sf train`'s loop; best.toml round-trips into `sf train
--config`; the study resumes from its SQLite file; the test products never reach a trial."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

optuna = pytest.importorskip("optuna", reason="sf tune needs the [tune] extra")

from sf.cache.reader import load_features  # noqa: E402
from sf.data.contract import load_dataset  # noqa: E402
from sf.errors import SfError  # noqa: E402
from sf.forecast import engine  # noqa: E402
from sf.forecast.config import TrainConfig, load_config  # noqa: E402
from sf.studies.tune import SPACES, TuneConfig, apply, run_tune  # noqa: E402
from tests.fakes import make_dataset  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root, store = make_dataset(tmp_path_factory.mktemp("fake"), n=60, horizon=4)
    prepared = engine.prepare(TrainConfig(), load_features(store), load_dataset(root), label="fake")
    # Test products' sales are poison: a trial that read them would score NaN.
    test = prepared.parts["test"]
    prepared = replace(prepared, parts={**prepared.parts, "test": replace(test, y=np.full_like(test.y, np.nan))})
    return root, store, prepared


def small(tmp_path, fake, trials, **kw):
    root, store, _ = fake
    return TuneConfig(features=store, data=root, model=kw.pop("model", "sf"), trials=trials, seeds=2, out=tmp_path / "t",
                      train=TrainConfig(epochs=2, patience=1, hparams={"attribute_dim": 4}), **kw)


def test_study_writes_best_config_that_sf_train_reads(tmp_path, fake):
    result = run_tune(small(tmp_path, fake, 3), prepared=fake[2], progress=False)
    assert len(result.trials) == 3 and np.isfinite(result.best_value)
    for name in ("best.toml", "trials.csv", "tune.json", "study.png", "study.db"):
        assert (result.out / name).is_file(), name
    cfg = load_config(result.out / "best.toml")
    assert cfg == result.best_config
    assert cfg.lr == result.best_params["lr"] and cfg.hidden == result.best_params["hidden"]
    # settings not searched are kept; a searched model argument is merged into them
    assert cfg.epochs == 2 and cfg.hparams == {"attribute_dim": 4, "layers": result.best_params["layers"]}


def test_study_resumes_and_refuses_other_settings(tmp_path, fake):
    run_tune(small(tmp_path, fake, 2), prepared=fake[2], progress=False)
    again = run_tune(small(tmp_path, fake, 3), prepared=fake[2], progress=False)
    assert [t["number"] for t in again.trials] == [0, 1, 2]  # two from the first call, one new
    other = replace(small(tmp_path, fake, 4), train=TrainConfig(epochs=3))
    with pytest.raises(SfError, match="other settings"):
        run_tune(other, prepared=fake[2], progress=False)
    # A study begun before a setting existed ran at its default: it resumes, but not under another value.
    study = optuna.load_study(study_name="sf-tune-sf", storage=f"sqlite:///{tmp_path / 't' / 'study.db'}")
    study.set_user_attr("settings", {k: v for k, v in study.user_attrs["settings"].items() if k != "recency_half_life"})
    assert len(run_tune(small(tmp_path, fake, 4), prepared=fake[2], progress=False).trials) == 4
    newer = replace(small(tmp_path, fake, 5), train=replace(small(tmp_path, fake, 5).train, recency_half_life=90.0))
    with pytest.raises(SfError, match="other settings.*recency_half_life"):
        run_tune(newer, prepared=fake[2], progress=False)


@pytest.mark.parametrize("model", sorted(SPACES))
def test_every_search_space_builds_a_valid_config(model):
    sampled = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    cfg = apply(TrainConfig(model=model, hparams={"keep": 1}), SPACES[model](sampled))
    cfg.validate()
    assert cfg.hparams["keep"] == 1 and cfg.lr != TrainConfig().lr


def test_compare_gives_every_neural_model_the_same_tuning_budget(tmp_path, fake):
    from sf.studies.compare import CompareConfig, run_compare

    root, store, _ = fake
    cfg = CompareConfig(data=(root,), features=(store,), models=("mean_curve", "gtm", "sf"), workers=1,
                        out=tmp_path / "cmp", train=TrainConfig(epochs=2, patience=1, seeds=1), tune_trials=2,
                        tune_seeds=1)
    result = run_compare(cfg, progress=False)
    for model in ("gtm", "sf"):
        study = result.out / f"tune_fake_{model}"
        assert len(load_config(study / "best.toml").to_dict()) and (study / "study.db").is_file()
        assert len(json.loads((study / "tune.json").read_text())["trials"]) == 2
    assert not (result.out / "tune_fake_mean_curve").exists()  # baselines have nothing to tune
