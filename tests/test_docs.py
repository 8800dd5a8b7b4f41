"""The docs a newcomer reads stay short, true to the CLI, and linked: README <= 200 lines, docs/cli.md is what
`--help` says, every command has its README line, every relative link and anchor resolves."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from sf.cli import app
from sf.cli_reference import DOC, _commands, render

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def test_cli_reference_is_generated_from_help():
    assert DOC.read_text() == render(), "docs/cli.md is stale: run `python -m sf.cli_reference --write`"


def test_cli_reference_lists_every_option_of_every_command():
    text = DOC.read_text()
    root = typer.main.get_command(app)
    checked = set()
    for path, cmd in _commands(root):
        section = text.split(f"## `sf {path}`\n")[1].split("\n## ")[0]
        for param in cmd.params:
            # param_type_name, not isinstance: Typer may bundle its own click, whose classes differ.
            if param.param_type_name == "option" and param.name != "help":
                assert f"`{param.opts[0]}`" in section, (path, param.opts)
                checked.add(path)
    # Guard against this test passing vacuously: the options of every command (and of sub-commands) are seen.
    assert {"train", "extract", "cache info", "cache merge", "data check"} <= checked, sorted(checked)


def test_every_command_has_its_line_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Commands")[1].split("\n## ")[0]
    root = typer.main.get_command(app)
    for path, _ in _commands(root):
        top = path.split()[0]
        assert re.search(rf"`sf {re.escape(top)}[ `]", table), f"README's command table lacks `sf {path}`"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_and_anchors_resolve():
    for doc in DOCS:
        text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (doc.parent / file).resolve() if file else doc
            assert dest.exists(), f"{doc.name}: link to missing {target}"
            if anchor and dest.suffix == ".md":
                anchors = {_slug(h) for h in re.findall(r"^#+ (.*)$", dest.read_text(), flags=re.M)}
                assert anchor in anchors, f"{doc.name}: no heading for #{anchor} in {dest.name}"
