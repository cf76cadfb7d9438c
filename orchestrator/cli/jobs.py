"""``orch jobs``: list, describe, logs, metrics, stop, preempt, delete and wait for training
jobs."""

from __future__ import annotations

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
    print_log,
    since,
    state,
    styled,
    when,
)
from orchestrator.cli.evaluation import render_evaluation
from orchestrator.cli.metricsview import render_metrics, usage_table
from orchestrator.cli.train import finish, watch
from orchestrator.errors import NotFoundError
from orchestrator.resources.training import (
    DescribeTrainingJobResponse,
    ListTrainingJobsResponse,
    TrainingJobSummary,
)

app = typer.Typer(help="Training jobs: list, describe, logs, stop, delete, wait.")

Name = Annotated[str, typer.Argument(help="Training job name.")]


def list_all(fetch: Any, follow: bool, **params: Any) -> Any:
    """Call a List operation; with ``follow``, follow NextToken and join the pages."""
    page = fetch(**params)
    first = page
    while follow and page.NextToken:
        page = fetch(**params, NextToken=page.NextToken)
        for field in type(first).model_fields:
            items = getattr(first, field)
            if isinstance(items, list):
                items.extend(getattr(page, field))
    if follow:
        first.NextToken = None
    return first


@app.command("list")
def list_jobs(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only jobs with this status.")] = None,
    name_contains: Annotated[str | None, typer.Option(help="Only names containing this.")] = None,
    max_results: Annotated[int | None, typer.Option("--max", help="Page size (1-100).")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow NextToken to the end.")] = False,
) -> None:
    """List training jobs, newest first."""
    resp: ListTrainingJobsResponse = list_all(
        client(ctx).list_training_jobs,
        all_pages,
        StatusEquals=status,
        NameContains=name_contains,
        MaxResults=max_results,
    )
    emit(ctx, resp, lambda: _print_list(resp.TrainingJobSummaries, resp.NextToken))


def _print_list(jobs: list[TrainingJobSummary], next_token: str | None) -> None:
    table = Table("Name", "Status", "Secondary", "Created", "Duration")
    for j in jobs:
        secondary = j.SecondaryStatus or "-"
        if j.QueuePosition is not None:
            secondary = f"{secondary} #{j.QueuePosition}"
        if j.StatusMessage:
            secondary = f"{secondary}: {j.StatusMessage}"
        table.add_row(
            j.TrainingJobName,
            styled(j.TrainingJobStatus),
            Text(secondary),
            when(j.CreationTime),
            since(j.CreationTime, j.TrainingEndTime),
        )
    console.print(table)
    if next_token:
        console.print("[dim]more jobs: use --all to list them all[/dim]")


@app.command()
def describe(ctx: typer.Context, name: Name) -> None:
    """Show a training job: status, transitions, metrics, artifact, hyperparameters."""
    api = client(ctx)
    job = api.describe_training_job(name)
    evaluation: list[Any] = []
    if not state(ctx).json and job.TrainingJobStatus == "Completed":
        try:
            evaluation = render_evaluation(api.training_job_evaluation(name))
        except NotFoundError:
            evaluation = []  # the job wrote no evaluation.json: nothing more to show
    if not state(ctx).json:
        usage = usage_table(api.training_job_metrics(name))
        evaluation = [*([usage] if usage is not None else []), *evaluation]
    emit(ctx, job, lambda: console.print(_panel(job, evaluation)))


def _panel(job: DescribeTrainingJobResponse, evaluation: list[Any] | None = None) -> Panel:
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    info.add_row("Status", f"{styled(job.TrainingJobStatus)} ({job.SecondaryStatus})")
    if job.QueuePosition is not None:
        info.add_row("Queue position", str(job.QueuePosition))
    if job.FailureReason:
        info.add_row("Failure reason", Text(job.FailureReason, style="red"))
    if job.StopReason:
        info.add_row("Stop reason", Text(job.StopReason))
    info.add_row("Created", when(job.CreationTime))
    info.add_row(
        "Instance", f"{job.ResourceConfig.InstanceCount} x {job.ResourceConfig.InstanceType}"
    )
    info.add_row("Model artifact", Text(job.ModelArtifacts.S3ModelArtifacts or "-"))
    if job.Attempt:
        note = f" ({job.PreemptionCount} preempted)" if job.PreemptionCount else ""
        info.add_row("Attempt", f"{job.Attempt}{note}")
    if job.NextAttemptTime:
        info.add_row("Next attempt", when(job.NextAttemptTime))
    if job.BillableTimeInSeconds is not None:
        info.add_row(
            "Time",
            f"{job.TrainingTimeInSeconds} s training, {job.BillableTimeInSeconds} s billable",
        )
    parts: list[Any] = [info]
    if job.Attempts:
        t = Table("Attempt", "Start", "End", "Outcome", "Retried", "Reason", title="Attempts")
        for a in job.Attempts:
            t.add_row(
                str(a.AttemptNumber),
                when(a.StartTime),
                when(a.EndTime),
                styled(a.Outcome),
                "yes" if a.Retried else "no",
                Text(a.FailureReason or ""),
            )
        parts.append(t)
    if job.SecondaryStatusTransitions:
        t = Table("Status", "Start", "End", "Message", title="Status transitions")
        for tr in job.SecondaryStatusTransitions:
            t.add_row(tr.Status, when(tr.StartTime), when(tr.EndTime), Text(tr.StatusMessage))
        parts.append(t)
    if job.FinalMetricDataList:
        t = Table("Metric", "Value", "Time", title="Metrics")
        for m in job.FinalMetricDataList:
            t.add_row(m.MetricName, f"{m.Value:g}", when(m.Timestamp))
        parts.append(t)
    parts.extend(evaluation or [])
    if job.HyperParameters:
        t = Table("Hyperparameter", "Value", title="Hyperparameters")
        for k, v in sorted(job.HyperParameters.items()):
            t.add_row(Text(k), Text(v))
        parts.append(t)
    return Panel(Group(*parts), title=f"[bold]{job.TrainingJobName}[/bold]", expand=False)


@app.command()
def export(
    ctx: typer.Context,
    name: Name,
    format: Annotated[str, typer.Option("--format", help="Export format.")] = "tflite",
) -> None:
    """Export a built-in algorithm job's model for the edge, checked against the SavedModel."""
    report = client(ctx).export_model(name, format=format)
    if state(ctx).json:
        console.print_json(data=report)
        return
    console.print(
        f"exported [bold]{name}[/bold] as {report['Format']}: {report['ArtifactUri']} "
        f"({report['SizeBytes']} bytes); {report['RowsChecked']} test rows agree with the "
        f"SavedModel within {report['MaxScaledDifference']:.2g} "
        f"(max abs {report['MaxAbsDifference']:.2g})"
    )


@app.command()
def logs(
    ctx: typer.Context,
    name: Name,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")
    ] = False,
    attempt: Annotated[
        int | None,
        typer.Option("--attempt", min=1, help="Only this attempt's log (default: every attempt)."),
    ] = None,
    tail: Annotated[
        int | None,
        typer.Option(
            "--tail", min=1, max=4 << 20, help="Start at the log's last BYTES (a whole line)."
        ),
    ] = None,
) -> None:
    """Print a training job's log: every attempt, each starting with a line naming it."""
    api = client(ctx)
    first = api.training_job_logs(name, tail=tail) if tail is not None else None
    print_log(
        lambda at: api.training_job_logs(name, at, attempt=attempt), follow=follow, first=first
    )


