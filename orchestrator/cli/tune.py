"""``orch tune``: create, list, describe, watch, stop and delete hyperparameter tuning jobs, and
list their trials. ``watch`` (and ``create --watch``) keeps a live table of the trials (status,
tuned values, objective, the best so far) until the tuning job ends."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import (
    client,
    console,
    done,
    emit,
    print_json,
    read_document,
    since,
    state,
    styled,
    when,
)
from orchestrator.cli.jobs import list_all
from orchestrator.client import Client
from orchestrator.resources.tuning import (
    DescribeHyperParameterTuningJobResponse,
    HyperParameterTrainingJobSummary,
    HyperParameterTuningJobSummary,
    ListHyperParameterTuningJobsResponse,
    TuningJobStatus,
)

app = typer.Typer(help="Hyperparameter tuning jobs: create, list, describe, trials, watch, stop.")

Name = Annotated[str, typer.Argument(help="Tuning job name.")]
SORTS = ("Name", "CreationTime", "Status", "FinalObjectiveMetricValue")


@app.command()
def create(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="A CreateHyperParameterTuningJob request (JSON or YAML).")
    ],
    watch_it: Annotated[
        bool, typer.Option("--watch", help="Then show the trials live until it ends.")
    ] = False,
    poll: Annotated[float, typer.Option(help="Seconds between refreshes (--watch).")] = 2.0,
    timeout: Annotated[
        float | None, typer.Option(help="With --watch: give up after this many seconds.")
    ] = None,
) -> None:
    """Create a tuning job from a file (SageMaker's CreateHyperParameterTuningJob document)."""
    doc = read_document(file, "FILE")
    api = client(ctx)
    arn = api.create_tuning_job(doc)
    name = str(doc.get("HyperParameterTuningJobName", ""))
    if not watch_it:
        done(ctx, {"HyperParameterTuningJobArn": arn}, f"created {arn}")
        return
    if not state(ctx).json:
        console.print(f"created {arn}", markup=False)
    _watch(ctx, api, name, poll=poll, timeout=timeout)


@app.command("list")
def list_jobs(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only tuning jobs with this status.")] = None,
    name_contains: Annotated[str | None, typer.Option(help="Only names containing this.")] = None,
    max_results: Annotated[int | None, typer.Option("--max", help="Page size (1-100).")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow NextToken to the end.")] = False,
) -> None:
    """List tuning jobs, newest first."""
    resp: ListHyperParameterTuningJobsResponse = list_all(
        client(ctx).list_tuning_jobs,
        all_pages,
        StatusEquals=status,
        NameContains=name_contains,
        MaxResults=max_results,
    )
    emit(ctx, resp, lambda: _print_list(resp.HyperParameterTuningJobSummaries, resp.NextToken))


def _print_list(jobs: list[HyperParameterTuningJobSummary], next_token: str | None) -> None:
    table = Table("Name", "Status", "Strategy", "Trials (done/max)", "Failed", "Created", "Ran")
    for j in jobs:
        c = j.TrainingJobStatusCounters
        limit = j.ResourceLimits.MaxNumberOfTrainingJobs if j.ResourceLimits else None
        table.add_row(
            j.HyperParameterTuningJobName,
            styled(j.HyperParameterTuningJobStatus),
            j.Strategy,
            f"{c.Completed + c.Stopped}/{limit if limit is not None else '-'}",
            str(c.RetryableError + c.NonRetryableError),
            when(j.CreationTime),
            since(j.CreationTime, j.HyperParameterTuningEndTime),
        )
    console.print(table)
    if next_token:
        console.print("[dim]more tuning jobs: use --all to list them all[/dim]")


@app.command()
def describe(ctx: typer.Context, name: Name) -> None:
    """Show a tuning job: status, counters, objective, the best trial."""
    job = client(ctx).describe_tuning_job(name)
    emit(ctx, job, lambda: console.print(_panel(job)))


def _panel(job: DescribeHyperParameterTuningJobResponse) -> Panel:
    config = job.HyperParameterTuningJobConfig
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    info.add_row("Status", styled(job.HyperParameterTuningJobStatus))
    if job.FailureReason:
        info.add_row("Failure reason", Text(job.FailureReason, style="red"))
    if job.CompletionReason:
        info.add_row("Ended because", Text(job.CompletionReason))
    info.add_row("Strategy", config.Strategy)
    objective = job.objective_of(0)
    info.add_row("Objective", Text(f"{objective.Type} {objective.MetricName}"))
    limits = config.ResourceLimits
    info.add_row(
        "Limits",
        f"{limits.MaxNumberOfTrainingJobs or '-'} trials, {limits.MaxParallelTrainingJobs} at once",
    )
    c = job.TrainingJobStatusCounters
    info.add_row(
        "Trials",
        f"{c.Completed} completed, {c.InProgress} in progress, {c.Stopped} stopped, "
        f"{c.RetryableError + c.NonRetryableError} failed",
    )
    info.add_row("Created", when(job.CreationTime))
    info.add_row("Ran", since(job.CreationTime, job.HyperParameterTuningEndTime))
    parts: list[Any] = [info]
    best = job.BestTrainingJob
    if best is not None:
        t = Table("Hyperparameter", "Value", title=f"Best: {best.TrainingJobName}")
        metric = best.FinalHyperParameterTuningJobObjectiveMetric
        if metric is not None:
            t.add_row(Text(metric.MetricName, style="bold"), f"{metric.Value:g}")
        for k, v in sorted(best.TunedHyperParameters.items()):
            t.add_row(Text(k), Text(_value(v)))
        parts.append(t)
    return Panel(
        Group(*parts), title=f"[bold]{job.HyperParameterTuningJobName}[/bold]", expand=False
    )


@app.command()
def trials(
    ctx: typer.Context,
    name: Name,
    sort: Annotated[str, typer.Option("--sort", help=f"One of {', '.join(SORTS)}.")] = "Name",
    order: Annotated[
        str | None,
        typer.Option(help="Ascending or Descending (default: best first by objective)."),
    ] = None,
    status: Annotated[str | None, typer.Option(help="Only trials with this status.")] = None,
) -> None:
    """List a tuning job's trials (ListTrainingJobsForHyperParameterTuningJob)."""
    api = client(ctx)
    job = api.describe_tuning_job(name)
    if order is None:
        maximize = job.objective_of(0).Type == "Maximize"
        by_objective = sort == "FinalObjectiveMetricValue"
        order = "Descending" if by_objective and maximize else "Ascending"
    rows = api.all_tuning_job_trials(name, sort_by=sort, sort_order=order)
    if status is not None:
        rows = [r for r in rows if r.TrainingJobStatus == status]
    if state(ctx).json:
        print_json({"TrainingJobSummaries": [r.model_dump(mode="json") for r in rows]})
        return
    console.print(trial_table(job, rows))


@app.command()
def watch(
    ctx: typer.Context,
    name: Name,
    poll: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds.")] = None,
) -> None:
    """Show the trials live until the tuning job ends; exit 1 if it failed."""
    _watch(ctx, client(ctx), name, poll=poll, timeout=timeout)


def _watch(
    ctx: typer.Context, api: Client, name: str, *, poll: float, timeout: float | None
) -> None:
    as_json = state(ctx).json
    if as_json:
        job = api.wait_for_tuning_job(name, poll=poll, timeout=timeout)
        print_json(job)
    else:
        with Live(console=console, refresh_per_second=4, auto_refresh=False) as live:

            def show(described: DescribeHyperParameterTuningJobResponse) -> None:
                rows = api.all_tuning_job_trials(name, sort_by="CreationTime")
                live.update(trial_table(described, rows), refresh=True)

            job = api.wait_for_tuning_job(name, poll=poll, timeout=timeout, on_status=show)
        best = job.BestTrainingJob
        console.print(
            f"{name} ended {job.HyperParameterTuningJobStatus}"
            + (f"; best trial {best.TrainingJobName}" if best else ""),
            markup=False,
        )
    if job.HyperParameterTuningJobStatus == TuningJobStatus.FAILED:
        raise typer.Exit(1)


def trial_table(
    job: DescribeHyperParameterTuningJobResponse, rows: list[HyperParameterTrainingJobSummary]
) -> Table:
    """The trials as a table: name, status, the tuned values, the objective, the best so far
    (in creation order, whatever the rows' order); the best trial is starred."""
    objective = job.objective_of(0)
    maximize = objective.Type == "Maximize"
    tuned = sorted({k for r in rows for k in r.TunedHyperParameters})
    best_name = job.BestTrainingJob.TrainingJobName if job.BestTrainingJob else None
    running_best: dict[str, float] = {}
    best: float | None = None
    for r in sorted(rows, key=lambda r: (r.CreationTime, r.TrainingJobName)):
        metric = r.FinalHyperParameterTuningJobObjectiveMetric
        if metric is not None and (
            best is None or (metric.Value > best if maximize else metric.Value < best)
        ):
            best = metric.Value
        if best is not None:
            running_best[r.TrainingJobName] = best
    c = job.TrainingJobStatusCounters
    limit = job.HyperParameterTuningJobConfig.ResourceLimits.MaxNumberOfTrainingJobs
    title = (
        f"{job.HyperParameterTuningJobName}: {job.HyperParameterTuningJobStatus}, "
        f"{len(rows)}/{limit or '-'} trials ({c.InProgress} running, "
        f"{c.RetryableError + c.NonRetryableError} failed)"
    )
    table = Table(
        "Trial",
        "Status",
        *(escape(k) for k in tuned),
        escape(objective.MetricName),
        "Best so far",
        title=Text(title),
        caption=f"{objective.Type} {objective.MetricName}",
    )
    for r in rows:
        metric = r.FinalHyperParameterTuningJobObjectiveMetric
        so_far = running_best.get(r.TrainingJobName)
        star = " *" if r.TrainingJobName == best_name else ""
        table.add_row(
            Text(r.TrainingJobName + star, style="bold" if star else ""),
            styled(r.TrainingJobStatus),
            *(Text(_value(r.TunedHyperParameters.get(k, "-"))) for k in tuned),
            f"{metric.Value:g}" if metric is not None else "-",
            f"{so_far:g}" if so_far is not None else "-",
        )
    return table


def _value(text: str) -> str:
    """A tuned value as shown: numbers to 4 significant digits, the rest as they are."""
    try:
        number = float(text)
    except ValueError:
        return text
    return text if text.isdigit() else f"{number:.4g}"


@app.command()
def stop(ctx: typer.Context, name: Name) -> None:
    """Stop a tuning job: no new trials, and every running trial is stopped."""
    client(ctx).stop_tuning_job(name)
    done(
        ctx,
        {"HyperParameterTuningJobName": name, "HyperParameterTuningJobStatus": "Stopping"},
        f"stopping {name}",
    )


@app.command()
def delete(ctx: typer.Context, name: Name) -> None:
    """Delete a tuning job's record (it must have ended; its trials stay)."""
    client(ctx).delete_tuning_job(name)
    done(ctx, {"HyperParameterTuningJobName": name}, f"deleted {name}")
