"""``orch models`` and ``orch endpoint-configs``: create, list, describe, delete."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import client, console, done, emit, parse_pairs, when
from orchestrator.cli.jobs import list_all
from orchestrator.resources.endpoints import (
    DescribeEndpointConfigResponse,
    ListEndpointConfigsResponse,
)
from orchestrator.resources.models import (
    PROGRAM_ENV,
    SUBMIT_DIR_ENV,
    DescribeModelResponse,
    ListModelsResponse,
)

models = typer.Typer(help="Models: an artifact and the code that serves it.")
configs = typer.Typer(help="Endpoint configs: which models serve, on how many instances.")

AllPages = Annotated[bool, typer.Option("--all", help="Follow NextToken to the end.")]
NameContains = Annotated[str | None, typer.Option(help="Only names containing this.")]


def container(
    model_data: str, program: str | None, source: str | None, env: dict[str, str]
) -> dict[str, Any]:
    environment = dict(env)
    if program:
        environment[PROGRAM_ENV] = program
    if source:
        environment[SUBMIT_DIR_ENV] = source
    return {"ModelDataUrl": model_data, "Environment": environment}


@models.command("create")
def create_model(
    ctx: typer.Context,
    *,
    name: Annotated[str, typer.Argument(help="Model name.")],
    model_data: Annotated[str, typer.Option(help="The model artifact, s3://... or file://...")],
    program: Annotated[str | None, typer.Option(help="Script that serves the model.")] = None,
    source: Annotated[
        str | None, typer.Option(help="URI of the script's sourcedir.tar.gz.")
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="Environment KEY=VALUE (repeatable)."),
    ] = None,
) -> None:
    """Create a model."""
    primary = container(model_data, program, source, parse_pairs(env, "--env"))
    arn = client(ctx).create_model(ModelName=name, PrimaryContainer=primary)
    done(ctx, {"ModelArn": arn}, f"created model {name} ({arn})")


@models.command("list")
def list_models(
    ctx: typer.Context, name_contains: NameContains = None, all_pages: AllPages = False
) -> None:
    """List models."""
    resp: ListModelsResponse = list_all(
        client(ctx).list_models, all_pages, NameContains=name_contains
    )

    def render() -> None:
        table = Table("Name", "Created")
        for m in resp.Models:
            table.add_row(m.ModelName, when(m.CreationTime))
        console.print(table)

    emit(ctx, resp, render)


@models.command("describe")
def describe_model(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Show a model."""
    m: DescribeModelResponse = client(ctx).describe_model(name)

    def render() -> None:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row("ARN", m.ModelArn)
        grid.add_row("Created", when(m.CreationTime))
        for i, c in enumerate(m.serving_containers):
            grid.add_row(f"Container {i} model data", Text(c.ModelDataUrl or "-"))
            if c.Image:
                grid.add_row(f"Container {i} image", Text(c.Image))
            for k, v in sorted(c.Environment.items()):
                grid.add_row(Text(f"  {k}"), Text(v))
        console.print(Panel(grid, title=f"[bold]{m.ModelName}[/bold]", expand=False))

    emit(ctx, m, render)


@models.command("delete")
def delete_model(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Delete a model."""
    client(ctx).delete_model(name)
    done(ctx, {"ModelName": name}, f"deleted model {name}")


@configs.command("create")
def create_config(
    ctx: typer.Context,
    *,
    name: Annotated[str, typer.Argument(help="Endpoint config name.")],
    model: Annotated[str, typer.Option(help="The model to serve.")],
    variant: Annotated[str, typer.Option(help="Variant name.")] = "AllTraffic",
    instance_count: Annotated[int, typer.Option(help="Replicas.")] = 1,
    instance_type: Annotated[str, typer.Option(help="Instance type.")] = "local",
) -> None:
    """Create an endpoint config with one production variant."""
    arn = client(ctx).create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": variant,
                "ModelName": model,
                "InitialInstanceCount": instance_count,
                "InstanceType": instance_type,
            }
        ],
    )
    done(ctx, {"EndpointConfigArn": arn}, f"created endpoint config {name} ({arn})")


@configs.command("list")
def list_configs(
    ctx: typer.Context, name_contains: NameContains = None, all_pages: AllPages = False
) -> None:
    """List endpoint configs."""
    resp: ListEndpointConfigsResponse = list_all(
        client(ctx).list_endpoint_configs, all_pages, NameContains=name_contains
    )

    def render() -> None:
        table = Table("Name", "Created")
        for c in resp.EndpointConfigs:
            table.add_row(c.EndpointConfigName, when(c.CreationTime))
        console.print(table)

    emit(ctx, resp, render)


@configs.command("describe")
def describe_config(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Show an endpoint config and its variants."""
    c: DescribeEndpointConfigResponse = client(ctx).describe_endpoint_config(name)

    def render() -> None:
        table = Table("Variant", "Model", "Instances", "Type", "Weight")
        for v in c.ProductionVariants:
            table.add_row(
                v.VariantName,
                v.ModelName,
                str(v.InitialInstanceCount),
                v.InstanceType,
                f"{v.InitialVariantWeight:g}",
            )
        console.print(Panel(table, title=f"[bold]{c.EndpointConfigName}[/bold]", expand=False))

    emit(ctx, c, render)


@configs.command("delete")
def delete_config(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Delete an endpoint config."""
    client(ctx).delete_endpoint_config(name)
    done(ctx, {"EndpointConfigName": name}, f"deleted endpoint config {name}")
