"""Install truth: CI runs the README's two commands first, as written, in a fresh virtual environment; the
command line's messages keep their text (install hints with brackets), go to stderr, and are not cut when piped."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import sf.cli
from sf.errors import SfError

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / ".ci" / "run"


def _readme_block() -> list[str]:
    return re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1).strip().splitlines()


def _ci_lines() -> list[str]:
    return [ln.strip() for ln in CI.read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")]


def test_ci_runs_the_readme_commands_first_in_a_fresh_venv():
    text = CI.read_text()
    inside = re.search(r"# readme:begin[^\n]*\n(.*?)\n\s*# readme:end", text, re.S).group(1)
    assert [ln.strip() for ln in inside.splitlines()] == _readme_block()
    lines = _ci_lines()
    first_pip = next(i for i, ln in enumerate(lines) if "pip install" in ln)
    first_pytest = next(i for i, ln in enumerate(lines) if "pytest" in ln)
    readme_at = lines.index(_readme_block()[0])
    # Nothing is installed or tested before the README's commands, and they run inside a new venv.
    assert first_pip == readme_at and first_pytest == readme_at + 1
    venv = next(i for i, ln in enumerate(lines) if ln.startswith("python3 -m venv"))
    activate = next(i for i, ln in enumerate(lines) if "/bin/activate" in ln)
    assert venv < activate < readme_at


def test_ci_runs_every_test_that_needs_an_extra_after_installing_the_extras():
    listed = set(re.search(r"extra_tests=\(([^)]*)\)", CI.read_text()).group(1).split())
    needs_extra = {f"tests/{p.name}" for p in (ROOT / "tests").glob("test_*.py") if "pytest.importorskip(\"" in p.read_text()}
    assert needs_extra and needs_extra <= listed


def test_the_core_install_has_what_the_documented_api_reads():
    deps = re.search(r"^dependencies = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.S | re.M).group(1)
    for module in ("pandas", "pyarrow"):  # pandas frames in and out of sf.Forecaster (docs/api.md)
        assert f'"{module}' in deps


def test_install_hints_keep_their_brackets(monkeypatch, cli):
    def app(**kw):
        raise SfError("sf tune needs Optuna: pip install -e '.[tune]'")

    monkeypatch.setattr(sf.cli, "app", app)
    code, out, err = cli("tune")
    assert code == 2 and "pip install -e '.[tune]'" in err and not out


def test_version(cli):
    from importlib.metadata import version

    code, out, err = cli("--version")
    assert code == 0 and out.strip() == f"sf {version('sf')}"


def test_results_are_not_cut_at_80_columns_when_piped(tmp_path):
    long = tmp_path / ("a-folder-name-long-enough-to-pass-eighty-columns-" * 2)
    env = {k: v for k, v in __import__("os").environ.items() if k != "COLUMNS"}
    env["PYTHONPATH"] = str(ROOT)
    p = subprocess.run([sys.executable, "-m", "sf.cli", "data", "check", str(long)], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 2 and f"error: {long}: dataset folder not found" in p.stderr.replace("\n", "")
    assert len(p.stderr.strip().splitlines()) == 1


def test_progress_goes_to_stderr_and_results_to_stdout(tmp_path, cli):
    from tests.fakes import make_dataset

    root, store = make_dataset(tmp_path / "d", n=60, horizon=4)
    code, out, err = cli("train", "--features", store, "--data", root, "--seeds", "1", "--epochs", "2",
                         "--hidden", "8", "--out", tmp_path / "r")
    assert code == 0, err
    assert "WAPE" in out and "epochs" not in out  # the metrics table, not the per-seed bars
    assert "epochs" in err
