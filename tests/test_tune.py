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
    assert cfg.epochs == 2 and cfg.hparams == {"attribute_dim": 4, **{k: result.best_params[k] for k in (
        "layers", "modality_dropout", "fused_dropout", "skip")}}


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


class _Trial:
    """An Optuna trial stand-in: fixed choices, records its reports, asks to prune from `prune_at` on."""

    def __init__(self, prune_at: int) -> None:
        self.reports: list[tuple[int, float]] = []
        self.prune_at = prune_at
        self.fixed = optuna.trial.FixedTrial({"lr": 1e-3, "batch_size": 16, "weight_decay": 0.0, "target": "log",
                                              "dropout": 0.1, "hidden": 16, "fusion": "t2i", "popularity": True,
                                              "layers": 1, "modality_dropout": 0.0, "fused_dropout": 0.0,
                                              "skip": False})

    def __getattr__(self, name):
        return getattr(self.fixed, name)

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return len(self.reports) >= self.prune_at


def test_a_trial_is_pruned_mid_fit_on_its_epochs_validation_wape(tmp_path, fake):
    from sf.studies import tune

    cfg = small(tmp_path, fake, 1)
    # One pass without dropout, so the objective is exactly the kept epochs' WAPE (MC dropout scores its passes).
    base = replace(cfg.train, epochs=4, patience=4, seeds=2, hparams={"mc_passes": 0})
    tune._PREPARED[:] = [tune.validation_only(fake[2])]
    try:
        # Never pruned: one report per epoch of each seed, at steps seed * epochs + epoch, and the last
        # report is the objective exactly (each seed's kept epoch's WAPE, as scored, averaged).
        whole = _Trial(prune_at=10**6)
        value = tune.objective_for(cfg, base)(whole)
        assert [s for s, _ in whole.reports] == [1, 2, 3, 4, 5, 6, 7, 8]
        assert whole.reports[-1][1] == pytest.approx(value, rel=1e-4)
        # Pruned at its second report: the first seed's fit stops after its second epoch.
        cut = _Trial(prune_at=2)
        with pytest.raises(optuna.TrialPruned):
            tune.objective_for(cfg, base)(cut)
        assert [s for s, _ in cut.reports] == [1, 2]
    finally:
        tune._PREPARED.clear()


def test_every_worker_prunes_with_the_studys_pruner(tmp_path, fake, monkeypatch):
    """Optuna does not store a pruner with the study: a worker that loaded it without one pruned with the
    default (no warm-up), stopping slow-starting trials after their first epoch."""
    from sf.studies import tune

    seen = []
    real = optuna.load_study
    monkeypatch.setattr(optuna, "load_study", lambda **kw: seen.append(kw.get("pruner")) or real(**kw))
    run_tune(small(tmp_path, fake, 1), prepared=fake[2], progress=False)
    pruner = seen[0]  # the worker's load (the last one only reads the finished study)
    assert isinstance(pruner, optuna.pruners.MedianPruner) and pruner._n_warmup_steps == tune.PRUNE_WARMUP
