"""Project commands: Kedro's own, plus ``kedro warehouse status|stop`` for the embedded server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from kedro.framework.cli.project import run  # noqa: F401 - Kedro looks up the run command here


@click.group(name="customer_segmentation")
def cli() -> None:
    """Project-specific commands."""


def _warehouse_dir(metadata: Any, env: str | None) -> Path:
    """``warehouse.embedded_dir`` of the project (default data/warehouse)."""
    from kedro.config import OmegaConfigLoader

    project = Path(getattr(metadata, "project_path", None) or Path.cwd())
    loader = OmegaConfigLoader(
        conf_source=str(project / "conf"), base_env="base", default_run_env="local", env=env
    )
    params = (loader["parameters"] or {}).get("warehouse") or {}
    return project / str(params.get("embedded_dir") or "data/warehouse")


@cli.group()
def warehouse() -> None:
    """The shared embedded warehouse server (started on demand by every client)."""


@warehouse.command()
@click.option("--env", "-e", default=None, help="Kedro configuration environment.")
@click.pass_obj
def status(metadata: Any, env: str | None) -> None:
    """Show the running server's address, owner and activity."""
    import json

    from customer_segmentation.warehouse import embedded

    path = _warehouse_dir(metadata, env)
    info = embedded.server_status(path)
    if info is None:
        click.echo(f"No embedded warehouse server is running for {path}.")
        raise SystemExit(1)
    click.echo(json.dumps(info, indent=2, sort_keys=True))


@warehouse.command()
@click.option("--env", "-e", default=None, help="Kedro configuration environment.")
@click.pass_obj
def stop(metadata: Any, env: str | None) -> None:
    """Stop the server now (it also stops by itself after warehouse.idle_timeout_seconds)."""
    from customer_segmentation.warehouse import embedded

    path = _warehouse_dir(metadata, env)
    if embedded.stop_server(path):
        click.echo(f"Stopped the embedded warehouse server for {path}.")
    else:
        click.echo(f"No embedded warehouse server was running for {path}.")