@app.command()
def stop(ctx: typer.Context, name: Name) -> None:
    """Stop a running training job (SIGTERM, then SIGKILL after the grace period)."""
    client(ctx).stop_training_job(name)
    done(ctx, {"TrainingJobName": name, "TrainingJobStatus": "Stopping"}, f"stopping {name}")


@app.command()
def preempt(ctx: typer.Context, name: Name) -> None:
    """Give a running spot job's capacity back: it is stopped with its grace and waits in the
    queue again, resuming from its checkpoints (EnableManagedSpotTraining jobs only)."""
    client(ctx).preempt_training_job(name)
    done(ctx, {"TrainingJobName": name, "TrainingJobStatus": "InProgress"}, f"preempting {name}")


@app.command()
def delete(ctx: typer.Context, name: Name) -> None:
    """Delete a training job's record (it must have ended)."""
    client(ctx).delete_training_job(name)
    done(ctx, {"TrainingJobName": name}, f"deleted {name}")


@app.command()
def wait(
    ctx: typer.Context,
    name: Name,
    logs: Annotated[bool, typer.Option("--logs/--no-logs", help="Stream the log.")] = False,
) -> None:
    """Wait until a training job ends; exit 1 unless it completed."""
    finish(ctx, watch(client(ctx), name, logs=logs, as_json=state(ctx).json))


@app.command()
def metrics(
    ctx: typer.Context,
    name: Name,
    metric: Annotated[str | None, typer.Option(help="Only this metric.")] = None,
    chart: Annotated[bool, typer.Option("--chart", help="A small chart per metric.")] = False,
    last: Annotated[
        int, typer.Option(min=0, help="Rows per metric in the table: the latest N (0: all).")
    ] = 50,
) -> None:
    """Show every value of each metric a training job printed (time, step, epoch)."""
    resp = client(ctx).training_job_metrics(name, metric=metric)
    emit(ctx, resp, lambda: console.print(*render_metrics(resp, as_chart=chart, last=last)))
