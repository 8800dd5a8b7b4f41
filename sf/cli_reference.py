"""docs/cli.md, generated from the CLI itself so the reference cannot drift from `--help`.

Regenerate after changing a command or an option:  python -m sf.cli_reference --write
(tests/test_docs.py fails while docs/cli.md differs from what this prints).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"

# Where each command's manual lives (prose, examples, outputs); commands not listed get no link.
TOPIC = {
    "data check": "data.md", "import visuelle": "data.md", "demo-data": "data.md",
    "extract": "extract.md", "cache info": "extract.md", "cache verify": "extract.md", "cache merge": "extract.md",
    "train": "train.md", "ablate": "studies.md", "compare": "studies.md",
    "demo": "apply.md", "predict": "apply.md", "evaluate": "apply.md", "explain": "apply.md", "report": "report.md",
}


def _commands(group: click.Group, prefix: str = ""):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        path = f"{prefix}{name}"
        # Typer may ship its own copy of click, so its classes are not `click.Group`: ask what it can do.
        if hasattr(cmd, "list_commands"):
            yield from _commands(cmd, path + " ")
        else:
            yield path, cmd


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _param_row(param: click.Parameter) -> str:
    if param.param_type_name == "argument":
        name = f"`{param.name.upper()}`"
        default = "(required)" if param.required else ""
    else:
        names = list(param.opts) + list(param.secondary_opts)
        name = ", ".join(f"`{n}`" for n in names)
        if param.required:
            default = "(required)"
        elif getattr(param, "is_flag", False) or param.default is None or param.default is False:
            default = ""
        else:
            default = f"`{param.default}`"
    return f"| {name} | {default} | {_cell(getattr(param, 'help', '') or '')} |"


def render() -> str:
    import typer.main

    from sf.cli import app

    root = typer.main.get_command(app)
    out = [
        "# CLI reference",
        "",
        "Generated from the commands themselves by `python -m sf.cli_reference --write` (a test fails when this",
        "file and `sf COMMAND --help` disagree). The prose, examples and outputs of each command are in the",
        "linked topic page.",
        "",
    ]
    for path, cmd in _commands(root):
        ctx = click.Context(cmd, info_name=f"sf {path}")
        usage = " ".join(cmd.collect_usage_pieces(ctx))
        out += [f"## `sf {path}`", ""]
        paragraphs = [p.strip() for p in (cmd.help or "").strip().split("\n\n") if p.strip()]
        out += [" ".join(p.split()) + "\n" for p in paragraphs]
        out += [f"Usage: `sf {path} {usage}`" + (f" — manual: [{TOPIC[path]}]({TOPIC[path]})" if path in TOPIC else ""), ""]
        params = [p for p in cmd.params if p.name != "help" and not getattr(p, "hidden", False)]
        if params:
            out += ["| argument / option | default | meaning |", "| --- | --- | --- |"]
            out += [_param_row(p) for p in params]
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if "--write" in argv:
        DOC.write_text(text)
        print(f"wrote {DOC}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
