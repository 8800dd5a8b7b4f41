"""The `sf` command line: parse, call, print. All work lives in the packages it calls."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from sf.errors import SfError

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    help="Forecast new-product sales from images, descriptions and sales history.\n\n"
    "Two stages: `sf extract` runs frozen backbones once into an HDF5 feature store; "
    "`sf train` trains fusion + forecasting heads from that store.\n\n"
    "Example: sf demo-data demo_data && sf extract --data demo_data && sf train --features cache/demo_data_resnet101.h5 --data demo_data",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)
data_app = typer.Typer(help="Validate and summarise dataset folders.", no_args_is_help=True)
import_app = typer.Typer(help="Convert public datasets into sf's data contract.", no_args_is_help=True)
cache_app = typer.Typer(help="Inspect, verify and merge HDF5 feature stores.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(import_app, name="import")
app.add_typer(cache_app, name="cache")


# ---------------------------------------------------------------- data contract (issue: foundation)


@data_app.command("check")
def data_check(
    data: Path = typer.Argument(..., help="Dataset folder (products, sales, optional exog, images/)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the summary as JSON here."),
) -> None:
    """Validate a dataset folder against the contract and summarise it.

    Example: sf data check demo_data
    """
    from sf.data.check import check_dataset, print_summary, write_json

    summary = check_dataset(data)
    print_summary(summary, console)
    if json_out:
        write_json(summary, json_out)


@import_app.command("visuelle")
def import_visuelle(
    src: Path = typer.Argument(..., help="VISUELLE folder: train.csv [test.csv], gtrends.csv, normalization_scale.npy, images/."),
    out: Path = typer.Argument(..., help="Output dataset folder (created; must not exist or be empty unless --force)."),
    force: bool = typer.Option(False, help="Replace an existing output folder."),
) -> None:
    """Convert VISUELLE's wide CSVs into the data contract (units = value x scale).

    Example: sf import visuelle ../shared/data/visuelle data/visuelle
    """
    from sf.data.visuelle import import_visuelle as run

    summary = run(src, out, force=force)
    console.print(summary)


@app.command("demo-data")
def demo_data(
    out: Path = typer.Argument(Path("demo_data"), help="Output dataset folder."),
    products: int = typer.Option(300, "--products", "-n", help="Number of products."),
    seed: int = typer.Option(0, help="Random seed; same seed, same catalogue."),
    weeks: int = typer.Option(12, help="Weeks of sales per product."),
    image_size: int = typer.Option(128, help="Image side in pixels."),
    force: bool = typer.Option(False, help="Replace an existing output folder."),
) -> None:
    """Generate a synthetic catalogue whose sales depend on what products look like and say.

    Example: sf demo-data demo_data --products 300 --seed 0
    """
    from sf.data.demo import DemoConfig, generate

    path = generate(DemoConfig(out=out, products=products, seed=seed, weeks=weeks, image_size=image_size), force=force)
    console.print(f"demo catalogue written to [bold]{path}[/] ({products} products, seed {seed})")


# ---------------------------------------------------------------- stage 1 (issue: extract + store)

# ---------------------------------------------------------------- stage 2 (issue: train)

# ---------------------------------------------------------------- ablate / compare

# ---------------------------------------------------------------- predict / evaluate / explain / demo


def main(argv: list[str] | None = None) -> None:
    """Entry point: SfError becomes one line on stderr and exit code 2, never a traceback."""
    try:
        app(args=argv, prog_name="sf")
    except SfError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
