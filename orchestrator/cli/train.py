"""``orch train``: run a script-mode training job (``Estimator.fit``) and watch it end."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import RenderableType
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import (
    client,
    console,
    duration,
    err_console,
    parse_pairs,
    print_json,
    state,
    styled,
)
from orchestrator.client import Client, Estimator
from orchestrator.resources.training import DescribeTrainingJobResponse, TrainingJobStatus


class _StatusLine:
    """A spinner with the job's statuses and the time since the watch began."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.job: DescribeTrainingJobResponse | None = None
        self.started = time.monotonic()
        self.spinner = Spinner("dots")

    def update(self, job: DescribeTrainingJobResponse) -> None:
        self.job = job

    def __rich__(self) -> RenderableType:
        status = "submitting"
        if self.job is not None:
            status = f"{self.job.TrainingJobStatus} / {self.job.SecondaryStatus}"
        elapsed = duration(time.monotonic() - self.started)
        self.spinner.text = Text(f"{self.name}  {status}  {elapsed}", style="bold")
        return self.spinner


def watch(api: Client, name: str, *, logs: bool, as_json: bool) -> DescribeTrainingJobResponse:
    """Wait for the job to end: a live status line (not with JSON), its log streamed above."""
    if as_json:
        sink = (lambda text: err_console.out(text, end="")) if logs else None
        return api.wait_for_training_job(name, on_log=sink)
    line = _StatusLine(name)
    with Live(line, console=console, transient=True, refresh_per_second=8) as live:

        def on_log(text: str) -> None:
            live.console.out(text, end="", highlight=False)

        return api.wait_for_training_job(
            name, on_log=on_log if logs else None, on_status=line.update
        )


def summarize(job: DescribeTrainingJobResponse) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("Training job", job.TrainingJobName)
    grid.add_row("Status", f"{styled(job.TrainingJobStatus)} ({job.SecondaryStatus})")
    grid.add_row("Training time", duration(job.TrainingTimeInSeconds))
    for m in job.FinalMetricDataList:
        grid.add_row(f"Metric {m.MetricName}", f"{m.Value:g}")
    if job.ModelArtifacts.S3ModelArtifacts:
        grid.add_row("Model artifact", Text(job.ModelArtifacts.S3ModelArtifacts))
    if job.FailureReason:
        grid.add_row("Failure reason", Text(job.FailureReason, style="red"))
    if job.StopReason:
        grid.add_row("Stop reason", Text(job.StopReason))
    console.print(grid)


def finish(ctx: typer.Context, job: DescribeTrainingJobResponse) -> None:
    """Print the outcome; exit 1 unless the job completed."""
    if state(ctx).json:
        print_json(job)
    else:
        summarize(job)
    if job.TrainingJobStatus != TrainingJobStatus.COMPLETED:
        reason = job.FailureReason or job.StopReason or job.TrainingJobStatus
        err_console.print(
            f"[bold red]error:[/bold red] [red]training job {job.TrainingJobName} ended "
            f"{job.TrainingJobStatus}: {escape(reason)}[/red]"
        )
        raise typer.Exit(1)


def train(
    ctx: typer.Context,
    *,
    entry_point: Annotated[
        Path | None, typer.Argument(help="The training script, e.g. train.py.")
    ] = None,
    algorithm: Annotated[
        str | None,
        typer.Option(help="A built-in algorithm instead of a script: linear-learner or mlp."),
    ] = None,
    source_dir: Annotated[
        Path | None,
        typer.Option(help="Directory packed as the job's code (default: the script's)."),
    ] = None,
    hp: Annotated[
        list[str] | None,
        typer.Option("--hp", metavar="KEY=VALUE", help="Hyperparameter KEY=VALUE (repeatable)."),
    ] = None,
    channel: Annotated[
        list[str] | None,
        typer.Option(metavar="NAME=URI", help="Input channel NAME=URI or NAME=PATH (repeatable)."),
    ] = None,
    instance_type: Annotated[str, typer.Option(help="Instance type.")] = "local",
    max_run: Annotated[int, typer.Option(help="Maximum run time in seconds.")] = 86400,
    job_name: Annotated[
        str | None, typer.Option(help="Job name (default: script name plus a timestamp).")
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME=REGEX", help="Metric NAME=REGEX with one capture group (repeatable)."
        ),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the job to end.")] = True,
    logs: Annotated[bool, typer.Option("--logs/--no-logs", help="Stream the job's log.")] = True,
) -> None:
    """Run a training script (script mode) or a built-in algorithm as a job, and wait for it."""
    hyperparameters = parse_pairs(hp, "--hp")
    channels = parse_pairs(channel, "--channel")
    metrics = [{"Name": k, "Regex": v} for k, v in parse_pairs(metric, "--metric").items()]
    api = client(ctx)
    estimator = Estimator(
        str(entry_point) if entry_point else None,
        algorithm=algorithm,
        source_dir=str(source_dir) if source_dir else None,
        hyperparameters=hyperparameters,
        instance_type=instance_type,
        max_run=max_run,
        metric_definitions=metrics,
        client=api,
    )
    estimator.fit(channels, wait=False, job_name=job_name)
    name = estimator.latest_training_job
    assert name is not None
    if not wait:
        if state(ctx).json:
            print_json(api.describe_training_job(name))
        else:
            console.print(f"started training job [bold]{name}[/bold]")
            console.print(f"follow it with: orch jobs logs -f {name}")
        return
    if not state(ctx).json:
        console.print(f"started training job [bold]{name}[/bold]")
    try:
        job = watch(api, name, logs=logs, as_json=state(ctx).json)
    except KeyboardInterrupt:
        err_console.print(
            f"stopped watching; the job goes on. Follow: orch jobs logs -f {name}  "
            f"Stop: orch jobs stop {name}"
        )
        raise typer.Exit(130) from None
    finish(ctx, job)
