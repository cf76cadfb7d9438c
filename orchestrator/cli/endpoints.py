"""``orch endpoints`` (create, update, list, describe, delete, metrics, logs), ``orch deploy``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import (
    client,
    console,
    done,
    emit,
    read_document,
    state,
    styled,
    when,
)
from orchestrator.cli.jobs import list_all
from orchestrator.cli.logs import print_events
from orchestrator.client import Client
from orchestrator.resources.endpoints import DescribeEndpointResponse, ListEndpointsResponse

app = typer.Typer(help="Endpoints: models served over HTTP.")

Name = Annotated[str, typer.Argument(help="Endpoint name.")]


def _wait_in_service(ctx: typer.Context, api: Client, name: str) -> DescribeEndpointResponse:
    if state(ctx).json:
        return api.wait_for_endpoint(name)
    with console.status(f"waiting for endpoint {name} to be InService"):
        return api.wait_for_endpoint(name)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Name,
    config: Annotated[str, typer.Option(help="The endpoint config to serve.")],
    public: Annotated[bool, typer.Option(help="Invocations need no API key.")] = False,
    wait: Annotated[bool, typer.Option(help="Wait until it is InService.")] = False,
) -> None:
    """Create an endpoint from an endpoint config."""
    api = client(ctx)
    arn = api.create_endpoint(
        EndpointName=name, EndpointConfigName=config, AuthMode="None" if public else "ApiKey"
    )
    if wait:
        ep = _wait_in_service(ctx, api, name)
        emit(ctx, ep, lambda: console.print(_panel(ep)))
    else:
        done(ctx, {"EndpointArn": arn}, f"creating endpoint {name} ({arn})")


@app.command("list")
def list_endpoints(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only endpoints with this status.")] = None,
    name_contains: Annotated[str | None, typer.Option(help="Only names containing this.")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow NextToken to the end.")] = False,
) -> None:
    """List endpoints."""
    resp: ListEndpointsResponse = list_all(
        client(ctx).list_endpoints, all_pages, StatusEquals=status, NameContains=name_contains
    )

    def render() -> None:
        table = Table("Name", "Status", "Created", "Modified")
        for e in resp.Endpoints:
            table.add_row(
                e.EndpointName,
                styled(e.EndpointStatus),
                when(e.CreationTime),
                when(e.LastModifiedTime),
            )
        console.print(table)

    emit(ctx, resp, render)


def _panel(ep: DescribeEndpointResponse) -> Panel:
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    info.add_row("Status", styled(ep.EndpointStatus))
    if ep.FailureReason:
        info.add_row("Failure reason", Text(ep.FailureReason, style="red"))
    serving = ep.CurrentEndpointConfigName or ep.EndpointConfigName
    info.add_row("Config", serving)
    if ep.Deployment is not None:
        d = ep.Deployment
        info.add_row(
            "Update",
            f"to {d.TargetEndpointConfigName}: {d.Phase}, {d.TrafficPercent:g}% of traffic"
            + (f" ({d.Message})" if d.Message else ""),
        )
    if ep.LastDeployment is not None:
        last = ep.LastDeployment
        style = "green" if last.Result == "Succeeded" else "yellow"
        info.add_row(
            "Last update",
            Text(
                f"{last.Result} ({last.TargetEndpointConfigName}, {when(last.EndTime)})"
                + (f": {last.Message}" if last.Message else ""),
                style=style,
            ),
        )
    info.add_row("Auth", "public (no key)" if ep.AuthMode == "None" else "API key")
    info.add_row("Created", when(ep.CreationTime))
    info.add_row("Invoke", f"orch invoke {ep.EndpointName} --body FILE")
    variants = Table("Variant", "Instances (current/desired)", "Weight (current/desired)")
    for v in ep.ProductionVariants:
        variants.add_row(
            v.VariantName,
            f"{v.CurrentInstanceCount}/{v.DesiredInstanceCount}",
            f"{v.CurrentWeight:g}/{v.DesiredWeight:g}",
        )
    return Panel(Group(info, variants), title=f"[bold]{ep.EndpointName}[/bold]", expand=False)


@app.command("update")
def update(
    ctx: typer.Context,
    name: Name,
    *,
    config: Annotated[str, typer.Option(help="The endpoint config to move to.")],
    deployment_config: Annotated[
        Path | None,
        typer.Option(help="A DeploymentConfig as a JSON or YAML file (blue/green policy)."),
    ] = None,
    canary: Annotated[
        int | None, typer.Option(help="Canary: this percent of traffic first, then the rest.")
    ] = None,
    linear: Annotated[
        int | None, typer.Option(help="Linear: move this percent of traffic per step.")
    ] = None,
    bake: Annotated[int, typer.Option(help="Seconds to watch each traffic step.")] = 0,
    wait: Annotated[bool, typer.Option(help="Wait until the update ends.")] = False,
) -> None:
    """Move an endpoint to another config by a blue/green deployment (rolls back by itself)."""
    policy = _deployment_policy(deployment_config, canary, linear, bake)
    api = client(ctx)
    arn = api.update_endpoint(name, config, deployment_config=policy)
    if not wait:
        done(ctx, {"EndpointArn": arn}, f"updating endpoint {name} to {config}")
        return
    if state(ctx).json:
        ep = api.wait_for_update(name)
    else:
        with console.status(f"updating endpoint {name} to {config}"):
            ep = api.wait_for_update(name)
    emit(ctx, ep, lambda: console.print(_panel(ep)))
    if ep.LastDeployment is not None and ep.LastDeployment.Result == "RolledBack":
        raise typer.Exit(1)


def _deployment_policy(
    path: Path | None, canary: int | None, linear: int | None, bake: int
) -> dict[str, Any] | None:
    if path is not None:
        if canary is not None or linear is not None:
            raise typer.BadParameter(
                "give either --deployment-config or --canary/--linear", param_hint="--canary"
            )
        return read_document(path, "--deployment-config")
    if canary is not None and linear is not None:
        raise typer.BadParameter("give --canary or --linear, not both", param_hint="--linear")
    routing: dict[str, Any] = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": bake}
    if canary is not None:
        routing.update(Type="CANARY", CanarySize={"Type": "CAPACITY_PERCENT", "Value": canary})
    if linear is not None:
        routing.update(Type="LINEAR", LinearStepSize={"Type": "CAPACITY_PERCENT", "Value": linear})
    if canary is None and linear is None and not bake:
        return None
    return {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing}}


@app.command("describe")
def describe(ctx: typer.Context, name: Name) -> None:
    """Show an endpoint: status, variants and their replicas."""
    ep = client(ctx).describe_endpoint(name)
    emit(ctx, ep, lambda: console.print(_panel(ep)))


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: Name,
    wait: Annotated[bool, typer.Option(help="Wait until it is gone.")] = False,
) -> None:
    """Delete an endpoint (its config and model stay)."""
    api = client(ctx)
    api.delete_endpoint(name)
    if wait:
        api.wait_for_endpoint_deleted(name)
    done(ctx, {"EndpointName": name}, f"{'deleted' if wait else 'deleting'} endpoint {name}")


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "Microseconds":
        return f"{value / 1000:,.2f} ms" if value >= 1000 else f"{value:,.0f} us"
    if unit == "Percent":
        return f"{value:.1f} %"
    return f"{value:,.6g}"


@app.command("metrics")
def endpoint_metrics(
    ctx: typer.Context,
    name: Name,
    *,
    metric: Annotated[
        str,
        typer.Option(
            "--metric",
            "-m",
            help="Invocations, Invocation4XXErrors, Invocation5XXErrors, "
            "InvocationsPerInstance, ModelLatency, OverheadLatency, ConcurrentRequests, "
            "ModelSetupTime, CPUUtilization or MemoryUtilization.",
        ),
    ] = "Invocations",
    period: Annotated[int, typer.Option(help="Seconds per datapoint.")] = 60,
    stat: Annotated[
        list[str] | None,
        typer.Option(
            "--stat",
            "-s",
            help="Sum, Average, Minimum, Maximum, SampleCount, p50, p99... "
            "(repeat for several; default Sum).",
        ),
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="ISO 8601 time (default: an hour before --end).")
    ] = None,
    end: Annotated[str | None, typer.Option(help="ISO 8601 time (default: now).")] = None,
    variant: Annotated[str | None, typer.Option(help="Only this variant.")] = None,
) -> None:
    """An endpoint's metric by period (CloudWatch's GetMetricStatistics)."""
    stats = stat or ["Sum"]
    resp = client(ctx).endpoint_metrics(
        name,
        metric,
        period=period,
        statistics=stats,
        start=_when_option(start, "--start"),
        end=_when_option(end, "--end"),
        variant=variant,
    )

    def render() -> None:
        if not resp.Datapoints:
            console.print(f"no datapoints for {resp.Label} of {name} in that window", markup=False)
            return
        unit = resp.Datapoints[0].Unit
        table = Table("Time", *stats, title=f"{name} {resp.Label} ({unit}, {period} s)")
        for p in resp.Datapoints:
            extended = p.ExtendedStatistics or {}
            cells = [_number(getattr(p, s, None) if s[0] != "p" else extended.get(s), unit)
                     for s in stats]  # fmt: skip
            table.add_row(when(p.Timestamp), *cells)
        console.print(table)

    emit(ctx, resp, render)


@app.command("logs")
def endpoint_logs(  # noqa: PLR0917 - one option per query parameter
    ctx: typer.Context,
    name: Name,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until interrupted.")
    ] = False,
    variant: Annotated[str | None, typer.Option(help="Only this variant's replicas.")] = None,
    filter: Annotated[
        str | None, typer.Option(help="CloudWatch filter pattern (ERROR, ?A ?B, -x).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="From this time on: 10m, 2h, ISO 8601 or epoch ms.")
    ] = None,
) -> None:
    """Print an endpoint's replica logs (group /aws/sagemaker/Endpoints/NAME), one stream
    ``VARIANT/INSTANCE`` per replica, in time order."""
    print_events(
        ctx, client(ctx), f"/aws/sagemaker/Endpoints/{name}",
        stream_prefix=f"{variant}/" if variant else None, pattern=filter, since=since,
        follow=follow,
    )  # fmt: skip


def _when_option(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 time (e.g. 2026-01-01T12:00:00Z)", param_hint=option
        ) from None
    return t if t.tzinfo is not None else t.astimezone()


def deploy(
    ctx: typer.Context,
    *,
    model_data: Annotated[str, typer.Argument(help="The model artifact, s3://... or file://...")],
    name: Annotated[str, typer.Option(help="Name of the model, config and endpoint.")],
    program: Annotated[str | None, typer.Option(help="Script that serves the model.")] = None,
    source: Annotated[
        str | None, typer.Option(help="URI of the script's sourcedir.tar.gz.")
    ] = None,
    instance_count: Annotated[int, typer.Option(help="Replicas.")] = 1,
    instance_type: Annotated[str, typer.Option(help="Instance type.")] = "local",
    public: Annotated[bool, typer.Option(help="Invocations need no API key.")] = False,
) -> None:
    """Serve a model artifact: create a model, an endpoint config and an endpoint; wait."""
    api = client(ctx)
    api.deploy_model(
        name,
        model_data,
        program=program,
        source=source,
        instance_count=instance_count,
        instance_type=instance_type,
        public=public,
    )
    ep = _wait_in_service(ctx, api, name)
    emit(ctx, ep, lambda: console.print(_panel(ep)))
