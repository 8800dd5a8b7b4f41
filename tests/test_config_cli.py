"""Config declared once: every TrainConfig field is an `sf train` option (or a TOML-only key), the options
`sf ablate` / `sf compare` share with `sf train` are the same declarations, a value given on the command line
lands in its field, and docs/train.md's option table states TrainConfig's defaults."""

from __future__ import annotations

import inspect
import re
from dataclasses import fields
from pathlib import Path

import click
import typer.main

from sf import cli_options as O
from sf.cli import app
from sf.forecast.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
# What `sf train` does with the run folder and the store check, not training settings.
COMMAND_ONLY = {"resume", "force", "allow_stale"}


def options(command: str) -> dict:
    """The command's options by parameter name (typer vendors its own click, so no isinstance on click.Option)."""
    group = typer.main.get_command(app)
    cmd = group.get_command(click.Context(group), command)
    found = {p.name: p for p in cmd.params if p.param_type_name == "option" and p.name != "help"}
    assert found, f"sf {command} has no options?"
    return found


def field_of(option: str) -> str | None:
    if option in O.FLAG_FIELDS:
        return O.FLAG_FIELDS[option][0]
    return None if option in COMMAND_ONLY or option == "config" else option


def test_every_config_field_is_a_train_option_or_toml_only():
    names = {f.name for f in fields(TrainConfig)}
    on_cli = {field_of(o) for o in options("train")} - {None}
    assert on_cli <= names, on_cli - names  # every option is a field
    assert names - on_cli == set(O.TOML_ONLY), names - on_cli  # every field is an option, or said to be TOML-only


def test_study_options_are_the_train_declarations():
    train = options("train")
    for command in ("ablate", "compare"):
        for name, opt in options(command).items():
            if name in train and field_of(name) not in (None, "features", "data", "out", "name"):
                assert opt.help == train[name].help and opt.opts == train[name].opts, (command, name)


def test_every_option_lands_in_its_field():
    given = dict(features=Path("s.h5"), data=Path("d"), horizon=7, model="gtm", fusion="concat", head="lstm",
                 hidden=12, dropout=0.3, epochs=9, patience=4, batch_size=16, lr=0.01, loss="quantile",
                 quantiles="0.2,0.8", target="scaled", seeds=2, seed=3, split="random", observe_max=2, no_exog=True,
                 exog_future=True, no_attributes=True, refit=True, device="cpu", name="n", out=Path("o"))
    assert set(given) == set(options("train")) - COMMAND_ONLY - {"config"}
    cfg = O.train_settings(None, **given)
    assert (cfg.exog, cfg.attributes, cfg.exog_future, cfg.quantiles, cfg.refit) == (False, False, True, (0.2, 0.8), True)
    for option, value in given.items():
        if option not in O.FLAG_FIELDS and option != "quantiles":
            assert getattr(cfg, option) == value, option
    assert O.train_settings(None, no_exog=False, exog_future=False) == TrainConfig()  # unset flags keep defaults


def test_help_states_the_config_defaults():
    d, checked = TrainConfig(), 0
    for name, opt in options("train").items():
        stated = re.search(r"\(default: ([^)]*)\)", opt.help or "")
        if stated and hasattr(d, name) and not isinstance(getattr(d, name), (bool, type(None))):
            value = getattr(d, name)
            assert stated.group(1) == (f"{value:g}" if isinstance(value, float) else str(value)), name
            checked += 1
    assert checked >= 12, checked


def test_docs_train_table_states_the_config_defaults():
    from sf.forecast.models.sf_model import SFModel

    d = TrainConfig()
    model_own = {k: v.default for k, v in inspect.signature(SFModel.__init__).parameters.items()}
    table = (ROOT / "docs" / "train.md").read_text().split("| option | default | meaning |")[1].split("\n\n")[0]
    checked = 0
    for row in table.splitlines()[2:]:
        opts_cell, default_cell = [c.strip() for c in row.strip("|").split("|")[:2]]
        names = [o.strip("`").removeprefix("--").replace("-", "_") for o in opts_cell.split(", ")]
        values = [v.strip("`") for v in default_cell.split(", ")]
        if len(values) != len(names):
            continue  # a default stated once for a pair (e.g. `--loss`, `--quantiles`) or a prose default
        for name, value in zip(names, values):
            if hasattr(d, name) and getattr(d, name) is not None:
                own = getattr(d, name)
                assert value == (f"{own:g}" if isinstance(own, float) else str(own)), name
                checked += 1
            elif name in model_own:  # hidden, dropout: the model's own default
                assert value == f"{model_own[name]:g}", name
                checked += 1
    assert checked >= 12, checked
